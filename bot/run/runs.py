"""What a job needs (:class:`Deps`), and starting and resuming a run through the executor.

The handlers (bot/run/work.py, comments.py, ci.py) decide; these make the decision a stored run and work it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.agents import AgentRuntime, Budget, ModelMap, sizing
from bot.agents.tools import OverviewCache, RepoReader
from bot.core import engine, events, triage
from bot.core.catalog import Catalog, Workflow
from bot.core.config import RepoConfig
from bot.core.estimate import Estimate
from bot.core.secrets import secrets as logged_secrets
from bot.github.client import GitHubApp
from bot.run.compare import compare
from bot.run.executor import Executor
from bot.run.repo_view import RepoView, RepoViews
from bot.run.state import RunContext, RunData, RunPosts, RunState
from bot.settings import Settings
from bot.store import RunRecord, Store
from bot.web.metrics import Metrics

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from bot.agents.calls import LazyClient

log = logging.getLogger(__name__)


@dataclass
class Deps:
    """What a job needs from the outside world."""

    settings: Settings
    store: Store
    github: GitHubApp
    catalog: Catalog
    anthropic: AsyncAnthropic | LazyClient | None = None  # LazyClient: the SDK imported off the event loop
    bot_login: str | None = None
    model_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(16))
    agent_options: dict[str, Any] = field(default_factory=dict)  # tests shorten retry waits
    metrics: Metrics | None = None  # the runtime's, shared with /metrics
    views: RepoViews | None = None  # the catalog and config each repository sees
    clock: Callable[[], float] = field(default_factory=lambda: time.time)  # the reply limits' (tests move it)
    overviews: OverviewCache | None = None  # repositories' overviews by commit, for every job (made here)

    def __post_init__(self) -> None:
        if self.views is None:
            self.views = RepoViews(self.catalog, self.store)
        if self.overviews is None:
            self.overviews = OverviewCache(max_bytes=int(self.agent_options.get("max_tool_bytes", 20_000)))

    async def view(self, gh: GitHubAPI, repo: str, branch: str) -> RepoView:
        if self.views is None:
            raise RuntimeError("Deps.views is set when Deps is made")
        return await self.views.get(gh, repo, branch)


async def executor_for(gh: GitHubAPI, deps: Deps, state: RunState, signal: engine.Signal | None = None) -> Executor:
    """The executor of a run's next signal (``signal``, when known: an ``/approve budget`` about to apply already
    counts, so the budget it lifts is not built in first)."""
    view = await deps.view(gh, state.data.ctx.repo, state.data.ctx.branch)
    cfg = view.config
    lifted = state.run.budget_approval is not None or (signal is not None and engine.approves_budget(state.run, signal))
    budget = await budget_of(deps, state, cfg, lifted=lifted)
    secrets = secret_values(deps.settings)
    agents = AgentRuntime(gh=gh, anthropic=deps.anthropic,
                          models=ModelMap(dict(deps.settings.model_overrides)).with_overrides(cfg.models),
                          budget=budget, concurrency=deps.model_slots, secrets=secrets,
                          hosts=deps.settings.allowed_link_hosts, overviews=deps.overviews,
                          **{"web_searches": deps.settings.web_search_cap, **deps.agent_options})
    return Executor(gh=gh, store=deps.store, catalog=view.catalog, agents=agents, bot_login=deps.bot_login,
                    max_comments=deps.settings.max_comments_per_run, max_issues=deps.settings.max_issues_per_run,
                    config=cfg, metrics=deps.metrics, app_id=deps.settings.app_id)


async def budget_of(deps: Deps, state: RunState, cfg: RepoConfig, *, lifted: bool, day: int | None = None) -> Budget:
    """The token ceilings a run's model calls are reserved under. The operator's limits are ceilings the
    repository's config can only lower; a maintainer's ``/approve budget`` (``lifted``) takes the repository's
    own limits away for this run, never the operator's. Every call reserves its tokens in the store, shared by
    all workers. ``day``: the installation's tokens today, read already by the caller."""
    if day is None:
        day = await deps.store.usage_on(state.record.installation_id, time.strftime("%Y-%m-%d", time.gmtime())) \
            if state.record.installation_id else 0
    return Budget.ceilings(run=deps.settings.run_token_budget, day=deps.settings.day_token_budget,
                           repo_run=None if lifted else cfg.run_tokens, repo_day=None if lifted else cfg.day_tokens,
                           run_used=state.data.usage.tokens, day_used=day, run_id=state.record.id,
                           installation_id=state.record.installation_id, repo=state.record.repo, ledger=deps.store)


def secret_values(settings: Settings) -> tuple[str, ...]:
    """What must never be posted: the App's secrets, each line of its key (a model may echo a fragment), and
    every installation token handed out lately (registered with the log redaction as they are issued)."""
    values = tuple(s for s in (settings.webhook_secret, settings.anthropic_api_key) if s)
    if settings.private_key:
        values += (settings.private_key.strip(),) + tuple(
            line for line in settings.private_key.splitlines() if len(line) >= 40)
    return values + logged_secrets()


async def start_run(gh: GitHubAPI, deps: Deps, *, run_id: str, number: int, installation_id: int,
                    decision: triage.Decision, ctx: RunContext) -> RunState:
    """Store a new run of the workflow triage chose (so a crash from here on resumes it), then start it: at once,
    or, when its estimate is more than a budget has left, in the budget state until a maintainer approves."""
    repo = ctx.repo
    view = await deps.view(gh, repo, ctx.branch)
    wf = view.catalog.workflows[decision.workflow or ""]
    run = engine.Run.new(run_id, wf, head_sha=ctx.head_sha or await _branch_head(gh, repo, ctx.default_branch),
                         on_pull=ctx.is_pull_request)
    cost = await _estimate(gh, deps, wf, view, ctx, run.head_sha)
    # The cost known before it is spent, in the status comment ("" without a model: nothing is billed).
    data = RunData(run=run, ctx=ctx, announce=triage.announce(decision, view.catalog)
                   + (f"\n\n**Cost:** {cost.sentence()}." if cost else ""),
                   decision=decision.to_json(), mention=view.config.mention_line())
    record = RunRecord(id=run_id, thread=f"{repo}#{number}", repo=repo, number=number, installation_id=installation_id,
                       workflow=wf.name, state=run.state, data=data.to_json())
    await deps.store.save_run(record)
    # What the store holds, so later saves write what changes; and a new run's markers, so what carries them is
    # known in memory (a re-run of this delivery finds the run stored and resumes it instead).
    state = RunState(record=record, data=data, posts=RunPosts())
    state.stored()
    executor = await executor_for(gh, deps, state)
    # The installation's day as the executor's budget just read it: one store read fewer per run.
    day = executor.agents.budget.day_used
    return await executor.apply(state, await _start(gh, deps, state, view, cost, day=day), run_id)


async def _estimate(gh: GitHubAPI, deps: Deps, wf: Workflow, view: RepoView, ctx: RunContext,
                    head: str | None) -> Estimate | None:
    """The run's cost, known before it is spent (None without a model: nothing is billed). From the overview the
    first step reads anyway (kept per commit), so it costs no read of its own."""
    if deps.anthropic is None:
        return None
    overview = await deps.overviews.get(RepoReader(gh, ctx.repo), head, ctx.branch) if deps.overviews else None
    return sizing.estimate(wf, view.catalog.agents, ctx.repo, overview, ctx.for_agents(head),
                           web_searches=deps.settings.web_search_cap)


async def _start(gh: GitHubAPI, deps: Deps, state: RunState, view: RepoView, cost: Estimate | None,
                 day: int | None = None) -> engine.Start:
    """The signal that starts a run, with the budget its estimate does not fit in, if any: what is left of the run's
    budget (the operator's per run, lowered by the repository's ``run_tokens``), of the installation's today and
    of the repository's own today (its ``day_tokens``), as the store's ledger holds them now (in-flight calls'
    reservations included). Only with a model configured: an offline run is not billed. ``day``: the installation's
    tokens today, when the caller has just read them."""
    if deps.anthropic is None:
        return engine.Start()
    wf = view.catalog.workflows[state.run.workflow]
    cost = cost or await _estimate(gh, deps, wf, view, state.data.ctx, state.run.head_sha)
    if cost is None:
        return engine.Start()
    need = cost.tokens.total
    spent: dict[str, int] = {}  # each ledger key read once for both budgets (store round trips: issue 16)

    async def left(budget: Budget) -> dict[str, int]:
        # The installation's day as the usage table counts it too (what the budget's own check reads).
        used = {"installation": budget.day_used}
        for cap in budget.caps():
            if cap.key not in spent:
                spent[cap.key] = await deps.store.spent(cap.key)
        return {cap.whose: max(0, cap.limit - max(spent[cap.key], used.get(cap.whose, 0))) for cap in budget.caps()}
    cfg = view.config
    strict = await budget_of(deps, state, cfg, lifted=False, day=day)
    room = await left(strict)
    operator = min((await left(await budget_of(deps, state, cfg, lifted=True, day=strict.day_used))).values())
    short = [(n, whose) for whose, n in room.items() if need > n]
    if not short:
        return engine.Start()
    n, whose = min(short, key=lambda s: (s[0], s[1] == "repository"))  # the tightest; on a tie, the operator's
    # Whose limit it is: the repository's own day budget, or a per-run budget its config set below the operator's.
    by_repo = whose == "repository" or (whose == "run" and cfg.run_tokens is not None
                                        and cfg.run_tokens < deps.settings.run_token_budget)
    return engine.Start(short={"budget": whose, "by_repo": by_repo, "estimate": need, "left": n,
                               "operator_left": operator})


async def resume(gh: GitHubAPI, deps: Deps, record: RunRecord, signal: engine.Signal, delivery_id: str) -> RunState:
    """Apply a signal to a stored run (in any stored format: see bot/run/state.py) and work its outbox."""
    state = RunState.open(record)
    executor = await executor_for(gh, deps, state, signal)
    if engine.approves_budget(state.run, signal) and delivery_id not in state.data.applied:
        # Its answer quotes the estimate and what each budget has left now, not when the wait began (other runs
        # spent meanwhile). The installation's day as the executor's budget just read it: one store read fewer.
        view = await deps.view(gh, state.data.ctx.repo, state.data.ctx.branch)
        now = await _start(gh, deps, state, view, None, day=executor.agents.budget.day_used)
        state.run.budget = now.short
    if isinstance(signal, engine.Start) and delivery_id not in state.data.applied:
        # A run stored by a job that died before starting it: its budget is checked as start_run would have.
        view = await deps.view(gh, state.data.ctx.repo, state.data.ctx.branch)
        signal = await _start(gh, deps, state, view, None)
    return await executor.apply(state, signal, delivery_id)


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
    if not events.branch_name(branch or "main"):  # a name GitHub would not have made: read as no branch
        return None
    ref = await _read(gh, f"/repos/{repo}/git/ref/heads/{quote(branch or 'main', safe='/')}", absent=(404, 409))
    return str(((ref or {}).get("object") or {}).get("sha") or "") or None


async def changed_since(gh: GitHubAPI, repo: str, old: str | None, new: str) -> tuple[str, ...] | None:
    """The files the commits from ``old`` to ``new`` change; None when GitHub cannot say (no old head, a
    force-push that dropped it, GitHub failing, or as many files as a comparison lists), which counts as "maybe
    all"."""
    if not old:
        return None
    found = await compare(gh, repo, old, new)
    if found is None or not found.forward or found.files is None:
        return None
    return tuple(sorted(found.files))
