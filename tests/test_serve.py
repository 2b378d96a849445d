"""``python -m bot serve`` as deployed: a real process, configured by environment, against the sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import APP_ID, ROOT, SECRET, load_fixture, webhook_headers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_env(sandbox: Any, app_keys: tuple[str, str], tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment a deployment gives ``python -m bot serve``, pointed at the sandbox."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "GITHUB_APP_ID": str(APP_ID),
            "GITHUB_PRIVATE_KEY": app_keys[0], "GITHUB_WEBHOOK_SECRET": SECRET, "GITHUB_API_URL": sandbox.url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}", "PORT": str(port),
            "TRIAGE_LEAD_WRITE_SPACING": "0", **extra}


async def until(check: Callable[[], Any], timeout: float, what: str) -> None:
    """Wait until ``check()`` holds; fail, naming ``what``, after ``timeout`` seconds. A deadline, not a number
    of naps: the work watched here (a subprocess importing the agent side, then a run) takes several times
    longer on a busy two-core machine, and a count of naps that ran out would go on as if it had happened."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        await asyncio.sleep(0.05)


async def start_serve(env: dict[str, str], port: int) -> asyncio.subprocess.Process:
    """``python -m bot serve`` in a subprocess, once ``/healthz`` answers 200."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "serve", cwd=ROOT, env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return proc
            except aiohttp.ClientConnectionError:
                pass
            assert time.monotonic() - started < 30, "serve did not come up"
            await asyncio.sleep(0.05)


async def test_serve_answers_and_works_then_stops_on_sigterm(sandbox: Any, app_keys: tuple[str, str], tmp_path: Path) -> None:
    port = free_port()
    proc = await start_serve(serve_env(sandbox, app_keys, tmp_path, port), port)
    try:
        async with aiohttp.ClientSession() as http:
            payload = load_fixture("issues.opened.json")
            sandbox.seed_from_payload(payload)
            body = json.dumps(payload).encode()
            async with http.post(f"http://127.0.0.1:{port}/webhook", data=body,
                                 headers=webhook_headers("issues", body)) as r:
                assert r.status == 202
            await until(lambda: any("triage-lead:escalation:" in c["body"]
                                    for c in sandbox.comments("Codertocat/Hello-World", 1)), 60, "the escalation")
            bodies = [c["body"] for c in sandbox.comments("Codertocat/Hello-World", 1)]
            assert bodies[0].startswith("### triage-lead · Production Error Investigation")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"Traceback" not in err


async def test_serve_drops_half_sent_requests_and_serves_metrics_on_their_own_port_with_a_token(
        sandbox: Any, app_keys: tuple[str, str], tmp_path: Path) -> None:
    """The process as deployed takes the ingress and metrics settings from its environment."""
    port, metrics_port = free_port(), free_port()
    env = serve_env(sandbox, app_keys, tmp_path, port, TRIAGE_LEAD_HEADER_TIMEOUT="0.5",
                    TRIAGE_LEAD_METRICS_PORT=str(metrics_port), TRIAGE_LEAD_METRICS_TOKEN="m-t0ken")
    proc = await start_serve(env, port)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /webhook HTTP/1.1\r\nHost: bot\r\nX-GitHub-Ev")  # and nothing more
        assert await asyncio.wait_for(reader.read(), 5.0) == b""  # closed by the server, well before 5 s
        writer.close()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer m-t0ken"}) as r:
                assert r.status == 404
            own = f"http://127.0.0.1:{metrics_port}/metrics"
            async with http.get(own) as r:
                assert r.status == 401
            async with http.get(own, headers={"Authorization": "Bearer m-t0ken"}) as r:
                assert r.status == 200 and "triage_lead_webhook_deliveries" in await r.text()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"Traceback" not in err


def test_a_line_logged_while_serving_is_written_without_waiting_for_the_exit() -> None:
    """The log thread sleeps between batches; the first line after a quiet spell wakes it."""
    import logging
    import time

    from bot.logs import write_off_thread
    from tests.conftest import log_lines

    with log_lines(json=True) as out:
        stop = write_off_thread()
        try:
            for n in range(2):  # twice: the second after the writer went back to sleep
                logging.getLogger("bot.test").warning("line %d", n)
                deadline = time.monotonic() + 10
                while f"line {n}" not in out.getvalue() and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert f"line {n}" in out.getvalue()
        finally:
            stop()


def test_a_line_that_cannot_be_formatted_does_not_stop_the_log_thread() -> None:
    """A bound field whose str() raises fails its own line (logging's policy), never the writer."""
    import logging
    import time

    from bot.logs import write_off_thread
    from tests.conftest import log_lines

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    with log_lines(json=True) as out:
        stop = write_off_thread()
        try:
            logging.raiseExceptions, before = False, logging.raiseExceptions  # the policy's stderr print, off
            logging.getLogger("bot.test").info("unprintable", extra={"run_id": Unprintable()})
            logging.getLogger("bot.test").warning("after it")
            deadline = time.monotonic() + 10
            while "after it" not in out.getvalue() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert "after it" in out.getvalue() and "unprintable" not in out.getvalue()
        finally:
            logging.raiseExceptions = before
            stop()


def test_a_line_logged_while_the_writer_stops_is_written_not_lost() -> None:
    """Another thread may be logging as serve stops: once the writer is stopping, lines are written at once."""
    import logging

    from bot.logs import write_off_thread
    from tests.conftest import log_lines

    with log_lines(json=True) as out:
        stop = write_off_thread()
        queued = next(h for h in logging.getLogger().handlers if hasattr(h, "listener"))
        queued.listener.stop()  # the writer's last pass is over; a thread inside logging still holds the handler
        logging.getLogger("bot.test").warning("late line")
        assert "late line" in out.getvalue()
        stop()


def test_lines_written_off_the_event_loop_keep_what_the_caller_bound() -> None:
    import logging

    from bot.logs import log_context, write_off_thread
    from tests.conftest import log_lines

    with log_lines(json=True) as out:
        stop = write_off_thread()  # as serve runs: a thread formats and writes each line
        try:
            with log_context(delivery_id="d-9"):
                logging.getLogger("bot.test").info("accepted %s", "d-9")
        finally:
            stop()  # writes what is queued
        line = json.loads(out.getvalue().splitlines()[-1])
    assert (line["message"], line["delivery_id"]) == ("accepted d-9", "d-9")
