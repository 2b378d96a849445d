"""Before the signature, little can be held; the operator surfaces answer only whom they should.

Every test talks to the app as ``serve`` serves it (``Runtime.listen``: an AppRunner on a real port), over raw
sockets where the scene needs a misbehaving client: bodies announced at 25 MB and stalled, request headers sent
half-way, malformed HTTP. Timeouts are small (a fraction of a second) so nothing waits long; what is asserted is
the answer, the connection closing by a generous deadline (ten times the timeout), and memory bounded by the cap,
never how fast anything happened.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.run.runtime import Runtime
from bot.settings import Settings
from bot.web import ingress
from bot.web.server import HTTP_LOG, IN_FLIGHT, LINGER, sign
from tests.conftest import SECRET, log_lines
from tests.test_serve import free_port

MB = 1_000_000
MiB = 1024 * 1024
TIMEOUT = 0.5  # header timeout and body deadline of these tests (production: 5 s and 10 s)


@dataclass
class Served:
    runtime: Runtime
    port: int
    metrics_port: int | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(settings: Settings) -> AsyncIterator[Serve]:
    """Start the bot with some settings overridden, listening as ``serve`` listens; all stopped at the end."""
    started: list[tuple[Runtime, list[Any]]] = []

    async def start(**overrides: Any) -> Served:
        s = settings.with_overrides(**({"header_timeout": TIMEOUT, "body_deadline": TIMEOUT, "port": free_port()}
                                       | overrides))
        rt = await Runtime(s, github_max_wait=5.0, github_backoff=0.01).start()
        started.append((rt, await rt.listen("127.0.0.1")))
        return Served(rt, s.port, s.metrics_port)

    yield start
    for rt, runners in started:
        for runner in runners:
            await runner.cleanup()
        await rt.close()


def webhook_head(length: int | None, *, delivery: str = "d-1", signature: str = sign(SECRET, b"x"),
                 event: str = "ping") -> bytes:
    """Request line and headers of a delivery; a Content-Length, or chunked when ``length`` is None."""
    size = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    return (f"POST /webhook HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n{size}\r\n"
            f"X-GitHub-Event: {event}\r\nX-GitHub-Delivery: {delivery}\r\nX-Hub-Signature-256: {signature}\r\n"
            "\r\n").encode()


async def answer(reader: asyncio.StreamReader, within: float) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of the server's answer."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), within)
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), within)
    return int(lines[0].split()[1]), headers, body


async def closed(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the server closes the connection within ``within`` seconds (bytes it still sends are dropped)."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:  # closed on bytes it never read: a reset
        pass
    return True


# ---- bodies: the deadline, the shared cap, GitHub's size cap ------------------------------------------------

def stalled_sender(port: int, announce: int, send: int, statuses: list[int], closes: list[bool]) -> None:
    """One connection announcing ``announce`` bytes that sends ``send`` of them (fewer if the server answers
    first), then stalls: records the status it got and whether the server closed the connection after it.

    A thread with a blocking socket: sending from one shared buffer allocates nothing, so what tracemalloc
    counts meanwhile is the server's."""
    view = memoryview(STALLED_BODY)[:send]
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(webhook_head(announce))
        sent = 0
        while sent < send:
            readable, writable, _ = select.select([s], [s], [], 20 * TIMEOUT)
            if readable:
                break  # answered already: stop sending, as a client that reads its answer would
            if writable:
                sent += s.send(view[sent:sent + 65536])
        s.settimeout(20 * TIMEOUT)
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(4096)
            assert chunk, "closed without an answer"
            head += chunk
        statuses.append(int(head.split()[1]))
        s.settimeout(10 * LINGER)
        try:
            while s.recv(65536):
                pass
            closes.append(True)
        except ConnectionError:
            closes.append(True)
        except TimeoutError:
            closes.append(False)


STALLED_BODY = bytes(6 * MB)


async def test_bodies_announced_at_25_mb_and_stalled_hold_no_more_than_the_cap(serve: Serve) -> None:
    """Twelve connections announce 25 MB, send 6 MB and stall: the first the cap admits is answered 408 at the
    deadline, every other 503 at once; the server's allocations peak below the cap (without it: 12 x 6 MB)."""
    cap = 26 * MiB  # room for one body of GitHub's largest
    bot = await serve(unverified_bytes=cap, body_deadline=4.0)  # time for every sender to pass the cap first
    statuses: list[int] = []
    closes: list[bool] = []
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        threads = [threading.Thread(target=stalled_sender, args=(bot.port, 25 * MB, len(STALLED_BODY), statuses, closes))
                   for _ in range(12)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            await asyncio.sleep(0.05)  # the server runs on this loop
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    grew = peak - before
    print(f"\nstalled bodies: traced memory {before / MiB:.1f} MiB before, peak {peak / MiB:.1f} MiB "
          f"(+{grew / MiB:.1f} MiB); answers {sorted(statuses)}")
    assert grew < cap + 8 * MiB  # the bodies held, plus aiohttp's per-connection read buffers
    assert len(statuses) == 12 and set(statuses) <= {408, 503}, statuses
    assert statuses.count(503) >= 1 and statuses.count(408) >= 1, statuses
    assert all(closes), "a refused connection stayed open"
    assert bot.runtime.app[IN_FLIGHT].held == 0  # every reservation given back


async def test_a_body_that_stops_arriving_is_answered_408_and_its_connection_closed(serve: Serve) -> None:
    bot = await serve()
    reader, writer = await asyncio.open_connection("127.0.0.1", bot.port)
    writer.write(webhook_head(10_000) + b'{"zen": "')
    status, _, body = await answer(reader, 20 * TIMEOUT)
    assert (status, json.loads(body)) == (408, {"error": f"body did not arrive within {TIMEOUT:g} s"})
    assert await closed(reader, 10 * LINGER)
    writer.close()
    assert bot.runtime.app[IN_FLIGHT].held == 0


async def test_past_the_shared_cap_a_body_is_refused_503_at_once(serve: Serve) -> None:
    """The cap is across connections and counts bytes received (an announcement costs a liar nothing): one
    stalled body holds what it sent; the next one whose bytes would pass the cap is refused with Retry-After;
    one that fits is still read."""
    bot = await serve(unverified_bytes=100_000, body_deadline=30.0)
    r1, w1 = await asyncio.open_connection("127.0.0.1", bot.port)
    w1.write(webhook_head(60_000) + b"{" * 59_999)  # sent but one byte, and stalled
    await w1.drain()
    async with asyncio.timeout(20 * TIMEOUT):  # until the first is held
        while bot.runtime.app[IN_FLIGHT].held < 59_999:
            await asyncio.sleep(0.01)
    r2, w2 = await asyncio.open_connection("127.0.0.1", bot.port)
    w2.write(webhook_head(50_000) + b"{" * 50_000)
    status, headers, body = await answer(r2, 20 * TIMEOUT)
    assert (status, json.loads(body)) == (503, {"error": "too many unverified bodies in flight; retry later"})
    assert headers["retry-after"] == "30"
    assert await closed(r2, 10 * LINGER)
    ping = json.dumps({"zen": "Fits.", "hook_id": 1}).encode()
    async with aiohttp.ClientSession() as http:
        sent = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d-2", "X-Hub-Signature-256": sign(SECRET, ping)}
        async with http.post(f"{bot.url}/webhook", data=ping, headers=sent) as resp:
            assert resp.status == 200
    w1.close()
    w2.close()


async def test_an_announcement_alone_holds_nothing(serve: Serve) -> None:
    """Bodies announced to fill the cap but never sent cannot hold it against the deliveries behind them."""
    bot = await serve(unverified_bytes=26 * MiB, body_deadline=30.0)
    liars = [await asyncio.open_connection("127.0.0.1", bot.port) for _ in range(2)]
    for (_, w), size in zip(liars, (25 * MiB, MiB - 10), strict=True):  # together: all of the cap but 10 bytes
        w.write(webhook_head(size))
        await w.drain()
    await asyncio.sleep(0.2)  # (if they counted, they would be counted by now; without a count there is no race)
    ping = json.dumps({"zen": "Fits.", "hook_id": 1}).encode()
    async with aiohttp.ClientSession() as http:
        sent = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d-3", "X-Hub-Signature-256": sign(SECRET, ping)}
        async with http.post(f"{bot.url}/webhook", data=ping, headers=sent) as resp:
            assert resp.status == 200
    for _, w in liars:
        w.close()


async def test_a_chunked_body_counts_against_the_cap_as_it_arrives(serve: Serve) -> None:
    bot = await serve(unverified_bytes=4096, body_deadline=30.0)  # the cap answers, never the deadline
    reader, writer = await asyncio.open_connection("127.0.0.1", bot.port)
    writer.write(webhook_head(None))
    for _ in range(3):  # 3 x 2000 bytes: the third passes the 4096-byte cap
        writer.write(b"7d0\r\n" + b" " * 2000 + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
    status, headers, _ = await answer(reader, 20 * TIMEOUT)
    assert status == 503 and "retry-after" in headers
    assert await closed(reader, 10 * LINGER)
    writer.close()
    assert bot.runtime.app[IN_FLIGHT].held == 0


async def test_over_githubs_25_mb_is_413_on_the_announcement_or_as_the_stream_passes_it(
        serve: Serve, monkeypatch: Any) -> None:
    bot = await serve(unverified_bytes=64 * MiB, body_deadline=30.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", bot.port)
    writer.write(webhook_head(ingress.MAX_BODY + 1))  # announced, never sent: refused without waiting for it
    status, _, body = await answer(reader, 20 * TIMEOUT)
    assert (status, json.loads(body)) == (413, {"error": "payload larger than GitHub's 25 MB cap"})
    assert await closed(reader, 10 * LINGER)
    writer.close()

    monkeypatch.setattr(ingress, "MAX_BODY", 5000)  # a stream with no Content-Length, past the cap
    reader, writer = await asyncio.open_connection("127.0.0.1", bot.port)
    writer.write(webhook_head(None))
    for _ in range(3):
        writer.write(b"7d0\r\n" + b" " * 2000 + b"\r\n")
        await writer.drain()
    status, _, body = await answer(reader, 20 * TIMEOUT)
    assert (status, json.loads(body)) == (413, {"error": "payload larger than GitHub's 25 MB cap"})
    writer.close()


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_signed_body_arriving_in_pieces_within_the_deadline_is_verified_as_it_streams(
        serve: Serve, chunked: bool) -> None:
    bot = await serve(body_deadline=30.0)
    ping = json.dumps({"zen": "Half measures are as bad as nothing at all.", "hook_id": 1}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", bot.port)
    writer.write(webhook_head(None if chunked else len(ping), signature=sign(SECRET, ping)))
    for i in range(0, len(ping), 16):
        piece = ping[i:i + 16]
        writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
        await writer.drain()
        await asyncio.sleep(0.01)
    if chunked:
        writer.write(b"0\r\n\r\n")
    status, _, body = await answer(reader, 20 * TIMEOUT)
    assert (status, json.loads(body)) == (200, {"msg": "pong", "zen": "Half measures are as bad as nothing at all."})
    writer.close()


# ---- request line and headers: the header timeout -----------------------------------------------------------

async def test_connections_that_send_half_their_headers_are_dropped(serve: Serve) -> None:
    bot = await serve()
    conns = [await asyncio.open_connection("127.0.0.1", bot.port) for _ in range(50)]
    for _, writer in conns:
        writer.write(b"POST /webhook HTTP/1.1\r\nHost: bot\r\nX-GitHub-Ev")
    silent = await asyncio.open_connection("127.0.0.1", bot.port)  # one that sends nothing at all
    results = await asyncio.gather(*(closed(reader, 10 * TIMEOUT) for reader, _ in [*conns, silent]))
    assert all(results), f"{results.count(False)} of {len(results)} connections still open"
    for _, writer in [*conns, silent]:
        writer.close()


async def test_headers_trickled_a_byte_at_a_time_do_not_keep_the_connection(serve: Serve) -> None:
    """The deadline runs from the connection's start (or the last answer), not from the last byte."""
    bot = await serve()
    reader, writer = await asyncio.open_connection("127.0.0.1", bot.port)
    trickle = b"GET /healthz HTTP/1.1\r\nHost: bot\r\n" + b"X-Slow: " + b"a" * 4000

    async def send() -> None:
        with suppress(ConnectionError):
            for byte in trickle:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(TIMEOUT / 10)

    sender = asyncio.create_task(send())
    try:
        assert await closed(reader, 10 * TIMEOUT)
    finally:
        sender.cancel()
        writer.close()


async def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(serve: Serve) -> None:
    bot = await serve()
    reader, writer = await asyncio.open_connection("127.0.0.1", bot.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: bot\r\n\r\n")
    status, headers, _ = await answer(reader, 20 * TIMEOUT)
    assert status == 200 and headers.get("connection", "keep-alive").lower() != "close"
    assert await closed(reader, 10 * TIMEOUT)
    writer.close()


# ---- /metrics ------------------------------------------------------------------------------------------------

async def get(url: str, **headers: str) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.text()


async def test_metrics_require_the_bearer_token_when_one_is_set(serve: Serve) -> None:
    bot = await serve(metrics_token="m3trics-t0ken")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "m3trics-t0ken"},
                    {"Authorization": "Bearer m3trics-t0ken-and-more"}, {"Authorization": "Basic m3trics-t0ken"}):
        status, sent, text = await get(f"{bot.url}/metrics", **headers)
        assert (status, sent["WWW-Authenticate"]) == (401, 'Bearer realm="metrics"'), headers
        assert "triage_lead" not in text
    status, _, text = await get(f"{bot.url}/metrics", Authorization="Bearer m3trics-t0ken")
    assert status == 200 and "triage_lead_webhook_deliveries" in text


async def test_metrics_without_a_token_setting_are_open(serve: Serve) -> None:
    bot = await serve()
    status, _, text = await get(f"{bot.url}/metrics")
    assert status == 200 and "triage_lead_webhook_deliveries" in text


async def test_metrics_on_their_own_port_leave_the_webhook_port(serve: Serve) -> None:
    bot = await serve(metrics_port=free_port(), metrics_token="t0ken")
    assert (await get(f"{bot.url}/metrics", Authorization="Bearer t0ken"))[0] == 404
    assert (await get(f"{bot.url}/healthz"))[0] == 200
    own = f"http://127.0.0.1:{bot.metrics_port}"
    assert (await get(f"{own}/metrics"))[0] == 401  # the token still applies there
    status, _, text = await get(f"{own}/metrics", Authorization="Bearer t0ken")
    assert status == 200 and "triage_lead_webhook_deliveries" in text
    assert (await get(f"{own}/webhook"))[0] == 404 and (await get(f"{own}/healthz"))[0] == 404
    ping = json.dumps({"zen": "z", "hook_id": 1}).encode()  # a delivery is counted where /metrics is served
    async with aiohttp.ClientSession() as http:
        sent = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d-9", "X-Hub-Signature-256": sign(SECRET, ping)}
        async with http.post(f"{bot.url}/webhook", data=ping, headers=sent) as resp:
            assert resp.status == 200
    text = (await get(f"{own}/metrics", Authorization="Bearer t0ken"))[2]
    assert 'triage_lead_webhook_deliveries_total{event="ping",outcome="ignored"} 1.0' in text


def runs_waiting(text: str) -> float | None:
    return next((s.value for f in text_string_to_metric_families(text) for s in f.samples
                 if s.name == "triage_lead_runs" and s.labels.get("state") == "waiting"), None)


async def test_run_counts_come_from_the_store_at_most_every_15_s(serve: Serve, monkeypatch: Any) -> None:
    bot = await serve()
    now = [1000.0]
    bot.runtime.metrics.clock = lambda: now[0]
    asked: list[float] = []

    async def run_states() -> dict[str, int]:
        asked.append(now[0])
        await asyncio.sleep(0.01)  # scrapes arriving meanwhile share this read
        return {"waiting": len(asked)}

    monkeypatch.setattr(bot.runtime.store, "run_states", run_states)
    url = f"{bot.url}/metrics"
    texts = [t for _, _, t in await asyncio.gather(*(get(url) for _ in range(8)))]  # eight pollers at once
    for step in range(30):  # then every half second, for 15 s of the clock
        now[0] = 1000.0 + step * 0.5
        texts.append((await get(url))[2])
    assert asked == [1000.0]
    assert {runs_waiting(t) for t in texts} == {1.0}
    now[0] = 1015.0
    assert runs_waiting((await get(url))[2]) == 2.0 and asked == [1000.0, 1015.0]


# ---- log lines -------------------------------------------------------------------------------------------------

async def test_an_outsiders_long_values_are_clipped_in_log_lines(serve: Serve) -> None:
    bot = await serve()
    long_id = "x" * 7000
    payload = {"action": "y" * 7000, "installation": {"id": 1}}
    body = json.dumps(payload).encode()
    with log_lines(json=True) as out:
        async with aiohttp.ClientSession() as http:
            for sent in ({"X-GitHub-Delivery": long_id, "X-Hub-Signature-256": "sha256=" + "0" * 64},
                         {"X-GitHub-Delivery": "d-long-action", "X-Hub-Signature-256": sign(SECRET, body)}):
                async with http.post(f"{bot.url}/webhook", data=body, headers={"X-GitHub-Event": "issues"} | sent):
                    pass
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    server_lines = [line["message"] for line in lines if line["logger"] == "bot.web.server"]
    assert server_lines == [
        f"rejected delivery {'x' * 100}…: missing or bad signature",
        f"ignored delivery d-long-action (issues): issues.{'y' * 93}…",
    ]
    assert max(len(line) for line in out.getvalue().splitlines()) < 400


MALFORMED = {
    "a bad request line after a good request": b"GET /healthz HTTP/1.1\r\nHost: bot\r\n\r\nGET /healthz HTTX/1.1\r\n\r\n",
    "a bad request line": b"GET /healthz HTTX/1.1\r\nHost: bot\r\n\r\n",
    "a header with a space in its name": b"GET /healthz HTTP/1.1\r\nHost: bot\r\nBad Header: y\r\n\r\n",
    "a NUL in a header value": b"GET /healthz HTTP/1.1\r\nHost: bot\r\nX: a\x00b\r\n\r\n",
    "a header line too long": b"GET /healthz HTTP/1.1\r\nHost: bot\r\nX: " + b"a" * 20_000 + b"\r\n\r\n",
    "Content-Length and chunked at once": b"POST /webhook HTTP/1.1\r\nHost: bot\r\nContent-Length: 3\r\n"
                                          b"Transfer-Encoding: chunked\r\n\r\nabc",
    "bad chunked encoding": webhook_head(None) + b"zz\r\nabc\r\n0\r\n\r\n",
}


async def send_and_wait(port: int, parts: list[bytes]) -> None:
    """Send ``parts`` a moment apart and wait until the server has answered and closed, or 10 s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for part in parts:
        writer.write(part)
        with suppress(ConnectionError):
            await writer.drain()
        await asyncio.sleep(0.1)
    await closed(reader, 10.0)
    writer.close()


async def test_malformed_http_is_one_line_without_a_traceback(serve: Serve) -> None:
    bot = await serve(header_timeout=2.0)
    scenes = [[data] for data in MALFORMED.values()]
    scenes.append([webhook_head(None), b"3\r\nabc\r\nzz\r\n"])  # bad chunked encoding after the headers
    scenes.append([b"POST /healthz HTTP/1.1\r\nHost: bot\r\nTransfer-Encoding: chunked\r\n\r\n",
                   b"3\r\nabc\r\nzz\r\n"])  # ... to a route that never reads its body
    with log_lines(json=False) as out:
        for parts in scenes:
            await send_and_wait(bot.port, parts)
        reader, writer = await asyncio.open_connection("127.0.0.1", bot.port)  # a client gone mid-body
        writer.write(webhook_head(10_000) + b"{")
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.transport.abort()
        await asyncio.sleep(0.2)
    text = out.getvalue()
    assert "Traceback" not in text and " ERROR " not in text, text[-3000:]
    http_lines = [line for line in text.splitlines() if " bot.http: " in line]
    assert len(http_lines) >= 6, text[-3000:]  # one line for each refusal aiohttp logs itself
    assert all(" INFO " in line and "Error handling request from 127.0.0.1: " in line for line in http_lines)
    assert max(len(line) for line in text.splitlines()) < 400


async def test_aiohttp_errors_other_than_malformed_http_keep_their_traceback() -> None:
    """The filter is narrow: a fault of ours logged through the same logger stays an ERROR with its traceback."""
    with log_lines(json=True) as out:
        try:
            raise KeyError("ours")
        except KeyError:
            HTTP_LOG.exception("Error handling request from %s", "127.0.0.1")
    (line,) = [json.loads(x) for x in out.getvalue().splitlines()]
    assert line["level"] == "ERROR" and "KeyError: 'ours'" in line["exception"]
