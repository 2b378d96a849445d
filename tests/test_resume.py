"""Resume on the default SQLite store: a run waits for /approve across a restart, and a process killed
mid-step finishes the run after it comes back, with exactly one comment per step."""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bot.core.markers import markers_in
from bot.run.runtime import Runtime
from bot.sandbox.anthropic import FakeAnthropic
from tests.conftest import load_fixture, post_webhook, webhook_headers
from tests.test_serve import free_port, serve_env, start_serve, until
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


async def test_sigkill_mid_step_then_restart_completes_with_one_comment_per_step(
        sandbox: Any, app_keys: tuple[str, str], tmp_path: Path) -> None:
    fake = FakeAnthropic(api_key="sk-ant-test-key")
    await fake.start()
    team = Team(fake)
    team.delay = {"IMPLEMENTATION": 1.5}  # the process is killed while this step's model call is out
    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    port = free_port()
    env = serve_env(sandbox, app_keys, tmp_path, port, ANTHROPIC_API_KEY="sk-ant-test-key", ANTHROPIC_BASE_URL=fake.url)
    proc = await start_serve(env, port)
    try:
        payload = issue_payload(61, ["devops"])
        sandbox.seed_from_payload(payload)
        body = json.dumps(payload).encode()
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/webhook", data=body, headers=webhook_headers("issues", body)) as r:
                assert r.status == 202
        await until(lambda: any(title == "IMPLEMENTATION" for title, *_ in team.calls) or len(fake.requests) and any(
                    "IMPLEMENTATION (implement)" in str(q["messages"][0]) for q in fake.requests),
                    60, "the implementation step's model call")
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        assert "approval" not in posts(sandbox, 61)  # it really died mid-run
        proc = await start_serve(env, port)  # start-up recovers the job and resumes at the step
        await until(lambda: "approval" in posts(sandbox, 61), 60, "the resumed run to ask for approval")
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
        await fake.close()
    kinds = posts(sandbox, 61)
    assert kinds[-1] == "approval"
    counts = Counter(k for c in sandbox.comments(REPO, 61) for k in markers_in(c["body"]))
    assert all(n == 1 for n in counts.values()), counts  # nothing posted twice
    assert [t for t, *_ in team.calls].count("IMPLEMENTATION") == 2  # the interrupted step ran again
