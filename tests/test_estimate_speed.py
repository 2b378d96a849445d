"""The estimate made faster (issue 16: CPU per run) gives the same Estimate, to the last bit, as the one it replaced:
digests of the estimates of every shipped workflow (and a few made-up ones with two gates) over a grid of sizes,
agents' tiers and cache minimums, recorded with the code before the change.

The fixture was recorded with `python -m tests.test_estimate_speed --record` on the code before the change
(20c4260's bot/core/estimate.py); re-record it only when an estimate is meant to change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from bot.agents import models
from bot.core import estimate as E
from bot.core.catalog import load_catalog
from bot.core.workflow import Agent, Gate, Step, When, Workflow

FIXTURE = Path(__file__).parent / "fixtures" / "estimate_digests.json"

# Sizes in characters, around the tiers' minimum cacheable prefixes (2,048 and 4,096 tokens: 8 and 16 thousand
# characters), so that some shared prefixes and some steps fall below a minimum and some above.
OVERVIEWS = (0, 3_000, 24_000)
CONTEXTS = (300, 2_000, 12_000)
FILES = (500, 8_000, 20_000)
NAMED = (0, 1, 5)


# The tools, system prompt and result schemas as sized at 20c4260 (sizing._fixed()), written out so that a change to
# a prompt does not read as a change to the estimate's arithmetic.
FIXED = 4_514
SCHEMAS = {"triage": 2_512, "analyze": 2_103, "implement": 2_388, "review": 3_259, "approval": 2_200,
           "validate": 2_103, "context": 2_762}


def _sizes() -> Iterator[E.Sizes]:
    fixed, schemas = FIXED, SCHEMAS
    for overview, context, file, named in itertools.product(OVERVIEWS, CONTEXTS, FILES, NAMED):
        yield E.Sizes(fixed, overview, context, file, named, dict(schemas))
    # Without the schemas (each kind at schema_default) and with small tools: the shared prefix below every minimum.
    for overview, named in itertools.product(OVERVIEWS, NAMED):
        yield E.Sizes(1_000, overview, 300, 4_000, named)


def _made_up(agents: Mapping[str, Agent]) -> list[Workflow]:
    """Shapes the catalog lacks: two gates in one wave sending back to one step (that step's retry runs twice in
    the rejection's simulation), one gate's loop inside another's, a conditional step inside a loop."""
    a, b = sorted(agents)[:2]

    def step(sid: str, kind: str = "analyze", needs: tuple[str, ...] = (), **kw: object) -> Step:
        return Step(sid, sid.upper(), a if len(sid) % 2 else b, kind, f"Do {sid}.", "A result.", needs=needs,
                    **kw)  # type: ignore[arg-type]

    def flow(name: str, *steps: Step) -> Workflow:
        return Workflow(name, name, "p", "", "t", "a", (), 3, steps)

    return [
        flow("two-gates-one-wave", step("design"), step("impl", "implement", ("design",)),
             step("review", "review", ("impl",), gate=Gate("impl", "quality")),
             step("check", "validate", ("impl",), gate=Gate("impl", "tests")),
             step("approval", "approval", ("review", "check"))),
        flow("nested-loops", step("design"), step("impl", "implement", ("design",)),
             step("review", "review", ("impl",), gate=Gate("impl", "quality")),
             step("fix", "implement", ("review",)),
             step("final", "review", ("fix",), gate=Gate("design", "scope"), pass_criteria=("passes", "is small"))),
        flow("conditional-in-loop", step("triage", "triage"),
             step("deep", "analyze", ("triage",), when=When("hard", "triage", "if hard")),
             step("impl", "implement", ("triage", "deep")),
             step("review", "review", ("impl",), gate=Gate("triage", "quality")),
             step("ok", "approval", ("review",))),
        # A conditional step in the first gate's wave: its simulation and the rejection's start from one fork, so
        # each must copy the fork's cache rather than add to it (found by review: an alias passed the rest).
        flow("conditional-beside-gate", step("a"), step("b", "review", ("a",), gate=Gate("a", "quality")),
             step("c", "analyze", ("a",), when=When("deep", "a", "if deep")), step("d", "approval", ("b", "c"))),
        # An id given twice (the catalog's check refuses it; a hand-built workflow may not): the first step of an id
        # is the one simulated, as Workflow.step finds it, and each step keeps its own sizes (found by review).
        flow("repeated-id", step("a"), step("a", "implement"), step("r", "review", ("a",), gate=Gate("a", "q"))),
    ]


def _variants() -> Iterator[tuple[str, Mapping[str, Agent], E.Pricing]]:
    """The shipped agents and prices, then every agent on one tier (more reads across steps), then cache minimums
    of another model map (a tier the mapping lacks takes the largest minimum)."""
    agents = load_catalog().agents
    pricing = E.Pricing(models.DEFAULT_PRICES, models.CACHE_WRITE_FACTOR, models.CACHE_READ_FACTOR)
    yield "shipped", agents, pricing
    for tier in ("sonnet", "opus"):
        yield f"all-{tier}", {k: dataclasses.replace(v, model=tier) for k, v in agents.items()}, pricing
    yield "other-minimums", agents, dataclasses.replace(pricing, min_cacheable={"opus": 1_024, "sonnet": 8_192})


def _digest(estimates: list[E.Estimate]) -> str:
    # JSON writes a float as its shortest repr: equal text, equal bits.
    text = json.dumps([dataclasses.asdict(e) for e in estimates], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def digests() -> dict[str, str]:
    """workflow|variant -> the digest of its estimates over the sizes grid."""
    sizes, out = list(_sizes()), {}
    for variant, agents, pricing in _variants():
        for wf in [*load_catalog().workflows.values(), *_made_up(agents)]:
            out[f"{wf.name}|{variant}"] = _digest([E.estimate(wf, agents, s, pricing) for s in sizes])
    return out


def test_the_estimates_are_the_ones_recorded_before_the_speed_up() -> None:
    recorded = json.loads(FIXTURE.read_text())
    now = digests()
    assert now.keys() == recorded.keys()
    # A change to the shipped agents' prompts, the prices or a workflow changes these too: then re-record
    # (``python -m tests.test_estimate_speed --record``) in the same commit, saying why.
    assert [k for k in now if now[k] != recorded[k]] == [], "estimates changed: see the comment above"


def test_a_workflow_that_cannot_be_hashed_is_estimated_all_the_same() -> None:
    """The shapes are kept by workflow (hashed); one built with a list where a tuple belongs is worked out afresh."""
    catalog = load_catalog()
    wf = catalog.workflows["backend-feature"]
    unhashable = dataclasses.replace(wf, steps=tuple(dataclasses.replace(s, needs=list(s.needs))  # type: ignore[arg-type]
                                                     for s in wf.steps))
    sizes = next(_sizes())
    pricing = E.Pricing(models.DEFAULT_PRICES, models.CACHE_WRITE_FACTOR, models.CACHE_READ_FACTOR)
    assert E.estimate(unhashable, catalog.agents, sizes, pricing) == E.estimate(wf, catalog.agents, sizes, pricing)


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    FIXTURE.write_text(json.dumps(digests(), indent=1, sort_keys=True) + "\n")
