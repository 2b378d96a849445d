"""The webhook endpoint over HTTP: verification first, durable hand-off, the first path end to end."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from typing import Any

import pytest

from bot.core.markers import markers_in
from bot.run.jobs import NOT_FOUND_ATTEMPTS
from tests.conftest import INSTALLATION, load_fixture, post_webhook, webhook_headers


async def test_healthz(client: Any) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_ping(client: Any) -> None:
    resp = await post_webhook(client, "ping", {"zen": "Keep it logically awesome.", "hook_id": 1})
    assert resp.status == 200 and (await resp.json())["msg"] == "pong"


async def test_missing_signature(client: Any, runtime: Any) -> None:
    body = json.dumps(load_fixture("issues.opened.json")).encode()
    headers = webhook_headers("issues", body)
    del headers["X-Hub-Signature-256"]
    resp = await client.post("/webhook", data=body, headers=headers)
    assert resp.status == 401
    assert await runtime.store.job_states() == {}


async def test_bad_signature(client: Any) -> None:
    body = json.dumps(load_fixture("issues.opened.json")).encode()
    headers = webhook_headers("issues", body) | {"X-Hub-Signature-256": "sha256=" + "0" * 64}
    assert (await client.post("/webhook", data=body, headers=headers)).status == 401
    headers = webhook_headers("issues", body, secret="another-secret")
    assert (await client.post("/webhook", data=body, headers=headers)).status == 401


async def test_signature_over_a_different_body(client: Any) -> None:
    body = json.dumps(load_fixture("issues.opened.json")).encode()
    headers = webhook_headers("issues", body)
    tampered = body.replace(b"The application crashes", b"Delete everything")
    assert (await client.post("/webhook", data=tampered, headers=headers)).status == 401


async def test_truncated_json(client: Any) -> None:
    body = json.dumps(load_fixture("issues.opened.json")).encode()[:500]
    resp = await client.post("/webhook", data=body, headers=webhook_headers("issues", body))
    assert resp.status == 400 and "JSON" in (await resp.json())["error"]


async def test_json_array(client: Any) -> None:
    resp = await post_webhook(client, "issues", [{"action": "opened"}])
    assert resp.status == 400 and "object" in (await resp.json())["error"]


async def test_malformed_payload_names_the_key(client: Any) -> None:
    payload = load_fixture("issues.opened.json")
    payload["issue"]["title"] = 42
    resp = await post_webhook(client, "issues", payload)
    assert resp.status == 400 and "issue.title" in (await resp.json())["error"]


async def test_payload_without_installation(client: Any, runtime: Any) -> None:
    payload = load_fixture("issues.opened.json")
    del payload["installation"]
    resp = await post_webhook(client, "issues", payload)
    assert resp.status == 200
    assert "installation" in (await resp.json())["reason"]
    assert await runtime.store.job_states() == {}


async def test_unknown_event(client: Any, runtime: Any, caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    resp = await post_webhook(client, "sponsorship", {"action": "created", "installation": {"id": 1}})
    assert resp.status == 200 and (await resp.json())["status"] == "ignored"
    assert "sponsorship" in caplog.text
    assert await runtime.store.job_states() == {}


async def test_body_over_25_mb(client: Any, runtime: Any) -> None:
    payload = load_fixture("issues.opened.json")
    payload["issue"]["body"] = "x" * (26 * 1024 * 1024)
    resp = await post_webhook(client, "issues", payload)
    assert resp.status == 413
    assert await runtime.store.job_states() == {}


async def test_body_just_under_the_cap_is_read(client: Any, runtime: Any, sandbox: Any) -> None:
    payload = load_fixture("issues.opened.json")
    payload["issue"]["body"] = "y" * (2 * 1024 * 1024)  # over aiohttp's 1 MiB default
    sandbox.seed_from_payload(payload)
    resp = await post_webhook(client, "issues", payload)
    assert resp.status == 202


async def test_issue_opened_gets_the_leads_status_comment(client: Any, runtime: Any, sandbox: Any) -> None:
    payload = load_fixture("issues.opened.json")
    sandbox.seed_from_payload(payload)
    resp = await post_webhook(client, "issues", payload, delivery="first-path")
    assert resp.status == 202
    await runtime.jobs.drained(10)
    comments = sandbox.comments("Codertocat/Hello-World", 1)
    status = comments[0]
    assert status["body"].startswith("### triage-lead · Production Error Investigation (`error-investigation`)")
    assert "Starting error-investigation workflow. Why: label 'bug'" in status["body"]
    assert status["user"]["type"] == "Bot"
    assert markers_in(status["body"]) == ["status:first-path"]
    token_calls = [r for r in sandbox.requests if r.path.endswith("/access_tokens")]
    assert len(token_calls) == 1 and token_calls[0].auth_kind == "jwt"
    assert await runtime.store.job_states() == {"done": 1}


async def test_same_delivery_twice_is_taken_once(client: Any, runtime: Any, sandbox: Any) -> None:
    payload = load_fixture("issues.opened.json")
    sandbox.seed_from_payload(payload)
    first = await post_webhook(client, "issues", payload, delivery="same-guid")
    second = await post_webhook(client, "issues", payload, delivery="same-guid")
    assert (first.status, second.status) == (202, 200)
    assert (await second.json())["status"] == "duplicate"
    await runtime.jobs.drained(10)
    assert len(sandbox.comments("Codertocat/Hello-World", 1)) == 3  # status, DETECT, escalation: once each


async def test_ten_concurrent_copies_make_one_job(client: Any, runtime: Any, sandbox: Any) -> None:
    payload = load_fixture("issues.opened.json")
    sandbox.seed_from_payload(payload)
    answers = await asyncio.gather(*(post_webhook(client, "issues", payload, delivery="dup") for _ in range(10)))
    assert sorted(a.status for a in answers) == [200] * 9 + [202]
    await runtime.jobs.drained(10)
    assert await runtime.store.job_states() == {"done": 1}


async def test_reopened_issue_with_an_active_run_starts_nothing_new(client: Any, runtime: Any, sandbox: Any) -> None:
    payload = load_fixture("issues.opened.json")
    sandbox.seed_from_payload(payload)
    await post_webhook(client, "issues", payload)
    await runtime.jobs.drained(10)
    before = len(sandbox.writes)
    await post_webhook(client, "issues", payload | {"action": "reopened"})
    await runtime.jobs.drained(10)
    assert len(sandbox.writes) == before


async def test_token_is_cached_across_deliveries(client: Any, runtime: Any, sandbox: Any) -> None:
    base = load_fixture("issues.opened.json")
    for number in (1, 2, 3):
        payload = copy.deepcopy(base)
        payload["issue"]["number"] = number
        sandbox.seed_from_payload(payload)
        assert (await post_webhook(client, "issues", payload)).status == 202
    await runtime.jobs.drained(10)
    assert sandbox.tokens_issued == 1
    assert all(len(sandbox.comments("Codertocat/Hello-World", n)) == 3 for n in (1, 2, 3))


async def test_own_comment_is_not_acted_on(client: Any, runtime: Any, sandbox: Any) -> None:
    payload = load_fixture("issue_comment.created.json")
    payload["comment"]["user"] |= {"login": "triage-lead[bot]", "type": "Bot"}
    sandbox.seed_from_payload(payload)
    assert (await post_webhook(client, "issue_comment", payload)).status == 202
    await runtime.jobs.drained(10)
    assert sandbox.writes == []


async def _token_answer(client: Any, runtime: Any, sandbox: Any, status: int, headers: dict[str, str] | None = None,
                        times: int = 1) -> tuple[str | None, int]:
    payload = load_fixture("issues.opened.json")
    sandbox.seed_from_payload(payload)
    sandbox.fail("POST", rf"/app/installations/{INSTALLATION}/access_tokens", status, times=times,
                 headers=headers, body={"message": f"injected {status}"})
    assert (await post_webhook(client, "issues", payload)).status == 202
    await runtime.jobs.drained(20)
    jobs = await runtime.store.job_states()
    return ("failed" if jobs.get("failed") else "done"), min(1, len(sandbox.comments("Codertocat/Hello-World", 1)))


@pytest.mark.parametrize("status", [401, 404, 422])
async def test_a_token_request_refused_once_is_tried_again(status: int, client: Any, runtime: Any, sandbox: Any) -> None:
    """A clock a little off, an installation not yet everywhere: one refusal must not drop the work for good."""
    assert await _token_answer(client, runtime, sandbox, status) == ("done", 1)


async def test_an_uninstalled_app_stops_after_a_few_tries_posts_nothing_and_logs_it(
        client: Any, runtime: Any, sandbox: Any, caplog: Any) -> None:
    assert await _token_answer(client, runtime, sandbox, 404, times=-1) == ("failed", 0)
    tries = [r for r in sandbox.requests if r.path.endswith("/access_tokens")]
    assert len(tries) == NOT_FOUND_ATTEMPTS  # bounded: not six tries with hours of backoff
    assert sandbox.writes == []
    assert any(r.levelname == "ERROR" and "nobody told" in r.getMessage() and "uninstalled" in r.getMessage()
               for r in caplog.records)
    assert runtime.metrics.silent_jobs.labels("issues")._value.get() == 1


async def test_token_request_secondary_rate_limit_waits_and_retries(client: Any, runtime: Any, sandbox: Any) -> None:
    headers = {"retry-after": "1", "x-ratelimit-remaining": "4999"}
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await _token_answer(client, runtime, sandbox, 403, headers) == ("done", 1)
    assert loop.time() - start >= 1.0  # it honoured retry-after rather than hammering
    attempts = [r for r in sandbox.requests if r.path.endswith("/access_tokens")]
    assert [r.status for r in attempts] == [403, 201]


async def test_token_request_500_is_retried_then_fails_if_it_persists(client: Any, runtime: Any, sandbox: Any) -> None:
    assert await _token_answer(client, runtime, sandbox, 500, times=1) == ("done", 1)


async def test_token_request_persistent_500_fails_the_job(client: Any, runtime: Any, sandbox: Any) -> None:
    assert await _token_answer(client, runtime, sandbox, 500, times=-1) == ("failed", 0)


async def test_delivery_id_outside_guid_form_is_refused(client: Any, runtime: Any) -> None:
    payload = load_fixture("issues.opened.json")
    resp = await post_webhook(client, "issues", payload, delivery="evil<!--id-->")
    assert resp.status == 400 and "X-GitHub-Delivery" in (await resp.json())["error"]
    assert await runtime.store.job_states() == {}
