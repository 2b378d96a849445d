"""Successes of a check after its failure, and the runner's trailer (issue 15), each through the real code.

Two guards that had no test of their own:

- bot/run/ci.py's ``on_ci_success`` says "flaky" only where the bot posted about the check failing at that
  commit: a success it finds no record for (the server looked, then a purge or a restore lost the record, or a
  job was queued by hand) posts nothing;
- the runner's ``Process completed with exit code N`` annotation, on every failed Actions job, is never the
  error: not in ``get_check_output`` (the model's tool), not in the CI-failure issue.

Then successes attacked from outside (tests/test_attacks_ci.py has the rest and its list of what got through):
another App's check of the same name passing was taken for the failed one passing (fixed: the App is in the key); a
success replayed fifty times says "flaky" once; a success before its failure says nothing.
"""

from __future__ import annotations

import copy
from typing import Any

from bot.agents.tools import RepoReader, Tools
from bot.core import events
from bot.run.ci import on_ci_success
from bot.sandbox.team import Team
from tests.conftest import INSTALLATION, post_webhook
from tests.test_attacks_ci import EVIL, default_failure
from tests.test_attacks_render import assert_inert
from tests.test_ci_flow import check_run, comments_with, issues, job_log, master
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401

# The runner's own annotations on a failed job: the trailer, also in the form a Windows crash gives it.
TRAILERS = [
    {
        "path": ".github",
        "start_line": 1,
        "end_line": 1,
        "annotation_level": "failure",
        "title": "",
        "message": f"Process completed with exit code {code}.",
    }
    for code in ("1", "-1073741819")
]
REPORTER = {
    "path": "src/parse.c",
    "start_line": 88,
    "end_line": 88,
    "annotation_level": "failure",
    "title": "gcc",
    "message": "error: 'tokens' undeclared (first use in this function)",
}


async def test_a_success_of_a_check_the_bot_never_posted_about_posts_nothing(bot: Any, sandbox: Any) -> None:
    rt, _ = bot
    success = events.parse("check_run", check_run(master(sandbox), 882001, conclusion="success", pull=2), "g-1")
    assert isinstance(success, events.CiSuccess)
    gh = await rt.github.installation(INSTALLATION)
    before = len(sandbox.writes)
    await on_ci_success(success, gh, rt.deps)  # as the job runs it, whatever the server saw when it queued it
    assert sandbox.writes[before:] == []


async def test_get_check_output_never_gives_the_runners_trailer(bot: Any, sandbox: Any) -> None:
    rt, _ = bot
    run = sandbox.add_workflow_run(
        REPO,
        name="CI",
        head_branch="master",
        jobs=[
            {"name": "build", "conclusion": "failure", "log": "cc -c src/parse.c\n", "annotations": [*TRAILERS, REPORTER]}
        ],
    )
    job = next(j["id"] for j in sandbox.repo(REPO).jobs.values() if j["run_id"] == run["id"])
    tools = Tools(RepoReader(await rt.github.installation(INSTALLATION), REPO), ["get_check_output"])
    text, err = await tools.call("get_check_output", {"check_run_id": job})
    assert not err and "src/parse.c:88 gcc error: 'tokens' undeclared" in text
    assert "Process completed" not in text and "exit code" not in text


async def test_the_ci_failure_issue_never_quotes_the_runners_trailer(bot: Any, sandbox: Any, team: Team) -> None:
    """A job whose log has expired: its annotations are all there is, and the trailer is none of them."""
    sha = sandbox.set_file(REPO, "src/parse.c", "int main() { return tokens; }\n")
    sandbox.add_workflow_run(
        REPO,
        name="CI",
        head_sha=sha,
        head_branch="master",
        conclusion="failure",
        jobs=[{"id": 882010, "name": "build", "conclusion": "failure", "log": None, "annotations": [*TRAILERS, REPORTER]}],
    )
    await send(bot, sandbox, "check_run", check_run(sha, 882010, name="build"))
    [issue] = issues(sandbox)
    assert "src/parse.c:88: gcc: error: 'tokens' undeclared" in issue.data["body"]
    assert "Process completed" not in issue.data["body"] + issue.data["title"]


# ---- successes: forged, replayed, early -----------------------------------------------------------------------


def _success(payload: dict[str, Any], job_id: int, **check: Any) -> dict[str, Any]:
    passed = copy.deepcopy(payload)
    passed["check_run"] |= {"id": job_id, "conclusion": "success", **check}
    return passed


async def test_another_apps_check_of_the_same_name_passing_is_not_called_flaky(bot: Any, sandbox: Any, team: Team) -> None:
    sha, run = default_failure(sandbox, job_log(["Run pytest", "E   assert 1 == 2"]), 881030)
    await send(bot, sandbox, "check_run", run["payload"])
    [issue] = issues(sandbox)
    other = {
        "app": {"id": 999_001, "slug": "green-stamp", "name": "Green Stamp"},
        "check_suite": run["payload"]["check_run"]["check_suite"] | {"id": 999_002},
    }
    await send(bot, sandbox, "check_run", _success(run["payload"], 881031, **other))
    assert comments_with(sandbox, issue.number, "**Flaky**") == []


async def test_a_success_replayed_fifty_times_says_flaky_once(bot: Any, sandbox: Any, team: Team) -> None:
    rt, client = bot
    sha, run = default_failure(sandbox, job_log(["Run pytest", "E   assert 1 == 2"]), 881040)
    await send(bot, sandbox, "check_run", run["payload"])
    [issue] = issues(sandbox)
    passed = _success(run["payload"], 881041, details_url=EVIL)  # the passing run's link: its App chose it
    for i in range(50):
        resp = await post_webhook(client, "check_run", passed, delivery=f"replay-{i}")
        assert resp.status == 202
    await rt.jobs.drained(60)
    assert len(comments_with(sandbox, issue.number, "**Flaky**")) == 1
    flaky = [w.kind for w in sandbox.writes if "**Flaky**" in str(w.data.get("body"))]
    assert flaky.count("comment") == 1, flaky  # created once; each replay edits it in place
    assert "evil.example" in assert_inert(bot, sandbox)  # the link is there, not live


async def test_a_success_before_its_failure_says_nothing_and_the_failure_still_opens_its_issue(
    bot: Any, sandbox: Any, team: Team
) -> None:
    rt, client = bot
    sha, run = default_failure(sandbox, job_log(["Run pytest", "E   assert 1 == 2"]), 881050)
    resp = await post_webhook(client, "check_run", _success(run["payload"], 881051))
    assert resp.status == 200 and (await resp.json())["status"] == "ignored"
    await send(bot, sandbox, "check_run", run["payload"])
    [issue] = issues(sandbox)
    assert comments_with(sandbox, issue.number, "**Flaky**") == [] and master(sandbox) == sha
