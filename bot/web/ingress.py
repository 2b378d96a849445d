"""A webhook body, read before anyone knows who sent it: what an unsigned request may hold, and for how long.

Anyone on the internet can open connections to ``/webhook`` and announce 25 MB bodies. Until the HMAC checks,
a request is held to GitHub's size cap (413 as soon as Content-Length or the stream passes it), to a deadline
for the whole body (408), and to its share of one budget of unverified bytes for the whole app (503 before
reading on, when the bytes it has sent would pass it). The HMAC is computed once the whole body is held, in one
call (:func:`sign`, whichever way the body arrived), and nothing is parsed before it checks.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bot.store.intake import read_payload

MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
TOO_LARGE = "payload larger than GitHub's 25 MB cap"
BAD_SIGNATURE = "missing or bad X-Hub-Signature-256"
_SIGNATURE = re.compile(r"sha256=[0-9a-f]{64}")  # GitHub's form; anything else cannot verify, so is not read


@dataclass
class InFlight:
    """Bytes of not-yet-verified bodies one app holds, across all its connections (one event loop: no lock)."""

    cap: int
    held: int = 0

    def take(self, n: int) -> bool:
        """Reserve ``n`` bytes; False, reserving nothing, when that would pass the cap."""
        if self.held + n > self.cap:
            return False
        self.held += n
        return True

    def give(self, n: int) -> None:
        self.held -= n


class Refused(Exception):
    """The answer to a body that was not read to a verified end; ``outcome`` is a ``metrics.OUTCOMES`` value."""

    def __init__(self, status: int, outcome: str, error: str, *, retry_after: int | None = None) -> None:
        super().__init__(error)
        self.status, self.outcome, self.error, self.retry_after = status, outcome, error, retry_after


async def read_signed(request: web.Request, secret: str, in_flight: InFlight, deadline: float) -> bytes:
    """The raw body, once its ``X-Hub-Signature-256`` checks; else :class:`Refused`.

    Bytes are reserved as they arrive. The reservation is given back as soon as the signature is checked,
    whatever the answer.
    """
    declared = request.content_length
    if declared is not None and declared > MAX_BODY:
        raise Refused(413, "too_large", TOO_LARGE)
    header = (request.headers.get("X-Hub-Signature-256") or "").strip()
    if not _SIGNATURE.fullmatch(header):
        raise Refused(401, "rejected_signature", BAD_SIGNATURE)
    if request.content.is_eof():  # the whole body arrived with the headers (most deliveries): no waiting to bound
        return _verified(_buffered(request, in_flight, deadline), secret, header)
    held = 0
    parts: list[bytes] = []
    try:
        async with asyncio.timeout(deadline):
            while chunk := await request.content.readany():
                if held + len(chunk) > MAX_BODY:
                    raise Refused(413, "too_large", TOO_LARGE)
                # Bytes as they arrive, not as announced: an announcement costs nothing to make, so counting it
                # would let two liars with 16 MB headers fill the cap for every real delivery.
                if not in_flight.take(len(chunk)):
                    raise Refused(503, "over_capacity", "too many unverified bodies in flight; retry later",
                                  retry_after=max(1, math.ceil(deadline)))
                held += len(chunk)
                parts.append(chunk)
    except TimeoutError:
        raise Refused(408, "too_slow", f"body did not arrive within {deadline:g} s") from None
    except HttpProcessingError:  # bad chunked encoding, a body shorter than its Content-Length
        raise Refused(400, "malformed", "malformed request body") from None
    except ConnectionError:  # the client went away mid-body: nobody reads this answer
        raise Refused(400, "disconnected", "connection lost before the body arrived") from None
    finally:
        in_flight.give(held)
    return _verified(b"".join(parts), secret, header)


def _buffered(request: web.Request, in_flight: InFlight, deadline: float) -> bytes:
    """A body already read in whole by aiohttp, under the same caps as one that streams in."""
    try:
        body = request.content.read_nowait(-1)
    except HttpProcessingError:  # aiohttp stored a parse error of the body for its reader
        raise Refused(400, "malformed", "malformed request body") from None
    except ConnectionError:
        raise Refused(400, "disconnected", "connection lost before the body arrived") from None
    if len(body) > MAX_BODY:
        raise Refused(413, "too_large", TOO_LARGE)
    if not in_flight.take(len(body)):  # aiohttp holds it already: it counts against the budget like any other
        raise Refused(503, "over_capacity", "too many unverified bodies in flight; retry later",
                      retry_after=max(1, math.ceil(deadline)))
    in_flight.give(len(body))
    return body


def _verified(body: bytes, secret: str, header: str) -> bytes:
    # Both ASCII (the header matched _SIGNATURE): compared as they are, in constant time.
    if not hmac.compare_digest(sign(secret, body), header):
        raise Refused(401, "rejected_signature", BAD_SIGNATURE)
    return body


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``. OpenSSL's one-shot HMAC: no HMAC object
    built and torn down per delivery (a few microseconds of the webhook's path, issue 16)."""
    return "sha256=" + hmac.digest(secret.encode(), body, "sha256").hex()


class Body(dict[str, Any]):
    """A delivery's payload that keeps the text it was parsed from: the store keeps that text as is (the signed
    bytes, and no second encoding on the webhook's path). It equals, and reads as, the plain parsed dict."""

    __slots__ = ("raw",)

    def __init__(self, value: dict[str, Any] | None = None, raw: str | None = None) -> None:
        super().__init__(value or {})
        self.raw = raw


def parse_body(body: bytes) -> tuple[str, Any]:
    """The body as text and its JSON value; ValueError (UnicodeDecodeError is one) or RecursionError if not
    UTF-8 JSON. The text is what is stored, so it must read back with ``json.loads`` as it parses here."""
    text = body.decode("utf-8")
    return text, read_payload(text)  # as the queue will read it back
