"""Ready to work (issue 16): the agent side is imported on threads, never on the event loop, and a delivery that
needs no model (the "which workflow?" question) is answered without waiting for the anthropic SDK.

A slow import is a stub of ``importlib.import_module`` that holds one module until the test releases it: the
tests wait on events, never on timers. The launch-to-first-delivery figure is ``benchmarks/startup.py``'s."""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.run.runtime import Runtime
from bot.settings import Settings
from tests.conftest import ROOT, post_webhook
from tests.test_workflows_e2e import REPO, issue_payload

REAL_IMPORT = importlib.import_module


class SlowImport:
    """``importlib.import_module`` that holds the import of ``name`` until ``release`` is set."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: list[threading.Thread] = []

    def __call__(self, name: str, package: str | None = None) -> Any:
        if name == self.name:
            self.threads.append(threading.current_thread())
            self.entered.set()
            self.release.wait(60)  # a bound only so a failing test cannot hang the suite
        return REAL_IMPORT(name, package)


@asynccontextmanager
async def serving(
    settings: Settings, slow: SlowImport, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Runtime, TestClient]]:
    monkeypatch.setattr(importlib, "import_module", slow)
    rt = await Runtime(settings, github_max_wait=5.0, github_backoff=0.01).start()
    client = TestClient(TestServer(rt.web_app()))
    await client.start_server()
    try:
        yield rt, client
    finally:
        slow.release.set()  # before closing: the executor's thread must be free to end
        await client.close()
        await rt.close()


def which_workflow_asked(sandbox: Any, number: int) -> bool:
    return any("workflow" in c["body"].lower() for c in sandbox.comments(REPO, number))


def test_the_pipeline_does_not_import_the_sdk() -> None:
    """Everything a delivery answered without a model needs loads without the SDK (1 to 4 s of imports)."""
    code = "import sys, bot.run.pipeline; print(sorted(m for m in sys.modules if m.split('.')[0] == 'anthropic'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


async def test_a_job_waits_for_the_pipeline_on_a_thread_while_the_loop_answers(
    settings: Settings, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first job awaits the pipeline's import, made on another thread: meanwhile the event loop answers
    (``/healthz``, further deliveries); once it is in, the job runs."""
    slow = SlowImport("bot.run.pipeline")
    sandbox.seed_from_payload(issue_payload(41, [], title="Hello there", body="Just saying hi"))
    async with serving(settings, slow, monkeypatch) as (rt, client):
        assert (await post_webhook(client, "issues", issue_payload(41, [], "Hello there", "Just saying hi"))).status == 202
        await asyncio.to_thread(slow.entered.wait, 30)
        async with client.get("/healthz") as health:
            assert health.status == 200
        assert slow.threads and slow.threads[0] is not threading.main_thread()
        assert not which_workflow_asked(sandbox, 41) and (await rt.store.job_states()).get("done") is None
        slow.release.set()
        await rt.jobs.drained(30)
        assert which_workflow_asked(sandbox, 41)


async def test_a_delivery_needing_no_model_is_answered_while_the_sdk_still_imports(
    settings: Settings, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a model configured, the SDK's import starts after the pipeline's and may take seconds: the "which
    workflow?" question does not wait for it. The model client, asked for, waits for it instead."""
    from bot.agents.calls import LazyClient

    slow = SlowImport("anthropic")
    sandbox.seed_from_payload(issue_payload(42, [], title="Hello there", body="Just saying hi"))
    keyed = settings.with_overrides(anthropic_api_key="sk-ant-test-key")
    async with serving(keyed, slow, monkeypatch) as (rt, client):
        assert (await post_webhook(client, "issues", issue_payload(42, [], "Hello there", "Just saying hi"))).status == 202
        await rt.jobs.drained(30)
        assert which_workflow_asked(sandbox, 42) and await rt.store.job_states() == {"done": 1}
        await asyncio.to_thread(slow.entered.wait, 30)
        assert not slow.release.is_set() and slow.threads[0] is not threading.main_thread()
        model = rt.deps.anthropic
        assert isinstance(model, LazyClient)  # made on first use: the SDK is imported on a thread
        made = asyncio.create_task(model.get())
        await asyncio.sleep(0)
        assert not made.done()
        slow.release.set()
        assert (await made).api_key == "sk-ant-test-key"
