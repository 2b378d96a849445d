"""Prometheus metrics: what an operator needs to see that deliveries arrive, runs advance and money is spent.

Each :class:`Metrics` owns its own ``CollectorRegistry`` (never the process-global one), so two apps in
one process, or two tests, never share counters. Counters and histograms are per process, as Prometheus
expects; the run gauge is read from the store when scraped, at most every 15 s, so it is right across
restarts and processes (see :meth:`Metrics.refresh_runs`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# What the webhook did with a delivery; one label value each.
OUTCOMES = frozenset({"accepted", "requeued", "ignored", "duplicate", "rejected_signature", "malformed", "too_large",
                      "store_unavailable", "too_slow", "over_capacity", "disconnected"})
# Seconds run counts read from the store are served for. Counting every run on every scrape put the store's
# heaviest read in the hands of anyone who can poll (reported: 8 pollers, 300k runs, webhook median 3 -> 280 ms);
# Prometheus scrapes every 15 s or more anyway.
RUNS_MAX_AGE = 15.0
# Agent steps take from under a second (offline backend) to many minutes (a tool-use loop on opus).
STEP_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800)
# The X-GitHub-Event header is not covered by the HMAC: keep label values to event-shaped names.
_EVENT = re.compile(r"[a-z_]{1,50}")


class UsageLike(Protocol):
    """What a model call spent (``bot.agents.Usage`` has these)."""

    # read-only: a frozen dataclass satisfies the protocol
    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cache_read_input_tokens(self) -> int: ...
    @property
    def cache_creation_input_tokens(self) -> int: ...
    @property
    def cost_usd(self) -> float: ...


class RunStates(Protocol):
    """The store's view of runs; ``run_counts`` (by workflow and state) is used when the store has it."""

    async def run_states(self) -> dict[str, int]: ...


def event_label(event: str) -> str:
    """A bounded label value for an event name: unknown shapes collapse to ``other``."""
    if not event:
        return "none"
    return event if _EVENT.fullmatch(event) else "other"


class Metrics:
    """The bot's metrics on a registry of their own. ``clock`` (seconds, monotonic) times the run-count cache."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, runs_max_age: float = RUNS_MAX_AGE) -> None:
        self.clock, self.runs_max_age = clock, runs_max_age
        # The counters' children by (event label, outcome): as many as the registry's own, no more.
        self._delivery_children: dict[tuple[str, str], Any] = {}
        self._runs_read_at: float | None = None  # when the store was last asked, answered or not
        self._runs_reading: asyncio.Future[None] | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.deliveries = Counter("triage_lead_webhook_deliveries", "Webhook deliveries by event and outcome",
                                  ["event", "outcome"], registry=r)
        self.runs = Gauge("triage_lead_runs", "Workflow runs in the store by workflow and state (read at scrape)",
                          ["workflow", "state"], registry=r)
        self.step_seconds = Histogram("triage_lead_step_duration_seconds", "Agent step duration",
                                      ["workflow", "kind"], buckets=STEP_BUCKETS, registry=r)
        self.steps = Counter("triage_lead_steps", "Agent steps finished, by outcome (ok or failed)",
                             ["workflow", "kind", "outcome"], registry=r)
        self.model_tokens = Counter("triage_lead_model_tokens", "Model tokens spent by kind", ["kind"], registry=r)
        self.model_cost = Counter("triage_lead_model_cost_usd", "Model spend in US dollars", registry=r)
        self.rate_remaining = Gauge("triage_lead_github_rate_limit_remaining",
                                    "GitHub requests left in the current window, as of the last response",
                                    ["installation", "resource"], registry=r)
        self.silent_jobs = Counter("triage_lead_silent_jobs", "Jobs that ended with nobody on the thread told "
                                   "(the App was uninstalled, or GitHub refused every write)", ["event"], registry=r)
        for kind in ("input", "output", "cache_read", "cache_write"):
            self.model_tokens.labels(kind)  # present at 0 from the start, so rate() works on the first spend

    # ---- recording ---------------------------------------------------------------------------
    def delivery(self, event: str, outcome: str) -> None:
        """Count one webhook answer. ``outcome`` is one of :data:`OUTCOMES`."""
        key = (event_label(event), outcome)
        child = self._delivery_children.get(key)
        if child is None:  # once per label pair: labels() takes a lock and builds a tuple on every call
            if outcome not in OUTCOMES:
                raise ValueError(f"unknown delivery outcome {outcome!r}")
            child = self._delivery_children[key] = self.deliveries.labels(*key)
        child.inc()

    def silent(self, event: str) -> None:
        self.silent_jobs.labels(event_label(event)).inc()

    def step_finished(self, *, workflow: str, kind: str, seconds: float, ok: bool = True) -> None:
        """An agent step ended after ``seconds`` (failed steps too: a timeout is worth seeing)."""
        self.step_seconds.labels(workflow, kind).observe(max(0.0, seconds))
        self.steps.labels(workflow, kind, "ok" if ok else "failed").inc()

    def tokens(self, usage: UsageLike) -> None:
        """Add one step's model usage (tokens by kind, and dollars)."""
        for kind, n in (("input", usage.input_tokens), ("output", usage.output_tokens),
                        ("cache_read", usage.cache_read_input_tokens),
                        ("cache_write", usage.cache_creation_input_tokens)):
            if n > 0:
                self.model_tokens.labels(kind).inc(n)
        if usage.cost_usd > 0:
            self.model_cost.inc(usage.cost_usd)

    def rate_limit(self, rate_limit: Any, *, installation: int | str = "app", resource: str = "core") -> None:
        """Record gidgethub's ``RateLimit`` after a response (None: the response carried none).

        Each installation has its own bucket, and search has a much smaller one than core, so both
        are labels; the App's own JWT calls are ``installation="app"``.
        """
        if rate_limit is None:
            return
        self.rate_remaining.labels(str(installation), resource or "core").set(rate_limit.remaining)

    def set_runs(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Replace the run gauge with ``{(workflow, state): n}``."""
        self.runs.clear()
        for (workflow, state), n in counts.items():
            self.runs.labels(workflow or "", state).set(n)

    async def refresh_runs(self, store: RunStates) -> None:
        """Read run counts from the store, unless it was asked less than ``runs_max_age`` ago.

        A gauge read at scrape time rather than counters of transitions: the store is the truth, so the
        numbers survive restarts and include runs advanced by other processes (PostgreSQL workers),
        which in-process counters would miss. Scrapes arriving while a read runs share it, and a read that
        failed counts as one: however many poll, the store is counted at most once per ``runs_max_age``.
        A store without ``run_counts`` gives states only, with an empty workflow label.
        """
        if self._runs_read_at is not None and self.clock() - self._runs_read_at < self.runs_max_age:
            return
        if self._runs_reading is None or self._runs_reading.done():
            self._runs_reading = asyncio.ensure_future(self._read_runs(store))
            # Retrieved even when every scrape waiting on it went away, so a failure is never "unretrieved".
            self._runs_reading.add_done_callback(lambda f: f.cancelled() or f.exception())
        await asyncio.shield(self._runs_reading)

    async def _read_runs(self, store: RunStates) -> None:
        try:
            await self._count_runs(store)
        finally:
            self._runs_read_at = self.clock()

    async def _count_runs(self, store: RunStates) -> None:
        by_workflow = getattr(store, "run_counts", None)
        if by_workflow is not None:
            counts = dict(await by_workflow())
        else:
            counts = {("", state): n for state, n in (await store.run_states()).items()}
        self.set_runs(counts)

    # ---- exposition --------------------------------------------------------------------------
    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
