"""What a person's command (``/approve``, ``/escalate``, ``/retry``, ``/cancel``) does to a run: the engine's
(bot/core/engine.py) answer to a :class:`Command` signal. Pure: the run given is the engine's own copy.
"""

from __future__ import annotations

import re

from bot.core import engine_flow as flow
from bot.core.run_records import (
    ACTIVE,
    BUDGET,
    BUDGET_NAMES,
    CANCELLED,
    DONE,
    ESCALATED,
    FINISHED,
    PENDING,
    RUNNING,
    SKIPPED,
    WAITING,
    Action,
    Command,
    HeadMoved,
    Option,
    Reply,
    ResolveEscalation,
    Run,
)
from bot.core.workflow import Workflow

# What a run is doing, for a reply saying that `/approve budget` has nothing to act on.
DOING = {"running": "it is running", "waiting": "it waits for `/approve` of its proposed change",
         "escalated": "it waits for a decision on its escalation"}


def command(run: Run, wf: Workflow, cmd: Command, actions: list[Action]) -> None:
    """Apply a person's command (its permission was checked where it was read); a command that changes nothing
    gets a Reply saying why."""
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
    elif _for_budget(cmd):  # before the other approvals: `/approve budget` never approves a change or an option
        _approve_budget(run, wf, cmd, actions)
    elif run.state == BUDGET:  # nothing but `/approve budget` starts it (an escalation's "resume" would not ask)
        actions.append(Reply(f"This run has not started: {_short(run)}. `/approve budget` from someone with write "
                             "access lets it go on (the operator's ceilings still apply), or `/cancel` ends it; "
                             f"`/{cmd.name}` changes nothing."))
    elif cmd.name == "escalate":
        if run.state == ESCALATED:
            actions.append(Reply("This run is already waiting for a decision."))
            return
        stage = (run.running() or [flow.current(run, wf)])[0]
        for sid in run.running():
            run.steps[sid].status = PENDING  # a late result of the interrupted step is ignored
        flow.escalate(run, stage, "requested", actions, issue=f"@{cmd.actor} asked for a decision"
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


def _for_budget(cmd: Command) -> bool:
    """``/approve budget``: the argument's first word (the comment's argument reaches the engine as ``reason``)."""
    return cmd.name == "approve" and re.match(r"budget\b", cmd.reason.strip(), re.I) is not None


def approves_budget(run: Run, signal: object) -> bool:
    """Whether ``signal`` is an ``/approve budget`` that lets this run (waiting in BUDGET) go on: the executor's
    side then builds the run's budget without the repository's own limits before the signal applies."""
    return isinstance(signal, Command) and _for_budget(signal) and run.state == BUDGET


def _short(run: Run) -> str:
    """Why a run waits for its budget, in a clause."""
    short = run.budget
    if short is None:
        return "it waits for a budget approval"
    return (f"its estimate of {short['estimate']:,} tokens is more than {BUDGET_NAMES[short['budget']]} has left "
            f"({short['left']:,} tokens)")


def _approve_budget(run: Run, wf: Workflow, cmd: Command, actions: list[Action]) -> None:
    """The run goes on past the repository's own limits, never past the operator's (the executor's side builds its
    budget without the former once ``budget_approval`` is set); said when the operator's will stop it."""
    if run.state != BUDGET:
        actions.append(Reply(f"Nothing on this run waits for a budget approval ({DOING.get(run.state, run.state)}), so "
                             "`/approve budget` changes nothing."))
        return
    _moved_at_command(run, wf, cmd, actions)  # the head it starts on is GitHub's now
    run.budget_approval = {"by": cmd.actor}
    run.state = RUNNING
    short = run.budget
    if short is not None and short["estimate"] > short["operator_left"]:
        actions.append(Reply(f"`/approve budget` by @{cmd.actor} lets this run go on past this repository's own "
                             f"token limits, but not past the operator's: its estimate of {short['estimate']:,} "
                             f"tokens is more than their ceilings leave ({short['operator_left']:,} tokens), so it "
                             "stops where they are reached, and says so."))
    flow.begin(run, wf, actions)


def _offered(run: Run) -> list[Option]:
    """The options of the run's escalation ([] when it has none)."""
    return (run.escalation.get("options") if run.escalation else None) or []


def _moved_at_command(run: Run, wf: Workflow, cmd: Command, actions: list[Action]) -> bool:
    """A head that moved without a push event reaching us, seen when a command asked GitHub for it: handled as
    the push it is before the command applies. True when it had moved."""
    if not (run.head_sha and cmd.head_sha and cmd.head_sha != run.head_sha):
        return False
    flow.head_moved(run, wf, HeadMoved(cmd.head_sha, cmd.moved, at=cmd.head_at), actions)
    return True


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
        flow.schedule(run, wf, actions)
    else:
        actions.append(Reply("Nothing is waiting for approval yet; the workflow is still running."))


def _resolve(run: Run, wf: Workflow, action: str, cmd: Command, actions: list[Action], chosen: int | None) -> None:
    esc = run.escalation
    stage = (esc.get("stage") if esc else None) or flow.current(run, wf)
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
        flow.redo(run, wf, stale, actions, why="New commits arrived while this waited for a decision")
        return
    step = wf.step(stage)
    if action == "retry":
        if trigger == "repeated-rejections":
            run.rejections = 0
            if step.gate is None:
                raise ValueError(f"review step {step.id!r} of {wf.name!r} has no gate to send a rejection back to")
            flow.reopen(run, wf, step.gate.on_reject, until=step.id, feedback=run.steps[step.id].result)
        else:
            run.steps[stage].status = PENDING
    else:  # continue / decide: the step's outcome stands (or is skipped) and the flow moves on
        st = run.steps[stage]
        st.status = FINISHED if st.result else SKIPPED
    flow.schedule(run, wf, actions)
