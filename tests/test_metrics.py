"""``GET /metrics`` after real signed deliveries, and the recording functions the executor calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gidgethub.sansio import RateLimit
from prometheus_client.parser import text_string_to_metric_families

from bot.agents import Usage
from bot.store import open_store
from bot.web.metrics import Metrics
from bot.web.server import make_app
from tests.conftest import load_fixture, post_webhook, webhook_headers

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: Any) -> Samples:
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    return parse(await resp.text())


async def test_deliveries_are_counted_by_event_and_outcome(client: Any, runtime: Any, sandbox: Any) -> None:
    payload = load_fixture("issues.opened.json")
    sandbox.seed_from_payload(payload)
    assert (await post_webhook(client, "issues", payload, delivery="m-1")).status == 202
    assert (await post_webhook(client, "issues", payload, delivery="m-1")).status == 200  # duplicate
    assert (await post_webhook(client, "ping", {"zen": "Design for failure.", "hook_id": 1})).status == 200
    assert (await post_webhook(client, "sponsorship", {"action": "created", "installation": {"id": 1}})).status == 200
    assert (await post_webhook(client, "issues", [1, 2])).status == 400
    body = json.dumps(payload).encode()
    bad = webhook_headers("issues", body, secret="not-the-secret") | {"X-GitHub-Event": "x" * 500}
    assert (await client.post("/webhook", data=body, headers=bad)).status == 401
    await runtime.jobs.drained(10)

    m = await scrape(client)
    total = "triage_lead_webhook_deliveries_total"
    assert value(m, total, event="issues", outcome="accepted") == 1
    assert value(m, total, event="issues", outcome="duplicate") == 1
    assert value(m, total, event="ping", outcome="ignored") == 1
    assert value(m, total, event="sponsorship", outcome="ignored") == 1
    assert value(m, total, event="issues", outcome="malformed") == 1
    # The event header is not signed: a rejected delivery never makes a label of it.
    assert value(m, total, event="unverified", outcome="rejected_signature") == 1
    assert sum(v for (name, _), v in m.items() if name == total) == 6
    # The run the accepted delivery started, read from the store at scrape time.
    runs = {labels: v for (name, labels), v in m.items() if name == "triage_lead_runs"}
    assert sum(runs.values()) == 1


async def test_store_unavailable_is_counted_and_runs_vanish(aiohttp_client: Any, tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    client = await aiohttp_client(make_app(store, "s3", lambda thread: None))
    db, store._db = store._db, None  # type: ignore[attr-defined]  # the store now answers "unavailable"
    try:
        payload = load_fixture("issues.opened.json")
        body = json.dumps(payload).encode()
        resp = await client.post("/webhook", data=body, headers=webhook_headers("issues", body, secret="s3"))
        assert resp.status == 503
        m = await scrape(client)
        assert value(m, "triage_lead_webhook_deliveries_total", event="issues", outcome="store_unavailable") == 1
        assert not [k for k in m if k[0] == "triage_lead_runs"]
    finally:
        store._db = db  # type: ignore[attr-defined]
        await store.close()


async def test_too_large_is_counted(client: Any) -> None:
    payload = load_fixture("issues.opened.json")
    payload["issue"]["body"] = "x" * (26 * 1024 * 1024)
    assert (await post_webhook(client, "issues", payload)).status == 413
    m = await scrape(client)
    assert value(m, "triage_lead_webhook_deliveries_total", event="unverified", outcome="too_large") == 1


def test_steps_tokens_cost_and_rate_limit() -> None:
    metrics = Metrics()
    metrics.step_finished(workflow="security-fix", kind="review", seconds=42.0)
    metrics.step_finished(workflow="security-fix", kind="review", seconds=0.2, ok=False)
    metrics.tokens(Usage(input_tokens=1200, output_tokens=300, cache_read_input_tokens=5000,
                         cache_creation_input_tokens=800, calls=1, cost_usd=0.0421))
    metrics.tokens(Usage())  # an offline step spends nothing
    metrics.rate_limit(RateLimit(limit=5000, remaining=4321, reset_epoch=0), installation=2311213)
    metrics.rate_limit(RateLimit(limit=30, remaining=29, reset_epoch=0), installation=2311213, resource="search")
    metrics.rate_limit(None)
    m = parse(metrics.render()[0].decode())
    wf = {"workflow": "security-fix", "kind": "review"}
    assert value(m, "triage_lead_step_duration_seconds_count", **wf) == 2
    assert value(m, "triage_lead_step_duration_seconds_sum", **wf) == 42.2
    assert value(m, "triage_lead_step_duration_seconds_bucket", **wf, le="60.0") == 2
    assert value(m, "triage_lead_step_duration_seconds_bucket", **wf, le="30.0") == 1
    assert value(m, "triage_lead_steps_total", **wf, outcome="failed") == 1
    tokens = {kind: value(m, "triage_lead_model_tokens_total", kind=kind)
              for kind in ("input", "output", "cache_read", "cache_write")}
    assert tokens == {"input": 1200, "output": 300, "cache_read": 5000, "cache_write": 800}
    assert value(m, "triage_lead_model_cost_usd_total") == 0.0421
    assert value(m, "triage_lead_github_rate_limit_remaining", installation="2311213", resource="core") == 4321
    assert value(m, "triage_lead_github_rate_limit_remaining", installation="2311213", resource="search") == 29


def test_each_app_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.delivery("issues", "accepted")
    assert value(parse(b.render()[0].decode()), "triage_lead_webhook_deliveries_total",
                 event="issues", outcome="accepted") == 0
