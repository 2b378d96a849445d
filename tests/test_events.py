"""Payloads → typed events, pure. Real payloads from fixtures/ (named <event>.<action>.json)."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from bot.core import events
from tests.conftest import INSTALLATION, load_fixture


def test_issue_opened() -> None:
    e = events.parse("issues", load_fixture("issues.opened.json"), "d1")
    assert isinstance(e, events.WorkItem)
    assert (e.repo, e.number, e.installation_id, e.labels) == ("Codertocat/Hello-World", 1, INSTALLATION, ("bug",))
    assert e.title == "The application crashes when opening files after launch" and not e.is_pull_request
    assert e.thread == "Codertocat/Hello-World#1" and e.author.type == "User"


def test_pull_request_opened() -> None:
    e = events.parse("pull_request", load_fixture("pull_request.opened.json"), "d2")
    assert isinstance(e, events.WorkItem) and e.is_pull_request
    assert e.head_sha and e.head_ref == "changes" and not e.from_fork


def test_comment_created() -> None:
    e = events.parse("issue_comment", load_fixture("issue_comment.created.json"), "d3")
    assert isinstance(e, events.Comment)
    assert e.body.startswith("You are totally right") and e.comment_id > 0


def test_failed_check_run() -> None:
    e = events.parse("check_run", load_fixture("check_run.completed.json"), "d4")
    assert isinstance(e, events.CiFailure)
    assert (e.name, e.conclusion, e.pull_numbers, e.head_branch) == ("Octocoders-linter", "failure", (2,), "changes")
    assert e.thread == "Codertocat/Hello-World#2"  # serialised with the PR's other events


def test_a_pull_number_that_is_a_boolean_names_no_pull_request() -> None:
    """bool is an int in Python: a fuzzer's ``"number": false`` became a request for /pulls/False."""
    p = load_fixture("check_run.completed.json")
    p["check_run"]["pull_requests"] = [{**p["check_run"]["pull_requests"][0], "number": False},
                                       {**p["check_run"]["pull_requests"][0], "number": True}]
    e = events.parse("check_run", p, "d4b")
    assert isinstance(e, events.CiFailure) and e.pull_numbers == ()


def test_successful_check_run_is_ignored() -> None:
    p = load_fixture("check_run.completed.json")
    p["check_run"]["conclusion"] = "success"
    assert isinstance(events.parse("check_run", p, "d5"), events.Ignored)


def test_ignored_and_malformed() -> None:
    p = load_fixture("issues.opened.json")
    assert isinstance(events.parse("star", p, "x"), events.Ignored)
    assert isinstance(events.parse("issues", p | {"action": "pinned"}, "x"), events.Ignored)
    no_inst = copy.deepcopy(p)
    del no_inst["installation"]
    assert "installation" in events.parse("issues", no_inst, "x").reason  # type: ignore[union-attr]
    assert isinstance(events.parse("issues", [1, 2], "x"), events.Malformed)
    broken = copy.deepcopy(p)
    broken["issue"]["number"] = "one"
    result = events.parse("issues", broken, "x")
    assert isinstance(result, events.Malformed) and "issue.number" in result.reason
    flagged = copy.deepcopy(p)
    flagged["issue"]["number"] = True  # a bool is not an id
    assert isinstance(events.parse("issues", flagged, "x"), events.Malformed)


def test_bots_are_recognised_by_account_type_not_suffix() -> None:
    p = load_fixture("issue_comment.created.json")
    human_named_like_bot = copy.deepcopy(p)
    human_named_like_bot["comment"]["user"] |= {"login": "robot[bot]", "type": "User"}
    human_named_like_bot["sender"] = human_named_like_bot["comment"]["user"]
    e = events.parse("issue_comment", human_named_like_bot, "x")
    assert not events.is_self_or_foreign_bot(e, "triage-lead[bot]", frozenset())  # type: ignore[arg-type]
    other_bot = copy.deepcopy(p)
    other_bot["comment"]["user"] |= {"login": "renovate", "type": "Bot"}
    other_bot["sender"] = other_bot["comment"]["user"]
    e = events.parse("issue_comment", other_bot, "x")
    assert events.is_self_or_foreign_bot(e, "triage-lead[bot]", frozenset())  # type: ignore[arg-type]
    assert not events.is_self_or_foreign_bot(e, "triage-lead[bot]", frozenset({"renovate"}))  # type: ignore[arg-type]
    own = copy.deepcopy(p)
    own["comment"]["user"] |= {"login": "triage-lead[bot]", "type": "Bot"}
    own["sender"] = own["comment"]["user"]
    e = events.parse("issue_comment", own, "x")
    assert events.is_self_or_foreign_bot(e, "triage-lead[bot]", frozenset({"triage-lead[bot]"}))  # type: ignore[arg-type]


def test_the_editor_of_a_comment_is_who_commands_not_its_author() -> None:
    """GitHub lets an App (or an admin) edit anyone's comment: the edit is the sender's, whoever wrote the rest."""
    p = load_fixture("issue_comment.created.json") | {"action": "edited", "changes": {"body": {"from": "lgtm"}}}
    p["comment"]["user"] |= {"login": "maintainer", "type": "User"}
    p["sender"] = {**p["sender"], "login": "some-app[bot]", "type": "Bot"}
    e = events.parse("issue_comment", p, "x")
    assert events.is_self_or_foreign_bot(e, "triage-lead[bot]", frozenset())  # type: ignore[arg-type]
    p["sender"] = {**p["sender"], "login": "maintainer", "type": "User"}
    p["comment"]["user"] |= {"login": "renovate[bot]", "type": "Bot"}  # a person editing a bot's comment
    assert not events.is_self_or_foreign_bot(events.parse("issue_comment", p, "x"), "triage-lead[bot]",  # type: ignore[arg-type]
                                             frozenset())


def test_a_push_is_never_dropped_as_a_bots_event() -> None:
    p = load_fixture("pull_request.opened.json") | {"action": "synchronize"}
    p["sender"] = {**p["sender"], "login": "dependabot[bot]", "type": "Bot"}
    assert not events.is_self_or_foreign_bot(events.parse("pull_request", p, "x"), "triage-lead[bot]",  # type: ignore[arg-type]
                                             frozenset())
    opened = p | {"action": "opened"}
    assert events.is_self_or_foreign_bot(events.parse("pull_request", opened, "x"), "triage-lead[bot]",  # type: ignore[arg-type]
                                         frozenset())


def test_when_a_comment_was_written_is_its_creation_or_for_an_edit_its_update() -> None:
    p = load_fixture("issue_comment.created.json")
    p["comment"] |= {"created_at": "2026-12-03T06:00:00Z", "updated_at": "2026-12-03T06:05:00Z"}
    created = events.parse("issue_comment", p, "d-1")
    edited = events.parse("issue_comment", p | {"action": "edited", "changes": {"body": {"from": "x"}}}, "d-2")
    assert isinstance(created, events.Comment) and isinstance(edited, events.Comment)
    assert edited.written_at is not None and created.written_at is not None
    assert edited.written_at - created.written_at == 300


@pytest.mark.parametrize("value", [None, 17, "yesterday", ""])
def test_a_time_that_is_not_one_is_unknown_not_a_refusal(value: Any) -> None:
    p = load_fixture("pull_request.opened.json")
    p["pull_request"]["updated_at"] = value
    item = events.parse("pull_request", p | {"action": "synchronize"}, "d-1")
    assert isinstance(item, events.WorkItem) and item.updated_at is None


def _edited(body: str | None, before: str | None = "old") -> dict[str, Any]:
    p = copy.deepcopy(load_fixture("issues.opened.json")) | {"action": "edited"}
    p["issue"]["body"] = body
    p["issue"]["user"] |= {"login": "triage-lead[bot]", "type": "Bot"}
    if before is not None:
        p["changes"] = {"body": {"from": before}}
    return p


def test_only_an_issue_ending_with_the_dashboards_marker_is_a_dashboard_edit() -> None:
    """GitHub sends issues.edited for every edit of every issue: only a dashboard's are stored (and the handler
    still checks the bot opened it: anyone can end their own issue with the marker)."""
    mark = "<!-- triage-lead:dashboard:Codertocat/Hello-World -->"
    e = events.parse("issues", _edited(f"- [x] approve\n\n{mark}\n"), "d1")
    assert isinstance(e, events.DashboardEdit) and e.previous_body == "old" and e.number == 1
    assert e.author.login == "triage-lead[bot]" and e.thread == "Codertocat/Hello-World#1"
    by_a_person = _edited(f"- [x] approve\n\n{mark}\n")
    by_a_person["issue"]["user"] |= {"login": "mallory", "type": "User"}
    assert isinstance(events.parse("issues", by_a_person, "d5"), events.Ignored)  # not stored: a flood costs nothing
    assert isinstance(events.parse("issues", _edited(f"{mark}\n- [x] quoted, not the end"), "d2"), events.Ignored)
    assert isinstance(events.parse("issues", _edited(None), "d3"), events.Ignored)
    title_only = events.parse("issues", _edited(f"text\n{mark}", before=None), "d4")
    assert isinstance(title_only, events.DashboardEdit) and title_only.previous_body is None


def test_a_pull_request_closed_is_acted_on_only_when_merged_whoever_merged() -> None:
    p = copy.deepcopy(load_fixture("pull_request.opened.json")) | {"action": "closed"}
    p["pull_request"] |= {"merged": True, "merge_commit_sha": "f" * 40}
    p["sender"] |= {"login": "mergify[bot]", "type": "Bot"}
    e = events.parse("pull_request", p, "d1")
    assert isinstance(e, events.PullMerged) and e.merge_commit_sha == "f" * 40 and e.head_sha
    assert not events.is_self_or_foreign_bot(e, "triage-lead[bot]", frozenset())  # a bot's merge still files
    p["pull_request"] |= {"merged": False, "closed_at": "2026-01-02T03:04:05Z"}  # closed unmerged: noted for retention
    closed = events.parse("pull_request", p, "d2")
    assert isinstance(closed, events.PullClosed) and not closed.reopened and closed.closed_at == 1767323045.0
    assert not events.is_self_or_foreign_bot(closed, "triage-lead[bot]", frozenset())  # a bot's close still counts
    reopened = events.parse("pull_request", p | {"action": "reopened"}, "d4")
    assert isinstance(reopened, events.PullClosed) and reopened.reopened and reopened.closed_at is None
    p["pull_request"]["merged"] = "yes"
    assert isinstance(events.parse("pull_request", p, "d3"), events.Malformed)


@pytest.mark.parametrize("updated_at,head", [("2026-01-02T03:09:00Z", {"sha": "a" * 40}), (None, None),
                                             ("garbage", "not an object"), (12, {"sha": 12}), ("9" * 5000, {})])
def test_a_close_or_reopen_carries_when_github_made_it_read_leniently(updated_at: Any, head: Any) -> None:
    """updated_at orders a late close after a reopen (bot/run/merged.py); unreadable, a close falls back to its
    closed_at and a reopen to None (the store then applies it safely); the head sha may be missing too."""
    p = copy.deepcopy(load_fixture("pull_request.opened.json")) | {"action": "closed"}
    p["pull_request"] |= {"merged": False, "closed_at": "2026-01-02T03:04:05Z", "updated_at": updated_at, "head": head}
    closed, reopened = events.parse("pull_request", p, "d1"), events.parse("pull_request", p | {"action": "reopened"}, "d2")
    assert isinstance(closed, events.PullClosed) and isinstance(reopened, events.PullClosed)
    ok = updated_at == "2026-01-02T03:09:00Z"
    assert (closed.updated_at, reopened.updated_at) == ((1767323340.0, 1767323340.0) if ok else (1767323045.0, None))
    assert closed.head_sha == ("a" * 40 if ok else "")


@pytest.mark.parametrize("merged,merged_at,want", [
    (None, "2026-01-02T03:04:05Z", events.PullMerged), ("missing", "2026-01-02T03:04:05Z", events.PullMerged),
    (None, None, events.PullClosed), (None, "garbage", events.PullClosed), (None, 12, events.PullClosed),
    (False, "2026-01-02T03:04:05Z", events.PullClosed), (True, None, events.PullMerged),
])
def test_a_merge_that_says_nothing_of_merged_is_told_by_merged_at(merged: Any, merged_at: Any, want: type) -> None:
    """``merged`` null or missing (GitHub's schema allows it): a time in merged_at is a merge, or its open findings
    would never be filed; an explicit false is believed."""
    p = copy.deepcopy(load_fixture("pull_request.opened.json")) | {"action": "closed"}
    p["pull_request"] |= {"merged": merged, "merged_at": merged_at, "closed_at": "2026-01-02T03:04:05Z"}
    if merged == "missing":
        del p["pull_request"]["merged"]
    assert type(events.parse("pull_request", p, "d1")) is want


@pytest.mark.parametrize("sha", [12345, ["f" * 40], {"sha": "f" * 40}, True])
def test_a_merge_commit_sha_of_another_type_is_read_as_none_not_a_reason_to_drop_the_merge(sha: Any) -> None:
    p = copy.deepcopy(load_fixture("pull_request.opened.json")) | {"action": "closed"}
    p["pull_request"] |= {"merged": True, "merge_commit_sha": sha}
    e = events.parse("pull_request", p, "d1")
    assert isinstance(e, events.PullMerged) and e.merge_commit_sha is None and e.head_sha


@pytest.mark.parametrize("ref", [7, ["main"], {"name": "main"}, False])
def test_a_base_ref_of_another_type_is_read_as_none_not_a_reason_to_drop_the_merge(ref: Any) -> None:
    """The base branch is only shown: a wrong type had refused the whole merge delivery with a 400."""
    p = copy.deepcopy(load_fixture("pull_request.opened.json")) | {"action": "closed"}
    p["pull_request"] |= {"merged": True}
    p["pull_request"]["base"]["ref"] = ref
    e = events.parse("pull_request", p, "d1")
    assert isinstance(e, events.PullMerged) and e.base_ref is None and e.head_sha


def test_a_check_name_with_a_lone_surrogate_has_a_failure_key() -> None:
    """A check run's name is free text: a lone surrogate (JSON allows the escape) raised UnicodeEncodeError in the
    webhook (found by the fuzz test on CI). Valid names keep the key they had."""
    assert events.failure_seen("o/r", "lint \ud800", "a" * 40) != events.failure_seen("o/r", "lint", "a" * 40)
    key = hashlib.sha256(b"o/r\x00lint\x00" + b"a" * 40).hexdigest()[:24]
    assert events.failure_seen("o/r", "lint", "a" * 40) == f"<!-- triage-lead:ci-failed:{key} -->"
