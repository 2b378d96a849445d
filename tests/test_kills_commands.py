"""The command parser's edges that mutation testing found untested (benchmarks/mutation.py commands).

Each test fails on a mutant of bot/core/commands.py that the other tests let through: a quote's edge cases, what
an HTML comment leaves behind, CRLF bodies, the argument's default and cap, unknown commands, and who may
run what.
"""

from __future__ import annotations

import pytest

from bot.core import commands


def names(body: str) -> list[str]:
    return [c.name for c in commands.parse(body)]


def test_an_html_comment_leaves_nothing_behind_on_the_line() -> None:
    # It renders as nothing: the line reads "/approve 2", so it is a command with argument "2".
    assert [(c.name, c.arg) for c in commands.parse("<!-- pinned -->/approve 2<!-- by the bot -->")] == [
        ("approve", "2")]


def test_a_body_with_windows_line_endings_is_read_line_by_line() -> None:
    assert names("/status\r\n/approve 2\r\n") == ["status", "approve"]
    assert commands.parse("/approve 2\r\n")[0].option == 2


def test_an_indented_quote_takes_its_lazy_continuation_line() -> None:
    # Up to three spaces before ">" still open a quote, and the next line continues it.
    assert commands.parse("  > quoted\n/approve") == []


@pytest.mark.parametrize("closing", [">", "> ", "  >", ">>"])
def test_an_empty_quote_line_ends_the_paragraph_so_the_next_line_is_read(closing: str) -> None:
    assert names(f"> a note\n{closing}\n/approve") == ["approve"]


def test_a_command_without_an_argument_has_an_empty_one() -> None:
    [cmd] = commands.parse("/approve")
    assert (cmd.name, cmd.arg, cmd.option, cmd.known) == ("approve", "", None, True)


def test_the_argument_is_cut_at_500_characters() -> None:
    [cmd] = commands.parse("/escalate " + "a" * 499 + "bc")
    assert cmd.arg == "a" * 499 + "b"


def test_an_unknown_command_is_found_but_not_known() -> None:
    [cmd] = commands.parse("/Frobnicate now")
    assert (cmd.name, cmd.arg, cmd.known) == ("frobnicate", "now", False)


@pytest.mark.parametrize("role", ["admin", "maintain", "write"])
@pytest.mark.parametrize("name", sorted(commands.NEEDS_WRITE))
def test_write_roles_may_run_every_command(name: str, role: str) -> None:
    assert commands.may_run(name, role)


@pytest.mark.parametrize("role", ["triage", "read", "none", ""])
def test_other_roles_may_run_only_status_and_help(role: str) -> None:
    assert [n for n in commands.KNOWN if commands.may_run(n, role)] == ["status", "help"]
    assert commands.may_run("frobnicate", role)  # unknown: refused elsewhere, not for want of permission


def test_a_comment_asks_for_its_first_command_of_ours_and_names_the_rest_of_ours_as_ignored() -> None:
    # Other bots' commands and paths are not ours: neither acted on nor named. A near miss is ours (it gets a hint).
    req = commands.request("/lgtm\n/tmp is full\n/statu\n/help\n/approve 2\n/help")
    assert req.command == commands.Parsed("statu", known=False) and req.command.guess == "status"
    assert req.ignored_lines() == [("/help", 2), ("/approve 2", 1)]
    assert commands.request("/lgtm\n/tmp is full") == commands.Request(None)


def test_on_an_edit_the_first_new_command_still_there_is_the_one() -> None:
    first = commands.request("/help\n/status\n/cancel", previous="/help").command
    assert first is not None and first.name == "status"
    # Edited again before the job ran: /status is gone, so /cancel is the one.
    req = commands.request("/help\n/status\n/cancel", previous="/help", current="/help\n/cancel")
    assert req.command is not None
    assert (req.command.name, req.ignored) == ("cancel", ())
