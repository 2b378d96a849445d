"""The workflow engine: a pure state machine. ``advance(run, signal, workflow) -> (run, actions)``.

A :class:`Run` is a plain, serialisable record; a signal is what happened (started, an agent's
result or failure, a person's command, a push); actions are what should happen next. The executor
performs the actions and feeds their outcomes back as signals, storing the run after each step.
No I/O and no clock here, so every workflow can be tested without GitHub or a model, and a crashed
run resumes by reading its record again. The records (run, signals, actions) are bot/core/run_records.py,
re-exported here so that callers name them ``engine.X``; how a run moves along its steps (scheduling, escalating,
following a push) is bot/core/engine_flow.py, and what a person's command does is bot/core/engine_commands.py.
"""

from __future__ import annotations

from typing import TypeVar

from bot.core import engine_commands
from bot.core import engine_flow as flow
from bot.core.engine_commands import approves_budget
from bot.core.run_records import (
    ACTIVE,
    BUDGET,
    BUDGET_NAMES,
    CANCELLED,
    DONE,
    ESCALATED,
    FAILED,
    FINISHED,
    PENDING,
    RUNNING,
    SKIPPED,
    TRIGGERS,
    WAITING,
    Action,
    AgentDone,
    AgentFailed,
    AskApproval,
    BudgetShort,
    Command,
    DeliveryRefused,
    Escalate,
    FileTasks,
    FileTechDebt,
    Finish,
    HeadMoved,
    PostSkip,
    PostStep,
    PostVerdict,
    Reply,
    ResolveEscalation,
    ReviewPull,
    Run,
    RunAgent,
    Signal,
    Start,
    StepState,
)
from bot.core.workflow import Step, Workflow

__all__ = ["ACTIVE", "Action", "AgentDone", "AgentFailed", "AskApproval", "BUDGET", "BUDGET_NAMES", "BudgetShort",
           "CANCELLED", "Command", "DONE", "DeliveryRefused", "ESCALATED", "Escalate", "FAILED", "FINISHED",
           "FileTasks", "FileTechDebt", "Finish", "HeadMoved", "PENDING", "PostSkip", "PostStep", "PostVerdict",
           "RUNNING", "Reply", "ResolveEscalation", "ReviewPull", "Run", "RunAgent", "SKIPPED", "Signal", "Start",
           "StepState", "TRIGGERS", "WAITING", "advance", "approves_budget", "fork"]

T = TypeVar("T", Run, StepState)


# ---- the machine ---------------------------------------------------------------------------

def advance(run: Run, signal: Signal, wf: Workflow) -> tuple[Run, list[Action]]:
    """Apply one signal; return the new run and what should happen next. ``run`` is not modified."""
    run = fork(run)
    actions: list[Action] = []
    if isinstance(signal, Start):
        if run.state == RUNNING and not run.running():
            if signal.short is not None and run.budget_approval is None and not flow.started(run):
                run.state, run.budget = BUDGET, signal.short  # no model call until a maintainer approves
            else:
                flow.begin(run, wf, actions)
    elif isinstance(signal, AgentDone):
        _agent_done(run, wf, signal, actions)
    elif isinstance(signal, AgentFailed):
        _agent_failed(run, signal, actions)
    elif isinstance(signal, Command):
        engine_commands.command(run, wf, signal, actions)
    elif isinstance(signal, HeadMoved):
        flow.head_moved(run, wf, signal, actions)
    elif isinstance(signal, DeliveryRefused):
        _delivery_refused(run, wf, signal, actions)
    return run, actions


def fork(run: Run) -> Run:
    """A copy of ``run`` that the machine may change without touching ``run``: the run and its step states are
    copied, the values they hold are shared. The machine only ever assigns fields of a run and its steps and
    appends to ``decisions``; it never changes a result, feedback, escalation or approval in place, so sharing
    them is safe, and a step's result (a model's whole output) is not copied on every signal."""
    forked = _shallow(run)
    forked.steps = {sid: _shallow(st) for sid, st in run.steps.items()}
    forked.decisions = list(run.decisions)
    return forked


def _shallow(record: T) -> T:
    """A shallow copy of a run or a step state: what ``dataclasses.replace`` with no changes makes (neither has
    ``__post_init__``, ``__slots__`` or a field left out of ``__init__``), without its walk of the fields and
    call of ``__init__``: every signal forks every step of the run (issue 16, CPU per run)."""
    new = object.__new__(type(record))
    new.__dict__.update(record.__dict__)
    return new


def _stale(run: Run, step: str, iteration: int) -> bool:
    st = run.steps.get(step)
    return run.state != RUNNING or st is None or st.status != ACTIVE or st.iteration != iteration


def _agent_done(run: Run, wf: Workflow, sig: AgentDone, actions: list[Action]) -> None:
    if _stale(run, sig.step, sig.iteration):
        return
    step, st = wf.step(sig.step), run.steps[sig.step]
    st.result = sig.result
    if step.kind == "review":
        _review(run, wf, step, st, actions)
        return
    if step.kind == "approval":
        st.status = "waiting"
        run.state = WAITING
        actions.append(AskApproval(step.id))
        return
    st.status = FINISHED
    actions.append(PostStep(step.id, st.iteration))
    if step.kind == "delegate":
        actions.append(FileTasks(step.id))
    if isinstance(sig.result.get("escalate"), dict):
        flow.escalate(run, step.id, sig.result["escalate"].get("trigger", "out-of-scope"), actions,
                  proposal=sig.result["escalate"])
    elif sig.result.get("passed") is False:
        unmet = [c.get("criterion", "") for c in sig.result.get("criteria") or [] if not c.get("met")]
        flow.escalate(run, step.id, "out-of-scope", actions,
                  issue=f"{step.title} did not meet its pass criteria" + (f": {'; '.join(unmet)}" if unmet else "."))
    else:
        flow.schedule(run, wf, actions)


def _review(run: Run, wf: Workflow, step: Step, st: StepState, actions: list[Action]) -> None:
    result = st.result or {}
    actions.append(PostVerdict(step.id, st.iteration))
    if result.get("tech_debt") or result.get("suggestions"):
        actions.append(FileTechDebt(step.id, st.iteration))
    if result.get("verdict") == "APPROVED":
        st.status = FINISHED
        flow.schedule(run, wf, actions)
        return
    run.rejections += 1
    st.status = FINISHED  # this iteration is over; the loop re-opens it below or the escalation holds it
    if run.rejections >= wf.max_rejections:
        flow.escalate(run, step.id, "repeated-rejections", actions,
                  issue=f"The code-reviewer rejected the change {run.rejections} times without resolution.")
        return
    if step.gate is None:  # the catalog's validator refuses a review step without one
        raise ValueError(f"review step {step.id!r} of {wf.name!r} has no gate to send a rejection back to")
    flow.reopen(run, wf, step.gate.on_reject, until=step.id, feedback=result)
    flow.schedule(run, wf, actions)


def _agent_failed(run: Run, sig: AgentFailed, actions: list[Action]) -> None:
    if _stale(run, sig.step, sig.iteration):
        return
    st = run.steps[sig.step]
    st.status, st.error = FAILED, sig.error
    flow.escalate(run, sig.step, "out-of-scope", actions, issue=sig.error, failure=sig.kind)


def _delivery_refused(run: Run, wf: Workflow, sig: DeliveryRefused, actions: list[Action]) -> None:
    """The branch moved between the approval and the commit: nothing newer is overwritten; the change is made
    again on the new head, reviewed again and approved again."""
    if run.state != DONE or run.approval is None:
        return
    run.head_sha = sig.sha
    if run.on_pull:
        actions.append(ReviewPull(sig.sha))
    stale = flow.stale_proposal(run, wf, None)
    if stale is None:  # nothing of ours to make again (cannot happen: a delivery has a change); say so, never go quiet
        actions.append(Reply(f"The branch moved to `{sig.sha[:7]}` after the approval; nothing was committed."))
        return
    flow.redo(run, wf, stale, actions, why="The branch moved after the approval")
