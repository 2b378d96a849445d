"""One job, end to end: the stored delivery → a typed event → triage, commands or CI → the engine.

Each handler first decides (pure: triage, command parsing, the engine) and then acts through the
executor. Errors a person should read become comments; the rest are log lines for operators.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.agents import AgentRuntime, Budget, ModelMap
from bot.core import commands, config, engine, events, render, triage
from bot.core.catalog import Catalog
from bot.core.markers import marker, trailing
from bot.core.secrets import secrets as logged_secrets
from bot.github.changes import made_by_run
from bot.github.client import GitHubApp
from bot.github.contents import Unreadable
from bot.github.writes import create_issue_once, digest, upsert_comment
from bot.run import pull_review, replies
from bot.run.executor import Executor, RunState
from bot.run.repo_view import RepoView, RepoViews, read_config_at
from bot.settings import Settings
from bot.store import Job, JobInfo, Posted, RunRecord, Store
from bot.web.metrics import Metrics

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

log = logging.getLogger(__name__)

WRITE_ROLES = frozenset({"admin", "maintain", "write"})


@dataclass
class Deps:
    """What a job needs from the outside world."""

    settings: Settings
    store: Store
    github: GitHubApp
    catalog: Catalog
    anthropic: AsyncAnthropic | None = None
    bot_login: str | None = None
    model_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(16))
    agent_options: dict[str, Any] = field(default_factory=dict)  # tests shorten retry waits
    metrics: Metrics | None = None  # the runtime's, shared with /metrics
    views: RepoViews | None = None  # the catalog and config each repository sees
    clock: Callable[[], float] = field(default_factory=lambda: time.time)  # the reply limits' (tests move it)

    def __post_init__(self) -> None:
        if self.views is None:
            self.views = RepoViews(self.catalog, self.store)

    async def view(self, gh: GitHubAPI, repo: str, branch: str) -> RepoView:
        if self.views is None:
            raise RuntimeError("Deps.views is set when Deps is made")
        return await self.views.get(gh, repo, branch)


async def process(job: Job, deps: Deps) -> None:
    event = events.parse(job.event, job.payload, job.delivery_id)
    if isinstance(event, (events.Ignored, events.Malformed)):
        log.info("job %s: %s", job.id, event.reason)  # the server filtered these; payload kept for audit
        return
    if events.is_self_or_foreign_bot(event, deps.bot_login, deps.settings.bot_allowlist) and not _own_task(event, deps):
        log.info("job %s: %s by a bot account, not acted on", job.id, event.event)
        return
    if isinstance(event, events.Installation):
        log.info("installation %s %s", event.installation_id, event.action)
        return
    gh = await deps.github.installation(event.installation_id)
    if isinstance(event, events.WorkItem):
        await on_work_item(event, gh, deps)
    elif isinstance(event, events.Comment):
        await on_comment(event, gh, deps)
    elif isinstance(event, events.CiFailure):
        await on_ci_failure(event, gh, deps)


def _own_task(event: events.Event, deps: Deps) -> bool:
    """An issue the bot itself opened for a long-running project's task: that one it does work on."""
    return (isinstance(event, events.WorkItem) and event.action == "opened" and not event.is_pull_request
            and event.sender.login == deps.bot_login and (trailing(event.body) or "").startswith("task:"))


# ---- runs ----------------------------------------------------------------------------------

async def executor_for(gh: GitHubAPI, deps: Deps, state: RunState) -> Executor:
    ctx = state.data["ctx"]
    view = await deps.view(gh, ctx["repo"], ctx.get("default_branch") or "main")
    cfg = view.config
    used = int(sum(int((state.data.get("usage") or {}).get(k, 0)) for k in (
        "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")))
    day = 0
    if state.record.installation_id:
        day = await deps.store.usage_on(state.record.installation_id, time.strftime("%Y-%m-%d", time.gmtime()))
    # The operator's limits are ceilings; every call reserves its tokens in the store, shared by all workers.
    budget = Budget.ceilings(run=deps.settings.run_token_budget, day=deps.settings.day_token_budget,
                             repo_run=cfg.run_tokens, repo_day=cfg.day_tokens, run_used=used, day_used=day,
                             run_id=state.record.id, installation_id=state.record.installation_id,
                             repo=state.record.repo, ledger=deps.store)
    secrets = secret_values(deps.settings)
    agents = AgentRuntime(gh=gh, anthropic=deps.anthropic,
                          models=ModelMap(dict(deps.settings.model_overrides)).with_overrides(cfg.models),
                          budget=budget, concurrency=deps.model_slots, secrets=secrets,
                          hosts=deps.settings.allowed_link_hosts, **deps.agent_options)
    return Executor(gh=gh, store=deps.store, catalog=view.catalog, agents=agents, bot_login=deps.bot_login,
                    max_comments=deps.settings.max_comments_per_run, max_issues=deps.settings.max_issues_per_run,
                    config=cfg, metrics=deps.metrics, app_id=deps.settings.app_id)


def secret_values(settings: Settings) -> tuple[str, ...]:
    """What must never be posted: the App's secrets, each line of its key (a model may echo a fragment), and
    every installation token handed out lately (registered with the log redaction as they are issued)."""
    values = tuple(s for s in (settings.webhook_secret, settings.anthropic_api_key) if s)
    if settings.private_key:
        values += (settings.private_key.strip(),) + tuple(
            line for line in settings.private_key.splitlines() if len(line) >= 40)
    return values + logged_secrets()


def open_state(record: RunRecord) -> RunState:
    return RunState(record=record, run=engine.Run.from_dict(record.data["run"]), data=dict(record.data))


async def start_run(gh: GitHubAPI, deps: Deps, *, run_id: str, repo: str, number: int, installation_id: int,
                    decision: triage.Decision, ctx: dict[str, Any]) -> RunState:
    view = await deps.view(gh, repo, ctx.get("default_branch") or "main")
    wf = view.catalog.workflows[decision.workflow or ""]
    run = engine.Run.new(run_id, wf, head_sha=ctx.get("head_sha") or await _branch_head(gh, repo, ctx.get("default_branch")),
                         on_pull=bool(ctx.get("is_pull_request")))
    data = {"run": run.to_dict(), "ctx": ctx, "announce": triage.announce(decision, view.catalog),
            "decision": decision.to_json(), "outbox": [], "mention": view.config.mention_line()}
    record = RunRecord(id=run_id, thread=f"{repo}#{number}", repo=repo, number=number, installation_id=installation_id,
                       workflow=wf.name, state=run.state, data=data)
    await deps.store.save_run(record)
    state = open_state(record)
    executor = await executor_for(gh, deps, state)
    return await executor.apply(state, engine.Start(), run_id)


async def resume(gh: GitHubAPI, deps: Deps, record: RunRecord, signal: engine.Signal, delivery_id: str) -> RunState:
    state = open_state(record)
    executor = await executor_for(gh, deps, state)
    return await executor.apply(state, signal, delivery_id)


# ---- issues and pull requests --------------------------------------------------------------

async def _read(gh: GitHubAPI, url: str, *, absent: tuple[int, ...]) -> Any:
    """GET ``url``; None when GitHub answers one of the ``absent`` statuses (what there is not to read)."""
    try:
        return await gh.getitem(url)
    except BadRequest as exc:
        if exc.status_code in absent:
            return None
        raise


async def _branch_head(gh: GitHubAPI, repo: str, branch: str | None) -> str | None:
    """The commit a run on an issue reads and builds on: the default branch's head when it starts. None for an
    empty repository (no branch yet): then there is nothing to pin."""
    ref = await _read(gh, f"/repos/{repo}/git/ref/heads/{quote(branch or 'main', safe='/')}", absent=(404, 409))
    return str(((ref or {}).get("object") or {}).get("sha") or "") or None


async def changed_since(gh: GitHubAPI, repo: str, old: str | None, new: str) -> tuple[str, ...] | None:
    """The files the commits from ``old`` to ``new`` change; None when GitHub cannot say (no old head, a
    force-push that dropped it, or more files than a comparison lists), which counts as "maybe all"."""
    if not old:
        return None
    found = await _read(gh, f"/repos/{repo}/compare/{old}...{new}?per_page=100", absent=(404, 422)) or {}
    files = found.get("files")
    if found.get("status") not in ("ahead", "identical") or not isinstance(files, list) or len(files) >= 300:
        return None
    paths = {str(f.get("filename")) for f in files if isinstance(f, dict)}
    paths |= {str(f["previous_filename"]) for f in files if isinstance(f, dict) and f.get("previous_filename")}
    return tuple(sorted(paths))


async def _on_push(gh: GitHubAPI, deps: Deps, item: events.WorkItem, active: RunRecord | None) -> None:
    """New commits: the run learns the head as GitHub has it now (deliveries arrive out of order, and a
    redelivered old push must not move it back), with the files they change."""
    run = active or await _judged_by(deps, item)
    if run is None:
        log.info("%s: push with no workflow running and no earlier verdict; nothing to judge", item.thread)
        return
    head = str((await gh.getitem(f"/repos/{item.repo}/pulls/{item.number}"))["head"]["sha"])
    old = (run.data.get("run") or {}).get("head_sha")
    if head == old:
        log.info("%s: push event for %s, but the head is still %s; nothing new", item.thread,
                 (item.head_sha or "")[:7], head[:7])
        return
    own = head == item.head_sha and await _own_push(gh, deps, item, run.id)
    paths = None if own or active is None else await changed_since(gh, item.repo, old, head)
    await resume(gh, deps, run, engine.HeadMoved(head, paths, own), item.delivery_id)


async def _judged_by(deps: Deps, item: events.WorkItem) -> RunRecord | None:
    """The finished run that judged this pull request before: its check must follow the PR's head."""
    known = await deps.store.find_posted(pull_review.judged_marker(item.repo, item.number))
    return await deps.store.load_run(known.url) if known is not None and known.url else None


async def _own_push(gh: GitHubAPI, deps: Deps, item: events.WorkItem, run_id: str) -> bool:
    """The head is this run's own delivered fix: pushed by this App and carrying the run's trailer (a trailer
    anyone can type; the pusher being the App is what makes it ours)."""
    if not deps.bot_login or item.sender.login.lower() != deps.bot_login.lower() or not item.head_sha:
        return False
    commit = await gh.getitem(f"/repos/{item.repo}/git/commits/{item.head_sha}")
    return made_by_run(str(commit.get("message") or ""), run_id)

async def _pull_paths(gh: GitHubAPI, repo: str, number: int) -> list[str]:
    return [f["filename"] async for f in gh.getiter(f"/repos/{repo}/pulls/{number}/files?per_page=100")][:300]


def _ctx(item: events.WorkItem, default_branch: str | None) -> dict[str, Any]:
    return {"repo": item.repo, "number": item.number, "is_pull_request": item.is_pull_request, "head_sha": item.head_sha,
            "head_ref": item.head_ref, "head_repo": item.head_repo, "from_fork": item.from_fork, "base_sha": item.base_sha,
            "default_branch": default_branch, "title": item.title, "body": item.body, "ci": None}


async def _report_config(gh: GitHubAPI, deps: Deps, repo: str, view: RepoView) -> None:
    """What the bot could not read or use on the default branch, said once per distinct set of problems."""
    if not view.errors:
        return
    title, body = render.config_problems(view.errors, view.fallback)
    await create_issue_once(gh, deps.store, repo=repo, mark=marker("config-error", view.config_digest),
                            title=title, body=body, labels=[], bot_login=deps.bot_login)


async def _check_config_change(gh: GitHubAPI, deps: Deps, item: events.WorkItem, paths: list[str],
                               view: RepoView) -> None:
    """A PR that changes .github/triage-lead.yml gets a check run saying whether the new file is valid."""
    if config.PATH not in paths or not item.head_sha:
        return
    found = await read_config_at(gh, item.repo, item.head_sha)
    if isinstance(found, Unreadable):
        errors = [f"{config.PATH} could not be read: {found.reason}"]
    else:
        _, errors = config.parse(found.text if found else "", known_workflows=set(deps.catalog.workflows))
    mark = marker("config-check", item.repo, item.head_sha)
    if await deps.store.find_posted(mark) is not None:
        return
    check = await gh.post(f"/repos/{item.repo}/check-runs", data={
        "name": "triage-lead / config", "head_sha": item.head_sha, "status": "completed",
        "conclusion": "failure" if errors else "success",
        "output": {"title": f"{len(errors)} problem(s) in {config.PATH}" if errors else f"{config.PATH} is valid",
                   "summary": render.clip("\n".join(f"- {render.code_span(e)}" for e in errors), 60_000)
                   or "The configuration is valid."}})
    await deps.store.remember_posted(Posted(marker=mark, repo=item.repo, kind="check_run", github_id=check["id"]))


async def on_work_item(item: events.WorkItem, gh: GitHubAPI, deps: Deps) -> None:
    own = await deps.store.load_run(item.delivery_id)
    if own is not None:  # this delivery started a run before the process died: carry on with it
        await resume(gh, deps, own, engine.Start(), item.delivery_id)
        return
    repo_info = await gh.getitem(f"/repos/{item.repo}")
    view = await deps.view(gh, item.repo, repo_info.get("default_branch") or "main")
    await _report_config(gh, deps, item.repo, view)
    paths = await _pull_paths(gh, item.repo, item.number) if item.is_pull_request else []
    if item.is_pull_request and item.action in ("opened", "synchronize"):
        await _check_config_change(gh, deps, item, paths, view)
    active = await deps.store.active_run(item.thread)
    if item.action == "synchronize":
        await _on_push(gh, deps, item, active)
        return
    if active is not None:
        log.info("%s already has run %s (%s); %s.%s not started",
                 item.thread, active.id, active.state, item.event, item.action)
        return
    label_map = {k.lower(): v for k, v in (view.catalog.triage.get("labels") or {}).items()}
    if item.action == "labeled" and (item.added_label or "").lower() not in label_map:
        log.info("%s: label %r maps to no workflow", item.thread, item.added_label)
        return
    decision = triage.decide(item, view.catalog, paths=paths, enabled=view.config.workflows)
    if _own_task(item, deps) and decision.workflow == "long-running-project":
        decision = triage.Decision(None, "a project's task cannot itself be a multi-session project", 0.0, ())
    if decision.workflow is None:
        if item.action in ("opened", "reopened", "ready_for_review") and not view.config.dry_run:
            mark = marker("ask-label", item.thread)
            if await deps.store.find_posted(mark) is not None:  # asked once: reopening again and again costs nothing
                log.info("%s: a label was asked for already; not asking again on %s", item.thread, item.action)
                return
            await upsert_comment(gh, deps.store, repo=item.repo, number=item.number, mark=mark,
                                 body=render.ask_for_label(decision.reason, view.catalog.triage.get("labels") or {}),
                                 bot_login=deps.bot_login)
        return
    await start_run(gh, deps, run_id=item.delivery_id, repo=item.repo, number=item.number,
                    installation_id=item.installation_id, decision=decision,
                    ctx=_ctx(item, repo_info.get("default_branch")))


# ---- commands ------------------------------------------------------------------------------

async def role_of(gh: GitHubAPI, repo: str, login: str) -> str:
    """The collaborator's role, asked of GitHub when the command runs (never author_association)."""
    try:
        data = await gh.getitem(f"/repos/{repo}/collaborators/{login}/permission")
    except BadRequest as exc:
        if exc.status_code in (403, 404):
            return "none"
        raise
    return str(data.get("role_name") or data.get("permission") or "none")


async def _requeue_failed(deps: Deps, thread: str) -> bool:
    """``/retry`` first re-runs the thread's failed jobs (oldest first; they run after this one, in order).

    A command's job only once its command was applied to the run (what is left is the run's own outbox, such
    as delivering the approved change): re-run before that, someone's old `/approve` would approve whatever
    the head is by then. Such a command is run again by commenting it again; its failure note says so. Old
    failures of earlier runs stay as they are: `/retry` is about the work at hand."""
    active = await deps.store.active_run(thread)
    applied = tuple(active.data.get("applied") or ()) if active is not None else ()
    # Only this run's: the jobs since the one that started it. With no run, the newest failure alone.
    started = [r["id"] for r in await deps.store.jobs_for(active.id)] if active is not None else []

    def safe(info: JobInfo) -> bool:
        return info.job.event != "issue_comment" or any(a.startswith(f"{info.job.delivery_id}:") for a in applied)

    failed = sorted((i for i in await deps.store.failed_jobs(thread, limit=10) if safe(i)), key=lambda i: i.job.id)
    failed = [i for i in failed if i.job.id >= started[0]] if started else failed[-1:]
    return any([await deps.store.requeue_failed(info.job.id) for info in failed])


async def on_comment(c: events.Comment, gh: GitHubAPI, deps: Deps) -> None:
    previous = c.previous_body if c.action == "edited" else None
    if commands.request(c.body, previous).command is None:
        log.info("%s: comment %s holds no new command", c.thread, c.comment_id)
        return
    # Re-read the comment: act only on commands still there, so an edit after the event cannot swap them.
    try:
        fresh = await gh.getitem(f"/repos/{c.repo}/issues/comments/{c.comment_id}")
    except BadRequest as exc:
        if exc.status_code == 404:
            return  # deleted since
        raise
    # A body GitHub left out (it is optional in the description) says nothing of an edit: keep the event's.
    req = commands.request(c.body, previous, fresh["body"] if isinstance(fresh.get("body"), str) else c.body)
    if req.command is None:
        log.info("%s: the command of comment %s was edited away before it ran", c.thread, c.comment_id)
        return
    if req.ignored:
        log.info("%s: comment %s: acting on %s only, %d other command lines ignored", c.thread, c.comment_id,
                 req.command.line[:40], len(req.ignored))
    answer = await _command(c, req.command, gh, deps)
    if req.ignored:  # named in the same one reply (or, for a command whose effect is its answer, alone)
        answer = "\n\n".join(filter(None, [answer, render.ignored_commands(req.command.line, req.ignored_lines())]))
    if answer:
        cmd = req.command
        await replies.post_reply(gh, deps.store, deps.settings, c, body=render.clip(answer), command=cmd.line,
                                 mark=marker("reply", c.comment_id, digest(f"{c.comment_id}:{cmd.name}:{cmd.arg}")),
                                 now=deps.clock(), bot_login=deps.bot_login)


async def _command(c: events.Comment, cmd: commands.Parsed, gh: GitHubAPI, deps: Deps) -> str | None:
    """Act on a comment's one command; the reply to post (None when the command's effect is its answer)."""
    if not cmd.known:  # a near miss of ours (commands.request keeps no other unknown word)
        return render.unknown_command(cmd.name, cmd.guess or "help")
    if cmd.name == "help":
        return render.help_text()
    active = await deps.store.active_run(f"{c.repo}#{c.number}")
    if cmd.name == "status":
        return _status(active, deps)
    # Whoever made this delivery commands: on an edit that is the editor (GitHub lets an App or an admin edit
    # anyone's comment), never the comment's author.
    actor = c.sender.login
    role = await role_of(gh, c.repo, actor)
    if not commands.may_run(cmd.name, role):
        return render.refusal(actor, cmd.name, role)
    acted = marker("acted", c.repo, c.comment_id, digest(cmd.name, cmd.arg))
    if await deps.store.find_posted(acted) is not None:
        log.info("%s: /%s of comment %s was acted on already; an edit does not run it twice", c.thread, cmd.name,
                 c.comment_id)
        return None
    if cmd.name == "retry" and await _requeue_failed(deps, c.thread):
        await replies.react(gh, deps.store, deps.settings, c, now=deps.clock())
        await deps.store.remember_posted(Posted(marker=acted, repo=c.repo, kind="seen", github_id=0))
        return "The work that failed on this thread is queued again."
    if active is None:
        return f"No triage-lead workflow is running on this thread, so `/{cmd.name}` has nothing to act on."
    head, moved = None, None
    if c.is_pull_request:
        pull = await gh.getitem(f"/repos/{c.repo}/pulls/{c.number}")
        head = str(pull["head"]["sha"])  # the head now, not the one a lost push event would have told us
        if cmd.name == "approve" and await _author_may_not_approve(gh, deps, c, actor, pull):
            return (f"@{actor} opened this pull request, and this repository's configuration "
                    "(`approval: {not_author: true}`) asks someone else to approve the bot's change to it.")
        old = (active.data.get("run") or {}).get("head_sha")
        if old and head != old:
            moved = await changed_since(gh, c.repo, old, head)
    signal = engine.Command(cmd.name, actor, option=cmd.option, reason=cmd.arg if cmd.name == "escalate" else "",
                            head_sha=head, moved=moved)
    delivery = f"{c.delivery_id}:{cmd.name}:{cmd.arg}"
    unchanged = await _changes_nothing(gh, deps, active, signal, delivery)
    if unchanged is None:
        await replies.react(gh, deps.store, deps.settings, c, now=deps.clock())
        await resume(gh, deps, active, signal, delivery)
    await deps.store.remember_posted(Posted(marker=acted, repo=c.repo, kind="seen", github_id=0))
    return unchanged


def _status(active: RunRecord | None, deps: Deps) -> str:
    if active is None:
        return "No triage-lead workflow is running on this thread."
    state = open_state(active)
    wf = deps.catalog.workflows[state.run.workflow]
    body = render.status(state.run, wf, announce=state.data.get("announce", ""),
                         usage=state.data.get("usage", {}), links=state.data.get("links", {}))
    if any(step.kind == "context" for step in wf.steps):  # a project: the handoff travels with /status
        body += "\n\n" + render.context_document(state.run, wf)
    return body


async def _changes_nothing(gh: GitHubAPI, deps: Deps, record: RunRecord, signal: engine.Command,
                           delivery: str) -> str | None:
    """What the engine answers a command that changes nothing (``/retry`` with nothing failed, ``/approve`` with
    nothing waiting): that answer is a reply like any other, under the reply limits, and the run is left as it
    is. None when the command changes the run (or was applied already, and its outbox is still to be worked):
    then it goes through the executor."""
    state = open_state(record)
    if delivery in (state.data.get("applied") or ()):
        return None
    ctx = state.data["ctx"]
    view = await deps.view(gh, ctx["repo"], ctx.get("default_branch") or "main")
    after, actions = engine.advance(state.run, signal, view.catalog.workflows[state.run.workflow])
    if not actions or not all(isinstance(a, engine.Reply) for a in actions) or after.to_dict() != state.run.to_dict():
        return None
    return "\n\n".join(a.text for a in actions if isinstance(a, engine.Reply))


async def _author_may_not_approve(gh: GitHubAPI, deps: Deps, c: events.Comment, actor: str,
                                  pull: dict[str, Any]) -> bool:
    """Separation of duties, when the repository asks for it: a PR's author does not approve the bot's change."""
    view = await deps.view(gh, c.repo, str((pull.get("base") or {}).get("repo", {}).get("default_branch") or "main"))
    author = str((pull.get("user") or {}).get("login") or "")
    return view.config.approval_not_author and author.lower() == actor.lower()


# ---- CI failures ---------------------------------------------------------------------------

_NOISE = [(re.compile(r"\b[0-9a-f]{7,40}\b"), "<sha>"), (re.compile(r"\d+(\.\d+)?"), "<n>"),
          (re.compile(r"/tmp/\S+|/home/\S+"), "<path>"), (re.compile(r"\s+"), " ")]


def normalise(line: str) -> str:
    """The first error with run-specific noise (numbers, shas, temp paths) removed: the failure's signature."""
    out = line.strip().lower()
    for pattern, repl in _NOISE:
        out = pattern.sub(repl, out)
    return out[:200]


async def _first_error(f: events.CiFailure, gh: GitHubAPI) -> tuple[str, str]:
    """(the failing job's name, its first error). A GitHub Actions failure arrives as a check run per job,
    a check suite and a workflow run: all are read from the failing job's log, so they share a signature."""
    from bot.agents.logs import failures

    name, text = f.name, f.summary
    if f.source == "check_run" and f.app_slug == "github-actions":
        try:
            text = str(await gh.getitem(f"/repos/{f.repo}/actions/jobs/{f.ci_id}/logs"))  # job id = check run id
        except BadRequest as exc:  # logs expire (90 days by default) or are not readable: use the output
            if exc.status_code not in (404, 410):
                raise
            text = ""
    if f.source == "check_run" and not text.strip():
        run = await gh.getitem(f"/repos/{f.repo}/check-runs/{f.ci_id}")
        out = run.get("output") or {}
        text = "\n".join(str(out.get(k) or "") for k in ("title", "summary", "text"))
    elif f.source == "workflow_run":
        jobs = await gh.getitem(f"/repos/{f.repo}/actions/runs/{f.ci_id}/jobs")
        failed = [j for j in jobs.get("jobs", []) if j.get("conclusion") in events.CI_FAILED]
        if failed:
            name = str(failed[0].get("name") or name)
            text = str(await gh.getitem(f"/repos/{f.repo}/actions/jobs/{failed[0]['id']}/logs"))
    found = failures(text or "")
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return name, (found.errors or found.tests or lines or [f"{f.conclusion}"])[0]


async def on_ci_failure(f: events.CiFailure, gh: GitHubAPI, deps: Deps) -> None:
    own = await deps.store.load_run(f.delivery_id)
    if own is not None:  # this delivery's run was started before the process died
        await resume(gh, deps, own, engine.Start(), f.delivery_id)
        return
    repo_info = await gh.getitem(f"/repos/{f.repo}")
    default = repo_info.get("default_branch") or f.default_branch or "main"
    view = await deps.view(gh, f.repo, default)
    decision = triage.decide(f, view.catalog, enabled=view.config.workflows)
    if decision.workflow is None:
        log.info("CI failure %s not investigated: %s", f.name, decision.reason)
        return
    ci = {"source": f.source, "id": f.ci_id, "name": f.name, "head_sha": f.head_sha, "summary": f.summary}
    if f.pull_numbers:
        number = f.pull_numbers[0]
        if await deps.store.active_run(f"{f.repo}#{number}"):
            log.info("%s#%s already has an active run; CI failure %s noted in it only by the check", f.repo, number, f.name)
            return
        pr = await gh.getitem(f"/repos/{f.repo}/pulls/{number}")
        head_repo = (pr["head"].get("repo") or {}).get("full_name")
        ctx = {"repo": f.repo, "number": number, "is_pull_request": True, "head_sha": pr["head"]["sha"],
               "head_ref": pr["head"]["ref"], "head_repo": head_repo, "from_fork": head_repo != f.repo,
               "base_sha": (pr.get("base") or {}).get("sha"),
               "default_branch": default, "title": pr.get("title", ""), "body": pr.get("body") or "", "ci": ci}
        await start_run(gh, deps, run_id=f.delivery_id, repo=f.repo, number=number,
                        installation_id=f.installation_id, decision=decision, ctx=ctx)
        return
    if f.head_branch != default:
        log.info("CI failure %s on branch %s without a pull request: not investigated", f.name, f.head_branch)
        return
    job, first = await _first_error(f, gh)
    signature = f"{job}: {normalise(first)}"
    title, body = render.ci_failure_issue(job, signature, first, f.head_sha, f.details_url)
    issue, created = await create_issue_once(gh, deps.store, repo=f.repo, mark=marker("ci", digest(f.repo, signature)),
                                             title=title, body=body, labels=["ci-failure"], bot_login=deps.bot_login)
    seen = marker("ci-seen", digest(f.repo, signature, f.head_sha))  # this failure at this commit
    opened_by = marker("ci-opened-by", f.delivery_id)
    if created:
        await deps.store.remember_posted(Posted(marker=opened_by, repo=f.repo, kind="seen", github_id=0))
    elif await deps.store.find_posted(opened_by) is not None:
        created = True  # this delivery opened the issue, then failed before its run started: start it now
    if not created:
        if await deps.store.find_posted(seen) is None:  # not the same failure reported by another event source
            await upsert_comment(gh, deps.store, repo=f.repo, number=int(issue.number or 0), bot_login=deps.bot_login,
                                 mark=marker("ci-repeat", digest(signature, f.head_sha)),
                                 body=render.ci_repeat(job, f.head_sha, f.details_url))
            await deps.store.remember_posted(Posted(marker=seen, repo=f.repo, kind="seen", github_id=0))
        return
    await deps.store.remember_posted(Posted(marker=seen, repo=f.repo, kind="seen", github_id=0))
    ctx = {"repo": f.repo, "number": issue.number, "is_pull_request": False, "head_sha": f.head_sha, "head_ref": None,
           "head_repo": None, "default_branch": default, "title": title, "body": body, "ci": ci}
    await start_run(gh, deps, run_id=f.delivery_id, repo=f.repo, number=int(issue.number or 0),
                    installation_id=f.installation_id, decision=decision, ctx=ctx)
