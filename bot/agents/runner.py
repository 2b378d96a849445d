"""The agent runtime: one step of one run, through a tool-use loop on the Messages API or offline.

``AgentRuntime.run`` reads the issue or PR text by number, once per job (the text stored with the run is the
webhook's copy, which a later edit makes stale), runs the model with the agent's read-only tools until it answers
with a result that validates against the step kind's schema, lets the deterministic gate overrule any review, and
cleans every string before the result leaves. It never raises for a model or GitHub failure: the
outcome carries a sentence for people and an ``error_kind`` for the engine.

When the operator turns web search on (``web_searches``: the run's cap), search-specialist's calls also offer the
API's server-side web search: the same tool from turn to turn until a turn searches, so that the step's prompt cache
holds, and never more searches than the run has left (the API enforces ``max_uses``, so the cap is hard; see
bot/agents/web_turns.py); the pages its answers cite are listed under its result (``with_sources``),
where the renderer's link allow-list decides which links stay live.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import gidgethub
import gidgethub.abc

from bot.agents import gate, offline, prompts
from bot.agents.calls import ApiFailure, LazyClient, ModelCaller, encode, input_estimate
from bot.agents.models import SEARCH_RESULT_TOKENS, Budget, BudgetExceeded, ModelMap, Usage
from bot.agents.request import AgentOutcome, AgentRequest
from bot.agents.schemas import KINDS, result_schema, validation_error
from bot.agents.tools import OverviewCache, RepoReader, Tools
from bot.agents.web_turns import WebSearchTurns, billed, with_notes
from bot.core.defuse import code_span
from bot.core.sanitize import clean_for_github, clean_result
from bot.core.workflow import Agent

if TYPE_CHECKING:  # the SDK takes a second or more to import: loaded by the first model call (``LazyClient``)
    import anthropic

log = logging.getLogger(__name__)
_JSON_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)
LAST_TURN_NOTE = "You have used your tool turns. Answer now with only the JSON result."
# The agents that may search the web when the operator turns it on (TRIAGE_LEAD_WEB_SEARCH): the researcher only.
WEB_SEARCH_AGENTS = frozenset({"search-specialist"})
MAX_SOURCES = 10  # cited pages listed under a result
SOURCE_TITLE_CHARS = 200
_URL = re.compile(r"https?://[^\s<>/\\\[\]]+(?:/[^\s<>]*)?")  # no IPv6 literal: urlsplit could refuse it
_BRACKETS = re.compile(r"[\[\]\\<>]")
GITHUB_ERRORS = (gidgethub.HTTPException, aiohttp.ClientError, asyncio.TimeoutError)


def _describe(e: BaseException) -> str:
    if isinstance(e, gidgethub.HTTPException):
        return f"HTTP {int(e.status_code)}"
    return f"unreachable: {type(e).__name__}"


def parse_result(text: str, schema: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(result, None) when `text` is JSON valid against `schema`, else (None, what is wrong)."""
    if not text.strip():
        return None, "the answer had no text; the JSON result is required"
    m = _JSON_FENCE.match(text)
    try:
        value = json.loads(m[1] if m else text)
    except json.JSONDecodeError as e:
        return None, f"the answer is not JSON ({e.msg} at character {e.pos})"
    except ValueError as e:  # not a syntax error: e.g. an integer too long to convert
        return None, f"the answer is not JSON ({e})"
    except RecursionError:  # nested deeper than json's reader goes (~1000 levels): unreadable like any other
        return None, "the answer is not JSON (nested too deeply to read)"
    problem = validation_error(value, schema)
    return (value, None) if problem is None else (None, problem)


def _with_moving_breakpoint(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`messages` with a cache breakpoint on the newest block, so the next turn reads this whole
    conversation from the cache (the stored history keeps only the fixed breakpoints)."""
    last = messages[-1]
    content = [dict(b) for b in last["content"]]
    content[-1]["cache_control"] = prompts.EPHEMERAL
    return [*messages[:-1], {**last, "content": content}]


def _input(use: dict[str, Any]) -> dict[str, Any]:
    """A tool_use block's input (an object; anything else is no input)."""
    value = use.get("input")
    return dict(value) if isinstance(value, dict) else {}


@functools.lru_cache(maxsize=256)
def _result_schema(kind: str, flags: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """A step kind's result schema with the flags it must set: the same for every step of that kind and flags, so
    built once (and its validator with it, see ``validation_error``). Shared: never changed by a caller."""
    return result_schema(kind, dict(flags))


class AgentRuntime:
    """Runs agent steps for the engine; one instance may serve many runs at once."""

    def __init__(self, *, gh: gidgethub.abc.GitHubAPI,
                 anthropic: anthropic.AsyncAnthropic | LazyClient | None,
                 models: ModelMap, budget: Budget, max_turns: int = 12, max_tool_bytes: int = 20_000,
                 call_timeout: float = 120.0, concurrency: asyncio.Semaphore | None = None,
                 max_tokens: int = 16_000, attempts: int = 4, retry_base: float = 1.0,
                 max_retry_wait: float = 60.0, secrets: tuple[str, ...] = (),
                 hosts: frozenset[str] = frozenset({"github.com"}), overviews: OverviewCache | None = None,
                 web_searches: int = 0) -> None:
        self.gh = gh
        self.anthropic = anthropic
        self.models = models
        self.budget = budget
        self.max_turns = max(1, max_turns)
        self.max_tool_bytes = max_tool_bytes
        self.max_tokens = max_tokens
        self.secrets = secrets
        self.hosts = hosts  # links to these stay live in model prose (the GitHub host, TRIAGE_LEAD_LINK_HOSTS)
        # Web searches a run may make (0: web search off), by the agents of WEB_SEARCH_AGENTS only.
        self.web_searches = max(0, web_searches)
        # Per (repository, commit): what a commit holds never changes. ``overviews``: the process's one, shared by
        # every job (bot/run/runs.py's Deps), so runs at one commit read it once; else this runtime's own.
        self.overviews = overviews if overviews is not None else OverviewCache(max_bytes=max_tool_bytes)
        # The issue or PR as this job read it, by (repository, number): see ``_refresh``.
        self._issues: dict[tuple[str, int], dict[str, Any]] = {}
        self._issues_read = asyncio.Lock()
        self._results = prompts.Encoded()  # earlier steps' results as text, for the job's later steps
        self.caller = None if anthropic is None else ModelCaller(
            anthropic, attempts=attempts, retry_base=retry_base, max_retry_wait=max_retry_wait,
            timeout=call_timeout, concurrency=concurrency)

    def provenance(self, agent: Agent) -> dict[str, str]:
        """Who does a step, for the record (issue 17): the agent, its tier and the model it runs on here ("offline"
        without a model client), and short hashes of its own prompt and of the team's rules, so two runs can be
        told to have run the same instructions or not."""
        return {"agent": agent.name, "tier": agent.model,
                "model": "offline" if self.caller is None else self.models.model_for(agent.model),
                "prompt": _digest(agent.prompt), "rules": _rules_digest()}

    async def run(self, request: AgentRequest) -> AgentOutcome:
        """The step's outcome; ValueError only for a step kind that is not an agent's (e.g. delegate)."""
        if request.step.kind not in KINDS:
            raise ValueError(f"step kind {request.step.kind!r} is not run by an agent")
        reader = RepoReader(self.gh, request.context.repo)
        request, labels = await self._refresh(request, reader)
        try:
            findings, reviewed = await self._gate(request, reader) if request.step.kind == "review" else (None, "")
            if self.caller is None:
                outcome = await offline.run(request, reader, labels, findings, reviewed)
            else:
                ctx = request.context
                tools = Tools(reader, request.agent.tools, self.max_tool_bytes, pinned=ctx.head_sha,
                              pull=ctx.number if ctx.is_pull_request else None)
                outcome = await self._run_model(request, tools, findings)
        except GITHUB_ERRORS as e:  # tool calls report their own; these are the reads a step cannot do without
            log.warning("run %s step %s: GitHub read failed: %r", request.run_id, request.step_id, e)
            error = f"GitHub could not be read for the {request.step.title} step ({_describe(e)})."
            return AgentOutcome(None, Usage(), error, "api-error", offline=self.caller is None)
        if outcome.result is None:
            return outcome
        result = gate.apply_gate(outcome.result, findings) if findings is not None else outcome.result
        secrets = (*self.secrets, *filter(None, [getattr(self.gh, "oauth_token", None),
                                                 getattr(self.anthropic, "api_key", None)]))
        return replace(outcome, result=clean_result(result, secrets, hosts=self.hosts))

    async def _refresh(self, request: AgentRequest, reader: RepoReader) -> tuple[AgentRequest, list[str]]:
        """The request with the issue/PR title and body as GitHub had them when this job first read them, and the
        labels. Read once per job (bot/run/runs.py makes a runtime per job, whose steps run in a row, steps of a
        wave at once): an edit made while the job runs reaches the steps of the run's next job, after it waits for
        a person or a delivery; a failed read is not kept, so the next step asks again."""
        ctx = request.context
        if ctx.number is None:
            return request, []
        try:
            async with self._issues_read:  # the steps of one wave share one read
                issue = self._issues.get((ctx.repo, ctx.number)) or await reader.issue(ctx.number)
                self._issues[(ctx.repo, ctx.number)] = issue
        except GITHUB_ERRORS as e:
            log.warning("cannot re-read %s#%s, using the webhook's copy: %r", ctx.repo, ctx.number, e)
            return request, []
        fresh = replace(ctx, title=issue.get("title") or "", body=issue.get("body") or "")
        return replace(request, context=fresh), [lab.get("name", "") for lab in issue.get("labels") or []]

    async def _gate(self, request: AgentRequest, reader: RepoReader) -> tuple[list[gate.Finding], str]:
        """The gate's findings on what is under review: the changes earlier steps proposed, else the PR's diff."""
        changes = [c for r in request.inputs.values() if isinstance(r, dict)
                   for c in r.get("changes") or [] if isinstance(c, dict)]
        if changes:
            return gate.check(changes, None), f"the {len(changes)} proposed file change(s)"
        ctx = request.context
        if ctx.is_pull_request and ctx.number is not None:
            return gate.check(None, await reader.pull_files(ctx.number)), f"pull request #{ctx.number}"
        return [], "any change (none was proposed)"

    async def _call(self, tier: str, request: dict[str, Any], web: WebSearchTurns | None = None
                    ) -> tuple[dict[str, Any], Usage]:
        """One model call, reserved under every budget cap first (its input estimate plus ``max_tokens``) and
        settled with what it used, or 0 when it failed with an answer (a timeout or a lost connection may have
        been billed, so it keeps what was reserved): the one place the model is called.

        `web`: the step may search the web. What the run has left of its cap is reserved in the ledger first (steps
        in parallel cannot pass it together) and settled with the searches made; the tool is offered with that many
        uses at most (``max_uses``: the API stops the model there), and the same bytes as the turn before unless a
        turn searched or the budget's room shrank (see ``WebSearchTurns``). Each search's token-equivalent and what
        its results may add to the input are reserved in the budget with the call: fewer searches when the budget
        has room for fewer; none when it has room for none, or when the run has none left (its other steps made or
        hold them): the call then goes without the tool, so it cannot search, and the step's result says why."""
        if self.caller is None:  # run() sends steps without a model client to the offline backend
            raise RuntimeError("a model call was asked of an agent runtime without a model client")
        wanted = web.offer() if web is not None else 0
        async with self.budget.searches(self.web_searches if wanted else 0) as searches:
            body = encode(request)  # once (twice with the tool): the estimate counts the text sent
            need = input_estimate(body) + int(request["max_tokens"])
            per_search = self.models.search_tokens(tier) + SEARCH_RESULT_TOKENS
            # Never more than was reserved (the API enforces max_uses, so the cap is hard): no reservation, no tool.
            offered = min(wanted, searches.amount, await self._searches_that_fit(need, per_search)) \
                if wanted and searches.amount else 0
            if web is not None and wanted:
                web.offered(offered, reserved=searches.amount)
            if offered:
                request = {**request, "tools": [*request.get("tools", []), prompts.web_search_tool(offered)]}
                body = encode(request)
                need = input_estimate(body) + int(request["max_tokens"])
            async with self.budget.hold(need + offered * per_search) as held:
                try:
                    reply = await self.caller.send(body)
                except ApiFailure as exc:
                    # Each attempt that timed out may have been served and billed all the same: a ceiling counts it.
                    held.actual = held.amount * exc.unanswered
                    searches.actual = offered * exc.unanswered  # each attempt may have searched as much
                    raise
                spent = self.models.usage(tier, billed(reply.get("content") or [], reply["usage"]))
                held.actual, searches.actual = spent.tokens, spent.web_searches
            if web is not None:
                web.made(reply.get("content") or [], spent.web_searches, searches.amount)
        return reply, spent

    async def _searches_that_fit(self, need: int, per_search: int) -> int:
        """How many searches' reservations fit the budget's caps beside the call's own `need` (a large number when
        no cap limits it): what a step is offered when the budget cannot take all it has left."""
        caps = self.budget.caps()
        if not caps:
            return 1 << 30
        room = min([cap.limit - await self.budget.ledger.spent(cap.key) for cap in caps])
        return max(0, (room - need) // max(1, per_search))

    async def _run_model(self, request: AgentRequest, tools: Tools,
                         findings: list[gate.Finding] | None) -> AgentOutcome:
        if self.caller is None:  # run() sends steps without a model client to the offline backend
            raise RuntimeError("a model call was asked of an agent runtime without a model client")
        tier = request.agent.model
        schema = _result_schema(request.step.kind, tuple(sorted(request.flags_wanted.items())))
        definitions = tools.all_definitions()
        # The result schema goes in the step's text, after the cached parts: as output_config it would change
        # with every kind of step and invalidate the system prompt and messages the step before cached.
        base = prompts.base(self.models.model_for(tier), self.max_tokens, definitions)
        ctx = request.context
        overview = await self.overviews.get(tools.reader, ctx.head_sha, ctx.default_branch)
        search = self.web_searches > 0 and request.agent.name in WEB_SEARCH_AGENTS
        left = await self.budget.searches_left(self.web_searches) if search else 0
        web = WebSearchTurns(left) if left else None  # none left when the step begins: no tool, no note
        messages: list[dict[str, Any]] = [
            prompts.first_message(request, findings, overview, schema, left, self._results)]
        usage, calls, corrected, paused = Usage(), 0, False, False
        sources: dict[str, str] = {}
        while True:
            final = calls >= self.max_turns - 1
            extra = {"tool_choice": {"type": "none"}} if final and definitions else {}
            try:
                reply, spent = await self._call(tier, {**base, **extra, "messages": _with_moving_breakpoint(messages)},
                                                web)
            except BudgetExceeded as e:
                return AgentOutcome(None, usage, str(e), "budget")
            except ApiFailure as e:
                return AgentOutcome(None, usage, str(e), "api-error")
            calls += 1
            usage += spent
            # The blocks as the API sent them, less their unset (null) fields, go back in the next turn.
            content = [{k: v for k, v in b.items() if v is not None} for b in reply["content"]]
            sources |= cited_sources(content)
            if paused:  # the API's continuation of a turn it paused: one assistant message, as if never paused
                messages[-1] = {"role": "assistant", "content": [*messages[-1]["content"], *content]}
            else:
                messages.append({"role": "assistant", "content": content or [{"type": "text", "text": "(no answer)"}]})
            # A long turn of server tools (web searches) comes back paused: sent back as it is, the API goes on.
            paused = reply.get("stop_reason") == "pause_turn" and bool(content) and not final
            if paused:
                continue
            uses = [b for b in content if b["type"] == "tool_use"]
            if uses and not final:
                results = await asyncio.gather(*(tools.call(str(u.get("name")), _input(u)) for u in uses))
                blocks: list[dict[str, Any]] = [{"type": "tool_result", "tool_use_id": u.get("id"), "content": text,
                                                 **({"is_error": True} if err else {})}
                                                for u, (text, err) in zip(uses, results, strict=True)]
                blocks += await self._search_note(web)
                if calls >= self.max_turns - 1:
                    blocks.append({"type": "text", "text": LAST_TURN_NOTE})
                messages.append({"role": "user", "content": blocks})
                continue
            if uses:
                return AgentOutcome(None, usage, f"the model did not give a result within {self.max_turns} turns.",
                                    "invalid-result")
            text = "".join(str(b.get("text") or "") for b in content if b["type"] == "text")
            result, problem = parse_result(text, schema)
            if result is not None:
                return AgentOutcome(with_notes(with_sources(result, sources), web.notes() if web else []), usage)
            if corrected:
                # The problem quotes the model's own values: defused like any model output before it is posted.
                return AgentOutcome(None, usage, clean_for_github(f"the model's result was invalid twice: {problem}",
                                                                  self.secrets), "invalid-result")
            corrected = True
            log.info("run %s step %s: invalid result, asking once more: %s", request.run_id, request.step_id, problem)
            messages.append({"role": "user", "content": [*await self._search_note(web), {"type": "text", "text":
                             f"That result is not valid: {problem}. Answer with only the corrected JSON result."}]})

    async def _search_note(self, web: WebSearchTurns | None) -> list[dict[str, Any]]:
        """After a turn that searched: the next turn's word on what the run has left (the tool itself stays the same
        bytes, see ``WebSearchTurns``); nothing otherwise."""
        if web is None or not web.fresh:
            return []
        web.fresh = False
        left = await self.budget.searches_left(self.web_searches)
        return [{"type": "text", "text": prompts.web_search_left(left, withdrawn=web.withdrawn)}]


def cited_sources(content: list[dict[str, Any]]) -> dict[str, str]:
    """url -> title of the web pages a reply's text cites (``web_search_result_location`` citations), in order.
    Untrusted: only http(s) links are kept, titles are cut short; the result's cleaning defuses both."""
    found: dict[str, str] = {}
    cites = [c for b in content if b.get("type") == "text" and isinstance(b.get("citations"), list)
             for c in b["citations"] if isinstance(c, dict) and c.get("type") == "web_search_result_location"]
    for c in cites:
        url, title = c.get("url"), c.get("title")
        if isinstance(url, str) and len(url) <= 2000 and _URL.fullmatch(url):
            # Control and format characters out (a right-to-left override would dress one link up as another).
            shown = "".join(c if c.isprintable() else " " for c in str(title or url))
            found.setdefault(url, " ".join(shown.split())[:SOURCE_TITLE_CHARS])
    return found


def with_sources(result: dict[str, Any], sources: dict[str, str]) -> dict[str, Any]:
    """`result` with the pages its step cited: a ``sources`` list, and a line each in its findings (or summary),
    which the step's output shows; links to a host the renderer does not allow lose their target there."""
    if not sources:
        return result
    listed = list(sources.items())[:MAX_SOURCES]
    # The title is text, never markup of its own; the address goes in <...>, where a ")" cannot end it.
    # The host stays readable (as code) where the renderer removes a link's target.
    lines = [f"Source: [{_escaped(title)}](<{url}>) · {code_span(urlsplit(url).hostname or '', 100)}"
             for url, title in listed]
    return with_notes({**result, "sources": [{"title": title, "url": url} for url, title in listed]}, lines)


def _escaped(title: str) -> str:
    return _BRACKETS.sub(lambda m: "\\" + m[0], title)


@functools.lru_cache(maxsize=64)  # the agents' prompts, hashed once each (every step's record names them)
def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@functools.cache
def _rules_digest() -> str:
    return _digest(prompts.TEAM + prompts.RULES)
