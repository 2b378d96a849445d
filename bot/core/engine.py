"""The workflow engine: a pure state machine. ``advance(run, signal, workflow) -> (run, actions)``.

A :class:`Run` is a plain, serialisable record; a signal is what happened (started, an agent's
result or failure, a person's command, a push); actions are what should happen next. The executor
performs the actions and feeds their outcomes back as signals, storing the run after each step.
No I/O and no clock here, so every workflow can be tested without GitHub or a model, and a crashed
run resumes by reading its record again. The records (run, signals, actions) are bot/core/run_records.py,
re-exported here so that callers name them ``engine.X``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bot.core.run_records import (
    ACTIVE,
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
    Command,
    DeliveryRefused,
    Escalate,
    FileTasks,
    FileTechDebt,
    Finish,
    HeadMoved,
    Option,
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
    escalation_options,
)
from bot.core.workflow import Step, Workflow

__all__ = ["ACTIVE", "Action", "AgentDone", "AgentFailed", "AskApproval", "CANCELLED", "Command", "DONE",
           "DeliveryRefused", "ESCALATED", "Escalate", "FAILED", "FINISHED", "FileTasks", "FileTechDebt", "Finish",
           "HeadMoved", "PENDING", "PostSkip", "PostStep", "PostVerdict", "RUNNING", "Reply", "ResolveEscalation",
           "ReviewPull", "Run", "RunAgent", "SKIPPED", "Signal", "Start", "StepState", "TRIGGERS", "WAITING", "advance"]


# ---- the machine ---------------------------------------------------------------------------

def advance(run: Run, signal: Signal, wf: Workflow) -> tuple[Run, list[Action]]:
    """Apply one signal; return the new run and what should happen next. ``run`` is not modified."""
    run = _fork(run)
    actions: list[Action] = []
    if isinstance(signal, Start):
        if run.state == RUNNING and not run.running():
            if run.on_pull and run.head_sha and not any(st.iteration for st in run.steps.values()):
                actions.append(ReviewPull(run.head_sha))
            _schedule(run, wf, actions)
    elif isinstance(signal, AgentDone):
        _agent_done(run, wf, signal, actions)
    elif isinstance(signal, AgentFailed):
        _agent_failed(run, signal, actions)
    elif isinstance(signal, Command):
        _command(run, wf, signal, actions)
    elif isinstance(signal, HeadMoved):
        _head_moved(run, wf, signal, actions)
    elif isinstance(signal, DeliveryRefused):
        _delivery_refused(run, wf, signal, actions)
    return run, actions


def _fork(run: Run) -> Run:
    """A copy of ``run`` that the machine may change without touching ``run``: the run and its step states are
    copied, the values they hold are shared. The machine only ever assigns fields of a run and its steps and
    appends to ``decisions``; it never changes a result, feedback, escalation or approval in place, so sharing
    them is safe, and a step's result (a model's whole output) is not copied on every signal."""
    return replace(run, steps={sid: replace(st) for sid, st in run.steps.items()}, decisions=list(run.decisions))


def _stale(run: Run, step: str, iteration: int) -> bool:
    st = run.steps.get(step)
    return run.state != RUNNING or st is None or st.status != ACTIVE or st.iteration != iteration


def _schedule(run: Run, wf: Workflow, actions: list[Action]) -> None:
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
        _escalate(run, step.id, sig.result["escalate"].get("trigger", "out-of-scope"), actions,
                  proposal=sig.result["escalate"])
    elif sig.result.get("passed") is False:
        unmet = [c.get("criterion", "") for c in sig.result.get("criteria") or [] if not c.get("met")]
        _escalate(run, step.id, "out-of-scope", actions,
                  issue=f"{step.title} did not meet its pass criteria" + (f": {'; '.join(unmet)}" if unmet else "."))
    else:
        _schedule(run, wf, actions)


def _review(run: Run, wf: Workflow, step: Step, st: StepState, actions: list[Action]) -> None:
    result = st.result or {}
    actions.append(PostVerdict(step.id, st.iteration))
    if result.get("tech_debt") or result.get("suggestions"):
        actions.append(FileTechDebt(step.id, st.iteration))
    if result.get("verdict") == "APPROVED":
        st.status = FINISHED
        _schedule(run, wf, actions)
        return
    run.rejections += 1
    st.status = FINISHED  # this iteration is over; the loop re-opens it below or the escalation holds it
    if run.rejections >= wf.max_rejections:
        _escalate(run, step.id, "repeated-rejections", actions,
                  issue=f"The code-reviewer rejected the change {run.rejections} times without resolution.")
        return
    if step.gate is None:  # the catalog's validator refuses a review step without one
        raise ValueError(f"review step {step.id!r} of {wf.name!r} has no gate to send a rejection back to")
    _reopen(run, wf, step.gate.on_reject, until=step.id, feedback=result)
    _schedule(run, wf, actions)


def _reopen(run: Run, wf: Workflow, start: str, *, until: str, feedback: dict[str, Any] | None) -> None:
    """Send ``start`` and every step between it and ``until`` (inclusive) back to pending."""
    between = {s.id for s in wf.steps if start in wf.upstream(s.id) and (s.id == until or s.id in wf.upstream(until))}
    for sid in {start, until} | between:
        run.steps[sid].status = PENDING
    run.steps[start].feedback = feedback


def _agent_failed(run: Run, sig: AgentFailed, actions: list[Action]) -> None:
    if _stale(run, sig.step, sig.iteration):
        return
    st = run.steps[sig.step]
    st.status, st.error = FAILED, sig.error
    _escalate(run, sig.step, "out-of-scope", actions, issue=sig.error, failure=sig.kind)


def _escalate(run: Run, stage: str, trigger: str, actions: list[Action], *, issue: str = "",
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


def _command(run: Run, wf: Workflow, cmd: Command, actions: list[Action]) -> None:
    if run.state in (DONE, CANCELLED):
        actions.append(Reply(f"This workflow run is already {run.state}; `/{cmd.name}` changes nothing."))
    elif cmd.name == "cancel":
        run.state = CANCELLED
        for st in run.steps.values():
            if st.status == ACTIVE:
                st.status = PENDING
        if run.escalation:
            actions.append(ResolveEscalation())
        actions.append(Reply(f"Cancelled by @{cmd.actor}."))
    elif cmd.name == "escalate":
        if run.state == ESCALATED:
            actions.append(Reply("This run is already waiting for a decision."))
            return
        stage = (run.running() or [_current(run, wf)])[0]
        for sid in run.running():
            run.steps[sid].status = PENDING  # a late result of the interrupted step is ignored
        _escalate(run, stage, "requested", actions, issue=f"@{cmd.actor} asked for a decision"
                  + (f": {cmd.reason}" if cmd.reason else "."))
    elif cmd.name == "approve":
        _approve(run, wf, cmd, actions)
    elif cmd.name == "retry":
        if run.state != ESCALATED:
            actions.append(Reply("No step has failed, so there is nothing to retry; the workflow carries on "
                                 "from where it is."))
            return
        options = _offered(run)
        # Recorded as the retry option it is; where none was offered (a model's own options), as a plain retry,
        # never as an option nobody chose.
        chosen = next((i for i, o in enumerate(options, 1) if o.get("action") == "retry"), None)
        _moved_at_command(run, wf, cmd, actions)
        _resolve(run, wf, "retry", cmd, actions, chosen=chosen)


def _offered(run: Run) -> list[Option]:
    """The options of the run's escalation ([] when it has none)."""
    return (run.escalation.get("options") if run.escalation else None) or []


def _moved_at_command(run: Run, wf: Workflow, cmd: Command, actions: list[Action]) -> bool:
    """A head that moved without a push event reaching us, seen when a command asked GitHub for it: handled as
    the push it is before the command applies. True when it had moved."""
    if not (run.head_sha and cmd.head_sha and cmd.head_sha != run.head_sha):
        return False
    _head_moved(run, wf, HeadMoved(cmd.head_sha, cmd.moved, at=cmd.head_at), actions)
    return True


def _current(run: Run, wf: Workflow) -> str:
    for step in wf.steps:
        if run.steps[step.id].status not in (FINISHED, SKIPPED):
            return step.id
    return wf.steps[-1].id


def _approve(run: Run, wf: Workflow, cmd: Command, actions: list[Action]) -> None:
    if run.state == ESCALATED:
        options = _offered(run)
        n = 1 if cmd.option is None else cmd.option
        if not 1 <= n <= len(options):
            actions.append(Reply(f"There is no option {n}; choose 1 to {len(options)}."))
            return
        _moved_at_command(run, wf, cmd, actions)  # what a push made stale is redone before the option applies
        _resolve(run, wf, options[n - 1]["action"], cmd, actions, chosen=n)
    elif run.state == WAITING:
        old = run.head_sha or ""
        if _moved_at_command(run, wf, cmd, actions):  # this approval was for other code
            actions.append(Reply(f"`/approve` by @{cmd.actor} was not applied: the pull request's head is "
                                 f"`{(cmd.head_sha or '')[:7]}`, not `{old[:7]}` as summarised."))
            return
        # Webhooks arrive in any order: an /approve written for head A may come after the push of B (GitHub's
        # head, and the run's, is B by then). Both times are GitHub's, in whole seconds: the same second counts
        # as before the push. Unknown either way, the command stands.
        if run.head_since is not None and cmd.written_at is not None and cmd.written_at <= run.head_since:
            actions.append(Reply(f"`/approve` by @{cmd.actor} was not applied: it was written before the push of "
                                 f"`{old[:7]}`, so it approved the code before that push. Approve again if the "
                                 "change still stands on the new head."))
            return
        step = next(sid for sid, st in run.steps.items() if st.status == "waiting")
        run.steps[step].status = FINISHED
        run.approval = {"by": cmd.actor, "head_sha": run.head_sha}
        run.state = RUNNING
        _schedule(run, wf, actions)
    else:
        actions.append(Reply("Nothing is waiting for approval yet; the workflow is still running."))


def _resolve(run: Run, wf: Workflow, action: str, cmd: Command, actions: list[Action], chosen: int | None) -> None:
    esc = run.escalation
    stage = (esc.get("stage") if esc else None) or _current(run, wf)
    trigger = esc.get("trigger") if esc else None
    options = _offered(run)  # `chosen` counts in them
    title = ("Run the step again (/retry)" if chosen is None
             else options[chosen - 1].get("title", action) if options else action)
    run.decisions.append({"stage": stage, "trigger": trigger, "option": chosen, "by": cmd.actor,
                          "choice": title})
    run.escalation = None
    actions.append(ResolveEscalation())
    stale, run.stale_from = run.stale_from, None
    if action == "stop":
        run.state = CANCELLED
        return
    run.state = RUNNING
    if stale is not None:  # new commits touched the proposed change's files while this waited
        _redo(run, wf, stale, actions, why="New commits arrived while this waited for a decision")
        return
    step = wf.step(stage)
    if action == "retry":
        if trigger == "repeated-rejections":
            run.rejections = 0
            if step.gate is None:
                raise ValueError(f"review step {step.id!r} of {wf.name!r} has no gate to send a rejection back to")
            _reopen(run, wf, step.gate.on_reject, until=step.id, feedback=run.steps[step.id].result)
        else:
            run.steps[stage].status = PENDING
    else:  # continue / decide: the step's outcome stands (or is skipped) and the flow moves on
        st = run.steps[stage]
        st.status = FINISHED if st.result else SKIPPED
    _schedule(run, wf, actions)


def _stale_proposal(run: Run, wf: Workflow, paths: tuple[str, ...] | None) -> str | None:
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


def _redo(run: Run, wf: Workflow, start: str, actions: list[Action], *, why: str) -> None:
    """Run ``start`` (an implement step) and everything after it again on the run's head, then ask again. A new
    change on new code starts the three-strike count afresh."""
    _reopen(run, wf, start, until=wf.steps[-1].id, feedback=None)
    run.approval = None
    run.rejections = 0
    run.state = RUNNING
    actions.append(Reply(f"{why} (now `{(run.head_sha or '')[:7]}`), so **{wf.step(start).title}** makes the "
                         "proposed change again on the new head, and it is reviewed again before anything is "
                         "approved."))
    _schedule(run, wf, actions)


def _head_moved(run: Run, wf: Workflow, sig: HeadMoved, actions: list[Action]) -> None:
    """A push to the PR. The PR itself is judged again at the new head (whatever the run is doing); a proposed
    change whose files the push touched is made again; an approval request is asked again for the new head."""
    if sig.sha == run.head_sha or not sig.sha:
        return
    run.head_sha, run.head_since = sig.sha, sig.at
    if run.on_pull:  # finished or not, the PR's own check must follow its head (branch protection waits on it)
        actions.append(ReviewPull(sig.sha))
    if run.state not in (WAITING, RUNNING, ESCALATED):
        return
    if sig.own:
        return
    stale = _stale_proposal(run, wf, sig.paths)
    if run.state == ESCALATED:
        if stale is not None and run.stale_from is None:
            run.stale_from = stale
            actions.append(Reply(f"New commits were pushed (`{sig.sha[:7]}`) that may change files of the proposed "
                                 "change: unless the workflow is stopped, the change is made again on the new head "
                                 "before the chosen option goes on."))
        return
    if stale is not None:
        _redo(run, wf, stale, actions, why="New commits touch files of the proposed change" if sig.paths is not None
              else "New commits were pushed and GitHub could not say which files they change")
    elif run.state == WAITING:
        step = next(sid for sid, st in run.steps.items() if st.status == "waiting")
        actions.append(AskApproval(step))
        actions.append(Reply(f"New commits were pushed (`{sig.sha[:7]}`); they do not touch the proposed change's "
                             "files. An approval given before them does not count: approval is asked again for "
                             "the new head."))


def _delivery_refused(run: Run, wf: Workflow, sig: DeliveryRefused, actions: list[Action]) -> None:
    """The branch moved between the approval and the commit: nothing newer is overwritten; the change is made
    again on the new head, reviewed again and approved again."""
    if run.state != DONE or run.approval is None:
        return
    run.head_sha = sig.sha
    if run.on_pull:
        actions.append(ReviewPull(sig.sha))
    stale = _stale_proposal(run, wf, None)
    if stale is None:  # nothing of ours to make again (cannot happen: a delivery has a change); say so, never go quiet
        actions.append(Reply(f"The branch moved to `{sig.sha[:7]}` after the approval; nothing was committed."))
        return
    _redo(run, wf, stale, actions, why="The branch moved after the approval")
