"""GitHub writes per step (issue 16: at most 3 per step, the approval's pull request included), and what keeps
the fewer writes honest: the status comment is edited on every change of its head (the run's state, its
rejections) and only then, and while the run works it says its step list may lag.

The counts from the cost benchmark's real-sized runs are printed by ``python benchmarks/cost.py``; here the
same bound holds on the end-to-end runs of tests/test_workflows_e2e.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.core import config
from bot.core.markers import markers_in
from bot.core.texts import STATUS_CADENCE
from bot.sandbox.team import Team, result
from tests.test_workflows_e2e import REPO, bot, comment_payload, fake, issue_payload, send, team  # noqa: F401

STATE = re.compile(r"\*\*State:\*\* (.+?) · \*\*Review rejections:\*\* (\d+)/")


def status_versions(sandbox: Any, number: int) -> tuple[str, list[str]]:
    """(the run's id, each version of the thread's status comment in order: its creation, then every edit)."""
    created = next(
        w
        for w in sandbox.writes
        if w.kind == "comment" and w.number == number and any(k.startswith("status:") for k in markers_in(w.data["body"]))
    )
    run_id = next(k for k in markers_in(created.data["body"]) if k.startswith("status:")).split(":", 1)[1]
    return run_id, [
        w.data["body"]
        for w in sandbox.writes
        if w.kind in ("comment", "comment_edit") and w.data["id"] == created.data["id"]
    ]


def states(versions: list[str]) -> list[tuple[str, int]]:
    found = [STATE.search(v) for v in versions]
    return [(m.group(1), int(m.group(2))) for m in found if m]


async def approved_run(bot: Any, sandbox: Any, number: int, label: str) -> tuple[int, int, list[str]]:
    """(GitHub writes, agent steps run, the status comment's versions) of one issue taken to /approve."""
    sandbox.set_permission(REPO, "maintainer", "maintain")
    await send(bot, sandbox, "issues", issue_payload(number, [label]))
    await send(bot, sandbox, "issue_comment", comment_payload(number, "/approve"))
    run_id, versions = status_versions(sandbox, number)
    steps = await bot[0].store.steps_of(run_id)
    return len(sandbox.writes), len(steps), versions


@pytest.mark.parametrize(("label", "rejections"), [("devops", 0), ("api", 0), ("api", 1)])
async def test_at_most_three_writes_per_step_including_the_approval_pull_request(
    label: str, rejections: int, bot: Any, sandbox: Any, team: Team
) -> None:
    team.script["REVIEW"] = [
        result("review", verdict="REJECTED", critical=[{"text": "No input validation"}]) for _ in range(rejections)
    ]
    writes, steps, _ = await approved_run(bot, sandbox, 20, label)
    assert [w.kind for w in sandbox.writes].count("pull") == 1
    assert writes <= 3 * steps, [w.kind for w in sandbox.writes]


async def test_the_status_comment_is_edited_on_each_state_change_and_only_then(bot: Any, sandbox: Any, team: Team) -> None:
    team.script["REVIEW"] = [result("review", verdict="REJECTED", critical=[{"text": "No input validation"}])]
    _, _, versions = await approved_run(bot, sandbox, 21, "api")
    # Posted running; edited for the rejection (its count is on the comment's head), for the wait, and at the end;
    # never for a step that merely finished (its own comment says so).
    assert states(versions) == [("🔄 Running", 0), ("🔄 Running", 1), ("⏸️ Waiting for `/approve`", 1), ("✅ Done", 1)]


async def test_a_running_status_says_its_step_list_may_lag(bot: Any, sandbox: Any, team: Team) -> None:
    _, _, versions = await approved_run(bot, sandbox, 22, "devops")
    assert STATUS_CADENCE in versions[0] and "at work)" in versions[0]
    assert all(STATUS_CADENCE not in v for v in versions[1:])  # waiting and done: the list is current


async def test_a_dry_run_approve_keeps_its_reaction(bot: Any, sandbox: Any, team: Team) -> None:
    """A dry run posts no completion comment, so the 👀 is what answers its /approve."""
    sandbox.set_file(REPO, config.PATH, "dry_run: true\n")
    await approved_run(bot, sandbox, 23, "devops")
    assert [w.data.get("content") for w in sandbox.writes if w.kind == "reaction"] == ["eyes"]
