"""The webhook path's cheaper steps (issue 16) give what the slower code they replaced gave: the log line's time
and encoding, the counters, the signature."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import logging
from datetime import UTC, datetime

import pytest

from bot.logs import JsonFormatter, setup_logging
from bot.web.ingress import BAD_SIGNATURE, sign
from bot.web.metrics import Metrics
from tests.conftest import SECRET
from tests.test_ingress_limits import Serve, answer, serve, webhook_head  # noqa: F401  (the serve fixture)
from tests.test_logs import restore_root  # noqa: F401  (the fixture)


def _iso(created: float) -> str:
    """What the JSON line's time was before: datetime's own ISO 8601, to the millisecond, with a Z."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.mark.parametrize("created", [
    1_764_770_000.0, 1_764_770_000.0005, 1_764_770_000.123456, 110_799_244.7899997,  # rounds up to .790
    1_764_770_059.9999996,  # rounds up into the next second (and minute)
    1_764_806_399.9999999,  # ... and into the next day
    -0.5, -1.25, -0.0000004, -86_400.9999996,  # before 1970 (a clock set wrong): floored, never ".-500Z"
])
def test_the_log_time_is_datetimes_iso_time(created: float) -> None:
    assert JsonFormatter().utc_time(created) == _iso(created)


def test_log_times_of_one_second_and_the_next_each_name_their_own_second() -> None:
    """The cached date-and-second is per second: a line a second later does not reuse it."""
    utc_time = JsonFormatter().utc_time
    assert [utc_time(t) for t in (1_764_770_000.2, 1_764_770_001.2, 1_764_770_000.2)] == [
        _iso(1_764_770_000.2), _iso(1_764_770_001.2), _iso(1_764_770_000.2)]


def test_a_line_orjson_refuses_is_still_written_as_one_json_line(restore_root: None) -> None:
    """A lone surrogate (a payload's ``\\ud800``, echoed in a message) is no UTF-8: orjson refuses it, and the line
    is written by json instead, never dropped."""
    out = io.StringIO()
    setup_logging("INFO", json=True, stream=out)
    logging.getLogger("bot.web.server").warning("odd title %s", "a\ud800b")
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "odd title a\ud800b" and record["level"] == "WARNING"


def test_the_json_line_has_every_field_and_plain_text(restore_root: None) -> None:
    out = io.StringIO()
    setup_logging("INFO", json=True, stream=out)
    logging.getLogger("bot.web.server").info("accepted delivery %s — ünïcode", "d-1")
    record = json.loads(out.getvalue())
    assert list(record) == ["time", "level", "logger", "message"]
    assert record["message"] == "accepted delivery d-1 — ünïcode" and "ünïcode" in out.getvalue()  # not \\u-escaped


def test_counters_count_each_delivery_and_refuse_an_unknown_outcome_every_time() -> None:
    m = Metrics()
    for _ in range(3):
        m.delivery("issues", "accepted")
    m.delivery("x" * 80, "malformed")  # an event name of no event's shape: the "other" label
    assert m.deliveries.labels("issues", "accepted")._value.get() == 3
    assert m.deliveries.labels("other", "malformed")._value.get() == 1
    for _ in range(2):  # refused on the second call too: an unknown pair is never remembered
        with pytest.raises(ValueError, match="unknown delivery outcome"):
            m.delivery("issues", "bogus")


@pytest.mark.parametrize("size", [0, 1, 2047, 2048, 12_000, 70_000])
def test_the_signature_is_githubs_hmac_sha256(size: int) -> None:
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    assert sign("It's a Secret to Everybody", body) == "sha256=" + hmac.new(
        b"It's a Secret to Everybody", body, hashlib.sha256).hexdigest()
    assert sign("another", body) != sign("It's a Secret to Everybody", body)  # the key is not cached across secrets


@pytest.mark.parametrize("signed_with", ["another secret", SECRET])
async def test_a_body_arriving_in_pieces_is_checked_as_a_buffered_one_is(serve: Serve, signed_with: str) -> None:
    """The streamed body's signature is :func:`sign`'s, compared as the buffered path compares it: signed with
    another secret (or over other bytes) it is refused, and never read."""
    bot = await serve(body_deadline=30.0)
    ping = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", bot.port)
    writer.write(webhook_head(len(ping), signature=sign(signed_with, ping)))
    for i in range(0, len(ping), 16):  # in pieces, after the headers: the streaming path
        writer.write(ping[i:i + 16])
        await writer.drain()
        await asyncio.sleep(0.01)
    status, _, body = await answer(reader, 10.0)
    assert (status, json.loads(body)) == ((200, {"msg": "pong", "zen": "Keep it logically awesome."})
                                          if signed_with == SECRET else (401, {"error": BAD_SIGNATURE}))
    writer.close()
