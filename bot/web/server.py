"""The aiohttp app: ``POST /webhook``, ``GET /healthz`` and ``GET /metrics``. Nothing slow on this path.

A delivery is verified (HMAC of the raw body as it streams in, within the limits of :mod:`bot.web.ingress`,
before anything is parsed), parsed, recorded with its job in one transaction, and answered with 202; the
work runs after, from the store. Values an outsider chose (headers, payload fields) are clipped in log lines.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bot.core import events
from bot.logs import clip
from bot.settings import Settings
from bot.store import Delivery, Store, StoreUnavailable
from bot.web.ingress import MAX_BODY, Body, InFlight, Refused, parse_body, read_signed
from bot.web.ingress import sign as sign  # re-exported: tests, replay and benchmarks sign bodies with it
from bot.web.metrics import Metrics

log = logging.getLogger(__name__)
# aiohttp's own connection-level messages (requests it could not parse, clients gone mid-request) go to this
# logger instead of "aiohttp.server", through the filter below.
HTTP_LOG = logging.getLogger("bot.http")
# Seconds a refused request's unread body is read and dropped before the connection closes: long enough for a
# client that sent its body at once to read the answer (closing on unread bytes resets the connection, and
# the answer with it), too short for a stalled sender to hold the connection.
LINGER = 2.0

# GitHub sends a GUID; the id becomes the run's id inside hidden markers, so only simple tokens pass.
DELIVERY_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
EVENT_NAME = re.compile(r"[a-z0-9_]{1,64}")

STORE = web.AppKey("store", Store)
SETTINGS = web.AppKey("settings", Settings)  # the ingress limits and the metrics token are read from it
IN_FLIGHT = web.AppKey("in_flight", InFlight)  # unverified body bytes held, shared by every connection
SECRET = web.AppKey("secret", str)
ON_ACCEPTED = web.AppKey[Callable[[str], None]]("on_accepted")  # a Callable is no class: the type goes in []
METRICS = web.AppKey("metrics", Metrics)
HEALTH = web.AppKey("health", list)  # [the probe in flight], shared by the /healthz calls that arrive meanwhile


def _answer(code: int, **fields: Any) -> web.Response:
    return web.json_response(fields, status=code)


# Every accepted delivery's answer, encoded once: the webhook's most frequent answer (issue 16: CPU a delivery).
_ACCEPTED = json.dumps({"status": "accepted"})


def _accepted() -> web.Response:
    """``_answer(202, status="accepted")``, the same response without encoding its body again."""
    return web.Response(text=_ACCEPTED, status=202, content_type="application/json")


def _count(request: web.Request, event: str, outcome: str) -> None:
    request.app[METRICS].delivery(event, outcome)


def _refused(request: web.Request, no: Refused, delivery_id: str) -> web.Response:
    """The answer to a body never verified. The connection closes after it: its unread rest is not waited for."""
    if no.outcome == "rejected_signature":
        log.warning("rejected delivery %s: missing or bad signature", clip(delivery_id or "-"))
    elif no.outcome != "disconnected":  # a client that left reads nothing, and there is nothing to act on
        log.warning("refused delivery %s (%d): %s", clip(delivery_id or "-"), no.status, no.error)
    _count(request, "unverified", no.outcome)
    resp = _answer(no.status, error=no.error)
    if no.retry_after is not None:
        resp.headers["Retry-After"] = str(no.retry_after)
    resp.force_close()
    return resp


async def webhook(request: web.Request) -> web.Response:
    delivery_id = request.headers.get("X-GitHub-Delivery", "")
    event_name = request.headers.get("X-GitHub-Event", "")
    try:
        body = await read_signed(request, request.app[SECRET], request.app[IN_FLIGHT],
                                 request.app[SETTINGS].body_deadline)
    except Refused as no:
        return _refused(request, no, delivery_id)
    if not DELIVERY_ID.fullmatch(delivery_id) or not EVENT_NAME.fullmatch(event_name):
        _count(request, event_name, "malformed")
        return _answer(400, error="missing or malformed X-GitHub-Delivery or X-GitHub-Event header")
    try:
        raw, payload = parse_body(body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
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
        log.warning("rejected delivery %s (%s): %s", clip(delivery_id), clip(event_name), clip(parsed.reason))
        _count(request, event_name, "malformed")
        return _answer(400, error=parsed.reason)
    if isinstance(parsed, events.CiSuccess):
        try:  # GitHub sends a success for every check of every push: one keyed read, no write, for most
            wanted = await request.app[STORE].find_posted(events.failure_seen(parsed.repo, parsed.name,
                                                                              parsed.head_sha)) is not None
        except StoreUnavailable as exc:
            log.error("store unavailable for delivery %s: %s", clip(delivery_id), exc)
            _count(request, event_name, "store_unavailable")
            return _answer(503, error="store unavailable; redeliver later")
        if not wanted:
            _count(request, event_name, "ignored")
            return _answer(200, status="ignored", reason=f"{parsed.reason}; no failure of this check at this "
                                                         "commit was reported")
    elif isinstance(parsed, events.Ignored):
        log.info("ignored delivery %s (%s): %s", clip(delivery_id), clip(event_name), clip(parsed.reason))
        _count(request, event_name, "ignored")
        return _answer(200, status="ignored", reason=parsed.reason)
    delivery = Delivery(id=delivery_id, event=event_name, action=parsed.action,
                        installation_id=parsed.installation_id, repo=parsed.repo, thread=parsed.thread,
                        payload=Body(payload, raw))
    try:
        fresh = await request.app[STORE].accept_delivery(delivery)
    except StoreUnavailable as exc:
        # 503, not 2xx: GitHub then lists the delivery as failed and it can be redelivered.
        log.error("store unavailable for delivery %s: %s", clip(delivery_id), exc)
        _count(request, event_name, "store_unavailable")
        return _answer(503, error="store unavailable; redeliver later")
    if not fresh:
        try:
            requeued = await _requeue_if_failed(request, delivery_id, event_name, payload)
        except StoreUnavailable as exc:  # a redelivery we could not check: GitHub may send it again later
            log.error("store unavailable for redelivery %s: %s", clip(delivery_id), exc)
            _count(request, event_name, "store_unavailable")
            return _answer(503, error="store unavailable; redeliver later")
        if requeued:
            log.info("redelivery of %s: its failed job is queued again", clip(delivery_id))
            request.app[ON_ACCEPTED](requeued)
            _count(request, event_name, "requeued")
            return _answer(202, status="requeued")
        log.info("duplicate delivery %s ignored", clip(delivery_id))
        _count(request, event_name, "duplicate")
        return _answer(200, status="duplicate")
    request.app[ON_ACCEPTED](delivery.thread)
    _count(request, event_name, "accepted")
    # The id and the event matched DELIVERY_ID and EVENT_NAME above: only the payload's values need clipping.
    log.info("accepted delivery %s (%s.%s) for %s", delivery_id, event_name, clip(parsed.action), clip(parsed.thread))
    return _accepted()


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


def _bearer_ok(request: web.Request, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time (the time to refuse says nothing of it)."""
    given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, f"Bearer {token}".encode())


async def metrics_page(request: web.Request) -> web.Response:
    """Prometheus text format; run counts come from the store at most every 15 s, the rest is kept in process."""
    token = request.app[SETTINGS].metrics_token
    if token is not None and not _bearer_ok(request, token):
        return web.json_response({"error": "a bearer token is required"}, status=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    m = request.app[METRICS]
    try:
        await m.refresh_runs(request.app[STORE])
    except StoreUnavailable as exc:  # no stale numbers: the run series vanish until the store answers
        log.warning("metrics: store unavailable: %s", exc)
        m.set_runs({})
    body, content_type = m.render()
    return web.Response(body=body, headers={"Content-Type": content_type})


class _QuietMalformed(logging.Filter):
    """aiohttp logs a request it could not parse (a bad request line, bad headers, bad chunked encoding) and a
    client gone mid-request as ERROR with a traceback: internet noise, not a fault of ours. Such a record
    becomes one INFO line naming the error, the parser's echo of the bytes clipped; any other stays as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (HttpProcessingError, ConnectionError)):
            why = getattr(exc, "message", None) or str(exc)
            record.msg, record.args = "%s: %s: %s", (record.getMessage(), type(exc).__name__, clip(" ".join(why.split())))
            record.exc_info, record.exc_text = None, None
            if record.levelno > logging.INFO:
                record.levelno, record.levelname = logging.INFO, "INFO"
        return True


HTTP_LOG.addFilter(_QuietMalformed())


def _connection_limits(settings: Settings) -> dict[str, Any]:
    """What aiohttp's per-connection handler is given, whichever runner serves the app (``serve``, tests).

    ``keepalive_timeout``: aiohttp arms it when a connection opens and again after each answer, and closes the
    connection if no whole request line and headers have arrived by then (aiohttp 3.14; its default is an
    hour), so it bounds both a half-sent request and an idle keep-alive connection."""
    return {"keepalive_timeout": settings.header_timeout, "lingering_time": LINGER, "logger": HTTP_LOG}


def make_app(store: Store, secret: str, on_accepted: Callable[[str], None],
             metrics: Metrics | None = None, *, settings: Settings | None = None) -> web.Application:
    """The web app. ``on_accepted(thread)`` is told of each new job (it must not block).

    ``metrics`` is shared with the job runner so one ``/metrics`` shows both (default: a new one). ``settings``
    gives the ingress limits and how ``/metrics`` is served: with ``metrics_port`` set it is not served here
    but by :func:`make_metrics_app` (default: ``Settings()``'s values).
    """
    settings = settings if settings is not None else Settings()
    app = web.Application(client_max_size=MAX_BODY, handler_args=_connection_limits(settings))
    app[STORE] = store
    app[SECRET] = secret
    app[SETTINGS] = settings
    app[IN_FLIGHT] = InFlight(settings.unverified_bytes)
    app[ON_ACCEPTED] = on_accepted
    app[METRICS] = metrics if metrics is not None else Metrics()
    app[HEALTH] = []
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/healthz", healthz)
    if settings.metrics_port is None:
        app.router.add_get("/metrics", metrics_page)
    return app


def make_metrics_app(webhook_app: web.Application) -> web.Application:
    """``GET /metrics`` alone, for its own port: the same store, counters and token as ``webhook_app``."""
    settings = webhook_app[SETTINGS]
    app = web.Application(handler_args=_connection_limits(settings))
    app[STORE], app[METRICS], app[SETTINGS] = webhook_app[STORE], webhook_app[METRICS], settings
    app.router.add_get("/metrics", metrics_page)
    return app
