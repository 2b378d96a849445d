"""What a run will cost, before it starts: tokens by kind and dollars, from the workflow's steps, the agents' tiers
and the repository's size as the bot knows it then (pure: sizes in, a record out).

The model follows the prompt the agent runtime builds (``bot/agents/prompts.py``) and the way the API caches it:

* every call sends the same prefix per tier: tools and system prompt, the repository overview, the repository
  context (the issue), each ending at a breakpoint; then the step's own text (role, task, criteria, flags, earlier
  results, review feedback, result schema), then the step's own turns, the newest one under a moving breakpoint;
* the API writes a prefix to the cache at a breakpoint once it reaches the model's minimum cacheable length, and a
  later call of the same tier reads the longest cached prefix: a tier's first call of a run writes the shared part,
  later steps of that tier read it and write only their own text, later turns of a step read the step so far and
  write their newest turn; steps of one wave run at once, so none of them reads what another of the wave writes;
* a step that works on code makes one turn of parallel file reads, then answers (``READS``); triage and approval
  answer from what their prompt holds; without an overview an agent first lists the root and reads the README.

The expected case runs the steps that run whatever flags say, without rejection; what one rejection (the gate's
return to its ``on_reject`` step and every step from there to the gate) and each conditional step would add is
given beside it. Prices come from the caller (``bot/agents/models.py``: bot/core imports nothing else of bot).

One module because the sizes, the cache model and the simulations that replay it are one model of a run's bill:
a change to how the prompt is cut must move all three together (tests/test_estimate.py checks the cache model
against the sandbox's; tests/test_estimate_speed.py pins every estimate across the speed-up of issue 16).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.core.workflow import Agent, Step, Workflow

# Characters per token: the usual rule for English text and code, and the sandbox's tokenizer stand-in
# (bot/sandbox/anthropic/cache.py). bot/agents/calls.py reserves budgets at 3 (an upper bound); an estimate wants
# the middle.
CHARS_PER_TOKEN = 4
# The smallest prefix the API caches, per tier, for the models bot/agents/models.py DEFAULT_MODELS names
# (claude-opus-4-6 4,096, claude-sonnet-4-6 2,048, claude-haiku-4-5 4,096: Anthropic's prompt-caching
# documentation, the table bot/sandbox/anthropic/cache.py keeps). A tier mapped to another model may cache sooner.
MIN_CACHEABLE_BY_TIER: Mapping[str, int] = {"opus": 4096, "sonnet": 2048, "haiku": 4096}
# The fixed sentences around a step's own fields in prompts.role_text and prompts.step_text (headings, "Task:",
# "Pass criteria:", the closing instruction), the line standing for no criteria, and a gate's (the verdict's rule and
# the deterministic findings' block): measured on the shipped prompt builders, checked by tests/test_estimate.py.
STEP_FRAME_CHARS = 270
NO_CRITERIA_CHARS = 60
GATE_FRAME_CHARS = 310
# A fenced block's wrapper (prompts' fence(): the <untrusted source="..."> tags and its label), per earlier result.
FENCE_CHARS = 60
# A tool round trip's wrapper per file read: the tool_use block the model writes (id, name, path: ~110 characters
# of JSON) and the tool_result block around the file (id, type, the tool's fence).
TOOL_USE_TOKENS = 30
TOOL_RESULT_OVERHEAD_CHARS = 150
# ASSUMPTION, not from the prompts: a result as the step kind's schema asks it, a summary of some 200 words for
# people (~270 tokens) with its criteria, flags and the kind's fields (~130). No prompt fixes it; a model's real
# answers decide it.
RESULT_TOKENS = 400
# ASSUMPTION: an implementation changes one file, returned in full as the schema asks (the size of a file read).
CHANGED_FILES = 1
# ASSUMPTION: a code step reads, in its one turn of parallel reads, the files the issue names that the tree holds, at
# most two (the file its task is about and one it depends on or tests it; with none named, one it picks from the
# overview). A review reads the files the implementation changed; triage and approval read none (the issue, the
# overview and the earlier results are in their prompt).
MAX_FILES_READ = 2
READS = {"analyze": "named", "validate": "named", "implement": "named", "context": "named", "delegate": "named",
         "review": "changed", "triage": "none", "approval": "none"}


class PriceLike(Protocol):
    """US dollars per million tokens (bot/agents/models.py's ``Price``)."""

    @property
    def input(self) -> float: ...
    @property
    def output(self) -> float: ...


@dataclass(frozen=True)
class Pricing:
    """Prices per tier and the cache's factors on the input price, as bot/agents/models.py has them."""

    prices: Mapping[str, PriceLike]
    cache_write: float  # models.CACHE_WRITE_FACTOR (5-minute entries, the only kind the bot writes)
    cache_read: float   # models.CACHE_READ_FACTOR
    min_cacheable: Mapping[str, int] = field(default_factory=lambda: dict(MIN_CACHEABLE_BY_TIER))


@dataclass(frozen=True)
class Sizes:
    """What the bot knows of the run's prompt before it starts, in characters (the JSON text sent)."""

    fixed: int          # tools' definitions and the system prompt: the same for every call
    overview: int       # prompts.overview_text at the run's commit; 0 when the steps get none
    context: int        # prompts.context_text: the title and body
    file: int           # a file an agent reads: the named files' mean size, cut at the read tool's limit
    files_named: int    # files of the tree the issue names
    schemas: Mapping[str, int] = field(default_factory=dict)  # step kind -> prompts.schema_text's length
    schema_default: int = 2900  # a kind the mapping lacks: the longest shipped schema (review, 2,850 characters)


@dataclass(frozen=True)
class Tokens:
    """Input tokens by how they are billed, and output tokens."""

    input: int = 0
    cache_write: int = 0
    cache_read: int = 0
    output: int = 0

    # Field by field by hand: a run's estimate adds some hundreds of these (issue 16: CPU per run).
    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(self.input + other.input, self.cache_write + other.cache_write,
                      self.cache_read + other.cache_read, self.output + other.output)

    def __sub__(self, other: Tokens) -> Tokens:
        return Tokens(self.input - other.input, self.cache_write - other.cache_write,
                      self.cache_read - other.cache_read, self.output - other.output)

    @property
    def total(self) -> int:
        return self.input + self.cache_write + self.cache_read + self.output


@dataclass(frozen=True)
class StepEstimate:
    step: str
    agent: str
    tier: str
    iteration: int
    calls: int
    tokens: Tokens
    cost_usd: float


@dataclass(frozen=True)
class Estimate:
    """A run's expected tokens and cost, what a rejection or a conditional step would add, and why."""

    workflow: str
    steps: tuple[StepEstimate, ...]
    tokens: Tokens
    cost_usd: float
    rejection_steps: tuple[StepEstimate, ...]  # what one rejection runs again (none without a gate)
    rejection_tokens: Tokens
    rejection_usd: float
    conditional_usd: Mapping[str, float]  # step id -> what it adds when its flag is set
    assumptions: tuple[str, ...]

    def cost_with(self, rejections: int = 0, steps: Iterable[str] = ()) -> float:
        """The expected cost plus `rejections` loops and the named conditional steps."""
        return self.cost_usd + rejections * self.rejection_usd + sum(self.conditional_usd.get(s, 0.0) for s in steps)

    def tokens_with(self, rejections: int = 0) -> Tokens:
        extra = [self.rejection_tokens] * rejections
        return sum(extra, self.tokens)

    def sentence(self) -> str:
        """For a status comment: 'about $0.40 (estimate), each rejection adds about $0.08'."""
        text = f"about ${self.cost_usd:.2f} (estimate)"
        if self.rejection_usd:
            text += f", each rejection adds about ${self.rejection_usd:.2f}"
        return text


def tokens_of(chars: int) -> int:
    return math.ceil(max(0, chars) / CHARS_PER_TOKEN)


def named_files(text: str, paths: Iterable[str]) -> list[str]:
    """The tree's paths that `text` (the issue) names, in the tree's order."""
    words = {w.rstrip(".") for w in re.findall(r"[\w./-]+", text or "")}
    return [p for p in paths if p in words or p.strip("/") in words]


def read_chars(sizes: Mapping[str, int], named: Iterable[str], limit: int = 20_000) -> int:
    """A read's mean size: the named files' (else every file's), each cut at the read tool's `limit`
    (AgentRuntime's ``max_tool_bytes``)."""
    chosen = [sizes[p] for p in named if p in sizes] or list(sizes.values())
    return round(sum(min(s, limit) for s in chosen) / len(chosen)) if chosen else limit


# ---- the simulation ---------------------------------------------------------------------------------

Key = tuple[Any, ...]
_NOTHING: frozenset[Key] = frozenset()


@dataclass(frozen=True)
class _StepFacts:
    """What a step's calls hold that no simulation changes (its agent, its own text, its turns): worked out once
    for the several simulations of one estimate (issue 16: CPU per run)."""

    agent: Agent
    own_chars: int          # its own text and its result schema, without earlier results or feedback
    turns: tuple[int, ...]  # each tool turn's tokens as the next call's input: the tool_use blocks, the files read
    answer: int             # the result's tokens
    output: int             # every token it writes: the tool_use blocks and the result


@dataclass
class _Run:
    """The cache and the results as the run goes: per tier the cached prefixes, each by its last segment's key.

    A call sends the run's shared segments, then one step's own text, then that step's turns in order; so a
    segment's key (``("step", id, iteration)``, ``("turn", id, iteration, n)``) names the whole prefix up to it,
    and the cache need not hold the prefixes' tuples (issue 16: slicing and hashing them was most of the cost)."""

    sizes: Sizes
    pricing: Pricing
    agents: Mapping[str, Agent]
    cached: dict[str, set[Key]] = field(default_factory=dict)
    result_tokens: dict[str, int] = field(default_factory=dict)
    # Shared by the simulations of one estimate, by the step object (a hand-built workflow may repeat an id).
    facts: dict[int, _StepFacts] = field(default_factory=dict)
    shared: tuple[tuple[Key, int], ...] = field(init=False)  # every call's first segments, each at a breakpoint

    def __post_init__(self) -> None:
        s = self.sizes
        overview = ((("overview",), tokens_of(s.overview)),) if s.overview else ()
        self.shared = ((("fixed",), tokens_of(s.fixed)), *overview, (("context",), tokens_of(s.context)))

    def call(self, tier: str, segments: list[tuple[Key, int]], fixed_bps: int, seen: AbstractSet[Key]) -> Tokens:
        """One call's input split as the API bills it; `seen` is the tier's cache as this call finds it (read in
        full before this call caches anything)."""
        ends, total = [], 0
        for _, n in segments:
            total += n
            ends.append(total)
        read, last = 0, len(segments) - 1
        for i in range(last, -1, -1):
            if segments[i][0] in seen:
                read = ends[i]
                break
        written, end = 0, read
        minimum = self.pricing.min_cacheable.get(tier)
        if minimum is None:
            minimum = max(MIN_CACHEABLE_BY_TIER.values())
        cached = self.cached.setdefault(tier, set())
        for bp in (*range(min(fixed_bps, last)), last):
            if ends[bp] < minimum:
                continue  # below the model's minimum: the API writes nothing there
            if ends[bp] > end:
                written, end = written + ends[bp] - end, ends[bp]
            cached.add(segments[bp][0])
        return Tokens(total - read - written, written, read)

    def own_chars(self, step: Step, agent: Agent) -> int:
        """A step's own text and its result schema: what its prompt holds besides earlier results and feedback."""
        s = self.sizes
        own = (len(agent.name) * 2 + len(agent.prompt) + len(", ".join(agent.tools)) + len(step.title)
               + len(step.task) + len(step.output) + sum(len(c) + 3 for c in step.pass_criteria)
               + (0 if step.pass_criteria else NO_CRITERIA_CHARS)
               + (len(step.gate.focus) + len(step.gate.on_reject) + GATE_FRAME_CHARS if step.gate else 0)
               + sum(len(f.name) + len(f.text) + 4 for f in step.sets) + STEP_FRAME_CHARS)
        return own + s.schemas.get("analyze" if step.kind == "delegate" else step.kind, s.schema_default)

    def fed_chars(self, inputs: Iterable[str], feedback: str | None) -> int:
        """The earlier results a step gets, and the review that rejected its last attempt, each fenced."""
        earlier = sum(self.result_tokens.get(sid, 0) * CHARS_PER_TOKEN + FENCE_CHARS for sid in inputs)
        back = self.result_tokens.get(feedback, 0) * CHARS_PER_TOKEN + FENCE_CHARS if feedback else 0
        return earlier + back

    def step_chars(self, step: Step, agent: Agent, inputs: Iterable[str], feedback: str | None) -> int:
        return self.own_chars(step, agent) + self.fed_chars(inputs, feedback)

    def turns(self, step: Step) -> list[int]:
        """Files read per tool turn of `step` (an empty list: it answers at once)."""
        plan = [] if self.sizes.overview else [2]  # no overview: the root's listing and the README first
        reads = READS.get(step.kind, "named")
        if reads == "named":
            plan.append(min(MAX_FILES_READ, max(1, self.sizes.files_named)))
        elif reads == "changed":
            plan.append(CHANGED_FILES)
        return plan

    def output(self, step: Step) -> int:
        changed = CHANGED_FILES * tokens_of(self.sizes.file) if step.kind == "implement" else 0
        return RESULT_TOKENS + changed

    def facts_of(self, step: Step) -> _StepFacts:
        if (known := self.facts.get(id(step))) is not None:
            return known
        agent, plan, answer = self.agents[step.agent], self.turns(step), self.output(step)
        per_read = self.sizes.file + TOOL_RESULT_OVERHEAD_CHARS
        turns = tuple(TOOL_USE_TOKENS * reads + tokens_of(reads * per_read) for reads in plan)
        known = self.facts[id(step)] = _StepFacts(agent, self.own_chars(step, agent), turns, answer,
                                                 TOOL_USE_TOKENS * sum(plan) + answer)
        return known

    def price(self, tier: str, t: Tokens) -> float:
        p = self.pricing.prices[tier]
        return (t.input * p.input + t.cache_write * p.input * self.pricing.cache_write
                + t.cache_read * p.input * self.pricing.cache_read + t.output * p.output) / 1_000_000

    def step(self, step: Step, iteration: int, inputs: list[str], feedback: str | None,
             wave_cache: Mapping[str, AbstractSet[Key]]) -> StepEstimate:
        facts, bps = self.facts_of(step), len(self.shared)
        tier, segments = facts.agent.model, list(self.shared)
        segments.append((("step", step.id, iteration), tokens_of(facts.own_chars + self.fed_chars(inputs, feedback))))
        # The first call finds the cache as the wave found it; later turns come after the wave's first calls.
        spent = self.call(tier, segments, bps, wave_cache.get(tier, _NOTHING))
        uncached, written, read = spent.input, spent.cache_write, spent.cache_read
        for turn, tokens in enumerate(facts.turns):
            segments.append((("turn", step.id, iteration, turn), tokens))
            spent = self.call(tier, segments, bps, self.cached.get(tier, _NOTHING))
            uncached, written, read = uncached + spent.input, written + spent.cache_write, read + spent.cache_read
        total = Tokens(uncached, written, read, facts.output)
        self.result_tokens[step.id] = facts.answer
        return StepEstimate(step.id, facts.agent.name, tier, iteration, len(facts.turns) + 1, total,
                            round(self.price(tier, total), 6))


@dataclass(frozen=True)
class _Shape:
    """A workflow's waves and each step's upstream steps: worked out once for the several simulations of one
    estimate (each a graph walk per step, which the simulations would otherwise repeat)."""

    groups: tuple[tuple[str, ...], ...]
    upstream: Mapping[str, frozenset[str]]
    steps: Mapping[str, Step]

    @classmethod
    def of(cls, wf: Workflow) -> _Shape:
        # By id, the first step of an id winning as in Workflow.step (the catalog's check refuses a repeated id).
        return cls(wf.parallel_groups(), {s.id: wf.upstream(s.id) for s in wf.steps},
                   {s.id: s for s in reversed(wf.steps)})


def _loop(wf: Workflow, shape: _Shape, gate: str, back: str, active: set[str]) -> list[Step]:
    """The steps one rejection runs again: from the gate's on_reject step (`back`) through the gate, in order."""
    inside = shape.upstream[gate]
    return [s for s in wf.steps if s.id in active and (s.id in (back, gate)
                                                        or (back in shape.upstream[s.id] and s.id in inside))]


@dataclass(frozen=True)
class _Fork:
    """The expected case's run as it stood at the start of a wave. A simulation that differs from it only from that
    wave on starts there: one with a rejection from the first wave with a gate, one with a conditional step from
    that step's wave (no step of an earlier wave needs it). Issue 16: most of an estimate's simulations were
    replays of the same first waves."""

    wave: int
    cached: Mapping[str, AbstractSet[Key]]  # copied before use: a run adds to its own
    result_tokens: Mapping[str, int]
    steps: tuple[StepEstimate, ...]  # estimated before the wave


def _simulate(wf: Workflow, agents: Mapping[str, Agent], sizes: Sizes, pricing: Pricing, active: set[str],
              rejections: int, shape: _Shape | None = None, facts: dict[int, _StepFacts] | None = None,
              start: _Fork | None = None, forks: list[_Fork] | None = None) -> list[StepEstimate]:
    """The run's steps in order; from `start` on when given; into `forks` (when given) the run at each wave's
    start and at its end."""
    run = _Run(sizes, pricing, agents, facts={} if facts is None else facts)
    out: list[StepEstimate] = []
    shape = shape or _Shape.of(wf)
    if start is not None:
        run.cached = {tier: set(keys) for tier, keys in start.cached.items()}
        run.result_tokens, out = dict(start.result_tokens), list(start.steps)

    def inputs(step: Step) -> list[str]:
        return [sid for sid in shape.upstream[step.id] if sid in active]

    for w in range(start.wave if start else 0, len(shape.groups)):
        at_start = {tier: set(keys) for tier, keys in run.cached.items()}
        if forks is not None:
            forks.append(_Fork(w, at_start, dict(run.result_tokens), tuple(out)))
        steps = [shape.steps[sid] for sid in shape.groups[w] if sid in active]
        for step in steps:
            out.append(run.step(step, 1, inputs(step), None, at_start))
        for gate in steps:
            back = gate.gate.on_reject if gate.gate is not None else None
            for n in range(rejections if back is not None else 0):
                for again in _loop(wf, shape, gate.id, back or "", active):
                    # The retry of the rejected step carries the review that rejected it.
                    snapshot = {tier: set(keys) for tier, keys in run.cached.items()}
                    out.append(run.step(again, n + 2, inputs(again), gate.id if again.id == back else None,
                                        snapshot))
    if forks is not None:  # the run as it ended: not copied, as it is done; a simulation from it copies it
        forks.append(_Fork(len(shape.groups), run.cached, run.result_tokens, tuple(out)))
    return out


def _sum(steps: Iterable[StepEstimate]) -> tuple[Tokens, float]:
    steps = list(steps)
    tokens = Tokens(sum(s.tokens.input for s in steps), sum(s.tokens.cache_write for s in steps),
                    sum(s.tokens.cache_read for s in steps), sum(s.tokens.output for s in steps))
    return tokens, round(sum(s.cost_usd for s in steps), 6)


@functools.lru_cache(maxsize=64)
def _known_shape(wf: Workflow) -> _Shape:
    return _Shape.of(wf)


def _shape(wf: Workflow) -> _Shape:
    """A workflow's shape, once a process (issue 16): the catalog's workflows are the same objects run after run,
    and hashing one (some 2 µs) costs far less than its graph walks (some 30)."""
    try:
        return _known_shape(wf)
    except TypeError:  # built by hand with a list where a tuple belongs: not hashable, but as good to estimate
        return _Shape.of(wf)


def estimate(wf: Workflow, agents: Mapping[str, Agent], sizes: Sizes, pricing: Pricing) -> Estimate:
    """The run of `wf` as the bot would make it, before it starts: see the module's doc."""
    expected, shape = {s.id for s in wf.steps if s.when is None}, _shape(wf)
    facts: dict[int, _StepFacts] = {}
    forks: list[_Fork] = []
    steps = _simulate(wf, agents, sizes, pricing, expected, 0, shape, facts, forks=forks)
    tokens, cost = _sum(steps)
    # The waves before the first gate (or a conditional step) run as in the expected case: start after them.
    # No gate: start at the last fork, the expected run as it ended (no rejection to add).
    wave_of = {sid: w for w, wave in enumerate(shape.groups) for sid in wave}
    gated = min((wave_of[s.id] for s in wf.steps if s.id in expected and s.gate is not None), default=len(forks) - 1)
    again = _simulate(wf, agents, sizes, pricing, expected, 1, shape, facts, start=forks[gated])
    again_tokens, again_cost = _sum(again)
    conditional = {s.id: round(_sum(_simulate(wf, agents, sizes, pricing, expected | {s.id}, 0, shape, facts,
                                              start=forks[wave_of[s.id]]))[1] - cost, 6)
                   for s in wf.steps if s.when is not None}
    named = min(MAX_FILES_READ, max(1, sizes.files_named))
    assumptions = (
        f"{CHARS_PER_TOKEN} characters a token",
        f"prompt cache shared per tier within the run (tools, system prompt, "
        f"{'overview, ' if sizes.overview else 'no overview, '}issue); every call of a tier within 5 minutes "
        "of its last",
        f"each code step reads {named} file(s) of about {tokens_of(sizes.file):,} tokens in one turn; a review "
        f"reads {CHANGED_FILES}; triage and approval read none",
        f"each result about {RESULT_TOKENS} tokens; an implementation adds {CHANGED_FILES} changed file in full",
        "no rejection, no invalid result to correct; conditional steps not run: "
        + (", ".join(sorted(conditional)) or "none"),
    )
    return Estimate(wf.name, tuple(steps), tokens, cost, tuple(s for s in again if s.iteration > 1),
                    again_tokens - tokens, round(again_cost - cost, 6), conditional, assumptions)
