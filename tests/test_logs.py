"""Log lines: JSON with the job's ids bound, a traceback as one field, plain text at a terminal."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections import deque
from collections.abc import Iterator

import pytest

from bot.logs import _Writer, bound, clip, log_context, setup_logging, write_off_thread


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_json_line_carries_the_bound_delivery_id(restore_root: None) -> None:
    out = io.StringIO()  # not a terminal: JSON by default
    setup_logging("INFO", stream=out)
    log = logging.getLogger("bot.run.jobs")
    with log_context(delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958"):
        log.info("job %s started", 7)

        async def step() -> None:  # a task started inside the block inherits the binding
            with log_context(run_id="run-1"):
                logging.getLogger("bot.run.executor").warning("step done")

        await asyncio.create_task(step())
    log.debug("not shown at INFO")
    log.info("after the job")
    first, second, third = lines(out)
    assert first["message"] == "job 7 started" and first["level"] == "INFO" and first["logger"] == "bot.run.jobs"
    assert first["delivery_id"] == "72d3162e-cc78-11e3-81ab-4c9367dc0958" and "run_id" not in first
    assert str(first["time"]).endswith("Z") and "T" in str(first["time"])
    assert second["delivery_id"] == first["delivery_id"] and second["run_id"] == "run-1"
    assert "delivery_id" not in third and dict(bound()) == {}


def test_a_traceback_is_one_field(restore_root: None) -> None:
    out = io.StringIO()
    setup_logging("INFO", json=True, stream=out)
    try:
        dict[str, int]()["missing"]
    except KeyError:
        logging.getLogger("bot.run.jobs").exception("job failed")
    text = out.getvalue()
    assert text.count("\n") == 1  # one record, one line
    (record,) = lines(out)
    assert record["message"] == "job failed" and record["level"] == "ERROR"
    assert "Traceback" in str(record["exception"]) and "KeyError: 'missing'" in str(record["exception"])


def test_plain_text_at_a_terminal_and_set_up_twice_is_one_handler(restore_root: None) -> None:
    out = Tty()
    setup_logging("warning", stream=out)
    setup_logging("WARNING", stream=out)  # a second call replaces, it does not double
    with log_context(delivery_id="d-1", run_id=None):
        logging.getLogger("bot").warning("careful")
    (line,) = out.getvalue().splitlines()
    assert line.endswith("WARNING bot: careful [delivery_id=d-1]") and not line.startswith("{")


def test_an_outsiders_value_is_clipped_to_one_short_line(restore_root: None) -> None:
    out = io.StringIO()
    setup_logging("INFO", json=False, stream=out)
    head = "d-1\n2026-01-01 00:00:00,000 ERROR bot: forged line\x1b[2J"
    logging.getLogger("bot.web.server").warning("rejected delivery %s", clip(head + "z" * 500))
    (line,) = out.getvalue().splitlines()  # the newline in the value does not start a record of its own
    assert line.endswith("WARNING bot.web.server: rejected delivery d-1?2026-01-01 00:00:00,000 ERROR bot: forged line?[2J"
                         + "z" * (100 - len(head)) + "…")
    assert clip("d-1") == "d-1" and clip("x" * 100) == "x" * 100 and clip("x" * 101) == "x" * 100 + "…"
    assert clip(None) == "None" and clip("abc", limit=2) == "ab…"


def strict() -> io.TextIOWrapper:
    """A stream as stderr is where the locale is UTF-8 with strict errors (not CPython's backslashreplace)."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)


def written(stream: io.TextIOWrapper) -> list[str]:
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8").splitlines()


def three_lines_off_thread(stream: io.TextIOWrapper, *, json_lines: bool) -> list[str]:
    """Three lines logged through the log thread (one batch: it lets lines gather before it writes), the middle
    one carrying a lone surrogate (a payload's ``\\ud800``, echoed in a message)."""
    setup_logging("INFO", json=json_lines, stream=stream)
    stop = write_off_thread()
    try:
        for text in ("before", "odd title a\ud800b", "after"):
            logging.getLogger("bot.web.server").warning("%s", text)
    finally:
        stop()  # writes what is queued
    return written(stream)


def test_a_lone_surrogate_costs_no_line_of_its_batch_on_a_strict_stream(restore_root: None) -> None:
    before, odd, after = three_lines_off_thread(strict(), json_lines=True)
    assert json.loads(before)["message"] == "before" and json.loads(after)["message"] == "after"
    assert json.loads(odd)["message"] == "odd title a\ud800b"  # one valid JSON line, the surrogate \\u-escaped


def test_a_lone_surrogate_in_plain_text_is_shown_as_a_question_mark(restore_root: None) -> None:
    before, odd, after = three_lines_off_thread(strict(), json_lines=False)
    assert before.endswith("before") and odd.endswith("odd title a?b") and after.endswith("after")


def test_a_line_the_stream_cannot_encode_is_the_only_one_lost(restore_root: None) -> None:
    """Whatever a formatter lets through (here: plain logging's, which writes a surrogate as it is), the batch
    writer writes every other line of the batch."""
    stream = strict()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    records = [logging.makeLogRecord({"msg": text, "levelno": logging.INFO}) for text in ("one", "a\ud800b", "three")]
    logging.raiseExceptions, saved = False, logging.raiseExceptions  # the policy's print to stderr, off
    try:
        _Writer(deque(), [handler]).write(records)
    finally:
        logging.raiseExceptions = saved
    assert written(stream) == ["one", "three"]
