"""Model tiers, prices and token budgets: the one place a tier becomes a model id and tokens become dollars,
and where a model call reserves its tokens under every ceiling before it is made.

Agents name a tier (``opus`` | ``sonnet`` | ``haiku``) in their front matter; which model serves a tier
is deployment configuration (settings, per-repository config), so it is decided here and nowhere else.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Protocol

log = logging.getLogger(__name__)

TIERS = ("opus", "sonnet", "haiku")
DEFAULT_MODELS: Mapping[str, str] = MappingProxyType({
    "opus": "claude-opus-4-6",
    "sonnet": "claude-sonnet-4-6",
    "haiku": "claude-haiku-4-5",
})
CACHE_WRITE_FACTOR = 1.25  # a 5-minute cache write costs 1.25x the input price
CACHE_WRITE_1H_FACTOR = 2.0  # a 1-hour cache write costs twice the input price
CACHE_READ_FACTOR = 0.1    # a cache hit costs a tenth of the input price
# The Messages API's server-side web search is billed per search ($10 per 1,000), on top of the tokens its results
# add to the input. Budgets are in tokens, so a search counts as the input tokens its price buys on the model that
# made it (``ModelMap.search_tokens``: 10,000 on haiku, 3,334 on sonnet, 2,000 on opus at the default prices).
WEB_SEARCH_USD = 10.0 / 1000
# What one search's results may add to the next input, reserved with it so a ceiling holds before the reply says.
SEARCH_RESULT_TOKENS = 10_000


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float


DEFAULT_PRICES: Mapping[str, Price] = MappingProxyType({
    "opus": Price(5.0, 25.0),
    "sonnet": Price(3.0, 15.0),
    "haiku": Price(1.0, 5.0),
})


@dataclass(frozen=True)
class Usage:
    """Tokens and calls spent; summed over the calls of a run step with ``+``."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    calls: int = 0
    cost_usd: float = 0.0  # the searches' price included
    web_searches: int = 0  # server-side web searches the API billed
    search_tokens: int = 0  # their token-equivalent (``ModelMap.search_tokens``), counted by budgets

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def tokens(self) -> int:
        """Every token the model processed (cached or not, in and out) and the searches' token-equivalent: what
        budgets count."""
        return (self.input_tokens + self.output_tokens + self.cache_read_input_tokens
                + self.cache_creation_input_tokens + self.search_tokens)

    @property
    def cached_share(self) -> float:
        """Share of input tokens served from the prompt cache (0..1)."""
        total = self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens
        return self.cache_read_input_tokens / total if total else 0.0


class ModelMap:
    """Tier -> model id, with the default ids overridable by settings or per-repository config."""

    def __init__(self, overrides: Mapping[str, str] | None = None,
                 prices: Mapping[str, Price] | None = None) -> None:
        unknown = sorted(set(overrides or {}) - set(TIERS))
        if unknown:
            raise ValueError(f"unknown model tier(s) {', '.join(unknown)}; tiers are {', '.join(TIERS)}")
        self.models: Mapping[str, str] = MappingProxyType(
            {**DEFAULT_MODELS, **{k: v for k, v in (overrides or {}).items() if v}})
        self.prices: Mapping[str, Price] = MappingProxyType({**DEFAULT_PRICES, **(prices or {})})

    def model_for(self, tier: str) -> str:
        """The model id serving `tier`; a name that is no tier is taken as a model id itself."""
        return self.models.get(tier, tier)

    def with_overrides(self, overrides: Mapping[str, str] | None) -> ModelMap:
        """A copy with more overrides applied (e.g. a repository's config over the settings')."""
        return ModelMap({**self.models, **(overrides or {})}, self.prices)

    def usage(self, tier: str, raw: Any) -> Usage:
        """One API response's ``usage`` as a Usage of one call, priced for `tier`."""
        def get(of: Any, name: str) -> Any:  # the reply's JSON, or an object with its fields as attributes
            return of.get(name) if isinstance(of, Mapping) else getattr(of, name, None)

        def n(name: str) -> int:
            return int(get(raw, name) or 0)

        u = Usage(n("input_tokens"), n("output_tokens"), n("cache_read_input_tokens"),
                  n("cache_creation_input_tokens"), calls=1)
        p = self.prices.get(tier, DEFAULT_PRICES["sonnet"])
        # The API splits cache writes by lifetime; a 1-hour entry costs more to write than a 5-minute one.
        hour = min(u.cache_creation_input_tokens,
                   int(get(get(raw, "cache_creation") or {}, "ephemeral_1h_input_tokens") or 0))
        cost = (u.input_tokens * p.input + u.output_tokens * p.output
                + (u.cache_creation_input_tokens - hour) * p.input * CACHE_WRITE_FACTOR
                + hour * p.input * CACHE_WRITE_1H_FACTOR
                + u.cache_read_input_tokens * p.input * CACHE_READ_FACTOR) / 1_000_000
        searches = _searches(get(raw, "server_tool_use"), get)
        cost += searches * WEB_SEARCH_USD
        return Usage(u.input_tokens, u.output_tokens, u.cache_read_input_tokens,
                     u.cache_creation_input_tokens, 1, round(cost, 6), searches, searches * self.search_tokens(tier))

    def search_tokens(self, tier: str) -> int:
        """The input tokens one web search's price buys on `tier`'s model: what a search counts in a budget."""
        price = self.prices.get(tier, DEFAULT_PRICES["sonnet"]).input
        return math.ceil(WEB_SEARCH_USD / price * 1_000_000) if price > 0 else 0


def _searches(server: Any, get: Callable[[Any, str], Any]) -> int:
    """``usage.server_tool_use.web_search_requests``: the searches billed (absent when no server tool ran)."""
    value = get(server, "web_search_requests") if server is not None else 0
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


# ---- token budgets ------------------------------------------------------------------------------

class Ledger(Protocol):
    """Where token reservations are kept: the store (one ledger for every worker) or a :class:`LocalLedger`.

    ``reserve`` takes `amount` under every (key, cap) or under none (False when any key would pass its cap);
    ``settle`` replaces a reservation's amount by what the call really used; ``spent`` is settled + reserved.
    """

    async def reserve(self, reservation: str, amount: int, caps: Sequence[tuple[str, int]]) -> bool: ...
    async def settle(self, reservation: str, actual: int) -> None: ...
    async def spent(self, key: str) -> int: ...


class LocalLedger:
    """A ledger in this process's memory: for a Budget without a store (tests, one-off tools)."""

    def __init__(self) -> None:
        self._spent: Counter[str] = Counter()
        self._open: dict[str, tuple[int, tuple[str, ...]]] = {}

    async def reserve(self, reservation: str, amount: int, caps: Sequence[tuple[str, int]]) -> bool:
        if any(self._spent[key] + amount > cap for key, cap in caps):
            return False
        for key, _ in caps:
            self._spent[key] += amount
        self._open[reservation] = (amount, tuple(key for key, _ in caps))
        return True

    async def settle(self, reservation: str, actual: int) -> None:
        if reservation not in self._open:  # settled already
            return
        amount, keys = self._open.pop(reservation)
        for key in keys:
            self._spent[key] += actual - amount

    async def spent(self, key: str) -> int:
        return self._spent[key]


def utc_day() -> str:
    """Today's date in UTC, as day budgets count it."""
    return time.strftime("%Y-%m-%d", time.gmtime())


def within(operator: int, repo: int | None) -> int:
    """A repository's limit applies only below the operator's: its config may lower a ceiling, never raise it."""
    return operator if repo is None else min(operator, repo)


class BudgetExceeded(Exception):
    """No room for the next model call; ``str(exc)`` is the sentence people are shown."""


@dataclass
class Cap:
    key: str  # the ledger's key: run:<id>, day:<installation>:<date>, day:<owner/name>:<date>
    limit: int
    whose: str  # "run" | "installation" | "repository"


# A reservation's id: this process's random prefix and a serial, unique across workers and restarts without a
# uuid4 (a system call, and a GIL hand-off, per model call).
_PROCESS = uuid.uuid4().hex[:16]
_SERIAL = itertools.count(1)


@dataclass
class Hold:
    """Tokens reserved for one model call; the caller sets ``actual`` once the call has answered."""

    id: str
    amount: int
    actual: int = 0


@dataclass
class Budget:
    """Token ceilings every model call is reserved under before it is made (None: no limit).

    The pipeline builds one per job: ``run_tokens`` (the operator's per-run limit, or the repository's if
    lower), ``day_tokens`` (the operator's per installation and UTC day) and ``repo_day_tokens`` (the
    repository's own per day, from its config), with ``run_used`` and ``day_used`` from its stored counters.
    Each call reserves its input estimate plus ``max_tokens`` in the ``ledger`` under every cap at once, and
    is settled with what it used: steps in parallel, concurrent jobs and other workers sharing the store's
    ledger can never pass a cap together.
    """

    run_tokens: int | None = None
    day_tokens: int | None = None
    run_used: int = 0
    day_used: int = 0
    repo_day_tokens: int | None = None
    run_id: str = "run"
    installation_id: int | None = None
    repo: str = ""
    ledger: Ledger = field(default_factory=LocalLedger)
    today: Callable[[], str] = utc_day

    @classmethod
    def ceilings(cls, *, run: int, day: int, repo_run: int | None, repo_day: int | None, **rest: Any) -> Budget:
        """The operator's per-run and per-installation-day limits as ceilings a repository's config (``repo_*``)
        can only lower; its day limit caps that repository's own spending, within the installation's."""
        return cls(run_tokens=within(run, repo_run), day_tokens=day,
                   repo_day_tokens=None if repo_day is None else within(day, repo_day), **rest)

    def add(self, tokens: int) -> None:
        self.run_used += tokens
        self.day_used += tokens

    def exceeded(self) -> str | None:
        """A sentence naming the budget that is used up, or None while both have room."""
        if self.run_tokens is not None and self.run_used >= self.run_tokens:
            return (f"token budget reached: this run has used {self.run_used:,} of its {self.run_tokens:,} "
                    "tokens, so no further model calls are made for it.")
        if self.day_tokens is not None and self.day_used >= self.day_tokens:
            return (f"token budget reached: this installation has used {self.day_used:,} of its "
                    f"{self.day_tokens:,} tokens for today, so no further model calls are made until tomorrow.")
        return None

    def caps(self) -> list[Cap]:
        """Every limit a call now counts against (the day's keys are today's: a run may cross midnight)."""
        day = self.today()
        wanted = [(f"run:{self.run_id}", self.run_tokens, "run"),
                  (f"day:{self.installation_id or 0}:{day}", self.day_tokens, "installation"),
                  (f"day:{self.repo.lower()}:{day}", self.repo_day_tokens if self.repo else None, "repository")]
        return [Cap(key, limit, whose) for key, limit, whose in wanted if limit is not None]

    @asynccontextmanager
    async def hold(self, amount: int) -> AsyncIterator[Hold]:
        """Reserve `amount` tokens for one model call, or raise BudgetExceeded saying which cap has no room.

        On leaving, the reservation is settled with ``Hold.actual``: what the call used, or 0 when it raised.
        """
        if (why := self.exceeded()) is not None:
            raise BudgetExceeded(why)
        caps = self.caps()
        held = Hold(f"{self.run_id}:{_PROCESS}-{next(_SERIAL)}", amount)
        if not await self._reserve(held, [(c.key, c.limit) for c in caps]):
            raise BudgetExceeded(await self._refusal(caps, amount))
        try:
            yield held
        finally:
            self.add(held.actual)
            await self._settle(held.id, held.actual)

    async def searches_left(self, cap: int) -> int:
        """What is left of the run's `cap` of web searches (made or reserved by any step of it, on any worker)."""
        return max(0, cap - await self.ledger.spent(f"searches:run:{self.run_id}")) if cap > 0 else 0

    @asynccontextmanager
    async def searches(self, cap: int) -> AsyncIterator[Hold]:
        """Reserve what is left of the run's `cap` of web searches for one model call (``Hold.amount``: 0 when
        none is left), settled on leaving with ``Hold.actual``, the searches the call made. The count is kept in
        the ledger under the run's own key, so earlier steps, steps in parallel and other workers share the cap."""
        key = f"searches:run:{self.run_id}"
        held = Hold(f"{key}:{_PROCESS}-{next(_SERIAL)}", await self.searches_left(cap))
        if held.amount == 0 or not await self._reserve(held, [(key, cap)]):
            yield Hold("", 0)
            return
        try:
            yield held
        finally:
            await self._settle(held.id, held.actual)

    async def _reserve(self, held: Hold, caps: list[tuple[str, int]]) -> bool:
        """The ledger's answer. A job cancelled meanwhile (shutdown, a lost claim) does not leave a reservation
        behind: the store's write may still land after the cancellation, so it is given back once it has."""
        task = asyncio.ensure_future(self.ledger.reserve(held.id, held.amount, caps))
        try:
            return await asyncio.shield(task)
        except BaseException:
            def give_back(t: asyncio.Future[bool]) -> None:
                if not t.cancelled() and t.exception() is None and t.result():
                    asyncio.ensure_future(self._settle(held.id, 0))
            task.add_done_callback(give_back)
            raise

    async def _settle(self, reservation: str, actual: int) -> None:
        """Settle, shielded from the job's cancellation; a store that cannot is logged, never raised over the
        call's own outcome (the reservation then stays counted in full: a ceiling errs on the safe side)."""
        try:
            await asyncio.shield(self.ledger.settle(reservation, actual))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("budget: reservation %s could not be settled with %s tokens (%s); it stays counted at "
                      "the amount reserved", reservation, actual, exc)

    async def _refusal(self, caps: list[Cap], amount: int) -> str:
        """The sentence for a reservation that did not fit: the first cap without room for `amount`."""
        for cap in caps:
            used = await self.ledger.spent(cap.key)
            if used + amount > cap.limit:
                return _sentence(cap, used, amount)
        return (f"token budget reached: the next model call could need up to {amount:,} tokens, more than its "
                "budgets have room for, so it was not made.")


def _sentence(cap: Cap, used: int, amount: int) -> str:
    need = f"and the next model call could need up to {amount:,} more"
    if cap.whose == "run":
        return (f"token budget reached: this run has used {used:,} of its {cap.limit:,} tokens {need}, so no "
                "further model calls are made for it.")
    return (f"token budget reached: this {cap.whose} has used {used:,} of its {cap.limit:,} tokens for today "
            f"{need}, so no further model calls are made until tomorrow.")
