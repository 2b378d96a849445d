"""Logging set-up: one JSON object per line for log collectors, plain text for a person at a terminal.

A job binds its delivery and run ids once (:func:`log_context`) and every line logged while it runs,
in any module and in tasks it starts, carries them: ``contextvars`` follow asyncio tasks. A traceback
is one field of its line, so a collector never splits one failure into many records.
"""

from __future__ import annotations

import json as _json
import logging
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import IO

from bot.core.secrets import add_secret, scrub, secrets  # noqa: F401  (re-exported: the log side registers them)

_fast_dumps: Callable[..., bytes] | None
try:  # orjson encodes a line in a fraction of json's time: serve writes one a delivery (issue 16)
    from orjson import dumps as _fast_dumps
except ImportError:  # pragma: no cover (json writes the same object)
    _fast_dumps = None

CONTEXT_FIELDS = ("delivery_id", "run_id")
# Lone surrogates too: no UTF-8 encodes one, so a strict stream refuses the whole write of a line holding one.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` without control characters (a terminal escape in an error GitHub echoed must not reach a
    terminal) nor lone surrogates (a payload's ``\\ud800``: no stream can encode it), newlines and tabs kept."""
    return _CONTROL.sub("?", text)


CLIP = 100  # characters of an attacker-chosen value a log line keeps
_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clip(value: object, limit: int = CLIP) -> str:
    """An outsider's value (a header, a payload field, a parser's echo of either) fit for one log line: control
    characters and newlines replaced, at most ``limit`` characters then "…". Anyone can send a 7,000-character
    delivery id or a header with a newline in it; the operators' log must stay readable and one record a line."""
    text = str(value)
    return _ONE_LINE.sub("?", text[:limit]) + ("…" if len(text) > limit else "")


_context: ContextVar[Mapping[str, str]] = ContextVar("triage_lead_log_context", default=MappingProxyType({}))


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Bind fields (``delivery_id``, ``run_id``, ...) to every log line until the block ends; None unbinds nothing."""
    merged = dict(_context.get())
    merged.update({k: str(v) for k, v in fields.items() if v is not None})
    token = _context.set(MappingProxyType(merged))
    try:
        yield
    finally:
        _context.reset(token)


def bound() -> Mapping[str, str]:
    """The fields bound in the current context."""
    return _context.get()


def _fields(record: logging.LogRecord) -> dict[str, str]:
    """Bound fields (as they were where the line was logged), overridden by the same names passed with ``extra=``."""
    out = dict(getattr(record, "bound_fields", None) or _context.get())
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            out[name] = str(value)
    return out


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, bound fields, and ``exception`` as one string."""

    # The date and second of the last line's time: the lines of one second share it (the log's clock only moves on).
    _second: tuple[int, str] = (-1 << 62, "")

    def utc_time(self, created: float) -> str:
        """``created`` as ISO 8601 UTC with milliseconds and a Z, as ``datetime.isoformat`` writes it."""
        second = int(created)
        carry, micro = divmod(round((created - second) * 1e6), 1_000_000)  # to the microsecond first, as datetime
        second += carry  # rounded up into the next second, or (before 1970) floored into the one before
        cached = self._second  # read once: the log thread and a caller's may both format a line
        if cached[0] != second:
            cached = self._second = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        return f"{cached[1]}.{micro // 1000:03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": self.utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        line.update(_fields(record))
        if record.exc_info:
            line["exception"] = scrub(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        if _fast_dumps is not None:
            try:
                return _fast_dumps(line, default=str).decode()
            except TypeError:  # orjson's refusal (a lone surrogate is no UTF-8, an int past 64 bits)
                return _json.dumps(line, default=str)  # ASCII, \u-escaped: one valid JSON line on any stream
        text = _json.dumps(line, ensure_ascii=False, default=str)
        return text if text.isascii() or _encodes(text) else _json.dumps(line, default=str)


def _encodes(text: str) -> bool:
    """Whether ``text`` is valid UTF-8 once encoded (json writes a lone surrogate as it is, unescaped)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class TextFormatter(logging.Formatter):
    """The usual one-line text, with bound fields appended in brackets."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return printable(scrub(super().format(record)))

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        fields = _fields(record)
        return f"{text} [{' '.join(f'{k}={v}' for k, v in fields.items())}]" if fields else text


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so a second set-up replaces it instead of doubling lines."""


MAX_QUEUED = 10_000  # lines waiting for the log thread: a stalled stderr must not hold a burst's worth of memory
# How long the log thread lets lines gather before it writes them, in one write per stream: a thread woken per
# line took the GIL from the event loop per line (140 µs of CPU a delivery under a burst, a quarter of it all).
GATHER = 0.02
WARN_WAIT = 1.0  # seconds a WARNING or ERROR waits for room in a full queue before it too is dropped


class _Writer:
    """The log thread: it sleeps until a line is queued after a quiet spell, lets more gather for GATHER
    seconds, then formats them all and writes them to each stream at once. ``stop`` writes what is queued."""

    def __init__(self, lines: deque[logging.LogRecord], handlers: list[logging.Handler]) -> None:
        self.lines, self.handlers = lines, handlers
        self.wake = threading.Event()
        self.done = False
        self.thread = threading.Thread(target=self._run, name="log-writer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done = True
        self.wake.set()
        self.thread.join()
        self._write()  # whatever arrived after the thread's last pass

    def _run(self) -> None:
        while not self.done:
            self.wake.wait()
            if not self.done:
                time.sleep(GATHER)
            self.wake.clear()  # cleared before draining: a line queued during the write wakes the next pass
            self._write()

    def _write(self) -> None:
        batch = [self.lines.popleft() for _ in range(len(self.lines))]  # what is there now; later lines wait
        self.write(batch)

    def write(self, batch: list[logging.LogRecord]) -> None:
        """Format and write ``batch``, one write per stream. A record that cannot be formatted (a bound field
        whose str() raises) or encoded (a character the stream's encoding has not) is reported by logging's own
        policy and skipped; the others are written, and the thread never dies of one."""
        for handler in self.handlers:
            lines = [(r, line) for r in batch if r.levelno >= handler.level and (line := _formatted(handler, r))]
            if lines and isinstance(handler, logging.StreamHandler):
                with handler.lock:  # type: ignore[union-attr]
                    _write_lines(handler, lines)


def _write_lines(handler: logging.StreamHandler[IO[str]], lines: list[tuple[logging.LogRecord, str]]) -> None:
    """``lines`` in one write; if the stream cannot encode them, each line alone (a text stream encodes a write
    whole before writing any of it, so one line's refusal cost every line of the batch)."""
    try:
        handler.stream.write("".join(line for _, line in lines))
    except UnicodeError:
        for record, line in lines:
            try:
                handler.stream.write(line)
            except Exception:
                handler.handleError(record)
    except Exception:  # a closed or broken stream: logging's own policy (print to stderr), once a batch
        handler.handleError(lines[0][0])
        return
    try:
        handler.flush()
    except Exception:
        handler.handleError(lines[0][0])


def _formatted(handler: logging.Handler, record: logging.LogRecord) -> str:
    try:
        return handler.format(record) + "\n"
    except Exception:
        handler.handleError(record)
        return ""


class _Queued(logging.Handler):
    """Hands records to a thread that formats and writes them in batches, so a line costs the event loop a
    few microseconds instead of a JSON encoding, a write and a thread switch. What is logged is fixed here,
    on the caller's side: the message with its arguments, and the fields bound in the caller's context
    (another thread has none).

    The queue is bounded: when the writer falls behind, INFO and DEBUG lines are dropped and counted (one
    WARNING says how many, once there is room again); a WARNING or ERROR waits a moment for room."""

    def __init__(self, handlers: list[logging.Handler]) -> None:
        super().__init__()
        self.queue: deque[logging.LogRecord] = deque()  # appends and pops are atomic: no lock on the hot path
        self.listener = _Writer(self.queue, handlers)
        self.dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg, record.args = record.getMessage(), None
        record.bound_fields = _context.get()  # immutable (a MappingProxyType of a fresh dict): no copy needed
        return record  # exc_info kept: the queue stays in this process, nothing is pickled

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record = self.prepare(record)
            if self.listener.done:  # stopping or stopped: the writer's last pass may be over, so write it here
                self.listener.write([record])
            else:
                self.enqueue(record)
        except Exception:
            self.handleError(record)

    def enqueue(self, record: logging.LogRecord) -> None:
        wait = record.levelno >= logging.WARNING  # a warning or error waits a moment for room; the rest is dropped
        if self.dropped:  # first, once there is room again: how many lines are missing before this one
            note = logging.LogRecord("bot.logs", logging.WARNING, __file__, 0, f"{self.dropped} log lines below "
                                     "WARNING were dropped: the log writer fell behind", None, None)
            if self._put(self.prepare(note), wait=wait):
                self.dropped = 0
        if not self._put(record, wait=wait):
            self.dropped += 1

    def _put(self, record: logging.LogRecord, *, wait: bool) -> bool:
        if len(self.queue) >= MAX_QUEUED:
            if not wait:
                return False
            self.listener.wake.set()
            deadline = time.monotonic() + WARN_WAIT
            while len(self.queue) >= MAX_QUEUED:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.005)
        self.queue.append(record)
        if not self.listener.wake.is_set():  # the first line after a quiet spell wakes the writer
            self.listener.wake.set()
        return True


QUIET = ("httpx", "httpx2")  # third-party loggers kept at WARNING and above, unless the level is DEBUG


def setup_logging(level: str | int = "INFO", *, json: bool | None = None, stream: IO[str] | None = None) -> None:
    """Send the root logger to ``stream`` (stderr): JSON lines unless it is a terminal (``json`` forces either)."""
    stream = stream if stream is not None else sys.stderr
    if json is None:
        json = not (hasattr(stream, "isatty") and stream.isatty())
    if isinstance(level, str):
        level = getattr(logging, level.upper(), logging.INFO)
    handler = _Handler(stream)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, (_Handler, _Queued))]:
        root.removeHandler(old)
        if isinstance(old, _Queued):
            old.listener.stop()
    root.addHandler(handler)
    root.setLevel(level)
    # The anthropic SDK's HTTP stack logs every request at INFO ("HTTP Request: POST ..."): five lines a run that
    # say what the bot's own lines say when it matters (a failure), each formatted and written (issue 16). At
    # DEBUG an operator asked for everything, these too.
    for chatty in QUIET:
        logging.getLogger(chatty).setLevel(logging.NOTSET if level <= logging.DEBUG else logging.WARNING)


def write_off_thread() -> Callable[[], None]:
    """Move the writing of log lines set up by :func:`setup_logging` to a thread of its own (``serve``: one
    line per delivery); returns the function that writes what is queued and stops the thread."""
    root = logging.getLogger()
    mine: list[logging.Handler] = [h for h in root.handlers if isinstance(h, _Handler)]
    if not mine:
        return lambda: None
    queued = _Queued(mine)
    for h in mine:
        root.removeHandler(h)
    root.addHandler(queued)
    queued.listener.start()
    # What no line of ours shows, not worked out per record: the caller's frame (a stack walk), thread and
    # process names. The logging docs' own advice for code that logs often.
    saved = _record_extras((None, False, False, False))

    def stop() -> None:
        if queued in root.handlers:
            root.removeHandler(queued)
            queued.listener.stop()  # writes every line queued before it returns
            for h in mine:
                root.addHandler(h)
            _record_extras(saved)
    return stop


_Extras = tuple[str | None, bool, bool, bool]


def _record_extras(value: _Extras) -> _Extras:
    """Set what every LogRecord works out beyond its message (the caller's source file, thread, process,
    multiprocessing names); the settings before."""
    before = (logging._srcfile, logging.logThreads, logging.logProcesses,  # type: ignore[attr-defined]
              logging.logMultiprocessing)
    logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing = value  # type: ignore[attr-defined]
    return before
