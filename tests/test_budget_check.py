"""A pull request whose run waits for ``/approve budget`` shows it on its checks (issue 17, point 3): a check run in
progress at its head, titled with the wait, the estimate and who may approve; moved to a new head on a push;
completed when the budget is approved or the run cancelled.

Through the webhook over HTTP, the real bot against the sandbox GitHub and the local Messages API server (the
budget-wait tests' set-up); and the check's content, pure.
"""

from __future__ import annotations

import copy
from typing import Any

from bot.core import budget_check
from bot.core import engine as E
from bot.core.catalog import load_catalog
from bot.sandbox.anthropic import FakeAnthropic
from bot.sandbox.team import Team
from tests.conftest import post_webhook
from tests.test_budget_ceilings import Start, start  # noqa: F401  (the start fixture)
from tests.test_budget_wait import SHORT, deliver, state_of
from tests.test_workflows_e2e import REPO, comment_payload, fake, pr_payload, team  # noqa: F401


def budget_checks(sandbox: Any) -> list[dict[str, Any]]:
    """The budget check runs on the repository, oldest first, as GitHub has them."""
    runs = sandbox.repo(REPO).check_runs.values()
    return sorted((r for r in runs if r["name"] == budget_check.NAME), key=lambda r: r["id"])


async def waiting_pull(start: Start, sandbox: Any, fake: FakeAnthropic, number: int,  # noqa: F811
                       config: str = "budgets: {run_tokens: 5000}\n") -> tuple[Any, Any, dict[str, Any]]:
    sandbox.set_file(REPO, ".github/triage-lead.yml", config)
    rt, client = await start()
    p = pr_payload(sandbox, number, ["api"])
    await deliver(rt, client, sandbox, "pull_request", p)
    assert await state_of(rt, number) == "budget" and fake.requests == []
    return rt, client, p


async def test_a_waiting_pull_request_has_a_check_completed_by_the_approval(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    rt, client, p = await waiting_pull(start, sandbox, fake, 70)
    head = p["pull_request"]["head"]["sha"]
    [check] = budget_checks(sandbox)
    assert check["head_sha"] == head and check["status"] == "in_progress" and check["conclusion"] is None
    title = check["output"]["title"]
    assert "Waits for /approve budget" in title and "someone with write, maintain or admin access" in title
    assert "5,000 left" in title and "estimated" in title
    assert "`/approve budget`" in check["output"]["summary"]
    assert check["external_id"] == budget_check.external_id((await rt.store.active_run(f"{REPO}#70")).id)

    sandbox.set_permission(REPO, "maintainer", "write")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(70, "/approve budget", pull=True,
                                                                        comment_id=7002))
    assert await state_of(rt, 70) == "waiting"  # went on, to the approval of its change
    [check] = budget_checks(sandbox)
    assert check["status"] == "completed" and check["conclusion"] == "success"
    assert check["output"]["title"] == "Budget approved by maintainer: the run went on"
    edits = [w for w in sandbox.writes if w.kind == "check_run_edit" and w.data["id"] == check["id"]]
    assert len(edits) == 1  # the run's later steps leave it as it is


async def test_a_cancelled_wait_completes_its_check_as_cancelled(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    rt, client, _ = await waiting_pull(start, sandbox, fake, 71)
    sandbox.set_permission(REPO, "maintainer", "write")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(71, "/cancel", pull=True, comment_id=7101))
    assert await state_of(rt, 71) is None and fake.requests == []
    [check] = budget_checks(sandbox)
    assert check["status"] == "completed" and check["conclusion"] == "cancelled"


async def test_a_push_while_it_waits_moves_the_check_to_the_new_head(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    rt, client, p = await waiting_pull(start, sandbox, fake, 72)
    old = p["pull_request"]["head"]["sha"]
    new = sandbox.set_file(REPO, "README.md", "changed\n", ref=p["pull_request"]["head"]["ref"])
    sync = copy.deepcopy(p) | {"action": "synchronize"}
    sync["pull_request"]["head"]["sha"] = new
    await deliver(rt, client, sandbox, "pull_request", sync)
    assert await state_of(rt, 72) == "budget" and fake.requests == []
    before, after = budget_checks(sandbox)
    assert (before["head_sha"], before["status"], before["conclusion"]) == (old, "completed", "neutral")
    assert (after["head_sha"], after["status"], after["conclusion"]) == (new, "in_progress", None)



async def failed_and_requeued(rt: Any, client: Any, sandbox: Any, number: int) -> None:
    """A pull request's delivery whose job fails (a bug's error is not retried by itself), queued to run again."""
    payload = pr_payload(sandbox, number, ["api"])
    sandbox.seed_from_payload(payload)
    assert (await post_webhook(client, "pull_request", payload)).status == 202
    await rt.jobs.drained(60)
    [failed] = await rt.store.failed_jobs(f"{REPO}#{number}")
    assert await rt.store.requeue_failed(failed.job.id)


def dies_once_at_a_budget_check(rt: Any, monkeypatch: Any, *, recorded: bool = False) -> list[Any]:
    """The job dies once as the store records a budget check: before it is recorded, or after (``recorded``). The
    list holds what was being recorded when it died."""
    real, died = rt.store.remember_posted, list[Any]()

    async def dies_once(p: Any) -> None:
        if recorded:
            await real(p)
        if "budget-check" in p.marker and not died:
            died.append(p)
            raise RuntimeError("the process died here")
        if not recorded:
            await real(p)
    monkeypatch.setattr(rt.store, "remember_posted", dies_once)
    return died


async def test_a_check_github_made_before_a_crash_is_found_not_posted_twice(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team, monkeypatch: Any) -> None:  # noqa: F811
    """The job dies after GitHub made the check, before the store recorded it: its retry finds the check by its
    external id among this App's check runs and records that one."""
    sandbox.set_file(REPO, ".github/triage-lead.yml", "budgets: {run_tokens: 5000}\n")
    rt, client = await start()
    died = dies_once_at_a_budget_check(rt, monkeypatch)
    await failed_and_requeued(rt, client, sandbox, 73)
    assert died
    rt.jobs.kick(f"{REPO}#73", delivered=False)
    await rt.jobs.drained(60)
    assert await state_of(rt, 73) == "budget"
    [check] = budget_checks(sandbox)
    assert (await rt.store.find_posted(died[0].marker)).github_id == check["id"]
    sandbox.set_permission(REPO, "maintainer", "write")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(73, "/cancel", pull=True, comment_id=7301))
    [check] = budget_checks(sandbox)
    assert check["conclusion"] == "cancelled"


def test_the_checks_content_follows_the_run() -> None:
    wf = load_catalog().workflows["backend-feature"]
    run, _ = E.advance(E.Run.new("r", wf, head_sha="a" * 40, on_pull=True), E.Start(short=SHORT), wf)
    want = budget_check.wanted(run, not_author=True)
    assert want is not None and want.phase == "waiting" and want.conclusion is None
    assert "other than the pull request's author" in want.title and "170,000" in want.title
    assert want.fields()["status"] == "in_progress"
    on_issue, _ = E.advance(E.Run.new("r", wf, head_sha="a" * 40), E.Start(short=SHORT), wf)
    assert budget_check.wanted(on_issue) is None  # an issue has no checks
    never, _ = E.advance(E.Run.new("r", wf, head_sha="a" * 40, on_pull=True), E.Start(), wf)
    assert budget_check.wanted(never) is None  # a run that never waited has no budget check
    cancelled, _ = E.advance(run, E.Command("cancel", "m"), wf)
    assert budget_check.wanted(cancelled).fields()["conclusion"] == "cancelled"  # type: ignore[union-attr]


async def test_a_rate_limit_on_the_check_is_not_taken_for_a_refusal(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team, caplog: Any) -> None:  # noqa: F811
    """A rate limit GitHub will lift in an hour is not a refusal: the job fails, as any job GitHub rate-limits
    past the client's wait does (a note on the thread, `/retry`), instead of ending done with the check never made."""
    import time

    sandbox.fail("POST", rf"/repos/{REPO}/check-runs", 403, times=-1,
                 headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 3600)},
                 body={"message": "API rate limit exceeded for installation ID 1."})
    sandbox.set_file(REPO, ".github/triage-lead.yml", "budgets: {run_tokens: 5000}\n")
    rt, client = await start()
    p = pr_payload(sandbox, 74, ["api"])
    sandbox.seed_from_payload(p)
    assert (await post_webhook(client, "pull_request", p)).status == 202
    await rt.jobs.drained(60)
    assert "refused the budget check run" not in caplog.text
    assert await rt.store.job_states() == {"failed": 1}  # said on the thread, retried with /retry once it lifts
    assert budget_checks(sandbox) == []


async def test_another_apps_check_with_the_same_external_id_is_never_taken_for_this_ones(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    """A check another App made at the head, named and identified as this run's would be (external ids are anyone's
    to choose), is left alone: the bot opens its own and never edits the other."""
    sandbox.set_file(REPO, ".github/triage-lead.yml", "budgets: {run_tokens: 5000}\n")
    rt, client = await start()
    p = pr_payload(sandbox, 75, ["api"])
    sandbox.seed_from_payload(p)
    head = p["pull_request"]["head"]["sha"]
    other = sandbox.make_check_run(sandbox.repo(REPO), {
        "name": budget_check.NAME, "head_sha": head, "external_id": budget_check.external_id("d-planted-75"),
        "status": "in_progress", "app": {"id": 999_999, "slug": "someone-elses"}})
    before = copy.deepcopy(other)
    assert (await post_webhook(client, "pull_request", p, delivery="d-planted-75")).status == 202
    await rt.jobs.drained(60)
    assert await state_of(rt, 75) == "budget"
    assert (await rt.store.active_run(f"{REPO}#75")).id == "d-planted-75"  # the id the planted check names
    mine = [c for c in budget_checks(sandbox) if c["id"] != other["id"]]
    assert len(mine) == 1 and mine[0]["status"] == "in_progress" and other == before
