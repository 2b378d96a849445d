"""Group commit on the webhook's path (SQLite): deliveries that arrive together are committed together, each
caller still gets its own answer, a failed batch answers 503 to everyone in it, a 202 survives a SIGKILL at
once, and the payload stored is the body as GitHub sent it."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import bot.store.intake as intake
from bot.store import StoreUnavailable
from bot.store.sqlite import SQLiteStore
from bot.web import server
from bot.web.ingress import Body, parse_body
from tests.conftest import SECRET, load_fixture, webhook_headers
from tests.test_serve import free_port, serve_env, start_serve
from tests.test_store import delivery


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    s = SQLiteStore(f"sqlite:///{tmp_path / 'batch.sqlite3'}")
    await s.open()
    yield s
    await s.close()


def rows(path: Path, sql: str) -> list[Any]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def fail_jobs_of(path: Path, delivery_id: str) -> None:
    """Make the file refuse the job row of one delivery, as a full disk would refuse a page mid-transaction."""
    db = sqlite3.connect(path)
    db.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON jobs WHEN NEW.delivery_id GLOB '{delivery_id}'"
               " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    db.commit()
    db.close()


async def test_one_batch_answers_each_caller_and_a_duplicate_gets_false(store: Any, monkeypatch: Any) -> None:
    await store.accept_delivery(delivery("old"))
    batches: list[int] = []
    run_hook = store._run_hook

    async def counted(fn: Any, deadline: float | None = None) -> Any:
        batches.append(1)
        return await run_hook(fn, deadline)

    monkeypatch.setattr(store, "_run_hook", counted)
    answers = await asyncio.gather(*(store.accept_delivery(d) for d in (
        delivery(1), delivery("old"), delivery(2), delivery(1), delivery(3, thread="o/r#2"))))
    assert answers == [True, False, True, False, True]
    assert batches == [1]  # one transaction for all five
    assert sorted(r["delivery_id"] for r in [*await store.jobs_for("d-1"), *await store.jobs_for("d-2"),
                                              *await store.jobs_for("d-3"), *await store.jobs_for("d-old")]) == [
        "d-1", "d-2", "d-3", "d-old"]  # one job each, the duplicates none


async def test_a_failure_mid_batch_fails_every_caller_and_stores_none(store: Any) -> None:
    fail_jobs_of(Path(store.path), "d-2")
    results = await asyncio.gather(*(store.accept_delivery(delivery(i)) for i in (1, 2, 3)), return_exceptions=True)
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    assert "full" in str(results[0])
    assert rows(Path(store.path), "SELECT id FROM deliveries") == []
    assert await store.accept_delivery(delivery(4))  # the next batch is written as usual


async def test_a_failed_batch_answers_503_to_every_delivery_in_it(aiohttp_client: Any, store: Any) -> None:
    fail_jobs_of(Path(store.path), "*")
    client = await aiohttp_client(server.make_app(store, SECRET, lambda _: None))
    payload = load_fixture("issues.opened.json")
    body = json.dumps(payload).encode()
    answers = await asyncio.gather(*(client.post("/webhook", data=body,
                                                 headers=webhook_headers("issues", body, delivery=f"d-{i}"))
                                     for i in range(8)))
    assert [r.status for r in answers] == [503] * 8
    assert rows(Path(store.path), "SELECT COUNT(*) FROM deliveries") == [(0,)]


async def test_the_payload_stored_is_the_body_as_received(aiohttp_client: Any, store: Any) -> None:
    client = await aiohttp_client(server.make_app(store, SECRET, lambda _: None))
    payload = load_fixture("issues.opened.json")
    payload["issue"]["title"] = "Crash in café \u2014 \U0001f525"
    # Not what json.dumps would write: another key order, blanks, escapes kept as sent, non-ASCII as UTF-8.
    body = (b'{ "zz":  1 ,"escaped": "caf\\u00e9\\n",' + json.dumps(payload, ensure_ascii=False, indent=1)
            .encode()[1:])
    resp = await client.post("/webhook", data=body, headers=webhook_headers("issues", body, delivery="d-raw"))
    assert resp.status == 202
    [(stored,)] = rows(Path(store.path), "SELECT CAST(payload AS BLOB) FROM deliveries WHERE id = 'd-raw'")
    assert stored == body
    [row] = await store.jobs_for("d-raw")
    assert (await store.job_info(row["id"])).job.payload == json.loads(body)  # read back as it was parsed


def test_a_body_orjson_refuses_is_read_as_json_reads_it() -> None:
    body = b'{"title": "half an emoji \\ud83d", "n": 123456789012345678901234567890}'
    text, value = parse_body(body)
    assert text.encode() == body and value == json.loads(body)
    assert Body(value, text) == value and Body(value, text).raw == text


async def test_every_202_survives_a_sigkill_right_after(sandbox: Any, app_keys: tuple[str, str],
                                                          tmp_path: Path) -> None:
    port = free_port()
    proc = await start_serve(serve_env(sandbox, app_keys, tmp_path, port), port)
    payload = load_fixture("issues.opened.json")
    payload["sender"] = {"login": "ci-helper[bot]", "type": "Bot", "id": 999001}  # its job only skips
    body = json.dumps(payload).encode()
    accepted: list[str] = []

    async def post(http: aiohttp.ClientSession, i: int) -> None:
        async with http.post(f"http://127.0.0.1:{port}/webhook", data=body,
                             headers=webhook_headers("issues", body, delivery=f"kill-{i}")) as r:
            if r.status == 202:
                accepted.append(f"kill-{i}")
                if len(accepted) == 150:  # the instant the 150th 202 is read, with others still in flight
                    proc.send_signal(signal.SIGKILL)

    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
            await asyncio.gather(*(post(http, i) for i in range(400)), return_exceptions=True)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL and len(accepted) >= 150
    stored = {r[0] for r in rows(tmp_path / "serve.sqlite3",
                                 "SELECT d.id FROM deliveries d JOIN jobs j ON j.delivery_id = d.id")}
    assert set(accepted) <= stored, sorted(set(accepted) - stored)[:5]



async def test_a_writer_cancelled_before_it_ran_answers_503_and_the_next_delivery_is_written(store: Any) -> None:
    first = asyncio.ensure_future(store.accept_delivery(delivery(1)))
    await asyncio.sleep(0)  # the caller queued its delivery and started the writer, which has not run yet
    intake = store._intake()
    assert intake.writer is not None
    intake.writer.cancel()  # what the loop's closing does to it
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(first, 5)
    assert await asyncio.wait_for(store.accept_delivery(delivery(2)), 5)  # a hang fails, it is no figure


async def test_a_caller_who_waited_out_the_budget_is_answered_503_and_not_written(store: Any) -> None:
    intake = store._intake()
    now = [100.0]
    intake.clock = lambda: now[0]
    late = asyncio.ensure_future(store.accept_delivery(delivery("late")))
    await asyncio.sleep(0)  # queued at 100.0, its writer not yet run
    now[0] += intake.budget + 0.1  # the writer starts past the budget: the lock was held meanwhile
    fresh = asyncio.ensure_future(store.accept_delivery(delivery("fresh")))
    with pytest.raises(StoreUnavailable, match="waited"):
        await asyncio.wait_for(late, 5)
    assert await asyncio.wait_for(fresh, 5)
    assert rows(Path(store.path), "SELECT id FROM deliveries") == [("d-fresh",)]


async def test_past_the_pending_cap_a_delivery_is_answered_503_at_once(store: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(intake, "MAX_PENDING", 3)
    callers = [asyncio.ensure_future(store.accept_delivery(delivery(i))) for i in range(4)]
    answers = await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), 5)
    assert answers[:3] == [True] * 3 and isinstance(answers[3], StoreUnavailable), answers
    assert "wait for the store" in str(answers[3])


async def test_a_batch_waiting_for_the_jobs_lock_answers_503_within_the_budget(store: Any) -> None:
    """The jobs' writes and the deliveries' batches share one lock (SQLite's busy handler sleeps up to 100 ms
    between tries; the lock wakes the waiter at once). A batch that cannot have it within the webhook's
    budget is answered 503, never a 202 after GitHub gave up."""
    intake = store._intake()
    store.hook_budget = 0.3
    intake.lock.acquire()  # a job's write that does not end
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(StoreUnavailable, match="locked"):
            await asyncio.wait_for(store.accept_delivery(delivery("waits")), 20)
        assert asyncio.get_running_loop().time() - started < 10  # the budget, not the test's patience
    finally:
        intake.lock.release()
    assert rows(Path(store.path), "SELECT id FROM deliveries") == []


async def test_a_batch_gets_what_is_left_of_its_oldest_callers_budget(store: Any) -> None:
    """The store's own waits (the lock, SQLite's busy handler) end with the oldest caller's budget, not a budget
    counted afresh from the write: a delivery is answered within one budget, however long it queued."""
    intake = store._intake()
    now, given = [100.0], []
    intake.clock = lambda: now[0]
    write = intake.write

    def recording(ds: list[Any], left: float) -> Any:
        given.append(left)
        return write(ds, left)
    intake.write = recording
    first = asyncio.ensure_future(store.accept_delivery(delivery("early")))
    await asyncio.sleep(0)  # queued at 100.0, its writer not yet run
    now[0] += 0.5
    assert await asyncio.wait_for(first, 5)
    assert given == [pytest.approx(intake.budget - 0.5)]
