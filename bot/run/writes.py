"""The executor's GitHub writes: each action the engine asks for performed once (a retry edits, never posts
twice), the status comment, the pull request's own verdict, and the issues a run files.

:class:`Writes` is the half of :class:`bot.run.executor.Executor` that writes; the other half (the drain
loop, agent calls, saving the run) is declared here only as the stubs this half calls.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from gidgethub import BadRequest, RateLimitExceeded
from gidgethub.abc import GitHubAPI

from bot.agents import AgentOutcome, AgentRequest, gate
from bot.agents.tools import RepoReader
from bot.core import budget_check, render
from bot.core import engine as E
from bot.core.catalog import Catalog, Step, Workflow
from bot.core.config import RepoConfig
from bot.core.markers import marker, markers_in
from bot.github import changes
from bot.github.outgoing import keeping
from bot.github.writes import comment_posted, create_issue_once, digest, own_comments, upsert_comment
from bot.run import pull_review
from bot.run.state import RunState, provenance
from bot.store import Posted, Store

log = logging.getLogger(__name__)

PULL_REVIEW_STEP = "pr-review"  # the usage records of the pull request's own review
NEEDS_DECISION = "needs-decision"


class LimitReached(Exception):
    """A run tried to create more comments or issues than one run may: it stops instead of spamming."""


class Writes:
    """GitHub writes of a run; the executor supplies the attributes and the stubs below."""

    gh: GitHubAPI
    store: Store
    catalog: Catalog
    bot_login: str | None
    caps: dict[str, int]
    config: RepoConfig
    app_id: int | None

    async def _save(self, state: RunState) -> None:
        raise NotImplementedError  # Executor's

    def _wf(self, state: RunState) -> Workflow:
        raise NotImplementedError  # Executor's

    async def _call_agent_request(self, state: RunState, action: E.RunAgent, request: AgentRequest,
                                  *, kind: str) -> tuple[E.RunAgent, AgentOutcome]:
        raise NotImplementedError  # Executor's

    async def _record_usage(self, state: RunState, action: E.RunAgent, outcome: AgentOutcome, *,
                            head: str | None = None) -> None:
        raise NotImplementedError  # Executor's

    async def _count(self, state: RunState, kind: str, mark: str) -> None:
        """Count a creation (not an edit) against the run's cap before it happens. An issue's marker is not the
        run's own (the same tech debt is filed once, whichever run finds it): the store is asked for it."""
        if await (self._posted(state, mark) if kind == "comments" else self.store.find_posted(mark)) is not None:
            return
        created = state.data.created
        if getattr(created, kind) >= self.caps[kind]:
            raise LimitReached(f"this run reached its limit of {self.caps[kind]} new {kind}, so it stopped")
        setattr(created, kind, getattr(created, kind) + 1)

    def _where(self, state: RunState) -> tuple[str, int]:
        return state.record.repo, int(state.record.number or 0)

    async def _posted(self, state: RunState, mark: str) -> Posted | None:
        """What carries ``mark`` (one of this run's): from the run's posts when this job started the run (the
        thread listed once, and what it had is recorded in the store as a search would), else from the store."""
        posts = state.posts
        if posts is None:
            return await self.store.find_posted(mark)
        if mark in posts.by_mark:
            return posts.by_mark[mark]
        repo, number = self._where(state)
        if posts.on_thread is None:
            posts.on_thread = await own_comments(self.gh, repo, number, self.bot_login)
        found = posts.on_thread.get(markers_in(mark)[0])
        if found is None:
            return None
        known = posts.by_mark[mark] = comment_posted(found, mark=mark, repo=repo, number=number)
        await self.store.remember_posted(known)
        return known

    async def _comment(self, state: RunState, mark: str, body: str) -> Posted:
        await self._count(state, "comments", mark)
        repo, number = self._where(state)
        if state.posts is None:
            return await upsert_comment(self.gh, self.store, repo=repo, number=number, mark=mark, body=body,
                                        bot_login=self.bot_login)
        known = await self._posted(state, mark)
        posted = await upsert_comment(self.gh, self.store, repo=repo, number=number, mark=mark, body=body,
                                      bot_login=self.bot_login, known=known, remember=False)
        state.posts.by_mark[mark] = posted
        if posted is not known:  # posted anew: recorded with the run's next save (every write is followed by one)
            state.posts.unsaved.append(posted)
        return posted

    async def _status(self, state: RunState) -> None:
        """Post the status comment, or edit it when its head changed: the run's state, its rejections, a stop or
        a refused write. A step finishing is not such a change: its own comment says so, and an edit per step
        would cost a GitHub write per step (issue 16: at most 3 per step). What the comment says of the steps
        is therefore as of its last edit, and it says so (render.status)."""
        wf = self._wf(state)
        data = state.data
        announce = wf.announce if data.announce is None else data.announce
        note = "; ".join(filter(None, [data.stopped and f"Stopped: {data.stopped}",
                                       *(f"GitHub refused {d}" for d in data.dropped[-3:])]))
        head = render.status_head(state.run, wf, announce=announce, note=note)
        if data.status_body is None or not data.status_body.startswith(head + "\n"):  # else: save GitHub a write
            body = render.status(state.run, wf, announce=announce, usage=dataclasses.asdict(data.usage),
                                 links=data.links, note=note)
            await self._comment(state, marker("status", state.run.id), body)
            data.status_body = body
            await self._save(state)
        await self._budget_check(state)  # whether or not the comment changed: a push moves the check only

    async def _budget_check(self, state: RunState) -> None:
        """A pull request's run waiting for ``/approve budget`` shows on its checks (bot/core/budget_check.py): posted
        once, moved to a new head, completed when the budget is approved or the run cancelled. A refusal is logged:
        the status comment says the same."""
        want = budget_check.wanted(state.run, not_author=self.config.approval_not_author)
        if want is None or self.config.dry_run:
            return
        repo, mark = state.record.repo, marker("budget-check", state.run.id)
        known = await self.store.find_posted(mark)
        phase, _, sha = (known.url or "").partition(":") if known is not None else ("", "", "")
        # Done, shown as it is, or nothing shown while it waited (a run from before this check): nothing to do.
        if (phase in budget_check.FINAL or want.key == f"{phase}:{sha}"
                or (known is None and want.phase != budget_check.WAITING)):
            return
        try:
            if known is not None and sha == want.sha:
                await self.gh.patch(f"/repos/{repo}/check-runs/{known.github_id}", data=want.fields())
                check_id = known.github_id
            else:
                # Pushed to while it waits (or the approval found a head no push event told of): the old head's
                # check is closed as superseded, never as approved, and the run's phase is shown at its head.
                if known is not None:
                    await self.gh.patch(f"/repos/{repo}/check-runs/{known.github_id}",
                                        data=budget_check.superseded(sha, want))
                check_id = await self._open_budget_check(repo, state.run.id, want)
        except BadRequest as exc:
            if isinstance(exc, RateLimitExceeded) or int(exc.status_code) == 429:  # a 403 rate limit too: not refused
                raise
            log.warning("run %s: GitHub refused the budget check run (%s); the status comment says it", state.run.id,
                        exc.status_code)
            return
        await self.store.remember_posted(Posted(marker=mark, repo=repo, kind="check_run", github_id=check_id,
                                                url=want.key))

    async def _open_budget_check(self, repo: str, run_id: str, want: budget_check.Wanted) -> int:
        """The check at ``want.sha`` (waiting, or its end at a head it never waited at): this App's own one if a job
        died after GitHub made it, else a new one."""
        ext = budget_check.external_id(run_id)
        mine = await pull_review.own_check(self.gh, repo, want.sha, self.app_id, budget_check.NAME, ext)
        if mine is not None:
            await self.gh.patch(f"/repos/{repo}/check-runs/{mine['id']}", data=want.fields())
            return int(mine["id"])
        check = await self.gh.post(f"/repos/{repo}/check-runs", data={
            "name": budget_check.NAME, "head_sha": want.sha, "external_id": ext, **want.fields()})
        return int(check["id"])

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
            state.data.links[action.step] = posted.url or ""
            if wf.step(action.step).kind == "context":
                await self._comment(state, marker("context", rid), render.context_document(run, wf))
        elif isinstance(action, E.PostSkip):
            pass  # the status comment lists a skipped step and why (render.status); no comment of its own
        elif isinstance(action, E.PostVerdict):
            await self._verdict(state, wf, action)
        elif isinstance(action, E.FileTechDebt):
            await self._tech_debt(state, wf, action)
        elif isinstance(action, E.FileTasks):
            await self._tasks(state, action)
        elif isinstance(action, E.Escalate):
            n = len(run.decisions)
            mention = state.data.mention
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
                                render.approval_request(st.result or {}, head=run.head_sha if run.on_pull else None))
        elif isinstance(action, E.Finish):
            await self._finish(state, wf)
        elif isinstance(action, E.ReviewPull):
            await self._review_pull(state, action)
        elif isinstance(action, E.Reply):
            n = state.data.replies = state.data.replies + 1  # never reused, unlike "applied"
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
        if not state.data.ctx.is_pull_request or not number:
            return
        reader = RepoReader(self.gh, repo)
        pull = await pull_review.pull_at_run_head(lambda: reader.pull(number), self.store, repo, number,
                                                  state.run.head_sha)
        sha = str(pull["head"]["sha"])
        if await pull_review.posted(self.store, repo, number, sha):
            await pull_review.dismiss_stale(self.gh, repo, number, sha, self.bot_login, self.store)
            return
        kept = state.data.pr_verdicts
        if sha not in kept and await pull_review.reviewed_before(self.store, repo, number, sha):
            # Judged before, its verdict dropped since: its check run is its verdict (a new model call is a re-roll).
            await pull_review.back_unkept(self.gh, self.store, repo, number, sha, self.bot_login)
            return
        verdict = kept[sha] if sha in kept else await self._judge_pull(state, reader, pull)
        if verdict is None:
            return
        kept[sha] = verdict
        for old in list(kept)[:-5]:
            del kept[old]
        await self._save(state)
        await pull_review.post(self.gh, self.store, repo=repo, number=number, verdict=verdict,
                               bot_login=self.bot_login, app_id=self.app_id, details_url=pull.get("html_url"))
        # The run that judges this PR, so a push after it finished is still judged (see bot/run/work.py on_work_item).
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
        verdict = pull_review.decide(sha, findings, review, no_model=why,
                                     unchecked=pull_review.unchecked(pull, files, unread))
        return await pull_review.converged(self.gh, self.store, reader.repo, number, verdict, files, findings, review,
                                           unread, int(pull.get("changed_files") or 0) <= len(files))

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
        n = state.data.pull_reviews = state.data.pull_reviews + 1
        step = Step(id=PULL_REVIEW_STEP, title="PULL REQUEST REVIEW", agent=agent.name, kind="review",
                    task=f"Review the pull request's own changes at head {sha}: correctness, security (OWASP Top 10), "
                         "tests, and anything a maintainer must know before merging. Read the diff with "
                         "get_pull_files.", output="Approval or rejection of the pull request")
        request = AgentRequest(run_id=state.run.id, step_id=PULL_REVIEW_STEP, iteration=n, agent=agent, step=step,
                               task=step.task, inputs={}, feedback=None,
                               context=state.data.ctx.for_agents(sha))
        action = E.RunAgent(PULL_REVIEW_STEP, n, agent.name)
        _, outcome = await self._call_agent_request(state, action, request, kind="pull-review")
        await self._record_usage(state, action, outcome, head=sha)  # the head it judged, GitHub's at the time
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
        filed = state.data.debt
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
        filed = state.data.tasks
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
        run, ctx = state.run, state.data.ctx
        proposed = _latest_changes(run, wf)
        pull_url = pushed = None
        if proposed and run.approval:
            try:
                pull_url, pushed = await changes.deliver(
                    self.gh, self.store, run_id=run.id, ctx=ctx.as_dict(), files=proposed, workflow=wf.name,
                    title=ctx.title or wf.title, base_sha=run.approval.get("head_sha") or run.head_sha)
            except changes.BranchMoved as moved:  # never overwrite what was pushed since: make the change again
                state.run, actions = E.advance(run, E.DeliveryRefused(moved.sha), wf)
                state.outbox.extend(actions)
                return
        state.data.pull_url, state.data.pushed = pull_url, pushed
        steps = await provenance(self.store, run.id)
        await self._comment(state, marker("done", run.id),
                            render.finished(run, wf, pull_url=pull_url, pushed=pushed, debt=state.data.debt,
                                            tasks=state.data.tasks, provenance=steps))
        if run.on_pull and run.head_sha and steps:
            await self._check_provenance(ctx.repo, run.head_sha, render.provenance_table(steps, run.approval))

    async def _check_provenance(self, repo: str, sha: str, table: str) -> None:
        """The pull request's check run at the run's head carries the run's provenance as its text (GitHub shows
        it under the check's summary, where branch protection sends people). Its verdict stays as it was."""
        known = await self.store.find_posted(pull_review.check_marker(repo, sha))
        if known is None:
            return
        try:
            check = await self.gh.getitem(f"/repos/{repo}/check-runs/{known.github_id}")
            out = check.get("output") or {}
            await self.gh.patch(f"/repos/{repo}/check-runs/{known.github_id}", data={"output": {
                "title": out.get("title") or pull_review.CHECK, "summary": out.get("summary") or "",
                "text": render.clip(table, 60_000)}})
        except BadRequest as exc:  # gone, or refused: the final summary on the thread holds the same table
            log.warning("%s: provenance not added to check run %s (%s)", repo, known.github_id, exc.status_code)


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
