"""The check run of a pull request whose run waits for ``/approve budget`` (issue 17, point 3): without it a
maintainer looking at the pull request's checks sees nothing at all (the review check comes only once the run may
spend). Pure: the run in, what its check should say out; bot/run/writes.py posts it and keeps it in step.

While the run waits, the check is in progress at the run's head, titled with what it waits for, the estimate and
who may approve; a push meanwhile completes the old head's check as superseded and opens one at the new head. The
approval completes it as ``success``, a cancellation as ``cancelled``; after either it is never touched again. An
approval that finds a newer head than the check's (a push whose event never came) supersedes the old head's check
and completes the new head's as approved: the approval records who approved, not a commit (a budget approval is of
the run's spending, whatever it spends it on), so the head the run goes on at shows it, and the old head, whose
check said it waited, is only superseded, never completed as approved.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.engine import BUDGET, BUDGET_NAMES, CANCELLED, Run
from bot.core.texts import budget_wait, code_span

NAME = "triage-lead / budget"
WAITING, APPROVED, ENDED = "waiting", "approved", "cancelled"
FINAL = frozenset({APPROVED, ENDED})


@dataclass(frozen=True)
class Wanted:
    """What the run's budget check should show: its phase, at which head, and its GitHub fields."""

    phase: str  # waiting | approved | cancelled
    sha: str
    title: str
    summary: str
    conclusion: str | None = None  # None: in progress

    @property
    def key(self) -> str:
        """What the store keeps of the check as last posted: its phase and head."""
        return f"{self.phase}:{self.sha}"

    def fields(self) -> dict[str, object]:
        status = {"status": "in_progress"} if self.conclusion is None else {"status": "completed",
                                                                            "conclusion": self.conclusion}
        return {**status, "output": {"title": self.title, "summary": self.summary}}


def external_id(run_id: str) -> str:
    return f"budget-wait:{run_id}"


def wanted(run: Run, *, not_author: bool = False) -> Wanted | None:
    """The check a run's budget wait calls for; None for a run that never waited (or is not on a pull request)."""
    if not run.on_pull or not run.head_sha:
        return None
    if run.state == BUDGET:
        who = "someone with write, maintain or admin access" + (
            " other than the pull request's author" if not_author else "")
        short = run.budget
        numbers = (f": estimated {short['estimate']:,} tokens, {short['left']:,} left in "
                   f"{BUDGET_NAMES.get(short['budget'], 'its budget')}" if short else "")
        why = f"{budget_wait(short, BUDGET_NAMES)}." if short else "This run waits for a budget approval."
        return Wanted(WAITING, run.head_sha, f"Waits for /approve budget from {who}{numbers}",
                      f"{why}\n\nWho may approve: {who}, by commenting `/approve budget` on this pull request (or "
                      "ticking its box on the repository's dashboard). `/cancel` ends the run.")
    if run.budget_approval is not None:
        by = str(run.budget_approval.get("by") or "")
        return Wanted(APPROVED, run.head_sha, f"Budget approved by {by}: the run went on",
                      f"`/approve budget` by {code_span(by, 100)}: this repository's own token limits do not apply to "
                      "this run; the operator's ceilings do.", conclusion="success")
    if run.state == CANCELLED and run.budget is not None:
        return Wanted(ENDED, run.head_sha, "Cancelled while it waited for /approve budget",
                      "The run was cancelled before its budget was approved: no model was called for it.",
                      conclusion="cancelled")
    return None


def superseded(old_sha: str, want: Wanted) -> dict[str, object]:
    """The fields that close a head's waiting check once the pull request moved on: the run waits at the new head,
    or its wait ended there (an approval that found a head no push event told of). Never ``success``: the old head
    was not what the approval let go on."""
    now = "now waits" if want.phase == WAITING else "went on" if want.phase == APPROVED else "ended"
    return {"status": "completed", "conclusion": "neutral", "output": {
        "title": f"Superseded: the run {now} at {want.sha[:7]}",
        "summary": f"New commits were pushed after {code_span(old_sha[:7], 20)}; the run's budget check is shown on "
                   f"the pull request's head, {code_span(want.sha[:7], 20)}."}}
