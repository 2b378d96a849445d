"""A run's cost estimate as the bot can make it before the run starts (issue 17, point 3): the prompt's parts
sized by the builders the agents' calls use (tools, system prompt, the repository overview at the run's commit,
the issue's context block, each step kind's result schema), the files the issue names sized from the tree, the
agents' tiers and the prices; ``bot/core/estimate.py`` does the rest, pure. benchmarks/cost.py compares it with
what runs really cost."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from typing import Any

from bot.agents import models, prompts
from bot.agents.request import RepoContext, RepoOverview
from bot.agents.runner import WEB_SEARCH_AGENTS, _result_schema
from bot.agents.schemas import KINDS
from bot.agents.tools import DEFINITIONS
from bot.core import estimate as E
from bot.core.workflow import Agent, Workflow


def _sent(value: Any) -> int:
    """The length of the JSON text a block is sent as."""
    return len(json.dumps(value, ensure_ascii=False))


@functools.cache
def _fixed() -> tuple[int, dict[str, int]]:
    """The parts no run changes, sized once a process: the tools and system prompt, and each step kind's result
    schema as the runner sends it (its cached schema, without flags)."""
    tools = [{"name": n, "description": d, "input_schema": schema} for n, (d, schema) in DEFINITIONS.items()]
    return (_sent(tools) + _sent(prompts.system_blocks()),
            {k: _sent(prompts.schema_text(_result_schema(k, ()))) for k in KINDS})


def sizes(repo: str, overview: RepoOverview | None, ctx: RepoContext) -> E.Sizes:
    """What the run's prompts will hold, in characters, before any of them is sent."""
    fixed, schemas = _fixed()
    paths = overview.paths if overview is not None else ()
    named = E.named_files(f"{ctx.title}\n{ctx.body}", paths)
    by_path = dict(zip(paths, overview.sizes, strict=False)) if overview is not None else {}
    return E.Sizes(fixed=fixed,
                   overview=_sent(prompts.overview_text(repo, overview)) if overview is not None else 0,
                   context=_sent(prompts.context_text(ctx)), file=E.read_chars(by_path, named),
                   files_named=len(named), schemas=dict(schemas))


def estimate(wf: Workflow, agents: Mapping[str, Agent], repo: str, overview: RepoOverview | None,
             ctx: RepoContext, *, web_searches: int = 0) -> E.Estimate:
    """``web_searches``: the run's cap on web searches (0: off); a workflow with a step of an agent that may
    search is taken to make them all, as the budgets reserve them (bot/agents/runner.py)."""
    est = E.estimate(wf, agents, sizes(repo, overview, ctx),
                     E.Pricing(models.DEFAULT_PRICES, models.CACHE_WRITE_FACTOR, models.CACHE_READ_FACTOR))
    tiers = [agents[s.agent].model for s in wf.steps if s.agent in WEB_SEARCH_AGENTS and s.agent in agents]
    if web_searches <= 0 or not tiers:
        return est
    price = models.DEFAULT_PRICES.get(tiers[0], models.DEFAULT_PRICES["sonnet"]).input
    counted = web_searches * (models.ModelMap({}).search_tokens(tiers[0]) + models.SEARCH_RESULT_TOKENS)
    usd = web_searches * (models.WEB_SEARCH_USD + models.SEARCH_RESULT_TOKENS * price / 1_000_000)
    return dataclasses.replace(est, tokens=est.tokens + E.Tokens(input=counted), cost_usd=round(est.cost_usd + usd, 6),
                               assumptions=(*est.assumptions, f"{web_searches} web searches, each with about "
                                            f"{models.SEARCH_RESULT_TOKENS:,} tokens of results"))
