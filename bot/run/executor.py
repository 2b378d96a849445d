"""Performs the engine's actions: agent calls and GitHub writes (bot/run/writes.py), storing the run after
every step.

The run record carries an *outbox*: the actions the engine asked for and that are not yet done. A
process that dies mid-step leaves them in the store, and whoever picks the run up next performs them
again. Every write carries a hidden marker of its run and step, so doing one twice edits instead of
posting twice (GitHub has no idempotency key).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.agents import AgentOutcome, AgentRequest, AgentRuntime, Usage
from bot.core import engine as E
from bot.core import render
from bot.core.catalog import Catalog, Workflow
from bot.core.config import RepoConfig
from bot.github.errors import explain
from bot.logs import log_context
from bot.run.state import RunState
from bot.run.writes import LimitReached, Writes
from bot.store import StepRecord, Store
from bot.store.base import Along
from bot.web.metrics import Metrics

log = logging.getLogger(__name__)

# What each write is, for a person reading that GitHub refused it.
WHAT = {"PostStep": "a step's output", "PostSkip": "a skipped step's note", "PostVerdict": "the review verdict",
        "FileTechDebt": "the tech-debt issues", "FileTasks": "the task issues", "Escalate": "the escalation",
        "ResolveEscalation": "the escalation's label", "AskApproval": "the approval request",
        "Finish": "delivering the approved change", "ReviewPull": "the pull request's review",
        "Reply": "a reply"}

__all__ = ["Executor", "LimitReached"]


class Unknown:
    """``Executor._save``'s default for ``changes``: not worked out by the caller."""


UNKNOWN = Unknown()


class Executor(Writes):
    """Works a run's outbox: agent steps of a wave concurrently, writes in order (bot/run/writes.py)."""

    def __init__(self, *, gh: GitHubAPI, store: Store, catalog: Catalog, agents: AgentRuntime,
                 bot_login: str | None = None, max_comments: int = 60, max_issues: int = 15,
                 config: RepoConfig | None = None, metrics: Metrics | None = None, app_id: int | None = None) -> None:
        self.gh = gh
        self.store = store
        self.catalog = catalog
        self.agents = agents
        self.bot_login = bot_login
        self.caps = {"comments": max_comments, "issues": max_issues}
        self.config = config or RepoConfig()
        self.metrics = metrics  # None: nothing is recorded (tests that build an Executor themselves)
        self.app_id = app_id  # this App's id: only its own check runs are ever taken for the bot's

    # -- lifecycle --

    async def apply(self, state: RunState, signal: E.Signal, delivery_id: str) -> RunState:
        """Apply a signal once per delivery (a re-run job does not apply it twice), then work the outbox."""
        with log_context(run_id=state.run.id):
            applied = state.data.applied
            if delivery_id not in applied:
                wf = self._wf(state)
                state.run, actions = E.advance(state.run, signal, wf)
                state.outbox.extend(actions)
                applied.append(delivery_id)
                del applied[:-50]
                await self._save(state)
            await self.drain(state)
        return state

    async def drain(self, state: RunState) -> None:
        """Perform queued actions until none is left; agent steps of one wave run concurrently."""
        try:
            await self._drain(state)
        except LimitReached as exc:
            log.warning("run %s stopped: %s", state.run.id, exc)
            state.run.state = E.CANCELLED
            state.data.stopped = str(exc)
            state.outbox.clear()
            await self._save(state)
            await self._status(state)

    async def _drain(self, state: RunState) -> None:
        if state.outbox and state.data.status_body is None:
            # The status comment first, so it heads the thread: a pull request's verdict comment (the run's first
            # writes hold its review) would otherwise come above it. Once: its body is stored with the run, and a
            # job that died before storing it finds the comment by its marker and edits it.
            await self._status(state)
        while state.outbox:
            writes = [a for a in state.outbox if not isinstance(a, E.RunAgent)]
            # One save for the wave's writes and the status comment's edit (issue 16: saves per run), not one per
            # write. Each write carries its marker, so a job killed before the save does them again as edits of what
            # they posted (bot/github/writes.py), never as second posts.
            try:
                for item in writes:
                    await self._write(state, item)
                await self._status(state)
            except Exception:
                # What was written before the failure is stored before the job fails (and is retried), so its
                # posts are found in the store, not only by their markers on the thread.
                await self._save_after_failure(state)
                raise
            await self._save_if_changed(state)
            agents = [a for a in state.outbox if isinstance(a, E.RunAgent)]
            if agents:
                await self._run_wave(state, agents)
        await self._status(state)

    async def _write(self, state: RunState, item: E.Action) -> None:
        """Perform one write of the outbox and take it off; a write GitHub refuses for good is dropped, and said."""
        kind = type(item).__name__
        try:
            await self._perform(state, item)
        except BadRequest as exc:
            if int(exc.status_code) in (403, 429) or int(exc.status_code) >= 500 or isinstance(item, E.Finish):
                # An outage or a rate limit: the job is retried, the action with it. A refusal to deliver
                # the approved change fails the job: its thread is told why, and `/retry` runs it again.
                raise
            # GitHub refuses this one write for good (a 4xx): drop it and say so, rather than
            # let it block every later step of the run.
            log.warning("run %s: GitHub refused %s (%s); dropped", state.run.id, kind, exc.status_code)
            cause, hint = explain(exc)
            state.data.dropped.append(f"{WHAT.get(kind, kind)} ({cause})" + (f". {hint}" if hint else ""))
        state.outbox.remove(item)

    async def _save_if_changed(self, state: RunState) -> None:
        """Save the run unless the store holds it as it is (nothing changed and nothing posted since the last save)."""
        changes = state.changes()
        if changes == {} and not (state.posts is not None and state.posts.unsaved):
            return
        await self._save(state, changes=changes)

    async def _save_after_failure(self, state: RunState) -> None:
        try:
            await self._save_if_changed(state)
        except Exception:  # the write's own error is the one the job reports; this one is logged beside it
            log.exception("run %s: could not be saved after a failed write", state.run.id)

    async def _run_wave(self, state: RunState, items: list[E.RunAgent]) -> None:
        tasks = [asyncio.ensure_future(self._call_agent(state, i)) for i in items]
        try:
            for done in asyncio.as_completed(tasks):
                action, outcome = await done
                outcome = self._guard_paths(state, action, outcome)
                step = self._step_record(state, action, outcome)
                signal: E.Signal = (E.AgentDone(action.step, action.iteration, outcome.result)
                                    if outcome.result is not None
                                    else E.AgentFailed(action.step, action.iteration, outcome.error or "the step failed",
                                                       outcome.error_kind or "api-error"))
                state.run, actions = E.advance(state.run, signal, self._wf(state))
                if action in state.outbox:
                    state.outbox.remove(action)
                state.outbox.extend(actions)
                await self._save(state, step)  # the step's record with the run it advanced, in one transaction
        finally:
            # A wave that fails (a save the store refused, the job cancelled) stops its other steps: their results
            # could not be stored and the retried job runs them again; left running, they spent tokens for nothing.
            unfinished = [t for t in tasks if not t.done()]
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)

    async def _save(self, state: RunState, step: tuple[StepRecord, tuple[int, str] | None] | None = None, *,
                    changes: dict[str, str] | None | Unknown = UNKNOWN) -> None:
        # A finished run with actions still queued (the PR to open, the closing summary) stays active on its
        # thread as "finishing", so a retried job finds it and works them off instead of losing them.
        stored = "finishing" if state.run.state in (E.DONE, E.CANCELLED) and state.outbox else state.run.state
        rec = dataclasses.replace(state.record, state=stored)
        # Only what changed since the last save (a step's write changes the outbox, not the model's outputs);
        # the whole run when the store's copy is not known to be current, or is gone.
        if isinstance(changes, Unknown):
            changes = state.changes()
        posted = list(state.posts.unsaved) if state.posts is not None else []
        along = Along(posted, *step) if step is not None else Along(posted)
        if changes is None or not await self.store.save_run_fields(rec, changes, along):
            rec = dataclasses.replace(rec, data=state.data.to_json())
            await self.store.save_run(rec, along)
        if state.posts is not None:
            del state.posts.unsaved[:len(posted)]
        state.record = rec
        state.stored(changes)

    def _wf(self, state: RunState) -> Workflow:
        return self.catalog.workflows[state.run.workflow]

    # -- agents --

    async def _call_agent(self, state: RunState, action: E.RunAgent) -> tuple[E.RunAgent, AgentOutcome]:
        wf = self._wf(state)
        step = wf.step(action.step)
        if step.kind == "delegate":  # the Lead lists the tasks; the engine files one issue per task
            step = dataclasses.replace(step, kind="analyze")
        upstream = wf.upstream(step.id)
        inputs = {sid: st.result for sid, st in state.run.steps.items() if sid in upstream and st.result}
        request = AgentRequest(run_id=state.run.id, step_id=step.id, iteration=action.iteration,
                               agent=self.catalog.agents[action.agent], step=step, task=step.task, inputs=inputs,
                               feedback=state.run.steps[step.id].feedback,
                               context=state.data.ctx.for_agents(state.run.head_sha),
                               flags_wanted={f.name: f.text for f in step.sets})
        return await self._call_agent_request(state, action, request, kind=wf.step(action.step).kind)

    async def _call_agent_request(self, state: RunState, action: E.RunAgent, request: AgentRequest,
                                  *, kind: str) -> tuple[E.RunAgent, AgentOutcome]:
        wf = self._wf(state)
        started = time.monotonic()
        try:
            outcome = await self.agents.run(request)
        except Exception as exc:  # a bug or an outage must become a readable escalation, not a dead run
            log.exception("agent %s failed on %s/%s", action.agent, state.run.id, action.step)
            outcome = AgentOutcome(result=None, usage=Usage(),
                                   error=f"{action.agent} could not finish: {type(exc).__name__}", error_kind="api-error")
        if self.metrics is not None:
            self.metrics.step_finished(workflow=wf.name, kind=kind,
                                       seconds=time.monotonic() - started, ok=outcome.result is not None)
        return action, outcome

    def _guard_paths(self, state: RunState, action: E.RunAgent, outcome: AgentOutcome) -> AgentOutcome:
        """Paths the repository protects are never changed by an implementer: such a result escalates."""
        touched = [str(c.get("path", "")) for c in (outcome.result or {}).get("changes") or []
                   if isinstance(c, dict) and self.config.protected(str(c.get("path", "")))]
        if not touched:
            return outcome
        # The paths are the model's text: inline code through the renderer, so none can mention, link or mark.
        named = ", ".join(render.code_span(p) for p in touched[:5])
        more = f" and {len(touched) - 5} more" if len(touched) > 5 else ""
        return AgentOutcome(result=None, usage=outcome.usage, error_kind="out-of-scope",
                            error=f"{action.agent} proposed changes to protected paths ({named}{more}), which "
                                  f"implementers may not change: {self.config.protection_rule()}.")

    async def _record_usage(self, state: RunState, action: E.RunAgent, outcome: AgentOutcome, *,
                            head: str | None = None) -> None:
        step, day = self._step_record(state, action, outcome, head=head)
        await self.store.save_step(step, usage_day=day)

    def _step_record(self, state: RunState, action: E.RunAgent, outcome: AgentOutcome, *,
                     head: str | None = None) -> tuple[StepRecord, tuple[int, str] | None]:
        """A finished step's usage counted in the run (and the metrics), and its record for the store, with the
        installation's day its tokens count on (None when none do)."""
        u = outcome.usage
        if self.metrics is not None:
            self.metrics.tokens(u)
        state.data.usage += u
        day = (state.record.installation_id, time.strftime("%Y-%m-%d", time.gmtime())) \
            if u.tokens and state.record.installation_id else None
        return StepRecord(
            run_id=state.run.id, step_id=action.step, iteration=action.iteration,
            status="done" if outcome.result is not None else "failed", output=outcome.result or {"error": outcome.error},
            input_tokens=u.input_tokens, output_tokens=u.output_tokens, cache_read_tokens=u.cache_read_input_tokens,
            cache_write_tokens=u.cache_creation_input_tokens, cost_usd=u.cost_usd,
            provenance=self.agents.provenance(self.catalog.agents[action.agent])
            | {"head": head or state.run.head_sha or ""}), day  # ``head``: what the step read, if not the run's
