"""The cost estimate made before a run (bot/core/estimate.py): its structure, on small made-up workflows."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from bot.agents import models, prompts
from bot.agents.request import AgentRequest, RepoContext
from bot.core import estimate as E
from bot.core.catalog import load_catalog
from bot.core.workflow import Agent, Gate, Step, When, Workflow
from tests.test_workflows_e2e import REPO, bot, fake, issue_payload, send, team  # noqa: F401

PRICING = E.Pricing(models.DEFAULT_PRICES, models.CACHE_WRITE_FACTOR, models.CACHE_READ_FACTOR)
# A repository of some size: overview and issue well above every tier's minimum cacheable prefix together.
SIZES = E.Sizes(fixed=4_300, overview=24_000, context=2_000, file=8_000, files_named=2)


def agent(name: str, tier: str) -> Agent:
    return Agent(name, "an agent", tier, ("read_file",), "Specialist", "You do the work. " * 40, f"{name}.md")


AGENTS = {"a-sonnet": agent("a-sonnet", "sonnet"), "b-sonnet": agent("b-sonnet", "sonnet"),
          "an-opus": agent("an-opus", "opus"), "a-haiku": agent("a-haiku", "haiku")}


def step(sid: str, who: str = "a-sonnet", kind: str = "analyze", needs: tuple[str, ...] = (), **kw: object) -> Step:
    return Step(sid, sid.upper(), who, kind, "Do the task.", "A result.", needs=needs, **kw)  # type: ignore[arg-type]


def flow(*steps: Step) -> Workflow:
    return Workflow("wf", "WF", "p", "", "t", "a", (), 3, steps)


def run(wf: Workflow, sizes: E.Sizes = SIZES) -> E.Estimate:
    return E.estimate(wf, AGENTS, sizes, PRICING)


def test_more_steps_cost_more() -> None:
    two = run(flow(step("a"), step("b", needs=("a",))))
    three = run(flow(step("a"), step("b", needs=("a",)), step("c", needs=("b",))))
    assert len(three.steps) == 3 and three.cost_usd > two.cost_usd > 0
    assert three.tokens.total > two.tokens.total
    assert three.cost_usd == pytest.approx(sum(s.cost_usd for s in three.steps), abs=1e-5)


def test_an_opus_step_costs_more_than_the_same_on_haiku() -> None:
    opus, haiku = run(flow(step("a", "an-opus"))), run(flow(step("a", "a-haiku")))
    assert opus.tokens == haiku.tokens  # same prompt, same minimum cacheable length (4,096 for both)
    assert opus.cost_usd == pytest.approx(5 * haiku.cost_usd, rel=1e-3)  # $5 against $1 per million in
    assert opus.steps[0].tier == "opus" and haiku.steps[0].tier == "haiku"


def test_a_larger_overview_raises_the_input() -> None:
    wf = flow(step("a"), step("b", needs=("a",)))
    small, large = run(wf), run(wf, dataclasses.replace(SIZES, overview=SIZES.overview * 3))
    grown = large.tokens - small.tokens
    # The first call writes the overview once, every later call reads it: 4 calls in all.
    assert grown.cache_write == E.tokens_of(SIZES.overview * 2)
    assert grown.cache_read == 3 * E.tokens_of(SIZES.overview * 2)
    assert grown.output == 0 and large.cost_usd > small.cost_usd


def test_later_calls_of_a_tier_read_its_prefix_and_another_tier_writes_its_own() -> None:
    est = run(flow(step("a"), step("b", "b-sonnet", needs=("a",)), step("c", "an-opus", needs=("b",))))
    a, b, c = est.steps
    shared = E.tokens_of(SIZES.fixed) + E.tokens_of(SIZES.overview) + E.tokens_of(SIZES.context)
    # a: the tier's first call writes the shared prefix, its second call reads it (with a's own text).
    assert a.tokens.cache_write > shared and shared < a.tokens.cache_read < a.tokens.cache_write
    # b, another agent of the same tier: reads the shared prefix in both its calls and writes only its own text and
    # turn (its text is longer than a's by a's result, which it gets as input).
    assert a.tokens.cache_write - b.tokens.cache_write > shared - E.RESULT_TOKENS - E.tokens_of(2 * E.FENCE_CHARS)
    assert b.tokens.cache_read > a.tokens.cache_read + shared - E.tokens_of(E.FENCE_CHARS)
    # c: the first opus call writes the shared prefix again (a cache entry belongs to one model).
    assert c.tokens.cache_write > shared
    assert all(s.tokens.input == 0 for s in est.steps)  # the moving breakpoint leaves nothing uncached


def test_a_step_reads_its_own_earlier_turns() -> None:
    one = run(flow(step("a", kind="approval")))  # answers at once: one call
    two = run(flow(step("a", kind="analyze")))  # one turn of reads, then the answer
    assert (one.steps[0].calls, two.steps[0].calls) == (1, 2)
    assert one.steps[0].tokens.cache_read == 0  # a cold cache, one call: nothing to read
    # Both prompts are the same size (same fields, same schema size), so the analysis's first call writes what the
    # approval's one call does; its second call reads all of that and writes the turn: the tool_use blocks and the
    # files read.
    reads = SIZES.files_named
    turn = E.TOOL_USE_TOKENS * reads + E.tokens_of(reads * (SIZES.file + E.TOOL_RESULT_OVERHEAD_CHARS))
    assert two.steps[0].tokens.cache_read == one.steps[0].tokens.cache_write
    assert two.steps[0].tokens.cache_write == one.steps[0].tokens.cache_write + turn


def test_steps_of_one_wave_do_not_read_each_others_writes() -> None:
    apart = run(flow(step("a"), step("b", "b-sonnet", needs=("a",))))
    together = run(flow(step("a"), step("b", "b-sonnet")))
    assert together.cost_usd > apart.cost_usd  # both first calls write the shared prefix
    assert together.steps[1].tokens.cache_write > apart.steps[1].tokens.cache_write


def test_below_the_minimum_cacheable_length_nothing_is_cached() -> None:
    tiny = E.Sizes(fixed=400, overview=0, context=400, file=400, files_named=1, schemas={"approval": 400})
    est = run(flow(step("a", "an-opus", kind="approval")), tiny)  # ~1,000 tokens, opus caches from 4,096
    assert est.tokens.cache_write == est.tokens.cache_read == 0 and est.tokens.input > 0


def test_one_rejection_adds_the_loop_from_on_reject_to_the_gate() -> None:
    gated = flow(step("design"), step("impl", kind="implement", needs=("design",)),
                 step("review", "b-sonnet", kind="review", needs=("impl",), gate=Gate("impl", "quality")),
                 step("approval", kind="approval", needs=("review",)))
    est = run(gated)
    assert [(s.step, s.iteration) for s in est.rejection_steps] == [("impl", 2), ("review", 2)]
    assert est.rejection_usd == pytest.approx(sum(s.cost_usd for s in est.rejection_steps), abs=1e-5)
    assert 0 < est.rejection_usd < est.cost_usd
    assert est.cost_with(rejections=2) == pytest.approx(est.cost_usd + 2 * est.rejection_usd)
    assert est.tokens_with(1) == est.tokens + est.rejection_tokens
    # The retry's own text carries the review that rejected it: more than the first attempt's.
    first = next(s for s in est.steps if s.step == "impl")
    assert est.rejection_steps[0].tokens.cache_write > first.tokens.cache_write
    assert "each rejection adds about $" in est.sentence()
    ungated = run(flow(*(dataclasses.replace(s, gate=None) for s in gated.steps)))
    assert ungated.rejection_usd == 0 and ungated.rejection_steps == ()


def test_a_conditional_step_is_not_in_the_expected_case_but_priced_beside_it() -> None:
    when = When("big", "a", "if big")
    est = run(flow(step("a"), step("b", "an-opus", needs=("a",), when=when), step("c", needs=("a", "b"))))
    assert [s.step for s in est.steps] == ["a", "c"]
    assert est.conditional_usd["b"] > 0
    assert est.cost_with(steps=["b"]) == pytest.approx(est.cost_usd + est.conditional_usd["b"])
    assert "conditional steps not run: b" in est.assumptions[-1]


def test_the_step_frame_matches_the_prompt_the_runtime_builds() -> None:
    """STEP_FRAME_CHARS and its kin stand for the fixed text of prompts.role_text and step_text: for every shipped
    step, the estimator's size of a step's own text is within 30 characters of what the runtime builds."""
    catalog = load_catalog()
    ctx = RepoContext("o/r", 1, False, "a" * 40, "main", "t", "b")
    sim = E._Run(SIZES, PRICING, catalog.agents)
    for wf in catalog.workflows.values():
        for st in wf.steps:
            ag = catalog.agents[st.agent]
            request = AgentRequest(run_id="r" * 36, step_id=st.id, iteration=1, agent=ag, step=st, task=st.task,
                                   inputs={}, feedback=None, context=ctx,
                                   flags_wanted={f.name: f.text for f in st.sets})
            built = len(prompts.role_text(request) + "\n\n"
                        + prompts.step_text(request, [] if st.kind == "review" else None))
            assert abs(sim.step_chars(st, ag, [], None) - SIZES.schema_default - built) <= 30, (wf.name, st.id)


def test_the_files_an_issue_names_and_their_size() -> None:
    paths = ["bot/run/executor.py", "README.md", "docs/x.md"]
    text = "See `bot/run/executor.py` and README.md. Not bot/run/other.py."
    assert E.named_files(text, paths) == ["bot/run/executor.py", "README.md"]
    assert E.read_chars({"bot/run/executor.py": 50_000, "README.md": 2_000, "docs/x.md": 10},
                        ["bot/run/executor.py", "README.md"]) == 11_000  # each cut at the read tool's 20,000
    assert E.read_chars({"a": 100, "b": 300}, []) == 200  # none named: any file's mean


def test_the_estimate_says_what_it_assumed() -> None:
    est = run(flow(step("a")))
    assert est.sentence().startswith(f"about ${est.cost_usd:.2f} (estimate)")
    assert any("reads 2 file(s)" in a for a in est.assumptions)
    assert any(f"{E.RESULT_TOKENS} tokens" in a for a in est.assumptions)


@pytest.mark.parametrize("sizes", [SIZES, dataclasses.replace(SIZES, overview=0, file=1_000),
                                   dataclasses.replace(SIZES, overview=8_000, file=3_000)],
                         ids=["large", "no-overview", "small-overview"])
def test_the_cache_model_splits_each_call_as_the_api_rules_do(monkeypatch: pytest.MonkeyPatch, sizes: E.Sizes) -> None:
    """Every call the estimate makes for the shipped workflows (one rejection included), replayed as blocks of the
    same sizes against the sandbox's implementation of the API's caching rules (breakpoints, each model's minimum,
    exact prefixes per model): the same read, written and uncached tokens, call by call. The smaller repositories put
    breakpoints between the tiers' minimums (2,048 and 4,096)."""
    from bot.sandbox.anthropic.cache import Block, PromptCache

    calls: list[tuple[str, list[tuple[E.Key, int]], int, E.Tokens]] = []
    real_call = E._Run.call

    def recorded(self: E._Run, tier: str, segments: list[tuple[E.Key, int]], fixed_bps: int, seen: set) -> E.Tokens:
        spent = real_call(self, tier, segments, fixed_bps, seen)
        calls.append((tier, list(segments), fixed_bps, spent))
        return spent

    def block(key: E.Key, tokens: int, marked: bool, kind: str) -> Block:
        text = (repr(key) * (tokens * 4 // len(repr(key)) + 1))[:tokens * 4 - 25]  # 25: the block's JSON around it
        return Block(kind, {"type": "text", "text": text}, {"type": "ephemeral"} if marked else None)

    monkeypatch.setattr(E._Run, "call", recorded)
    catalog = load_catalog()
    for wf in catalog.workflows.values():
        calls.clear()
        expected = {s.id for s in wf.steps if s.when is None}
        E._simulate(wf, catalog.agents, sizes, PRICING, expected, 1)
        cache = PromptCache()
        for tier, segments, fixed_bps, spent in calls:
            last = len(segments) - 1
            blocks = [block(key, n, i < fixed_bps or i == last, "system" if i == 0 else "user")
                      for i, (key, n) in enumerate(segments)]
            usage = cache.usage("key", {"model": models.DEFAULT_MODELS[tier]}, blocks, lambda: 0.0, None)
            assert (usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"], usage["input_tokens"]) \
                == (spent.cache_read, spent.cache_write, spent.input), (wf.name, segments[-1][0])
        assert len(calls) >= len(expected)


def test_without_an_overview_each_step_first_looks_around() -> None:
    wf = flow(step("a", kind="approval"), step("b", needs=("a",)))
    with_it, without = run(wf), run(wf, dataclasses.replace(SIZES, overview=0))
    assert [s.calls for s in with_it.steps] == [1, 2] and [s.calls for s in without.steps] == [2, 3]
    assert "no overview" in without.assumptions[1]


# ---- in the status comment, before anything is spent -------------------------------------------------

async def test_a_runs_status_comment_says_what_it_will_cost_before_the_first_step(bot: Any, sandbox: Any,
                                                                                 team: Any) -> None:
    """Through the webhook with a model configured: the status comment carries the estimate made before any
    model call; offline (no model, nothing billed) it has none, as the replay goldens show."""
    await send(bot, sandbox, "issues", issue_payload(95, ["api"], title="Add an endpoint"))
    status = next(c["body"] for c in sandbox.comments(REPO, 95) if "triage-lead:status:" in c["body"])
    found = re.search(r"\*\*Cost:\*\* about \$(\d+\.\d\d) \(estimate\), each rejection adds about \$(\d+\.\d\d)\.",
                      status)
    assert found and float(found.group(1)) > 0 and float(found.group(2)) > 0, status[:600]


def test_web_searches_are_in_the_estimate_only_where_an_agent_may_search() -> None:
    """With the operator's web search on, a workflow with search-specialist is estimated with its whole cap of
    searches (as the budgets reserve them): their price and their results' tokens; other workflows unchanged."""
    from bot.agents import models, sizing
    from bot.agents.request import RepoContext
    from bot.core.catalog import load_catalog

    catalog = load_catalog()
    ctx = RepoContext(repo="o/r", number=1, is_pull_request=False, head_sha=None, default_branch="main",
                      title="Integrate the Stripe API", body="")
    research = next(wf for wf in catalog.workflows.values() if any(s.agent == "search-specialist" for s in wf.steps))
    other = next(wf for wf in catalog.workflows.values() if all(s.agent != "search-specialist" for s in wf.steps))
    for wf, searched in ((research, True), (other, False)):
        off = sizing.estimate(wf, catalog.agents, "o/r", None, ctx)
        on = sizing.estimate(wf, catalog.agents, "o/r", None, ctx, web_searches=5)
        assert (on.cost_usd - off.cost_usd >= 5 * models.WEB_SEARCH_USD) is searched
        assert (on.tokens.total - off.tokens.total >= 5 * models.SEARCH_RESULT_TOKENS) is searched
