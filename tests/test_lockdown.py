"""Lockdown (issue 17, point 5): in a repository whose config says ``lockdown: true`` the bot acts only for
people with triage access or more. Anyone else gets one note per person per thread, and nothing else: no run,
no model call, no reply to their commands. A maintainer starts the bot on such a thread with a label.

Through the webhook, against the sandbox GitHub (roles asked of it, as of GitHub) and the local Messages API.
"""

from __future__ import annotations

import copy
import zlib
from typing import Any

from bot.core import config
from bot.core.markers import marker, markers_in, with_marker
from bot.sandbox.team import Team
from tests.test_workflows_e2e import REPO, bot, comment_payload, fake, issue_payload, send, team  # noqa: F401

LOCKDOWN = "lockdown: true\n"


def by(payload: dict[str, Any], login: str) -> dict[str, Any]:
    """The payload as ``login`` sent it (and, for an opening, wrote the issue)."""
    p = copy.deepcopy(payload)
    person = {**p["sender"], "login": login, "type": "User", "id": zlib.crc32(login.encode())}  # one id a login
    p["sender"] = person
    if "comment" in p:
        p["comment"]["user"] = person
    elif p["action"] == "opened":
        p["issue"]["user"] = person
    return p


def said(number: int, body: str, login: str, comment_id: int) -> dict[str, Any]:
    """A comment by ``login`` (their account id as everywhere in these tests)."""
    return by(comment_payload(number, body, login=login, comment_id=comment_id), login)


def notes(sandbox: Any, number: int) -> list[str]:
    """The bodies of the bot's lockdown notes on a thread."""
    return [c["body"].replace("\u200b", "") for c in sandbox.comments(REPO, number)  # mentions come defused
            if any(k.startswith("lockdown") for k in markers_in(c["body"]))]


def mine(sandbox: Any, number: int) -> list[str]:
    """The bot's comments on a thread (each carries a hidden marker; people's comments are seeded there too)."""
    return [c["body"] for c in sandbox.comments(REPO, number) if markers_in(c["body"])]


def labeled(number: int, label: str, login: str) -> dict[str, Any]:
    p = issue_payload(number, [label]) | {"action": "labeled", "label": {"name": label, "id": 9, "color": "ededed"}}
    return by(p, login)


async def test_an_outsiders_issue_gets_one_note_and_nothing_else(bot: Any, sandbox: Any, team: Team) -> None:
    rt, _ = bot
    sandbox.set_file(REPO, ".github/triage-lead.yml", LOCKDOWN)
    opened = by(issue_payload(70, ["api"], title="Add an endpoint"), "stranger")
    await send(bot, sandbox, "issues", opened)
    assert await rt.store.active_run(f"{REPO}#70") is None and team.calls == []
    assert len(mine(sandbox, 70)) == 1
    [note] = notes(sandbox, 70)  # the note, and only it
    assert note.startswith("@stranger thanks for this.") and "triage access" in note and "label" in note
    await send(bot, sandbox, "issues", opened | {"action": "reopened"})
    await send(bot, sandbox, "issue_comment", said(70, "/status", "stranger", 7001))
    await send(bot, sandbox, "issue_comment", said(70, "/approve", "stranger", 7002))
    assert len(mine(sandbox, 70)) == 1  # told once on this thread, whatever they do next
    assert [w.kind for w in sandbox.writes if w.number == 70] == ["comment"]  # not even edited again
    assert team.calls == []


async def test_a_dry_run_in_lockdown_posts_no_note(bot: Any, sandbox: Any, team: Team) -> None:
    rt, _ = bot
    sandbox.set_file(REPO, ".github/triage-lead.yml", LOCKDOWN + "dry_run: true\n")
    await send(bot, sandbox, "issues", by(issue_payload(76, ["api"]), "stranger"))
    assert mine(sandbox, 76) == [] and team.calls == [] and await rt.store.active_run(f"{REPO}#76") is None


async def test_each_person_is_told_once_per_thread(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_file(REPO, ".github/triage-lead.yml", LOCKDOWN)
    await send(bot, sandbox, "issues", by(issue_payload(71, ["api"]), "stranger"))
    await send(bot, sandbox, "issue_comment", said(71, "/help", "passer-by", 7101))
    await send(bot, sandbox, "issue_comment", said(71, "/help", "passer-by", 7102))
    assert [n.split(" ", 1)[0] for n in notes(sandbox, 71)] == ["@stranger", "@passer-by"]
    await send(bot, sandbox, "issues", by(issue_payload(72, ["api"]), "stranger"))
    assert len(notes(sandbox, 72)) == 1  # another thread, another note


async def test_a_maintainers_label_starts_the_bot_on_an_outsiders_issue(bot: Any, sandbox: Any, team: Team) -> None:
    rt, _ = bot
    sandbox.set_file(REPO, ".github/triage-lead.yml", LOCKDOWN)
    sandbox.set_permission(REPO, "keeper", "maintain")
    await send(bot, sandbox, "issues", by(issue_payload(73, [], title="Add an endpoint"), "stranger"))
    assert await rt.store.active_run(f"{REPO}#73") is None
    await send(bot, sandbox, "issues", labeled(73, "api", "keeper"))
    assert team.calls  # the run started: its agents were called
    assert len(notes(sandbox, 73)) == 1


async def test_someone_with_triage_access_is_acted_for(bot: Any, sandbox: Any, team: Team) -> None:
    rt, _ = bot
    sandbox.set_file(REPO, ".github/triage-lead.yml", LOCKDOWN)
    sandbox.set_permission(REPO, "helper", "triage")
    await send(bot, sandbox, "issues", by(issue_payload(74, ["api"]), "helper"))
    assert team.calls and notes(sandbox, 74) == []


async def test_without_lockdown_an_outsider_is_acted_for_as_before(bot: Any, sandbox: Any, team: Team) -> None:
    await send(bot, sandbox, "issues", by(issue_payload(75, ["api"]), "stranger"))
    assert team.calls and notes(sandbox, 75) == []
    await send(bot, sandbox, "issue_comment", said(75, "/help", "stranger", 7501))
    assert "/status" in sandbox.comments(REPO, 75)[-1]["body"]  # the help text, answered as for anyone


def test_lockdown_is_a_boolean_in_the_config() -> None:
    assert config.parse("lockdown: true\n", known_workflows=set())[0].lockdown
    assert not config.parse("", known_workflows=set())[0].lockdown
    cfg, errors = config.parse("lockdown: 1\n", known_workflows=set())
    assert not cfg.lockdown and errors and "lockdown" in errors[0]


async def test_the_bots_own_task_issue_is_worked_on_in_lockdown(bot: Any, sandbox: Any, team: Team) -> None:
    """A long-running project's task issues are opened by the bot itself: lockdown is for people, not for it."""
    rt, _ = bot
    sandbox.set_file(REPO, ".github/triage-lead.yml", LOCKDOWN)
    body = with_marker("Do the next task of the project.", marker("task:proj-1:1"))
    opened = by(issue_payload(77, ["api"], title="Task 1", body=body), sandbox.bot_login)
    opened["sender"]["type"] = opened["issue"]["user"]["type"] = "Bot"
    await send(bot, sandbox, "issues", opened)
    assert notes(sandbox, 77) == [] and team.calls
