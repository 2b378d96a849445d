"""The budget check run's guards (issue 17, point 3; bot/run/writes.py ``_budget_check``), each through the webhook
against the sandbox GitHub and the local Messages API (tests/test_budget_check.py's set-up):

- no check for a run from before: a run that waited for its budget with no check recorded (stored before the
  check existed, or while the repository was in dry run) makes none when its wait ends, approved or cancelled;
- the head: a check recorded at an older head is superseded (completed ``neutral``) and the wait's end is shown at
  the head the run goes on at; a stale head is never completed as approved;
- a check shown as it is, or completed, is not written again.
"""

from __future__ import annotations

import copy
from typing import Any

from bot.core.markers import marker
from bot.sandbox.anthropic import FakeAnthropic
from bot.sandbox.team import Team
from tests.conftest import post_webhook
from tests.test_budget_ceilings import Start, start  # noqa: F401  (the start fixture)
from tests.test_budget_check import budget_checks, dies_once_at_a_budget_check, failed_and_requeued, waiting_pull
from tests.test_budget_wait import deliver, state_of
from tests.test_workflows_e2e import REPO, comment_payload, fake, pr_payload, team  # noqa: F401


def check_edits(sandbox: Any) -> list[Any]:
    return [w for w in sandbox.writes if w.kind == "check_run_edit"]


async def from_before(rt: Any, sandbox: Any, number: int) -> None:
    """The waiting run as a bot from before the budget check stored it: no check on GitHub, none recorded."""
    run = await rt.store.active_run(f"{REPO}#{number}")
    assert await rt.store.forget_posted(marker("budget-check", run.id))
    for check in budget_checks(sandbox):
        del sandbox.repo(REPO).check_runs[check["id"]]
    assert budget_checks(sandbox) == []


def synchronize(sandbox: Any, p: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A push to the pull request's branch, and GitHub's ``pull_request.synchronize`` delivery of it."""
    new = sandbox.set_file(REPO, "README.md", f"changed {len(sandbox.writes)}\n", ref=p["pull_request"]["head"]["ref"])
    sync = copy.deepcopy(p) | {"action": "synchronize"}
    sync["pull_request"]["head"]["sha"] = new
    return sync, new


# ---- no check for a run from before -----------------------------------------------------------------------

async def test_a_run_from_before_the_check_makes_none_when_its_budget_is_approved(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    rt, client, _ = await waiting_pull(start, sandbox, fake, 80)
    await from_before(rt, sandbox, 80)
    sandbox.set_permission(REPO, "maintainer", "write")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(80, "/approve budget", pull=True,
                                                                        comment_id=8001))
    assert await state_of(rt, 80) == "waiting"  # went on, to the approval of its change
    assert budget_checks(sandbox) == []  # no "approved" check for a wait nobody saw on the checks


async def test_a_run_from_before_the_check_makes_none_when_it_is_cancelled(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    rt, client, _ = await waiting_pull(start, sandbox, fake, 81)
    await from_before(rt, sandbox, 81)
    sandbox.set_permission(REPO, "maintainer", "write")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(81, "/cancel", pull=True, comment_id=8101))
    assert await state_of(rt, 81) is None
    assert budget_checks(sandbox) == []


async def test_a_wait_in_dry_run_makes_no_check_when_approved_after_dry_run_ends(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    """The repository asked for the status comment only while the run waited: nothing was shown on the checks, so
    the approval after dry run was turned off shows nothing there either."""
    rt, client, _ = await waiting_pull(start, sandbox, fake, 82, "dry_run: true\nbudgets: {run_tokens: 5000}\n")
    assert budget_checks(sandbox) == []
    sandbox.set_file(REPO, ".github/triage-lead.yml", "budgets: {run_tokens: 5000}\n")
    sandbox.set_permission(REPO, "maintainer", "write")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(82, "/approve budget", pull=True,
                                                                        comment_id=8201))
    assert await state_of(rt, 82) == "waiting"
    assert budget_checks(sandbox) == []


# ---- the head ---------------------------------------------------------------------------------------------

async def test_an_approval_that_finds_a_new_head_never_completes_the_stale_one_as_approved(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    """Pushed to while it waits, and the push's delivery never came: ``/approve budget`` asks GitHub for the head,
    finds the new one, and the run goes on there. The old head's check is superseded, not approved."""
    rt, client, p = await waiting_pull(start, sandbox, fake, 83)
    old = p["pull_request"]["head"]["sha"]
    new = sandbox.set_file(REPO, "README.md", "changed\n", ref=p["pull_request"]["head"]["ref"])
    sandbox.set_permission(REPO, "maintainer", "write")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(83, "/approve budget", pull=True,
                                                                        comment_id=8301))
    assert (await rt.store.active_run(f"{REPO}#83")).data["run"]["head_sha"] == new  # type: ignore[union-attr]
    before, after = budget_checks(sandbox)
    assert (before["head_sha"], before["status"], before["conclusion"]) == (old, "completed", "neutral")
    assert new[:7] in before["output"]["title"] and "waits" not in before["output"]["title"]
    assert (after["head_sha"], after["status"], after["conclusion"]) == (new, "completed", "success")
    assert after["output"]["title"] == "Budget approved by maintainer: the run went on"


async def test_an_approval_at_a_new_head_whose_job_dies_before_recording_its_check_leaves_one_there(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team, monkeypatch: Any) -> None:  # noqa: F811
    """``/approve budget`` finds a head no push told of; its job dies after GitHub made the check at the new head,
    before the store recorded it. Run again: still one check at the new head (this App's own, found by its
    external id, never a second one), completed as approved; the old head's stays superseded."""
    rt, client, p = await waiting_pull(start, sandbox, fake, 87)
    old = p["pull_request"]["head"]["sha"]
    new = sandbox.set_file(REPO, "README.md", "changed\n", ref=p["pull_request"]["head"]["ref"])
    died = dies_once_at_a_budget_check(rt, monkeypatch)
    sandbox.set_permission(REPO, "maintainer", "write")
    payload = comment_payload(87, "/approve budget", pull=True, comment_id=8701)
    sandbox.seed_from_payload(payload)
    assert (await post_webhook(client, "issue_comment", payload)).status == 202
    await rt.jobs.drained(60)
    assert died and [c["head_sha"] for c in budget_checks(sandbox)] == [old, new]  # made at the new head, unrecorded
    [failed] = await rt.store.failed_jobs(f"{REPO}#87")  # a bug's error is not retried by itself: run it again
    assert await rt.store.requeue_failed(failed.job.id)
    rt.jobs.kick(f"{REPO}#87", delivered=False)
    await rt.jobs.drained(60)
    before, after = budget_checks(sandbox)  # no third check
    assert (before["head_sha"], before["conclusion"]) == (old, "neutral")
    assert (after["head_sha"], after["status"], after["conclusion"]) == (new, "completed", "success")
    assert after["output"]["title"] == "Budget approved by maintainer: the run went on"
    assert (await rt.store.find_posted(died[0].marker)).github_id == after["id"]  # type: ignore[union-attr]


async def test_a_cancel_after_a_push_ends_the_check_at_the_head_the_run_had(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    """Pushed to while it waits (the push delivered: the check moved), then cancelled: the new head's check is the
    one cancelled; the old head's stays superseded."""
    rt, client, p = await waiting_pull(start, sandbox, fake, 84)
    sync, new = synchronize(sandbox, p)
    await deliver(rt, client, sandbox, "pull_request", sync)
    sandbox.set_permission(REPO, "maintainer", "write")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(84, "/cancel", pull=True, comment_id=8401))
    before, after = budget_checks(sandbox)
    assert (before["conclusion"], after["head_sha"], after["conclusion"]) == ("neutral", new, "cancelled")


# ---- written once -----------------------------------------------------------------------------------------

async def test_a_check_shown_as_it_is_is_not_written_again(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team, monkeypatch: Any) -> None:  # noqa: F811
    """The job dies just after the waiting check was made and recorded; run again, it finds the check shown as it
    is and writes nothing to it (each write of a check is one of the installation's rate-limited requests)."""
    sandbox.set_file(REPO, ".github/triage-lead.yml", "budgets: {run_tokens: 5000}\n")
    rt, client = await start()
    died = dies_once_at_a_budget_check(rt, monkeypatch, recorded=True)
    await failed_and_requeued(rt, client, sandbox, 85)
    assert died
    edits = len(check_edits(sandbox))
    rt.jobs.kick(f"{REPO}#85", delivered=False)
    await rt.jobs.drained(60)
    assert await state_of(rt, 85) == "budget" and await rt.store.job_states() == {"done": 1}
    [check] = budget_checks(sandbox)
    assert check["status"] == "in_progress" and len(check_edits(sandbox)) == edits


async def test_an_approved_check_is_never_touched_again_not_even_by_a_push(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    """Approved at its head, then pushed to: the approval stays shown where it was given (never turned into a
    ``neutral`` superseded check), and no second budget check is opened at the new head."""
    rt, client, p = await waiting_pull(start, sandbox, fake, 86)
    sandbox.set_permission(REPO, "maintainer", "write")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(86, "/approve budget", pull=True,
                                                                        comment_id=8601))
    edits = len(check_edits(sandbox))
    sync, _ = synchronize(sandbox, p)
    await deliver(rt, client, sandbox, "pull_request", sync)
    [check] = budget_checks(sandbox)
    assert (check["head_sha"], check["conclusion"]) == (p["pull_request"]["head"]["sha"], "success")
    assert len(check_edits(sandbox)) == edits
