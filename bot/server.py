"""The aiohttp app: ``POST /webhook``, ``GET /healthz`` and ``GET /metrics``. Nothing slow on this path.

A delivery is verified (HMAC of the raw body, before anything is parsed), parsed, recorded with
its job in one transaction, and answered with 202; the work runs after, from the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot import events
from bot.metrics import Metrics
from bot.store import Delivery, Store, StoreUnavailable

log = logging.getLogger(__name__)

# GitHub sends a GUID; the id becomes the run's id inside hidden markers, so only simple tokens pass.
DELIVERY_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
EVENT_NAME = re.compile(r"[a-z0-9_]{1,64}")
MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB; aiohttp's own default is 1 MiB.

STORE = web.AppKey("store", Store)
SECRET = web.AppKey("secret", str)
ON_ACCEPTED = web.AppKey("on_accepted", Callable[[str], None])
METRICS = web.AppKey("metrics", Metrics)
HEALTH = web.AppKey("health", list)  # [the probe in flight], shared by the /healthz calls that arrive meanwhile


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Check ``X-Hub-Signature-256`` in constant time."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def sign(secret: str, body: bytes) -> str:
    """The header value GitHub would send for ``body`` (tests, replay and benchmarks use it)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _answer(code: int, **fields: Any) -> web.Response:
    return web.json_response(fields, status=code)


def _count(request: web.Request, event: str, outcome: str) -> None:
    request.app[METRICS].delivery(event, outcome)


async def webhook(request: web.Request) -> web.Response:
    delivery_id = request.headers.get("X-GitHub-Delivery", "")
    event_name = request.headers.get("X-GitHub-Event", "")
    if request.content_length is not None and request.content_length > MAX_BODY:
        _count(request, "unverified", "too_large")
        return _answer(413, error="payload larger than GitHub's 25 MB cap")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        _count(request, "unverified", "too_large")
        return _answer(413, error="payload larger than GitHub's 25 MB cap")
    if not signature_ok(request.app[SECRET], body, request.headers.get("X-Hub-Signature-256")):
        log.warning("rejected delivery %s: missing or bad signature", delivery_id or "-")
        _count(request, "unverified", "rejected_signature")
        return _answer(401, error="missing or bad X-Hub-Signature-256")
    if not DELIVERY_ID.fullmatch(delivery_id) or not EVENT_NAME.fullmatch(event_name):
        _count(request, event_name, "malformed")
        return _answer(400, error="missing or malformed X-GitHub-Delivery or X-GitHub-Event header")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: JSON nested thousands deep
        _count(request, event_name, "malformed")
        return _answer(400, error="body is not valid JSON")
    if not isinstance(payload, dict):
        _count(request, event_name, "malformed")
        return _answer(400, error="body is not a JSON object")
    if event_name == "ping":
        _count(request, event_name, "ignored")
        return _answer(200, msg="pong", zen=payload.get("zen"))
    parsed = events.parse(event_name, payload, delivery_id)
    if isinstance(parsed, events.Malformed):
        log.warning("rejected delivery %s (%s): %s", delivery_id, event_name, parsed.reason)
        _count(request, event_name, "malformed")
        return _answer(400, error=parsed.reason)
    if isinstance(parsed, events.Ignored):
        log.info("ignored delivery %s (%s): %s", delivery_id, event_name, parsed.reason)
        _count(request, event_name, "ignored")
        return _answer(200, status="ignored", reason=parsed.reason)
    delivery = Delivery(id=delivery_id, event=event_name, action=parsed.action,
                        installation_id=parsed.installation_id, repo=parsed.repo, thread=parsed.thread,
                        payload=payload)
    try:
        fresh = await request.app[STORE].accept_delivery(delivery)
    except StoreUnavailable as exc:
        # 503, not 2xx: GitHub then lists the delivery as failed and it can be redelivered.
        log.error("store unavailable for delivery %s: %s", delivery_id, exc)
        _count(request, event_name, "store_unavailable")
        return _answer(503, error="store unavailable; redeliver later")
    if not fresh:
        try:
            requeued = await _requeue_if_failed(request, delivery_id, event_name, payload)
        except StoreUnavailable as exc:  # a redelivery we could not check: GitHub may send it again later
            log.error("store unavailable for redelivery %s: %s", delivery_id, exc)
            _count(request, event_name, "store_unavailable")
            return _answer(503, error="store unavailable; redeliver later")
        if requeued:
            log.info("redelivery of %s: its failed job is queued again", delivery_id)
            request.app[ON_ACCEPTED](requeued)
            _count(request, event_name, "requeued")
            return _answer(202, status="requeued")
        log.info("duplicate delivery %s ignored", delivery_id)
        _count(request, event_name, "duplicate")
        return _answer(200, status="duplicate")
    request.app[ON_ACCEPTED](delivery.thread)
    _count(request, event_name, "accepted")
    log.info("accepted delivery %s (%s.%s) for %s", delivery_id, event_name, parsed.action, parsed.thread)
    return _answer(202, status="accepted")


async def _requeue_if_failed(request: web.Request, delivery_id: str, event: str, payload: Any) -> str | None:
    """GitHub's "Redeliver" of a delivery whose job failed runs that job again; the thread to wake, or None.

    Only for the very delivery: the signature covers the body, not the delivery id header, so a body signed
    for one delivery and sent under another's (public) id must not re-run that other delivery's job."""
    store = request.app[STORE]
    failed = [r["id"] for r in await store.jobs_for(delivery_id) if r["state"] == "failed"]
    info = await store.job_info(failed[0]) if failed else None  # one job per delivery
    if info is None or info.job.event != event or info.job.payload != payload:
        return None
    return info.job.thread if await store.requeue_failed(info.job.id) else None


async def healthz(request: web.Request) -> web.Response:
    """200 only when the store took a real write just now (a readable but full or locked store cannot take
    deliveries); else 503 with a short reason: "database is locked", "database or disk is full", ...
    Probes arriving while one runs share its answer: a flood of them (unauthenticated) costs one write at a
    time, never a queue of writes ahead of the deliveries."""
    running = request.app[HEALTH]
    if not running or running[0].done():
        running[:] = [asyncio.ensure_future(_probe(request.app[STORE]))]
    code, fields = await asyncio.shield(running[0])
    return _answer(code, **fields)


async def _probe(store: Store) -> tuple[int, dict[str, Any]]:
    try:
        await store.probe_write()
        version = await store.schema_version()
    except StoreUnavailable as exc:
        # One line, credentials of any URL cut out: driver messages name hosts and users, never passwords,
        # but this answer is unauthenticated.
        why = re.sub(r"://[^/@\s]*@", "://", " ".join(str(exc).split()))
        why = re.sub(r"password=\S+", "password=…", why)[:200]
        return 503, {"status": "store unavailable", "why": why or type(exc).__name__}
    return 200, {"status": "ok", "schema": version}


async def metrics_page(request: web.Request) -> web.Response:
    """Prometheus text format; run counts are read from the store now, the rest kept in process."""
    m = request.app[METRICS]
    try:
        await m.refresh_runs(request.app[STORE])
    except StoreUnavailable as exc:  # no stale numbers: the run series vanish until the store answers
        log.warning("metrics: store unavailable: %s", exc)
        m.set_runs({})
    body, content_type = m.render()
    return web.Response(body=body, headers={"Content-Type": content_type})


def make_app(store: Store, secret: str, on_accepted: Callable[[str], None],
             metrics: Metrics | None = None) -> web.Application:
    """The web app. ``on_accepted(thread)`` is told of each new job (it must not block).

    ``metrics`` is shared with the job runner so one ``/metrics`` shows both (default: a new one).
    """
    app = web.Application(client_max_size=MAX_BODY)
    app[STORE] = store
    app[SECRET] = secret
    app[ON_ACCEPTED] = on_accepted
    app[METRICS] = metrics if metrics is not None else Metrics()
    app[HEALTH] = []
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    return app
