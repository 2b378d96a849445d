"""Resume on the default SQLite store: a run waits for /approve across a restart, and a process killed
mid-step finishes the run after it comes back, with exactly one comment per step."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bot.markers import markers_in
from bot.runtime import Runtime
from bot.sandbox.anthropic import FakeAnthropic
from tests.conftest import APP_ID, ROOT, SECRET, load_fixture, post_webhook, webhook_headers
from tests.test_serve import free_port
from tests.test_workflows_e2e import REPO, Team, comment_payload, issue_payload, posts


async def test_a_run_waiting_for_approve_survives_a_restart(settings: Any, sandbox: Any, aiohttp_client: Any) -> None:
    fake = FakeAnthropic(api_key="sk-ant-test-key")
    await fake.start()
    Team(fake)
    s = settings.with_overrides(anthropic_api_key="sk-ant-test-key", anthropic_base_url=fake.url)
    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    sandbox.set_permission(REPO, "maintainer", "write")
    try:
        first = await Runtime(s, github_backoff=0.01, agent_options={"retry_base": 0.01}).start()
        client = await aiohttp_client(first.web_app())
        payload = issue_payload(60, ["devops"])
        sandbox.seed_from_payload(payload)
        assert (await post_webhook(client, "issues", payload)).status == 202
        await first.jobs.drained(30)
        assert posts(sandbox, 60)[-1] == "approval"
        await client.close()
        await first.close()  # a deploy: the process goes away while the run waits

        second = await Runtime(s, github_backoff=0.01, agent_options={"retry_base": 0.01}).start()
        client = await aiohttp_client(second.web_app())
        approve = comment_payload(60, "/approve")
        sandbox.seed_from_payload(approve)
        assert (await post_webhook(client, "issue_comment", approve)).status == 202
        await second.jobs.drained(30)
        assert posts(sandbox, 60)[-1] == "done"
        assert (await second.store.run_states()) == {"done": 1}
        await client.close()
        await second.close()
    finally:
        await fake.close()


async def _start_serve(env: dict[str, str], port: int) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "serve", cwd=ROOT, env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return proc
            except aiohttp.ClientConnectionError:
                pass
            assert time.monotonic() - started < 30, "serve did not come up"
            await asyncio.sleep(0.05)


async def test_sigkill_mid_step_then_restart_completes_with_one_comment_per_step(
        sandbox: Any, app_keys: tuple[str, str], tmp_path: Path) -> None:
    fake = FakeAnthropic(api_key="sk-ant-test-key")
    await fake.start()
    team = Team(fake)
    team.delay = {"IMPLEMENTATION": 1.5}  # the process is killed while this step's model call is out
    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "GITHUB_APP_ID": str(APP_ID),
           "GITHUB_PRIVATE_KEY": app_keys[0], "GITHUB_WEBHOOK_SECRET": SECRET, "GITHUB_API_URL": sandbox.url,
           "ANTHROPIC_API_KEY": "sk-ant-test-key", "ANTHROPIC_BASE_URL": fake.url,
           "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.sqlite3'}", "PORT": str(port), "TRIAGE_LEAD_WRITE_SPACING": "0"}
    proc = await _start_serve(env, port)
    try:
        payload = issue_payload(61, ["devops"])
        sandbox.seed_from_payload(payload)
        body = json.dumps(payload).encode()
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/webhook", data=body, headers=webhook_headers("issues", body)) as r:
                assert r.status == 202
        for _ in range(300):
            if any(title == "IMPLEMENTATION" for title, *_ in team.calls) or len(fake.requests) and any(
                    "IMPLEMENTATION (implement)" in str(q["messages"][0]) for q in fake.requests):
                break
            await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        assert "approval" not in posts(sandbox, 61)  # it really died mid-run
        proc = await _start_serve(env, port)  # start-up recovers the job and resumes at the step
        for _ in range(300):
            if "approval" in posts(sandbox, 61):
                break
            await asyncio.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
        await fake.close()
    kinds = posts(sandbox, 61)
    assert kinds[-1] == "approval"
    counts = Counter(k for c in sandbox.comments(REPO, 61) for k in markers_in(c["body"]))
    assert all(n == 1 for n in counts.values()), counts  # nothing posted twice
    assert [t for t, *_ in team.calls].count("IMPLEMENTATION") == 2  # the interrupted step ran again
