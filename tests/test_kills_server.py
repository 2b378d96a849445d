"""The webhook app's answers, counts and redelivery rule, which mutation testing found untested
(benchmarks/mutation.py server).

Each test fails on a mutant of bot/web/server.py that the other tests let through. The app runs on a real SQLite
store and nothing else: no job runner, no GitHub. What GitHub's delivery log shows a person (status and body
of each answer) is asserted whole.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client.parser import text_string_to_metric_families

from bot.store import Delivery, StoreUnavailable, open_store
from bot.web import ingress, server
from bot.web.metrics import Metrics
from tests.conftest import INSTALLATION, load_fixture, webhook_headers

SECRET = "kills-secret"
THREAD = "Codertocat/Hello-World#1"


class App:
    """The app on a fresh store, the threads it woke and the client that posts to it."""

    def __init__(self, client: Any, store: Any, woken: list[str], metrics: Metrics) -> None:
        self.client, self.store, self.woken, self.metrics = client, store, woken, metrics

    async def post(self, event: str, payload: Any = None, *, body: bytes | None = None, delivery: str = "d-1",
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        body = json.dumps(payload).encode() if body is None else body
        sent = webhook_headers(event, body, delivery=delivery, secret=SECRET) | (headers or {})
        resp = await self.client.post("/webhook", data=body, headers=sent)
        return resp.status, await resp.json()

    def counted(self) -> dict[tuple[str, str], float]:
        text = self.metrics.render()[0].decode()
        return {(s.labels["event"], s.labels["outcome"]): s.value for f in text_string_to_metric_families(text)
                for s in f.samples if s.name == "triage_lead_webhook_deliveries_total" and s.value}


@pytest.fixture
async def app(aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[App]:
    store = await open_store(f"sqlite:///{tmp_path / 'kills.sqlite3'}")
    woken: list[str] = []
    metrics = Metrics()
    client = await aiohttp_client(server.make_app(store, SECRET, woken.append, metrics))
    yield App(client, store, woken, metrics)
    await store.close()


def unavailable(*_: Any, **__: Any) -> Any:
    raise StoreUnavailable("database is locked")


# ---- signatures -------------------------------------------------------------------------------------------

def test_sign_is_githubs_header_value() -> None:
    assert server.sign("k", b"body") == "sha256=" + hmac.new(b"k", b"body", hashlib.sha256).hexdigest()


PING = json.dumps({"zen": "z", "hook_id": 1}).encode()


@pytest.mark.parametrize("header, status", [
    (server.sign(SECRET, PING), 200),
    (server.sign(SECRET, PING) + " \t", 200),  # blanks after a header value are not part of it
    (None, 401), ("", 401),
    (server.sign(SECRET, PING).replace("sha256=", "sha1="), 401),
    (server.sign(SECRET, PING).replace("sha256=", "SHA256="), 401),
    (server.sign(SECRET, PING).upper().replace("SHA256=", "sha256="), 401),
    (server.sign(SECRET, b"other"), 401),
    (server.sign("other", PING), 401),
    (server.sign(SECRET, PING)[:-1], 401),
])
async def test_only_a_sha256_signature_of_this_body_with_this_secret_passes(
        app: App, header: str | None, status: int) -> None:
    sent = {k: v for k, v in (webhook_headers("ping", PING, secret=SECRET) | {"X-Hub-Signature-256": header}).items()
            if v is not None}
    resp = await app.client.post("/webhook", data=PING, headers=sent)
    assert resp.status == status


# ---- every answer, and what it counts -----------------------------------------------------------------------

async def test_a_bad_signature_is_refused_and_counted_without_trusting_the_event(app: App) -> None:
    status, body = await app.post("issues", {}, headers={"X-Hub-Signature-256": "sha256=00"})
    assert (status, body) == (401, {"error": "missing or bad X-Hub-Signature-256"})
    assert app.counted() == {("unverified", "rejected_signature"): 1}


@pytest.mark.parametrize("headers, label", [
    ({"X-GitHub-Delivery": "d 1"}, "issues"), ({"X-GitHub-Delivery": ""}, "issues"), ({"X-GitHub-Delivery": None}, "issues"),
    ({"X-GitHub-Event": "Issues"}, "other"), ({"X-GitHub-Event": "issues.opened"}, "other"), ({"X-GitHub-Event": None}, "none"),
])
async def test_a_malformed_or_missing_delivery_or_event_header_is_refused(
        app: App, headers: dict[str, str | None], label: str) -> None:
    body = json.dumps({"action": "created", "installation": {"id": 1}}).encode()
    sent = {k: v for k, v in (webhook_headers("issues", body, delivery="d-1", secret=SECRET) | headers).items()
            if v is not None}
    resp = await app.client.post("/webhook", data=body, headers=sent)
    assert (resp.status, await resp.json()) == (
        400, {"error": "missing or malformed X-GitHub-Delivery or X-GitHub-Event header"})
    assert app.counted() == {(label, "malformed"): 1}


async def test_a_body_that_is_no_json_object_is_refused(app: App) -> None:
    assert await app.post("issues", body=b"{") == (400, {"error": "body is not valid JSON"})
    assert await app.post("issues", body=b"\xff\xfe", delivery="d-2") == (400, {"error": "body is not valid JSON"})
    assert await app.post("issues", [], delivery="d-3") == (400, {"error": "body is not a JSON object"})
    assert app.counted() == {("issues", "malformed"): 3}


async def test_ping_answers_pong_with_githubs_zen(app: App) -> None:
    assert await app.post("ping", {"zen": "Speak like a human.", "hook_id": 1}) == (
        200, {"msg": "pong", "zen": "Speak like a human."})
    assert app.counted() == {("ping", "ignored"): 1}


async def test_an_event_not_acted_on_is_ignored_with_the_reason(app: App) -> None:
    payload = {"action": "created", "installation": {"id": 1}}
    assert await app.post("star", payload) == (
        200, {"status": "ignored", "reason": "event 'star' is not one the bot acts on"})
    assert await app.post("issues", {"action": "opened", "installation": {"id": 1}}, delivery="d-2") == (
        400, {"error": "issues.opened: missing issue"})
    assert app.counted() == {("star", "ignored"): 1, ("issues", "malformed"): 1}
    assert app.woken == [] and await app.store.jobs_for("d-1") == []


async def test_an_accepted_delivery_is_stored_with_its_job_and_wakes_its_thread(app: App, monkeypatch: Any) -> None:
    payload = load_fixture("issues.opened.json")
    taken: list[Delivery] = []
    accept = app.store.accept_delivery

    async def recording(d: Delivery) -> bool:
        taken.append(d)
        return await accept(d)

    monkeypatch.setattr(app.store, "accept_delivery", recording)
    assert await app.post("issues", payload, delivery="d-acc") == (202, {"status": "accepted"})
    assert taken == [Delivery(id="d-acc", event="issues", action="opened", installation_id=INSTALLATION,
                              repo="Codertocat/Hello-World", thread=THREAD, payload=payload)]
    assert app.woken == [THREAD]
    [row] = await app.store.jobs_for("d-acc")
    info = await app.store.job_info(row["id"])
    assert (info.state, info.job.thread, info.job.event, info.job.payload) == ("queued", THREAD, "issues", payload)
    assert app.counted() == {("issues", "accepted"): 1}


async def test_the_same_delivery_again_is_a_duplicate_and_wakes_nothing(app: App) -> None:
    payload = load_fixture("issues.opened.json")
    await app.post("issues", payload)
    assert await app.post("issues", payload) == (200, {"status": "duplicate"})
    assert app.woken == [THREAD]
    assert app.counted() == {("issues", "accepted"): 1, ("issues", "duplicate"): 1}


# ---- GitHub's "Redeliver" -------------------------------------------------------------------------------------

async def fail_the_job(store: Any) -> None:
    job = await store.claim_job(THREAD)
    await store.finish_job(job.id, error="boom")


async def test_redelivering_a_failed_delivery_queues_its_job_again(app: App) -> None:
    payload = load_fixture("issues.opened.json")
    await app.post("issues", payload)
    await fail_the_job(app.store)
    assert await app.post("issues", payload) == (202, {"status": "requeued"})
    assert app.woken == [THREAD, THREAD]
    assert [r["state"] for r in await app.store.jobs_for("d-1")] == ["queued"]
    assert app.counted() == {("issues", "accepted"): 1, ("issues", "requeued"): 1}


async def test_of_two_redeliveries_at_once_only_the_one_that_requeued_wakes_the_thread(
        app: App, monkeypatch: Any) -> None:
    payload = load_fixture("issues.opened.json")
    await app.post("issues", payload)
    await fail_the_job(app.store)
    job_info = app.store.job_info

    async def the_other_wins(job_id: int) -> Any:  # the other redelivery requeues the job meanwhile
        info = await job_info(job_id)
        assert await app.store.requeue_failed(job_id)
        return info

    monkeypatch.setattr(app.store, "job_info", the_other_wins)
    assert await app.post("issues", payload) == (200, {"status": "duplicate"})
    assert app.woken == [THREAD]
    assert app.counted() == {("issues", "accepted"): 1, ("issues", "duplicate"): 1}


async def test_a_job_that_did_not_fail_is_not_run_again(app: App) -> None:
    payload = load_fixture("issues.opened.json")
    await app.post("issues", payload)
    job = await app.store.claim_job(THREAD)
    await app.store.finish_job(job.id)
    assert await app.post("issues", payload) == (200, {"status": "duplicate"})
    assert [r["state"] for r in await app.store.jobs_for("d-1")] == ["done"]


@pytest.mark.parametrize("change", ["event", "payload"])
async def test_a_redelivery_must_be_the_very_delivery_that_failed(app: App, change: str) -> None:
    payload = load_fixture("issues.opened.json")
    await app.post("issues", payload)
    await fail_the_job(app.store)
    if change == "event":
        answer = await app.post("issues", payload, headers={"X-GitHub-Event": "pull_request"})
        assert answer == (400, {"error": "pull_request.opened: missing pull_request"})  # parsed as what it says
        answer = await app.post("issue_comment", load_fixture("issue_comment.created.json"))
    else:
        answer = await app.post("issues", payload | {"sender": payload["issue"]["user"] | {"login": "mallory"}})
    assert answer == (200, {"status": "duplicate"})
    assert [r["state"] for r in await app.store.jobs_for("d-1")] == ["failed"]
    assert app.woken == [THREAD]


async def test_a_store_that_cannot_answer_is_a_503_github_can_redeliver(app: App, monkeypatch: Any) -> None:
    payload = load_fixture("issues.opened.json")
    await app.post("issues", payload)
    monkeypatch.setattr(app.store, "jobs_for", unavailable)
    assert await app.post("issues", payload) == (503, {"error": "store unavailable; redeliver later"})
    monkeypatch.setattr(app.store, "accept_delivery", unavailable)
    assert await app.post("issues", payload, delivery="d-2") == (503, {"error": "store unavailable; redeliver later"})
    assert app.counted() == {("issues", "accepted"): 1, ("issues", "store_unavailable"): 2}
    assert app.woken == [THREAD]


async def test_what_operators_must_act_on_is_logged_with_the_delivery_and_the_cause(
        app: App, monkeypatch: Any, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="bot.web.server")
    payload = load_fixture("issues.opened.json")
    await app.post("issues", payload, delivery="d-1", headers={"X-Hub-Signature-256": "sha256=00"})
    body = json.dumps(payload).encode()
    headers = {k: v for k, v in webhook_headers("issues", body, secret="wrong").items() if k != "X-GitHub-Delivery"}
    await app.client.post("/webhook", data=body, headers=headers)
    await app.post("issues", {"action": "opened", "installation": {"id": 1}}, delivery="d-2")
    await app.post("issues", payload, delivery="d-3")
    monkeypatch.setattr(app.store, "jobs_for", unavailable)
    await app.post("issues", payload, delivery="d-3")
    monkeypatch.setattr(app.store, "accept_delivery", unavailable)
    await app.post("issues", payload, delivery="d-4")
    monkeypatch.setattr(app.store, "run_states", unavailable)
    await app.client.get("/metrics")
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING] == [
        ("WARNING", "rejected delivery d-1: missing or bad signature"),
        ("WARNING", "rejected delivery -: missing or bad signature"),
        ("WARNING", "rejected delivery d-2 (issues): issues.opened: missing issue"),
        ("ERROR", "store unavailable for redelivery d-3: database is locked"),
        ("ERROR", "store unavailable for delivery d-4: database is locked"),
        ("WARNING", "metrics: store unavailable: database is locked"),
    ]


# ---- the size cap ---------------------------------------------------------------------------------------------

async def test_the_cap_is_on_bodies_larger_than_max_body(aiohttp_client: Any, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(ingress, "MAX_BODY", 2000)
    store = await open_store(f"sqlite:///{tmp_path / 'cap.sqlite3'}")
    metrics = Metrics()
    client = await aiohttp_client(server.make_app(store, SECRET, lambda thread: None, metrics))
    a = App(client, store, [], metrics)
    try:
        pad = json.dumps({"action": "created", "installation": {"id": 1}, "x": ""}).encode()
        at_cap = pad.replace(b'"x": ""', b'"x": "' + b"a" * (2000 - len(pad)) + b'"')
        assert len(at_cap) == 2000
        assert (await a.post("star", body=at_cap))[0] == 200
        too_large = (413, {"error": "payload larger than GitHub's 25 MB cap"})
        assert await a.post("star", body=at_cap + b" ", delivery="d-2") == too_large

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the read itself stops at the cap
            for _ in range(3):
                yield b" " * 1000

        resp = await client.post("/webhook", data=chunks(), headers=webhook_headers("star", b"", secret=SECRET))
        assert (resp.status, await resp.json()) == too_large
        assert a.counted() == {("star", "ignored"): 1, ("unverified", "too_large"): 2}
    finally:
        await store.close()


# ---- /healthz and /metrics ------------------------------------------------------------------------------------

async def test_healthz_names_the_schema_version(app: App) -> None:
    resp = await app.client.get("/healthz")
    assert (resp.status, await resp.json()) == (200, {"status": "ok", "schema": await app.store.schema_version()})


@pytest.mark.parametrize("message, why", [
    ("connection to postgresql://bot:hunter2@db.internal:5432/triage failed:\n  timeout",
     "connection to postgresql://db.internal:5432/triage failed: timeout"),
    ("could not connect: host=db password=hunter2 user=bot", "could not connect: host=db password=… user=bot"),
    ("x" * 300, "x" * 200),
    ("", "StoreUnavailable"),
])
async def test_healthz_says_why_the_store_is_unavailable_without_credentials(
        app: App, monkeypatch: Any, message: str, why: str) -> None:
    def refuse() -> Any:
        raise StoreUnavailable(message)

    monkeypatch.setattr(app.store, "probe_write", refuse)
    resp = await app.client.get("/healthz")
    assert (resp.status, await resp.json()) == (503, {"status": "store unavailable", "why": why})


async def test_healthz_probes_arriving_together_share_one_write(app: App, monkeypatch: Any) -> None:
    release, calls = asyncio.Event(), []

    async def probe_write() -> None:
        calls.append(1)
        await release.wait()

    monkeypatch.setattr(app.store, "probe_write", probe_write)
    web_app = app.client.server.app
    first = asyncio.ensure_future(server.healthz(make_mocked_request("GET", "/healthz", app=web_app)))
    second = asyncio.ensure_future(server.healthz(make_mocked_request("GET", "/healthz", app=web_app)))
    while not calls:
        await asyncio.sleep(0)
    release.set()
    assert [r.status for r in await asyncio.gather(first, second)] == [200, 200]
    assert len(calls) == 1
    assert (await app.client.get("/healthz")).status == 200 and len(calls) == 2  # a later probe writes again


async def test_metrics_without_a_store_still_answer_and_drop_the_run_counts(app: App, monkeypatch: Any) -> None:
    app.metrics.set_runs({("backend-feature", "waiting"): 3})
    monkeypatch.setattr(app.store, "run_states", unavailable)
    resp = await app.client.get("/metrics")
    text = await resp.text()
    assert resp.status == 200 and resp.headers["Content-Type"] == app.metrics.render()[1]
    assert "triage_lead_runs{" not in text and "triage_lead_webhook_deliveries" in text


async def test_make_app_counts_in_a_metrics_of_its_own_when_none_is_given(aiohttp_client: Any, tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'own.sqlite3'}")
    try:
        web_app = server.make_app(store, SECRET, lambda thread: None)
        assert isinstance(web_app[server.METRICS], Metrics) and web_app[server.HEALTH] == []
        assert web_app[server.SECRET] == SECRET and web_app[server.STORE] is store
        client = await aiohttp_client(web_app)
        body = json.dumps({"zen": "z"}).encode()
        await client.post("/webhook", data=body, headers=webhook_headers("ping", body, secret=SECRET))
        assert 'event="ping",outcome="ignored"} 1.0' in await (await client.get("/metrics")).text()
    finally:
        await store.close()
