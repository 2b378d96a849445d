"""Performs the engine's actions: agent calls and GitHub writes, storing the run after every step.

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
from typing import Any

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.agents import AgentOutcome, AgentRequest, AgentRuntime, RepoContext, Usage, gate
from bot.agents.tools import RepoReader
from bot.core import engine as E
from bot.core import render
from bot.core.catalog import Catalog, Step, Workflow
from bot.core.config import RepoConfig
from bot.core.markers import marker
from bot.github import changes
from bot.github.errors import explain
from bot.github.outgoing import keeping
from bot.github.writes import create_issue_once, digest, upsert_comment
from bot.logs import log_context
from bot.run import pull_review
from bot.store import Posted, RunRecord, StepRecord, Store
from bot.web.metrics import Metrics

log = logging.getLogger(__name__)

ACTIONS: dict[str, type] = {cls.__name__: cls for cls in (
    E.RunAgent, E.PostStep, E.PostSkip, E.PostVerdict, E.FileTechDebt, E.FileTasks, E.Escalate,
    E.ResolveEscalation, E.AskApproval, E.Finish, E.ReviewPull, E.Reply)}
PULL_REVIEW_STEP = "pr-review"  # the usage records of the pull request's own review
# What each write is, for a person reading that GitHub refused it.
WHAT = {"PostStep": "a step's output", "PostSkip": "a skipped step's note", "PostVerdict": "the review verdict",
        "FileTechDebt": "the tech-debt issues", "FileTasks": "the task issues", "Escalate": "the escalation",
        "ResolveEscalation": "the escalation's label", "AskApproval": "the approval request",
        "Finish": "delivering the approved change", "ReviewPull": "the pull request's review",
        "Reply": "a reply"}
NEEDS_DECISION = "needs-decision"


def dump_action(action: E.Action) -> dict[str, Any]:
    return {"type": type(action).__name__, **dataclasses.asdict(action)}


def load_action(data: dict[str, Any]) -> E.Action:
    data = dict(data)
    return ACTIONS[data.pop("type")](**data)


# ---- the run executor ----------------------------------------------------------------------

@dataclasses.dataclass
class RunState:
    """A run record opened for work: the engine's run plus what the executor keeps beside it."""

    record: RunRecord
    run: E.Run
    data: dict[str, Any]

    @property
    def outbox(self) -> list[dict[str, Any]]:
        return self.data.setdefault("outbox", [])


class LimitReached(Exception):
    """A run tried to create more comments or issues than one run may: it stops instead of spamming."""


class Executor:
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
            applied: list[str] = state.data.setdefault("applied", [])
            if delivery_id not in applied:
                wf = self._wf(state)
                state.run, actions = E.advance(state.run, signal, wf)
                state.outbox.extend(dump_action(a) for a in actions)
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
            state.data["stopped"] = str(exc)
            state.outbox.clear()
            await self._save(state)
            await self._status(state)

    async def _count(self, state: RunState, kind: str, mark: str) -> None:
        """Count a creation (not an edit) against the run's cap before it happens."""
        if await self.store.find_posted(mark) is not None:
            return
        created = state.data.setdefault("created", {})
        if created.get(kind, 0) >= self.caps[kind]:
            raise LimitReached(f"this run reached its limit of {self.caps[kind]} new {kind}, so it stopped")
        created[kind] = created.get(kind, 0) + 1

    async def _drain(self, state: RunState) -> None:
        while state.outbox:
            writes = [a for a in state.outbox if a["type"] != "RunAgent"]
            for item in writes:
                try:
                    await self._perform(state, load_action(item))
                except BadRequest as exc:
                    if int(exc.status_code) in (403, 429) or int(exc.status_code) >= 500 or item["type"] == "Finish":
                        # An outage or a rate limit: the job is retried, the action with it. A refusal to deliver
                        # the approved change fails the job: its thread is told why, and `/retry` runs it again.
                        raise
                    # GitHub refuses this one write for good (a 4xx): drop it and say so, rather than
                    # let it block every later step of the run.
                    log.warning("run %s: GitHub refused %s (%s); dropped", state.run.id, item["type"], exc.status_code)
                    cause, hint = explain(exc)
                    state.data.setdefault("dropped", []).append(f"{WHAT.get(item['type'], item['type'])} ({cause})"
                                                                + (f". {hint}" if hint else ""))
                state.outbox.remove(item)
                await self._save(state)
            await self._status(state)
            agents = [a for a in state.outbox if a["type"] == "RunAgent"]
            if agents:
                await self._run_wave(state, agents)
        await self._status(state)

    async def _run_wave(self, state: RunState, items: list[dict[str, Any]]) -> None:
        tasks = {asyncio.ensure_future(self._call_agent(state, load_action(i))): i for i in items}  # type: ignore[arg-type]
        for done in asyncio.as_completed(list(tasks)):
            action, outcome = await done
            outcome = self._guard_paths(state, action, outcome)
            item = dump_action(action)
            await self._record_usage(state, action, outcome)
            signal: E.Signal = (E.AgentDone(action.step, action.iteration, outcome.result) if outcome.result is not None
                                else E.AgentFailed(action.step, action.iteration, outcome.error or "the step failed",
                                                   outcome.error_kind or "api-error"))
            state.run, actions = E.advance(state.run, signal, self._wf(state))
            if item in state.outbox:
                state.outbox.remove(item)
            state.outbox.extend(dump_action(a) for a in actions)
            await self._save(state)

    async def _save(self, state: RunState) -> None:
        state.data["run"] = state.run.to_dict()
        # A finished run with actions still queued (the PR to open, the closing summary) stays active on its
        # thread as "finishing", so a retried job finds it and works them off instead of losing them.
        stored = "finishing" if state.run.state in (E.DONE, E.CANCELLED) and state.outbox else state.run.state
        rec = dataclasses.replace(state.record, state=stored, data=state.data)
        state.record = rec
        await self.store.save_run(rec)

    def _wf(self, state: RunState) -> Workflow:
        return self.catalog.workflows[state.run.workflow]

    # -- agents --

    def _context(self, state: RunState) -> RepoContext:
        c = state.data["ctx"]
        return RepoContext(repo=c["repo"], number=c.get("number"), is_pull_request=bool(c.get("is_pull_request")),
                           head_sha=state.run.head_sha or c.get("head_sha"),
                           default_branch=c.get("default_branch") or "main",
                           title=c.get("title") or "", body=c.get("body") or "", ci=c.get("ci"))

    async def _call_agent(self, state: RunState, action: E.RunAgent) -> tuple[E.RunAgent, AgentOutcome]:
        wf = self._wf(state)
        step = wf.step(action.step)
        if step.kind == "delegate":  # the Lead lists the tasks; the engine files one issue per task
            step = dataclasses.replace(step, kind="analyze")
        upstream = wf.upstream(step.id)
        inputs = {sid: st.result for sid, st in state.run.steps.items() if sid in upstream and st.result}
        request = AgentRequest(run_id=state.run.id, step_id=step.id, iteration=action.iteration,
                               agent=self.catalog.agents[action.agent], step=step, task=step.task, inputs=inputs,
                               feedback=state.run.steps[step.id].feedback, context=self._context(state),
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

    async def _record_usage(self, state: RunState, action: E.RunAgent, outcome: AgentOutcome) -> None:
        u = outcome.usage
        if self.metrics is not None:
            self.metrics.tokens(u)
        total = state.data.setdefault("usage", {})
        for key in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "calls"):
            total[key] = int(total.get(key, 0)) + int(getattr(u, key))
        total["cost_usd"] = float(total.get("cost_usd", 0.0)) + u.cost_usd
        await self.store.save_step(StepRecord(
            run_id=state.run.id, step_id=action.step, iteration=action.iteration,
            status="done" if outcome.result is not None else "failed", output=outcome.result or {"error": outcome.error},
            input_tokens=u.input_tokens, output_tokens=u.output_tokens, cache_read_tokens=u.cache_read_input_tokens,
            cache_write_tokens=u.cache_creation_input_tokens, cost_usd=u.cost_usd))
        if u.tokens and state.record.installation_id:
            await self.store.add_usage(state.record.installation_id, time.strftime("%Y-%m-%d", time.gmtime()),
                                       u.tokens, u.cost_usd)

    # -- GitHub writes --

    def _where(self, state: RunState) -> tuple[str, int]:
        return state.record.repo, int(state.record.number or 0)

    async def _comment(self, state: RunState, mark: str, body: str) -> Posted:
        await self._count(state, "comments", mark)
        repo, number = self._where(state)
        return await upsert_comment(self.gh, self.store, repo=repo, number=number, mark=mark, body=body,
                                    bot_login=self.bot_login)

    async def _status(self, state: RunState) -> None:
        wf = self._wf(state)
        body = render.status(state.run, wf, announce=state.data.get("announce", wf.announce),
                             usage=state.data.get("usage", {}), links=state.data.get("links", {}),
                             note="; ".join(filter(None, [
                                 state.data.get("stopped") and f"Stopped: {state.data['stopped']}",
                                 *(f"GitHub refused {d}" for d in state.data.get("dropped", [])[-3:])])))
        if state.data.get("status_body") == body:
            return  # nothing changed: save GitHub a write
        await self._comment(state, marker("status", state.run.id), body)
        state.data["status_body"] = body
        await self._save(state)

    async def _perform(self, state: RunState, action: E.Action) -> None:
        if self.config.dry_run:  # the repository asked for the status comment only
            log.info("dry run: %s on %s not posted", type(action).__name__, state.run.id)
            return
        wf, run = self._wf(state), state.run
        rid = run.id
        if isinstance(action, E.PostStep):
            st = run.steps[action.step]
            posted = await self._comment(state, marker("step", rid, action.step, action.iteration),
                                         render.step_output(wf, action.step, action.iteration, st.agent or "",
                                                            st.result or {}))
            state.data.setdefault("links", {})[action.step] = posted.url or ""
            if wf.step(action.step).kind == "context":
                await self._comment(state, marker("context", rid), render.context_document(run, wf))
        elif isinstance(action, E.PostSkip):
            await self._comment(state, marker("skip", rid, action.step), render.skipped(wf, action.step))
        elif isinstance(action, E.PostVerdict):
            await self._verdict(state, wf, action)
        elif isinstance(action, E.FileTechDebt):
            await self._tech_debt(state, wf, action)
        elif isinstance(action, E.FileTasks):
            await self._tasks(state, action)
        elif isinstance(action, E.Escalate):
            n = len(run.decisions)
            mention = str(state.data.get("mention", ""))
            with keeping(*mention.split()):  # the team this repository asks to be told: the one live mention
                await self._comment(state, marker("escalation", rid, n), render.escalation(run, wf, mention))
            repo, number = self._where(state)
            await self.gh.post(f"/repos/{repo}/issues/{number}/labels", data={"labels": [NEEDS_DECISION]})
        elif isinstance(action, E.ResolveEscalation):
            repo, number = self._where(state)
            try:
                await self.gh.delete(f"/repos/{repo}/issues/{number}/labels/{NEEDS_DECISION}")
            except BadRequest as exc:
                if exc.status_code != 404:
                    raise
        elif isinstance(action, E.AskApproval):
            st = run.steps[action.step]
            # Asked again after a push: the same comment, edited to name the new head (a reply says so), so a
            # busy pull request does not grow a request per push.
            await self._comment(state, marker("approval", rid, st.iteration),
                                render.approval_request(st.result or {}, wf, head=run.head_sha if run.on_pull else None))
        elif isinstance(action, E.Finish):
            await self._finish(state, wf)
        elif isinstance(action, E.ReviewPull):
            await self._review_pull(state, action)
        elif isinstance(action, E.Reply):
            n = state.data["replies"] = int(state.data.get("replies", 0)) + 1  # never reused, unlike "applied"
            await self._comment(state, marker("reply", rid, n, digest(action.text)), action.text)

    async def _verdict(self, state: RunState, wf: Workflow, action: E.PostVerdict) -> None:
        """The workflow gate's verdict judges the bot's own proposal: a thread comment, never the PR's review or
        check run (those judge the pull request itself, see :meth:`_review_pull`)."""
        run = state.run
        result = run.steps[action.step].result or {}
        await self._comment(state, marker("verdict", run.id, action.step, action.iteration),
                            render.verdict(wf, action.step, action.iteration, result, rejections=run.rejections))

    async def _review_pull(self, state: RunState, action: E.ReviewPull) -> None:
        """The pull request judged at its head as GitHub has it now, once per head SHA. The verdict is kept in
        the run before it is posted, so a retry after a crash posts the same verdict, never a second opinion."""
        repo, number = self._where(state)
        if not state.data["ctx"].get("is_pull_request") or not number:
            return
        reader = RepoReader(self.gh, repo)
        pull = await reader.pull(number)
        sha = str(pull["head"]["sha"])
        if await pull_review.posted(self.store, repo, number, sha):
            await pull_review.dismiss_stale(self.gh, repo, number, sha, self.bot_login)
            return
        kept: dict[str, Any] = state.data.setdefault("pr_verdicts", {})
        verdict = pull_review.Verdict(**kept[sha]) if sha in kept else await self._judge_pull(state, reader, pull)
        if verdict is None:
            return
        kept[sha] = dataclasses.asdict(verdict)
        for old in list(kept)[:-5]:
            del kept[old]
        await self._save(state)
        await pull_review.post(self.gh, self.store, repo=repo, number=number, verdict=verdict,
                               bot_login=self.bot_login, app_id=self.app_id, details_url=pull.get("html_url"))
        # The run that judges this PR, so a push after it finished is still judged (see pipeline.on_work_item).
        await self.store.remember_posted(Posted(marker=pull_review.judged_marker(repo, number), repo=repo,
                                                kind="seen", github_id=0, number=number, url=state.run.id))

    async def _judge_pull(self, state: RunState, reader: RepoReader, pull: dict[str, Any]) -> pull_review.Verdict | None:
        """The verdict on the PR at ``pull``'s head; None when the head moved meanwhile (the push that moved it
        is judged by itself: judging one head's files under another's SHA is not)."""
        number, sha = int(pull["number"]), str(pull["head"]["sha"])
        files = await reader.pull_files(number)
        if await self._moved(state, reader, number, sha):
            return None
        found, unread = await pull_review.without_diff(self.gh, reader.repo, files, sha)
        findings = gate.check(None, files) + found
        review, why = await self._model_review(state, sha)
        if review is not None and await self._moved(state, reader, number, sha):
            return None  # the model may have read the newer head's diff
        if review is not None and found:
            review = gate.apply_gate(review, found)  # the model's runtime saw the diffs only
        return pull_review.decide(sha, findings, review, no_model=why,
                                  unchecked=pull_review.unchecked(pull, files, unread))

    async def _moved(self, state: RunState, reader: RepoReader, number: int, sha: str) -> bool:
        now = str((await reader.pull(number))["head"]["sha"])
        if now != sha:
            log.warning("run %s: %s#%s moved from %s to %s while it was judged; the newer head is judged by its "
                        "own push event", state.run.id, reader.repo, number, sha[:7], now[:7])
        return now != sha

    async def _model_review(self, state: RunState, sha: str) -> tuple[dict[str, Any] | None, str]:
        """(the model's review of the PR's diff, with the gate applied; or None and why no model reviewed it)."""
        agent = self.catalog.agents.get("code-reviewer")
        if agent is None:
            return None, "this repository's catalog has no code-reviewer agent"
        n = int(state.data.get("pull_reviews", 0)) + 1
        state.data["pull_reviews"] = n
        step = Step(id=PULL_REVIEW_STEP, title="PULL REQUEST REVIEW", agent=agent.name, kind="review",
                    task=f"Review the pull request's own changes at head {sha}: correctness, security (OWASP Top 10), "
                         "tests, and anything a maintainer must know before merging. Read the diff with "
                         "get_pull_files.", output="Approval or rejection of the pull request")
        request = AgentRequest(run_id=state.run.id, step_id=PULL_REVIEW_STEP, iteration=n, agent=agent, step=step,
                               task=step.task, inputs={}, feedback=None,
                               context=dataclasses.replace(self._context(state), head_sha=sha))
        action = E.RunAgent(PULL_REVIEW_STEP, n, agent.name)
        _, outcome = await self._call_agent_request(state, action, request, kind="pull-review")
        await self._record_usage(state, action, outcome)
        if outcome.result is None:
            return None, outcome.error or "the model review failed"
        if outcome.offline:
            return None, "no model is configured: ANTHROPIC_API_KEY is not set"
        return outcome.result, ""

    async def _tech_debt(self, state: RunState, wf: Workflow, action: E.FileTechDebt) -> None:
        result = state.run.steps[action.step].result or {}
        items = [dict(i) for i in result.get("tech_debt") or []] + [
            {"title": f"Suggestion: {s.get('text', '')}"[:200], "body": s.get("text", ""),
             **({"path": s["path"]} if s.get("path") else {})}
            for s in result.get("suggestions") or []]
        repo, number = self._where(state)
        status_url = f"#{number}"
        filed = state.data.setdefault("debt", [])
        for item in items[:10]:  # cap: a runaway reviewer cannot spam the tracker
            title, body = render.tech_debt_issue(item, run_link=status_url, step_title=wf.step(action.step).title)
            mark = marker("debt", digest(repo, title.lower().strip()))
            await self._count(state, "issues", mark)
            posted, created = await create_issue_once(self.gh, self.store, repo=repo, mark=mark, title=title,
                                                      body=body, labels=["tech-debt"], bot_login=self.bot_login)
            ref = f"#{posted.number}"
            if ref not in filed:
                filed.append(ref)

    async def _tasks(self, state: RunState, action: E.FileTasks) -> None:
        """Delegate: one labelled issue per task the SETUP step listed; each runs its own workflow there."""
        wf = self._wf(state)
        upstream = wf.upstream(action.step)
        tasks = [t for sid in upstream for t in ((state.run.steps[sid].result or {}).get("tasks") or [])
                 if isinstance(t, dict) and t.get("title")]
        repo, number = self._where(state)
        filed = state.data.setdefault("tasks", [])
        for task in tasks[:10]:  # cap: a runaway plan cannot flood the tracker
            title = render.clip(str(task["title"]).splitlines()[0], 200)
            body = (f"{task.get('description', '')}\n\nA task of the multi-session project in #{number}; "
                    "triage-lead runs its own workflow here.")
            labels = [str(x) for x in task.get("labels") or []][:5]
            await self._count(state, "issues", marker("task", digest(repo, str(number), title)))
            posted, _ = await create_issue_once(self.gh, self.store, repo=repo, labels=labels, title=title, body=body,
                                                mark=marker("task", digest(repo, str(number), title)),
                                                bot_login=self.bot_login)
            if f"#{posted.number}" not in filed:
                filed.append(f"#{posted.number}")

    async def _finish(self, state: RunState, wf: Workflow) -> None:
        run, ctx = state.run, state.data["ctx"]
        proposed = _latest_changes(run, wf)
        pull_url = pushed = None
        if proposed and run.approval:
            try:
                pull_url, pushed = await changes.deliver(
                    self.gh, self.store, run_id=run.id, ctx=ctx, files=proposed, workflow=wf.name,
                    title=ctx.get("title") or wf.title, base_sha=run.approval.get("head_sha") or run.head_sha)
            except changes.BranchMoved as moved:  # never overwrite what was pushed since: make the change again
                state.run, actions = E.advance(run, E.DeliveryRefused(moved.sha), wf)
                state.outbox.extend(dump_action(a) for a in actions)
                return
        state.data["pull_url"], state.data["pushed"] = pull_url, pushed
        await self._comment(state, marker("done", run.id),
                            render.finished(run, wf, pull_url=pull_url, pushed=pushed, debt=state.data.get("debt", []),
                                            tasks=state.data.get("tasks", [])))


def _latest_changes(run: E.Run, wf: Workflow) -> list[dict[str, str]]:
    """The newest change set an implementer proposed (later iterations replace earlier ones)."""
    files: dict[str, str] = {}
    for step in wf.steps:
        result = run.steps[step.id].result or {}
        if step.kind == "implement":
            for c in result.get("changes") or []:
                if isinstance(c, dict) and isinstance(c.get("path"), str) and isinstance(c.get("content"), str):
                    files[c["path"]] = c["content"]
    return [{"path": p, "content": c} for p, c in files.items()]
