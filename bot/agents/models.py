"""Model tiers, prices and token budgets: the one place a tier becomes a model id and tokens become dollars.

Agents name a tier (``opus`` | ``sonnet`` | ``haiku``) in their front matter; which model serves a tier
is deployment configuration (settings, per-repository config), so it is decided here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

TIERS = ("opus", "sonnet", "haiku")
DEFAULT_MODELS: Mapping[str, str] = MappingProxyType({
    "opus": "claude-opus-4-6",
    "sonnet": "claude-sonnet-4-6",
    "haiku": "claude-haiku-4-5",
})
CACHE_WRITE_FACTOR = 1.25  # a 5-minute cache write costs 1.25x the input price
CACHE_READ_FACTOR = 0.1    # a cache hit costs a tenth of the input price


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
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def tokens(self) -> int:
        """Every token the model processed (cached or not, in and out): what budgets count."""
        return (self.input_tokens + self.output_tokens + self.cache_read_input_tokens
                + self.cache_creation_input_tokens)

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
        def n(name: str) -> int:
            return int(getattr(raw, name, 0) or 0)

        u = Usage(n("input_tokens"), n("output_tokens"), n("cache_read_input_tokens"),
                  n("cache_creation_input_tokens"), calls=1)
        p = self.prices.get(tier, DEFAULT_PRICES["sonnet"])
        cost = (u.input_tokens * p.input + u.output_tokens * p.output
                + u.cache_creation_input_tokens * p.input * CACHE_WRITE_FACTOR
                + u.cache_read_input_tokens * p.input * CACHE_READ_FACTOR) / 1_000_000
        return Usage(u.input_tokens, u.output_tokens, u.cache_read_input_tokens,
                     u.cache_creation_input_tokens, 1, round(cost, 6))


@dataclass
class Budget:
    """Token limits the runtime checks before every model call (None: no limit).

    The engine builds one per job from its stored counters: ``run_used`` (tokens this run already spent)
    and ``day_used`` (tokens the installation spent today). The runtime adds each call's tokens to both
    as it spends, so the engine can store them back afterwards (or add ``AgentOutcome.usage.tokens``).
    Parallel steps sharing a Budget may each finish the call they started, so a limit can be passed
    by at most one call per step in flight.
    """

    run_tokens: int | None = None
    day_tokens: int | None = None
    run_used: int = 0
    day_used: int = 0

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
