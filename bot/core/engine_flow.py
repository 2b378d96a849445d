"""How the engine (bot/core/engine.py) moves a run along its workflow: starting every step whose needs are met,
sending steps back after a rejection, escalating, and following a push to a pull request. Pure, like the engine:
each function changes the run it is given (the engine's own copy) and appends the actions it asks for.
"""

from __future__ import annotations

from typing import Any

from bot.core.run_records import (
    ACTIVE,
    BUDGET,
    DONE,
    ESCALATED,
    FINISHED,
    PENDING,
    RUNNING,
    SKIPPED,
    TRIGGERS,
    WAITING,
    Action,
    AskApproval,
    Escalate,
    Finish,
    HeadMoved,
    PostSkip,
    Reply,
    ReviewPull,
    Run,
    RunAgent,
    escalation_options,
)
from bot.core.workflow import Step, Workflow


def started(run: Run) -> bool:
    """Whether any step of the run has been started."""
    return any(st.iteration for st in run.steps.values())


def begin(run: Run, wf: Workflow, actions: list[Action]) -> None:
    """The run's first steps (and, on a pull request not judged yet, the PR's own review at its head)."""
    if run.on_pull and run.head_sha and not started(run):
        actions.append(ReviewPull(run.head_sha))
    schedule(run, wf, actions)


def schedule(run: Run, wf: Workflow, actions: list[Action]) -> None:
    """Start every step whose needs are met; skip inactive conditional ones; finish when all are."""
    progressed = True
    while progressed and run.state == RUNNING:
        progressed = False
        settled = {sid for sid, st in run.steps.items() if st.status in (FINISHED, SKIPPED)}
        for step in wf.steps:
            st = run.steps[step.id]
            if st.status != PENDING or not set(step.needs) <= settled:
                continue
            if not step.active(run.flags()):
                st.status = SKIPPED
                actions.append(PostSkip(step.id))
                progressed = True
                break  # a skip can unlock later steps: rescan in order
            _start_step(run, step, actions)
    if run.state == RUNNING and all(st.status in (FINISHED, SKIPPED) for st in run.steps.values()):
        run.state = DONE
        actions.append(Finish())


def _start_step(run: Run, step: Step, actions: list[Action]) -> None:
    st = run.steps[step.id]
    st.status, st.iteration, st.error = ACTIVE, st.iteration + 1, None
    st.agent = step.agent_for(run.flags())
    actions.append(RunAgent(step.id, st.iteration, st.agent))


def reopen(run: Run, wf: Workflow, start: str, *, until: str, feedback: dict[str, Any] | None) -> None:
    """Send ``start`` and every step between it and ``until`` (inclusive) back to pending."""
    between = {s.id for s in wf.steps if start in wf.upstream(s.id) and (s.id == until or s.id in wf.upstream(until))}
    for sid in {start, until} | between:
        run.steps[sid].status = PENDING
    run.steps[start].feedback = feedback


def escalate(run: Run, stage: str, trigger: str, actions: list[Action], *, issue: str = "",
              proposal: dict[str, Any] | None = None, failure: str | None = None) -> None:
    if trigger not in TRIGGERS:
        trigger = "out-of-scope"
    for st in run.steps.values():  # parallel steps still out: their results are stale now; they run again
        if st.status == ACTIVE:
            st.status = PENDING
    options = escalation_options(trigger, proposal, failure)
    recommendation = (proposal or {}).get("recommendation") or "Option 1."
    run.state = ESCALATED
    run.escalation = {
        "trigger": trigger, "stage": stage, "issue": (proposal or {}).get("issue") or issue or TRIGGERS[trigger],
        "options": options, "recommendation": recommendation,
        "blocking": (proposal or {}).get("blocking") or f"Every step after {stage}.", "failure": failure,
    }
    actions.append(Escalate())


def current(run: Run, wf: Workflow) -> str:
    for step in wf.steps:
        if run.steps[step.id].status not in (FINISHED, SKIPPED):
            return step.id
    return wf.steps[-1].id


def stale_proposal(run: Run, wf: Workflow, paths: tuple[str, ...] | None) -> str | None:
    """The first implement step whose finished change set touches ``paths`` (None: any change set, since
    what the push changed is unknown): its whole-file contents were computed on older code."""
    for step in wf.steps:
        st = run.steps[step.id]
        if step.kind != "implement" or not st.result or st.status == PENDING:
            continue
        touched = {str(c.get("path")) for c in st.result.get("changes") or [] if isinstance(c, dict)}
        if touched and (paths is None or touched & set(paths)):
            return step.id
    return None


def redo(run: Run, wf: Workflow, start: str, actions: list[Action], *, why: str) -> None:
    """Run ``start`` (an implement step) and everything after it again on the run's head, then ask again. A new
    change on new code starts the three-strike count afresh."""
    reopen(run, wf, start, until=wf.steps[-1].id, feedback=None)
    run.approval = None
    run.rejections = 0
    run.state = RUNNING
    actions.append(Reply(f"{why} (now `{(run.head_sha or '')[:7]}`), so **{wf.step(start).title}** makes the "
                         "proposed change again on the new head, and it is reviewed again before anything is "
                         "approved."))
    schedule(run, wf, actions)


def head_moved(run: Run, wf: Workflow, sig: HeadMoved, actions: list[Action]) -> None:
    """A push to the PR. The PR itself is judged again at the new head (whatever the run is doing); a proposed
    change whose files the push touched is made again; an approval request is asked again for the new head."""
    if sig.sha == run.head_sha or not sig.sha:
        return
    run.head_sha, run.head_since = sig.sha, sig.at
    # Finished or not, the PR's own check must follow its head (branch protection waits on it); a run waiting for
    # its budget makes no model call: its review is of the head the approval finds (begin).
    if run.on_pull and run.state != BUDGET:
        actions.append(ReviewPull(sig.sha))
    if run.state not in (WAITING, RUNNING, ESCALATED):
        return
    if sig.own:
        return
    stale = stale_proposal(run, wf, sig.paths)
    if run.state == ESCALATED:
        if stale is not None and run.stale_from is None:
            run.stale_from = stale
            actions.append(Reply(f"New commits were pushed (`{sig.sha[:7]}`) that may change files of the proposed "
                                 "change: unless the workflow is stopped, the change is made again on the new head "
                                 "before the chosen option goes on."))
        return
    if stale is not None:
        redo(run, wf, stale, actions, why="New commits touch files of the proposed change" if sig.paths is not None
              else "New commits were pushed and GitHub could not say which files they change")
    elif run.state == WAITING:
        step = next(sid for sid, st in run.steps.items() if st.status == "waiting")
        actions.append(AskApproval(step))
        actions.append(Reply(f"New commits were pushed (`{sig.sha[:7]}`); they do not touch the proposed change's "
                             "files. An approval given before them does not count: approval is asked again for "
                             "the new head."))
