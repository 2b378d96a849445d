"""Shared fixtures for the agent tests (FakeAnthropic + SandboxGitHub over HTTP), and the model map's tests.

Other ``test_agents_*`` modules import the fixtures from here, so there is one of each fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import anthropic
import pytest

from bot.agents import AgentRequest, AgentRuntime, Budget, ModelMap, RepoContext, Usage
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
    total = u + Usage(input_tokens=5, calls=1)
    assert total.calls == 2 and total.input_tokens == 1_000_005 and total.tokens == 4_000_005


def test_budget_sentences() -> None:
    b = Budget(run_tokens=100, day_tokens=1000, run_used=90, day_used=0)
    assert b.exceeded() is None
    b.add(20)
    assert b.exceeded() == ("token budget reached: this run has used 110 of its 100 tokens, so no further "
                            "model calls are made for it.")
    assert "installation has used 2,000 of its 1,000" in Budget(day_tokens=1000, day_used=2000).exceeded()
