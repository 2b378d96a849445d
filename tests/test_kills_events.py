"""Payload parsing edges that mutation testing found untested (benchmarks/mutation.py events).

Each test fails on a mutant of bot/core/events.py that the other tests let through. Payloads are small dicts in
GitHub's shape, so every field the parser reads is visible in the test.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bot.core import events

REPO = "octo-org/hello.world"
USER = {"login": "Mona", "type": "User"}
BOT = "triage-lead[bot]"


def payload(action: str, **extra: Any) -> dict[str, Any]:
    return {"action": action, "installation": {"id": 77}, "repository": {"full_name": REPO, "default_branch": "main"},
            "sender": dict(USER), **extra}


def issue(**fields: Any) -> dict[str, Any]:
    return {"number": 5, "title": "It breaks", "body": "details", "user": {"login": "author", "type": "User"},
            "labels": [{"name": "bug"}], **fields}


def parsed(event: str, p: object) -> Any:  # any JSON value, as events.parse takes
    return events.parse(event, p, "delivery-1")


# ---- parse: what is acted on, ignored or malformed, and why ------------------------------------------------

def test_the_reasons_name_the_event_the_action_and_the_field() -> None:
    assert parsed("star", payload("created")) == events.Ignored("event 'star' is not one the bot acts on")
    assert parsed("issues", payload("pinned")) == events.Ignored("issues.pinned is not an action the bot acts on")
    assert parsed("issues", {"installation": {"id": 1}}) == events.Malformed("missing action")
    assert parsed("issues", payload("opened") | {"installation": {"id": "77"}}) == events.Ignored(
        "no installation in the payload (not sent to a GitHub App)")
    assert parsed("issues", "[]") == events.Malformed("payload is not a JSON object")
    assert parsed("issues", payload("opened", issue=issue(number=None))) == events.Malformed(
        "issues.opened: missing issue.number")
    assert parsed("issues", payload("opened", issue=issue(title=7))) == events.Malformed(
        "issues.opened: issue.title has the wrong type")
    assert parsed("issues", payload("opened", issue=issue(labels="bug"))) == events.Malformed(
        "issues.opened: labels has the wrong type")


@pytest.mark.parametrize("name", ["octo/..", "octo/.", "-octo/x", "octo", "octo/x/y", "a" * 40 + "/x", "octo/x y"])
def test_a_repository_name_not_in_owner_name_form_is_malformed(name: str) -> None:
    p = payload("opened", issue=issue())
    p["repository"]["full_name"] = name
    assert parsed("issues", p) == events.Malformed("issues.opened: repository.full_name is not owner/name")


@pytest.mark.parametrize("name", ["octo/.github", "a" * 39 + "/x", "o/" + "x" * 100, "Octo-Org/a_b-c.d"])
def test_a_repository_name_in_owner_name_form_is_taken(name: str) -> None:
    p = payload("opened", issue=issue())
    p["repository"]["full_name"] = name
    assert parsed("issues", p).repo == name


# ---- issues and pull requests ------------------------------------------------------------------------------

def test_an_issue_event_carries_every_field() -> None:
    e = parsed("issues", payload("labeled", issue=issue(labels=[{"name": "bug"}, "junk", {"name": 3}, {}]),
                                 label={"name": "security"}))
    assert e == events.WorkItem(event="issues", action="labeled", delivery_id="delivery-1", installation_id=77,
                                repo=REPO, sender=events.Actor("Mona", "User"), number=5, title="It breaks",
                                body="details", labels=("bug",), author=events.Actor("author", "User"),
                                is_pull_request=False, added_label="security", default_branch="main")
    assert e.thread == f"{REPO}#5"


def test_an_issue_without_body_labels_or_account_type() -> None:
    p = payload("opened", issue=issue(body=None, labels=None, user={"login": "ghost"}))
    e = parsed("issues", p)
    assert (e.body, e.labels, e.author, e.added_label) == ("", (), events.Actor("ghost", "User"), None)


def test_an_issue_that_is_a_pull_request() -> None:
    e = parsed("issues", payload("opened", issue=issue(pull_request={"url": "x"})))
    assert e.is_pull_request


def test_a_pull_request_event_carries_its_head_and_draft_state() -> None:
    pr = issue(head={"sha": "abc123", "ref": "feature", "repo": {"full_name": "fork/hello.world"}},
               base={"sha": "base99", "ref": "main"}, draft=True)
    p = payload("labeled", pull_request=pr, label={"name": "api"})
    p["repository"]["default_branch"] = "trunk"
    e = parsed("pull_request", p)
    assert (e.is_pull_request, e.head_sha, e.head_ref, e.head_repo, e.base_sha, e.draft, e.added_label,
            e.default_branch) == (True, "abc123", "feature", "fork/hello.world", "base99", True, "api", "trunk")
    assert (e.number, e.title, e.body, e.labels, e.author.login) == (5, "It breaks", "details", ("bug",), "author")
    assert (e.event, e.action, e.delivery_id, e.installation_id, e.repo) == (
        "pull_request", "labeled", "delivery-1", 77, REPO)
    assert e.from_fork


def test_a_pull_request_whose_fork_was_deleted_has_no_head_repository() -> None:
    pr = issue(head={"sha": "abc123", "ref": "feature", "repo": None}, body=None)
    e = parsed("pull_request", payload("opened", pull_request=pr))
    assert (e.head_repo, e.base_sha, e.draft, e.body, e.added_label, e.from_fork) == (None, None, False, "", None, False)
    assert parsed("pull_request", payload("opened", pull_request=issue(head={"ref": "feature"}))) == events.Malformed(
        "pull_request.opened: missing pull_request.head.sha")


# ---- comments ----------------------------------------------------------------------------------------------

def test_an_edited_comment_keeps_the_body_before_the_edit() -> None:
    p = payload("edited", issue=issue(pull_request={}), comment={"id": 9, "body": "/approve", "user": USER},
                changes={"body": {"from": "/status"}})
    e = parsed("issue_comment", p)
    assert (e.event, e.action, e.delivery_id, e.installation_id, e.repo) == (
        "issue_comment", "edited", "delivery-1", 77, REPO)
    assert (e.number, e.comment_id, e.body, e.previous_body, e.is_pull_request, e.author) == (
        5, 9, "/approve", "/status", True, events.Actor("Mona", "User"))


def test_a_new_comment_has_no_previous_body_and_may_be_empty() -> None:
    e = parsed("issue_comment", payload("created", issue=issue(), comment={"id": 9, "body": None, "user": USER}))
    assert (e.body, e.previous_body, e.is_pull_request) == ("", None, False)


# ---- CI failures -------------------------------------------------------------------------------------------

def check_run(**fields: Any) -> dict[str, Any]:
    return {"id": 11, "name": "lint", "conclusion": "failure", "head_sha": "abc", "details_url": "https://ci/11",
            "html_url": "https://github.com/runs/11", "app": {"slug": "octo-ci", "name": "Octo CI"},
            "check_suite": {"head_branch": "feature"}, "output": {"title": "2 errors", "summary": "E501", "text": "x"},
            "pull_requests": [{"number": 8}, {"number": "9"}, "junk"], **fields}


def test_a_failed_check_run_carries_its_output_pull_requests_and_app() -> None:
    e = parsed("check_run", payload("completed", check_run=check_run()))
    assert e == events.CiFailure(event="check_run", action="completed", delivery_id="delivery-1", installation_id=77,
                                 repo=REPO, sender=events.Actor("Mona", "User"), source="check_run", ci_id=11,
                                 name="lint", conclusion="failure", head_sha="abc", head_branch="feature",
                                 default_branch="main", pull_numbers=(8,), summary="2 errors\nE501",
                                 details_url="https://ci/11", app_slug="octo-ci")
    assert e.thread == f"{REPO}#8"


def test_a_check_run_without_suite_output_or_details_url() -> None:
    run = check_run(check_suite="x", output={"title": None, "summary": "only this"}, details_url=None,
                    pull_requests=None, conclusion="timed_out")
    e = parsed("check_run", payload("completed", check_run=run))
    assert (e.head_branch, e.summary, e.details_url, e.pull_numbers, e.conclusion) == (
        None, "only this", "https://github.com/runs/11", (), "timed_out")
    assert e.thread == REPO  # no pull request: the repository is the thread
    e = parsed("check_run", payload("completed", check_run=check_run(output="x", check_suite=None)))
    assert (e.summary, e.head_branch) == ("", None)


def test_a_check_runs_pull_requests_must_be_a_list() -> None:
    assert parsed("check_run", payload("completed", check_run=check_run(pull_requests={"number": 8}))) == \
        events.Malformed("check_run.completed: pull_requests has the wrong type")


@pytest.mark.parametrize("conclusion, why", [("success", "success"), (None, "without a conclusion"),
                                             ("cancelled", "cancelled")])
def test_a_ci_run_that_did_not_fail_is_ignored_with_its_conclusion(conclusion: str | None, why: str) -> None:
    e = parsed("workflow_run", payload("completed", workflow_run={"id": 1, "conclusion": conclusion}))
    assert e == events.Ignored(f"workflow_run concluded {why}: nothing failed")


def test_a_failed_check_suite_is_named_for_its_app() -> None:
    suite = {"id": 12, "conclusion": "failure", "head_sha": "def", "head_branch": "main",
             "app": {"name": "Octo CI", "slug": "octo-ci"}, "url": "https://api/12"}
    e = parsed("check_suite", payload("completed", check_suite=suite))
    assert (e.source, e.ci_id, e.name, e.head_branch, e.summary, e.app_slug, e.head_sha) == (
        "check_suite", 12, "Octo CI", "main", "", "octo-ci", "def")
    del suite["app"]
    e = parsed("check_suite", payload("completed", check_suite=suite))
    assert (e.name, e.app_slug, e.details_url) == ("check suite", None, None)


@pytest.mark.parametrize("event, extra", [("check_suite", {}), ("workflow_run", {"name": "CI"})])
def test_a_failed_run_on_no_branch_of_a_repository_without_default_branch(event: str, extra: dict[str, Any]) -> None:
    # GitHub sends head_branch null for a run on a tag or a deleted branch.
    p = payload("completed", **{event: {"id": 1, "conclusion": "failure", "head_sha": "abc", "head_branch": None,
                                        **extra}})
    del p["repository"]["default_branch"]
    e = parsed(event, p)
    assert (e.source, e.head_branch, e.default_branch, e.thread) == (event, None, None, REPO)


def test_a_failed_workflow_run() -> None:
    run = {"id": 13, "name": "CI", "conclusion": "failure", "head_sha": "fed", "head_branch": "dev",
           "html_url": "https://github.com/actions/13", "pull_requests": [{"number": 4}]}
    e = parsed("workflow_run", payload("completed", workflow_run=run))
    assert (e.source, e.name, e.head_branch, e.details_url, e.pull_numbers, e.summary) == (
        "workflow_run", "CI", "dev", "https://github.com/actions/13", (4,), "")
    no_name = copy.deepcopy(run)
    del no_name["name"]
    assert parsed("workflow_run", payload("completed", workflow_run=no_name)) == events.Malformed(
        "workflow_run.completed: missing workflow_run.name")


# ---- installations -----------------------------------------------------------------------------------------

def test_an_installation_names_its_account_and_repositories() -> None:
    p = payload("created", repositories=[{"full_name": "octo-org/a"}, {"full_name": 3}, "junk", {"name": "b"}])
    p["installation"] |= {"account": {"login": "octo-org"}}
    e = parsed("installation", p)
    assert e == events.Installation(event="installation", action="created", delivery_id="delivery-1",
                                    installation_id=77, repo="octo-org", sender=events.Actor("Mona", "User"),
                                    repos=("octo-org/a",))
    assert e.thread == "octo-org"


def test_an_installation_without_account_or_repository_list() -> None:
    e = parsed("installation", payload("deleted", repositories="all"))
    assert (e.repo, e.repos) == ("", ())
    assert parsed("installation", payload("deleted", repositories=7)).repos == ()
    assert parsed("installation", payload("suspend")).repos == ()


# ---- whose event it is -------------------------------------------------------------------------------------

def test_the_bots_own_failing_check_is_its_own_and_others_are_not() -> None:
    own = parsed("check_run", payload("completed", check_run=check_run(app={"slug": "Triage-Lead"})))
    assert events.is_self_or_foreign_bot(own, BOT, frozenset())
    assert not events.is_self_or_foreign_bot(own, None, frozenset())
    other = parsed("check_run", payload("completed", check_run=check_run()))
    assert not events.is_self_or_foreign_bot(other, BOT, frozenset())
    no_app = parsed("check_run", payload("completed", check_run=check_run(app=None)))
    assert not events.is_self_or_foreign_bot(no_app, BOT, frozenset())


def test_an_installation_event_is_never_filtered() -> None:
    p = payload("created")
    p["sender"] = {"login": BOT, "type": "Bot"}
    assert not events.is_self_or_foreign_bot(parsed("installation", p), BOT, frozenset())


def test_the_bot_itself_is_recognised_whatever_the_case_of_its_login() -> None:
    p = payload("opened", issue=issue())
    p["sender"] = {"login": "Triage-Lead[bot]", "type": "Bot"}
    assert events.is_self_or_foreign_bot(parsed("issues", p), BOT, frozenset({"triage-lead[bot]"}))
    p["sender"] = {"login": "Triage-Lead[bot]", "type": "User"}  # even where GitHub's type were wrong
    assert events.is_self_or_foreign_bot(parsed("issues", p), BOT, frozenset())


def test_another_bot_is_filtered_unless_allow_listed_in_lower_case() -> None:
    p = payload("opened", issue=issue())
    p["sender"] = {"login": "Renovate[bot]", "type": "Bot"}
    e = parsed("issues", p)
    assert events.is_self_or_foreign_bot(e, BOT, frozenset())
    assert events.is_self_or_foreign_bot(e, None, frozenset())
    assert not events.is_self_or_foreign_bot(e, BOT, frozenset({"renovate[bot]"}))
    p["sender"] = dict(USER)
    assert not events.is_self_or_foreign_bot(parsed("issues", p), None, frozenset())
