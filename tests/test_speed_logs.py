"""The log on a run's path (issue 16): the anthropic SDK's HTTP stack says "HTTP Request: POST ..." at INFO for
every model call; at the bot's INFO those lines are not written (its warnings are), at DEBUG they are."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.logs import setup_logging


@pytest.fixture
def restore() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpx2")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


@pytest.mark.parametrize("name", ["httpx", "httpx2"])
def test_the_sdks_request_lines_are_left_out_at_info_and_its_warnings_kept(name: str, restore: None) -> None:
    out = io.StringIO()
    setup_logging("INFO", json=False, stream=out)
    logging.getLogger(name).info('HTTP Request: POST http://x/v1/messages "HTTP/1.1 200 OK"')
    logging.getLogger(name).warning("connection reset")
    logging.getLogger("bot.run").info("a line of the bot's own")
    text = out.getvalue()
    assert "HTTP Request" not in text and "connection reset" in text and "a line of the bot's own" in text


def test_at_debug_the_sdks_request_lines_are_written(restore: None) -> None:
    out = io.StringIO()
    setup_logging("DEBUG", json=False, stream=out)
    logging.getLogger("httpx2").info("HTTP Request: POST http://x/v1/messages")
    assert "HTTP Request" in out.getvalue()
