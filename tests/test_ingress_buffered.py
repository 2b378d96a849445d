"""A body that arrived whole with its headers is read at once, under the same caps as one that streams in.

Most deliveries are a few kilobytes and are in aiohttp's buffer before the handler runs; they skip the
streaming loop (its timeout and per-chunk HMAC) but not a single check: the size cap, the shared budget of
unverified bytes, the signature and the stream's own errors. The requests here are aiohttp's, over a real
``StreamReader`` fed the way the HTTP parser feeds it.
"""

from __future__ import annotations

import asyncio
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_exceptions import TransferEncodingError
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

from bot.web import ingress
from bot.web.ingress import InFlight, Refused, read_signed, sign

SECRET = "s3cret-for-tests"


def request(body: bytes, *, signature: str | None = None, whole: bool = True,
            error: BaseException | None = None, length: bool = True) -> web.Request:
    loop = asyncio.get_running_loop()
    protocol = BaseProtocol(loop)
    protocol.connection_made(mock.Mock())  # a connection still open: a reader may wait on it
    stream = StreamReader(protocol, 2**16, loop=loop)
    stream.feed_data(body)
    if whole:
        stream.feed_eof()
    if error is not None:
        stream.set_exception(error)
    headers = {"X-Hub-Signature-256": signature if signature is not None else sign(SECRET, body)}
    if length:
        headers["Content-Length"] = str(len(body))
    return make_mocked_request("POST", "/webhook", headers=headers, payload=stream)


async def read(req: web.Request, in_flight: InFlight | None = None) -> Any:
    return await read_signed(req, SECRET, in_flight or InFlight(10**6), 0.2)


async def test_a_whole_signed_body_is_returned_and_holds_nothing_after() -> None:
    in_flight = InFlight(10**6)
    assert await read(request(b'{"zen": "ok"}'), in_flight) == b'{"zen": "ok"}'
    assert in_flight.held == 0


async def test_a_whole_body_with_a_wrong_signature_is_401() -> None:
    with pytest.raises(Refused) as no:
        await read(request(b"{}", signature=sign("another secret", b"{}")))
    assert (no.value.status, no.value.outcome) == (401, "rejected_signature")


async def test_a_whole_body_past_the_shared_budget_is_503_with_retry_after() -> None:
    in_flight = InFlight(100)
    in_flight.take(60)  # another connection's unverified bytes
    with pytest.raises(Refused) as no:
        await read(request(b"x" * 50), in_flight)
    assert (no.value.status, no.value.retry_after) == (503, 1)
    assert in_flight.held == 60  # what the refused one took is not left behind, what the other holds stays


async def test_a_whole_body_past_githubs_cap_is_413(monkeypatch: Any) -> None:
    monkeypatch.setattr(ingress, "MAX_BODY", 10)  # a chunked body carries no Content-Length to refuse early
    with pytest.raises(Refused) as no:
        await read(request(b"x" * 11, length=False))
    assert no.value.status == 413


@pytest.mark.parametrize("whole", [True, False], ids=["buffered", "streaming"])
async def test_a_body_the_parser_could_not_read_is_400_not_a_crash(whole: bool) -> None:
    with pytest.raises(Refused) as no:
        await read(request(b"{", error=TransferEncodingError("bad chunk"), whole=whole))
    assert (no.value.status, no.value.outcome) == (400, "malformed")


@pytest.mark.parametrize("whole", [True, False], ids=["buffered", "streaming"])
async def test_a_client_gone_mid_body_is_a_quiet_400(whole: bool) -> None:
    with pytest.raises(Refused) as no:
        await read(request(b"{", error=ConnectionResetError("reset by peer"), whole=whole))
    assert (no.value.status, no.value.outcome) == (400, "disconnected")


async def test_a_body_still_arriving_is_read_through_the_stream_and_its_deadline() -> None:
    with pytest.raises(Refused) as no:
        await read(request(b'{"half": ', whole=False))  # nothing more ever comes
    assert (no.value.status, no.value.outcome) == (408, "too_slow")
