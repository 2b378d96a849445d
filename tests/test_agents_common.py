"""Shared fixtures for the agent tests (FakeAnthropic + SandboxGitHub over HTTP), and the model map's tests.

Other ``test_agents_*`` modules import the fixtures from here, so there is one of each fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import anthropic
import pytest

from bot.agents import AgentRequest, AgentRuntime, Budget, ModelMap, RepoContext, Usage, prompts
from bot.agents.request import RepoOverview
from bot.agents.schemas import result_schema
from bot.agents.tools import OverviewCache, RepoReader
from bot.core.catalog import load_catalog
from bot.github.client import GitHub, GitHubApp
from bot.sandbox.anthropic import FakeAnthropic
from bot.settings import Settings
from tests.conftest import INSTALLATION

KEY = "sk-test-agents"
REPO = "Codertocat/Hello-World"
CATALOG = load_catalog()


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    server = FakeAnthropic(api_key=KEY)
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def claude(fake: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(base_url=fake.url, api_key=KEY, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def gh(sandbox: Any, settings: Settings) -> AsyncIterator[GitHub]:
    """An installation client on the sandbox, with the test repository seeded."""
    sandbox.add_repo(REPO, installation_id=INSTALLATION)
    async with aiohttp.ClientSession() as session:
        yield await GitHubApp(settings, session, max_wait=1.0, backoff=0.01).installation(INSTALLATION)


def make_runtime(gh: GitHub, claude: anthropic.AsyncAnthropic | None, *, budget: Budget | None = None,
                 models: ModelMap | None = None, **kw: Any) -> AgentRuntime:
    kw.setdefault("retry_base", 0.01)
    return AgentRuntime(gh=gh, anthropic=claude, models=models or ModelMap(), budget=budget or Budget(), **kw)


def context(number: int | None = 1, *, title: str = "Something is wrong", body: str = "", pr: bool = False,
            ci: dict | None = None, head_sha: str | None = None) -> RepoContext:
    return RepoContext(repo=REPO, number=number, is_pull_request=pr, head_sha=head_sha, default_branch="main",
                       title=title, body=body, ci=ci)


def make_request(workflow: str, step_id: str, ctx: RepoContext, *, agent: str | None = None,
                 inputs: Mapping[str, dict] | None = None, feedback: dict | None = None,
                 iteration: int = 1) -> AgentRequest:
    """A request for a real catalog step, as the engine would build it."""
    step = CATALOG.workflows[workflow].step(step_id)
    return AgentRequest(run_id="run-1", step_id=step_id, iteration=iteration,
                        agent=CATALOG.agents[agent or step.agent], step=step, task=step.task,
                        inputs=inputs or {}, feedback=feedback, context=ctx,
                        flags_wanted={f.name: f.text for f in step.sets})


def common(**over: Any) -> dict[str, Any]:
    return {"summary": "Done.", "passed": True, "criteria": [], "flags": {}, "escalate": None, **over}


def analyze(**over: Any) -> dict[str, Any]:
    return common(**{"findings": ["src/app.py:2 divides by zero"], **over})


def review(verdict: str = "APPROVED", **over: Any) -> dict[str, Any]:
    return common(**{"verdict": verdict, "critical": [], "warnings": [], "suggestions": [], "tech_debt": [], **over})


# ---------------------------------------------------------------- the model map and usage

def test_tier_to_model_defaults_and_overrides() -> None:
    models = ModelMap()
    assert [models.model_for(t) for t in ("opus", "sonnet", "haiku")] == [
        "claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5"]
    repo = models.with_overrides({"sonnet": "claude-sonnet-4-5"})
    assert repo.model_for("sonnet") == "claude-sonnet-4-5" and repo.model_for("opus") == "claude-opus-4-6"
    with pytest.raises(ValueError, match="unknown model tier"):
        ModelMap({"gpt": "x"})


def test_usage_adds_and_prices_cache() -> None:
    class Raw:
        input_tokens, output_tokens = 1_000_000, 1_000_000
        cache_read_input_tokens, cache_creation_input_tokens = 1_000_000, 1_000_000

    u = ModelMap().usage("sonnet", Raw())
    assert u.cost_usd == pytest.approx(3 + 15 + 3 * 1.25 + 3 * 0.1)

    class Hour(Raw):
        class cache_creation:  # noqa: N801  (the SDK's attribute name)
            ephemeral_1h_input_tokens = 400_000

    assert ModelMap().usage("sonnet", Hour()).cost_usd == pytest.approx(3 + 15 + 3 * (0.6 * 1.25 + 0.4 * 2) + 0.3)
    total = u + Usage(input_tokens=5, calls=1)
    assert total.calls == 2 and total.input_tokens == 1_000_005 and total.tokens == 4_000_005


def test_budget_sentences() -> None:
    b = Budget(run_tokens=100, day_tokens=1000, run_used=90, day_used=0)
    assert b.exceeded() is None
    b.add(20)
    assert b.exceeded() == ("token budget reached: this run has used 110 of its 100 tokens, so no further "
                            "model calls are made for it.")
    said = Budget(day_tokens=1000, day_used=2000).exceeded()
    assert said is not None and "installation has used 2,000 of its 1,000" in said


# ---------------------------------------------------------------- the prompt's cached layout

OVERVIEW = RepoOverview(commit="c" * 40, paths=("README.md", "bot/app.py", ".github/CONTRIBUTING.md"),
                        readme=("README.md", "# Hello"), contributing=(".github/CONTRIBUTING.md", "Be kind."))


def texts(message: dict[str, Any]) -> list[str]:
    return [b["text"] for b in message["content"]]


def test_every_step_of_a_run_shares_the_overview_and_context_and_runs_at_a_commit_share_the_overview() -> None:
    ctx = context(7, title="Timeouts on upload", body="It fails")
    steps = [make_request("backend-feature", "triage", ctx),
             make_request("backend-feature", "review", ctx, iteration=2, feedback=review("REJECTED"))]
    firsts = [prompts.first_message(r, None, OVERVIEW, result_schema(r.step.kind, r.flags_wanted)) for r in steps]
    assert [[b.get("cache_control") for b in m["content"]] for m in firsts] == [[prompts.EPHEMERAL] * 2 + [None]] * 2
    assert texts(firsts[0])[:2] == texts(firsts[1])[:2]  # nothing of a step above the breakpoints
    assert texts(firsts[0])[2] != texts(firsts[1])[2] and '"verdict"' in texts(firsts[1])[2]
    other = prompts.first_message(make_request("backend-feature", "triage", context(8, title="Other")), None, OVERVIEW)
    assert texts(other)[0] == texts(firsts[0])[0] and texts(other)[1] != texts(firsts[0])[1]
    assert "Be kind." in texts(other)[0] and "Timeouts" not in texts(firsts[0])[0]
    base = prompts.base("claude-sonnet-4-6", 100, [{"name": "read_file"}])
    assert all("cache_control" not in t for t in base["tools"]) and "output_config" not in base


def test_a_large_tree_is_summarised_by_directory_within_its_budget() -> None:
    paths = tuple(f"src/pkg{i}/module_{j}.py" for i in range(40) for j in range(50)) + ("README.md",)
    text = prompts.tree_text(paths, 4_000)
    assert len(text.encode()) <= 4_000 and "README.md" in text and "src/pkg7/ (50 files)" in text
    assert prompts.tree_text(paths[:3]) == "\n".join(paths[:3])


async def test_the_overview_is_read_once_per_commit_and_a_failure_leaves_the_step_without_it(gh: GitHub,
                                                                                              sandbox: Any) -> None:
    sandbox.set_file(REPO, "README.md", "# Hello\n")
    sha = sandbox.set_file(REPO, ".github/CONTRIBUTING.md", "Be kind.")
    cache, reader = OverviewCache(), RepoReader(gh, REPO)
    first = await cache.get(reader, sha, "main")
    assert first is not None and first.readme == ("README.md", "# Hello\n") and first.commit == sha
    assert first.contributing == (".github/CONTRIBUTING.md", "Be kind.") and "bot" not in first.paths
    reads = len(sandbox.requests)
    assert await cache.get(reader, sha, "main") is first and len(sandbox.requests) == reads
    await cache.get(reader, None, "main")
    await cache.get(reader, None, "main")
    assert len(sandbox.requests) == reads + 6  # a branch moves: read each time (tree, README, CONTRIBUTING)
    sandbox.fail("GET", r".*/git/trees/.*", 500, times=-1)
    assert await OverviewCache().get(reader, sha, "main") is None


async def test_runs_at_one_commit_wait_for_one_overview_read_and_a_huge_tree_is_cut(gh: GitHub, sandbox: Any) -> None:
    import asyncio

    from bot.agents import tools

    sandbox.set_file(REPO, "README.md", "# Hello\n")
    sha = sandbox.set_file(REPO, "app.py", "print(1)\n")
    cache, reader = OverviewCache(), RepoReader(gh, REPO)
    got = await asyncio.gather(*(cache.get(reader, sha, "main") for _ in range(20)))
    assert all(g is got[0] and g is not None for g in got)
    assert len([r for r in sandbox.requests if "/git/trees/" in r.path]) == 1
    small = tools.MAX_OVERVIEW_PATHS
    try:
        tools.MAX_OVERVIEW_PATHS = 1  # the repository holds more than one file
        cut = await OverviewCache().get(reader, sha, "main")
    finally:
        tools.MAX_OVERVIEW_PATHS = small
    assert cut is not None and len(cut.paths) == 1 and cut.truncated

