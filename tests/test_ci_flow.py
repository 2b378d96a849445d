"""CI failures end to end through both paths that read them: webhook → gather → one reader → digest.

The CI-failure issue (bot/run/ci.py) and the offline error-detective (bot/agents/offline.py) read the same log
the same way; two different failures whose error could not be read get two issues; a failure followed by a
success of the same check at the same commit is called flaky once, where the bot posted about it, and every
other success costs one store read and no write.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from bot.agents import offline
from bot.agents.tools import RepoReader
from bot.core import events
from bot.sandbox.team import Team
from bot.store import StoreUnavailable
from tests.conftest import INSTALLATION, load_fixture, post_webhook
from tests.test_agents_common import context, make_request
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401

STAMP = "2026-01-01T00:00:0{}.0000000Z "
PYTEST = ["##[group]Run pytest -q", "============================= FAILURES =============================",
          "___________________________ test_create ___________________________",
          ">       assert resp.status_code == 201", "E       assert 500 == 201",
          "tests/test_api.py:14: AssertionError",
          "FAILED tests/test_api.py::test_create - assert 500 == 201",
          "========================= 1 failed in 0.42s =========================",
          "##[error]Process completed with exit code 1."]


def job_log(lines: list[str]) -> str:
    """`lines` as GitHub serves a job's log: a BOM and a timestamp on each line."""
    return "\ufeff" + "\n".join(STAMP.format(i % 10) + line for i, line in enumerate(lines)) + "\n"


def failed_job(sandbox: Any, sha: str, log: str, job_id: int, *, name: str = "tests",
               conclusion: str = "failure") -> None:
    """A workflow run at `sha` on the default branch whose one job (check run `job_id`) logged `log`."""
    sandbox.add_workflow_run(REPO, name="CI", head_sha=sha, head_branch="master", conclusion=conclusion,
                             jobs=[{"id": job_id, "name": name, "conclusion": conclusion, "log": log}])


def check_run(sha: str, job_id: int, *, name: str = "tests", conclusion: str = "failure",
              pull: int | None = None) -> dict[str, Any]:
    """The check_run.completed GitHub sends for an Actions job (its check run id is the job id)."""
    p = load_fixture("check_run.completed.json")
    prs = [{"number": pull, "head": {"sha": sha}, "base": {"ref": "master"}}] if pull else []
    p["check_run"] |= {"id": job_id, "name": name, "head_sha": sha, "conclusion": conclusion, "pull_requests": prs,
                       "details_url": f"https://github.com/{REPO}/actions/runs/1/job/{job_id}"}
    p["check_run"]["check_suite"] |= {"head_branch": "changes" if pull else "master", "head_sha": sha,
                                      "pull_requests": prs}
    p["check_run"]["output"] = {"title": None, "summary": None}
    return p


def issues(sandbox: Any) -> list[Any]:
    return [w for w in sandbox.writes if w.kind == "issue"]


def comments_with(sandbox: Any, number: int, text: str) -> list[str]:
    return [c["body"] for c in sandbox.comments(REPO, number) if text in c["body"]]


def master(sandbox: Any) -> str:
    return str(sandbox.resolve(sandbox.repo(REPO), "master"))


async def test_a_plain_job_log_becomes_an_issue_with_the_digest(bot: Any, sandbox: Any, team: Team) -> None:
    green = master(sandbox)
    failed_job(sandbox, green, job_log(PYTEST[:1] + ["collected 12 items", "12 passed in 0.40s"]), 880000,
               conclusion="success")
    sha = sandbox.set_file(REPO, "app/api.py", "def create(): raise\n", message="Change user creation")
    failed_job(sandbox, sha, job_log(PYTEST), 880001)
    await send(bot, sandbox, "check_run", check_run(sha, 880001))
    [issue] = issues(sandbox)
    title, body = issue.data["title"], issue.data["body"]
    assert title == "CI failure: tests: tests/test_api.py::test_create"
    assert "**1 failing test** in `tests`." in body and "- `tests/test_api.py::test_create`" in body
    assert "**Root error**" in body and "assert 500 == 201" in body
    assert "<details>" in body and "of 9 log lines matched green runs" in body  # the green run's "Run pytest"
    assert "**Commits since the last green run**" in body and "Change user creation" in body
    assert "Process completed" not in body and "2026-01-01T" not in body
    assert len(body.splitlines()) <= 75  # the digest's 60 and the issue's own few lines


async def test_two_unreadable_failures_open_two_issues(bot: Any, sandbox: Any, team: Team) -> None:
    first = sandbox.set_file(REPO, "a.txt", "1\n")
    failed_job(sandbox, first, job_log(["compiling 12 units", "something odd happened in stage 3",
                                        "##[error]Process completed with exit code 1."]), 880011)
    await send(bot, sandbox, "check_run", check_run(first, 880011))
    second = sandbox.set_file(REPO, "a.txt", "2\n")
    failed_job(sandbox, second, job_log(["compiling 12 units", "the worker vanished without a word",
                                         "##[error]Process completed with exit code 1."]), 880012)
    await send(bot, sandbox, "check_run", check_run(second, 880012))
    opened = issues(sandbox)
    assert len(opened) == 2, [i.data["title"] for i in opened]
    assert "something odd happened" in opened[0].data["body"] and "worker vanished" in opened[1].data["body"]
    assert all("seen again" not in c["body"] and "happened again" not in c["body"]
               for i in opened for c in sandbox.comments(REPO, i.number))


async def test_a_failure_then_a_success_of_the_same_check_at_the_same_commit_is_flaky_once(
        bot: Any, sandbox: Any, team: Team) -> None:
    rt, client = bot
    sha = master(sandbox)
    failed_job(sandbox, sha, job_log(PYTEST), 880021)
    await send(bot, sandbox, "check_run", check_run(sha, 880021))
    [issue] = issues(sandbox)
    failed_job(sandbox, sha, job_log(["1 passed"]), 880022, conclusion="success")  # "Re-run failed jobs"
    passed = check_run(sha, 880022, conclusion="success")
    await send(bot, sandbox, "check_run", passed)
    [note] = comments_with(sandbox, issue.number, "**Flaky**")
    assert "`tests`" in note and sha[:12] in note
    await send(bot, sandbox, "check_run", copy.deepcopy(passed))  # another success (GitHub redelivers under a new id)
    assert comments_with(sandbox, issue.number, "**Flaky**") == [note]
    other = check_run(sha, 880023, name="lint", conclusion="success")  # never failed here
    resp = await post_webhook(client, "check_run", other)
    assert resp.status == 200 and (await resp.json())["status"] == "ignored"


async def test_a_flaky_check_on_a_pull_request_is_said_on_the_pull_request(bot: Any, sandbox: Any, team: Team) -> None:
    p = load_fixture("check_run.completed.json")  # a failed Actions check of PR #2
    await send(bot, sandbox, "check_run", p)
    passed = copy.deepcopy(p)
    passed["check_run"] |= {"id": 880031, "conclusion": "success"}
    await send(bot, sandbox, "check_run", passed)
    [note] = comments_with(sandbox, 2, "**Flaky**")
    assert p["check_run"]["name"] in note


async def test_a_success_with_no_failure_before_it_is_dropped_without_a_write(bot: Any, sandbox: Any) -> None:
    rt, client = bot
    before = await rt.store.job_states()
    writes = len(sandbox.writes)
    resp = await post_webhook(client, "check_run", check_run(master(sandbox), 880041, conclusion="success"),
                              delivery="success-1")
    assert resp.status == 200 and "no failure of this check" in (await resp.json())["reason"]
    assert await rt.store.job_states() == before and await rt.store.jobs_for("success-1") == []
    assert len(sandbox.writes) == writes


async def test_the_error_detective_and_the_issue_say_the_same_of_one_log(bot: Any, sandbox: Any, team: Team) -> None:
    rt, _ = bot
    sha = master(sandbox)
    failed_job(sandbox, sha, job_log(PYTEST), 880051)
    await send(bot, sandbox, "check_run", check_run(sha, 880051))
    [issue] = issues(sandbox)
    ci = {"source": "check_run", "id": 880051, "name": "tests", "head_sha": sha, "summary": ""}
    ctx = dataclasses.replace(context(issue.number, ci=ci, head_sha=sha), default_branch="master")  # the sandbox's
    gh = await rt.github.installation(INSTALLATION)
    outcome = await offline.error_detective(make_request("error-investigation", "detect", ctx), RepoReader(gh, REPO))
    assert outcome.result is not None
    said = str(outcome.result["summary"]).split("\n\n", 1)[1]  # after its one line on where it read
    assert said.startswith("**1 failing test** in `tests`.") and said in issue.data["body"]
    assert "Failing test: `tests/test_api.py::test_create`" in outcome.result["findings"]


def test_a_success_carries_what_the_flaky_note_needs_and_stays_ignored() -> None:
    p = check_run("a" * 40, 7, conclusion="success", pull=5)
    e = events.parse("check_run", p, "d")
    assert isinstance(e, events.CiSuccess) and isinstance(e, events.Ignored)
    assert (e.name, e.head_sha, e.pull_numbers, e.thread) == ("tests", "a" * 40, (5,), f"{REPO}#5")
    p["check_run"]["head_sha"] = None  # a success of another shape: plainly ignored, never a 400
    assert type(events.parse("check_run", p, "d")) is events.Ignored


async def test_a_success_the_store_cannot_look_up_is_refused_for_redelivery(bot: Any, sandbox: Any,
                                                                         monkeypatch: Any) -> None:
    rt, client = bot

    async def unavailable(*_: Any) -> None:
        raise StoreUnavailable("database is locked")

    monkeypatch.setattr(rt.store, "find_posted", unavailable)
    resp = await post_webhook(client, "check_run", check_run(master(sandbox), 880061, conclusion="success"))
    assert resp.status == 503  # GitHub lists it as failed: a flaky note is not lost to a locked store
