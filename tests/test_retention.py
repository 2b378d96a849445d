"""Retention (bot/run/retention.py): under steady load the stored payloads stay bounded, and nothing needed is lost.

Run on SQLite and on PostgreSQL (skipped, saying why, where no server answers). The payload bytes with and
without pruning are printed (``-s``) for the record.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from bot.run import retention
from bot.store import Delivery, SQLiteStore, StoreUnavailable
from bot.store.base import FINDINGS_KEEP_SECONDS, PullFindings
from bot.web.server import make_app
from tests.conftest import SECRET, load_fixture, post_webhook
from tests.test_store import store  # noqa: F401  (SQLite and PostgreSQL, skipped without a server)

KEEP = 14 * retention.DAY
BATCHES, PER_BATCH, WINDOW = 12, 10, 3  # WINDOW: the batches the clock below keeps unpruned


async def scalar(store: Any, sql: str) -> Any:
    """One value, read straight from the store's database (SQL both dialects accept)."""
    if isinstance(store, SQLiteStore):
        return await store._run(lambda db: db.execute(sql).fetchone()[0])
    row = await store._one(sql)
    return next(iter(row.values()))


async def payload_bytes(store: Any) -> int:
    return int(await scalar(store, "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM deliveries"))


def delivery(batch: int, k: int) -> Delivery:
    payload = load_fixture("issues.opened.json") | {"batch": batch, "k": k}  # a real one: about 13 KB
    return Delivery(id=f"d-{batch}-{k}", event="issues", action="opened", installation_id=1, repo="o/r",
                    thread=f"o/r#{k}", payload=payload)


async def run_batch(store: Any, batch: int, *, fail: bool) -> list[int]:
    """Accept a batch of deliveries and finish their jobs (the first one failed, if ``fail``); failed job ids."""
    failed = []
    for k in range(PER_BATCH):
        assert await store.accept_delivery(delivery(batch, k))
        job = await store.claim_job(f"o/r#{k}")
        assert job is not None
        error = "GitHub answered 502" if fail and k == 0 else None
        await finish(store, job.id, error)
        failed += [job.id] if error else []
    return failed


async def finish(store: Any, job_id: int, error: str | None = None) -> None:
    """End a job as the runner does; on PostgreSQL its procrastinate job too, as a worker does."""
    await store.finish_job(job_id, error=error)
    if not isinstance(store, SQLiteStore):
        await store._exec("SELECT procrastinate_finish_job_v1(id, %s, false) FROM procrastinate_jobs"
                          " WHERE (args->>'job_id')::bigint = %s AND status = 'todo'",
                          ("failed" if error else "succeeded", job_id))


async def test_payloads_stay_bounded_under_steady_load_and_nothing_needed_is_lost(store: Any,
                                                                                   aiohttp_client: Any) -> None:
    # The clock: after batch i, "now" is KEEP after the end of batch i - WINDOW, so exactly the last WINDOW
    # batches are younger than KEEP, however fast or slow this machine runs the batches.
    ends: list[float] = []
    failed: list[int] = []
    sizes: list[int] = []
    for batch in range(BATCHES):
        failed += await run_batch(store, batch, fail=batch < 2)
        ends.append(await scalar(store, "SELECT MAX(received_at) FROM deliveries"))
        if batch >= WINDOW:
            counts = await store.prune(KEEP, now=ends[batch - WINDOW] + KEEP)
            kept = 1 if batch - WINDOW < 2 else 0  # batches 0 and 1 have a failed job, whose payload stays
            assert counts["payloads"] == PER_BATCH - kept
        sizes.append(await payload_bytes(store))
    one = len(json.dumps(delivery(0, 0).payload))
    bound = (WINDOW * PER_BATCH + len(failed)) * (one + 100)  # the window, the failed ones, a margin per payload
    unpruned = BATCHES * PER_BATCH * one
    print(f"\n{type(store).__name__}: payload bytes after {BATCHES} batches of {PER_BATCH}: {sizes[-1]:,} "
          f"with pruning, {unpruned:,} without (per batch: {', '.join(f'{s:,}' for s in sizes)})")
    assert max(sizes) <= bound < unpruned / 2
    steady = sizes[WINDOW + 2:]  # from here on, the window and both failed payloads are all there is
    assert max(steady) - min(steady) < one  # it stopped growing (but for 2 bytes of '{}' per pruned row)

    # Failed jobs keep their payloads, and a retried one is pruned once it is done and old.
    for batch, job_id in enumerate(failed):
        info = await store.job_info(job_id)
        assert info is not None and info.state == "failed" and info.job.payload == delivery(batch, 0).payload
    assert await store.requeue_failed(failed[0])
    job = await store.claim_job("o/r#0")
    assert job is not None and job.id == failed[0] and job.payload["batch"] == 0  # its payload was there to run
    await finish(store, job.id)
    assert (await store.prune(KEEP, now=ends[-1] + KEEP))["payloads"] == PER_BATCH * WINDOW + 1  # window + retried
    info = await store.job_info(failed[0])
    assert info is not None and info.state == "done" and info.job.payload == {}  # pruned: job_info reads '{}'
    still = await store.job_info(failed[1])
    assert still is not None and still.job.payload["batch"] == 1  # never retried: kept

    # Every delivery id stays, and a redelivery of a pruned one is answered "duplicate", not run again.
    assert await scalar(store, "SELECT COUNT(*) FROM deliveries") == BATCHES * PER_BATCH
    client = await aiohttp_client(make_app(store, SECRET, lambda thread: None))
    resp = await post_webhook(client, "issues", load_fixture("issues.opened.json"), delivery="d-0-5")
    assert resp.status == 200 and (await resp.json())["status"] == "duplicate"
    assert await store.job_states() == {"done": BATCHES * PER_BATCH - 1, "failed": 1}


async def test_postgres_prunes_procrastinates_succeeded_jobs_and_their_events_only() -> None:
    from bot.store.postgres import PostgresStore
    from tests.test_postgres_store import fresh_schema  # skips the test when no server answers

    async with fresh_schema() as url:
        store = PostgresStore(url)
        await store.open()
        try:
            await _procrastinate_pruning(store)
        finally:
            await store.close()


async def _procrastinate_pruning(store: Any) -> None:
    for k in range(6):
        assert await store.accept_delivery(delivery(0, k))
    ids = [r["id"] for r in await store._all("SELECT id FROM procrastinate_jobs ORDER BY id")]
    # Finished through procrastinate's own function, as a worker does: four succeeded, one failed, one to do.
    for job_id, status in zip(ids, ["succeeded"] * 4 + ["failed"], strict=False):
        await store._exec("SELECT procrastinate_finish_job_v1(%s, %s, false)", (job_id, status))
    events_of_kept = await scalar(store, f"SELECT COUNT(*) FROM procrastinate_events WHERE job_id >= {ids[4]}")
    now = await scalar(store, "SELECT EXTRACT(EPOCH FROM NOW())")

    counts = await store.prune(KEEP, now=float(now))
    assert {k: counts[k] for k in ("payloads", "procrastinate_jobs", "procrastinate_events", "redeliveries")} == {
        "payloads": 0, "procrastinate_jobs": 0, "procrastinate_events": 0, "redeliveries": 0}  # too recent
    counts = await store.prune(KEEP, now=float(now) + KEEP + 60)
    assert counts["procrastinate_jobs"] == 4 and counts["procrastinate_events"] >= 8  # deferred, succeeded
    left = await store._all("SELECT id, status FROM procrastinate_jobs ORDER BY id")
    assert [(r["id"], r["status"]) for r in left] == [(ids[4], "failed"), (ids[5], "todo")]
    assert await scalar(store, "SELECT COUNT(*) FROM procrastinate_events") == events_of_kept
    assert await store.job_states() == {"queued": 6}  # our job rows are not procrastinate's: all kept


# ---- the loop ----------------------------------------------------------------------------------------------
class TroubledStore(SQLiteStore):
    """The real SQLite store, whose first prunes fail: the store is unavailable, then a bug."""

    troubles: list[Exception] = []

    async def prune(self, older_than_seconds: float, now: float | None = None) -> dict[str, int]:
        if self.troubles:
            raise self.troubles.pop(0)
        return await super().prune(older_than_seconds, now)


async def test_the_loop_logs_what_it_pruned_and_survives_an_unavailable_store_and_a_bug(
        tmp_path: Path, caplog: Any) -> None:
    store = TroubledStore(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    store.troubles = [StoreUnavailable("database is locked"), ValueError("a bug")]
    await store.open()
    await run_batch(store, 0, fail=False)
    caplog.set_level(logging.INFO, logger="bot.run.retention")
    loop = asyncio.create_task(retention.run_forever(store, keep_days=0, every=0.01))
    try:
        for _ in range(500):
            if any("pruned" in r.getMessage() for r in caplog.records) or loop.done():
                break
            await asyncio.sleep(0.01)
        assert not loop.done(), loop  # it survived both
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await store.close()
    records = [r for r in caplog.records if r.name == "bot.run.retention"]
    lines = [(r.levelname, r.getMessage()) for r in records]
    assert lines[0] == ("WARNING", "retention: store unavailable, will try again: database is locked")
    assert lines[1] == ("ERROR", "retention: pruning failed, will try again") and records[1].exc_info is not None
    assert lines[2] == ("INFO", f"retention: pruned {PER_BATCH} payloads, 0 redeliveries, 0 limit_events, 0 reservations"
                        ", 0 pull_findings (older than 0 days)")


async def test_a_waiting_runs_spending_outlives_the_pruning_of_its_reservations(store: Any) -> None:  # noqa: F811
    """A run that waits weeks for an approval keeps what it spent (tokens and web searches) once its settled
    reservations are pruned: what a cap counts is the key's running total, never the reservations' sum."""
    old = 1_000_000.0
    for key in ("run:waits", "searches:run:waits"):
        assert await store.reserve(f"{key}:r", 7, [(key, 10)], now=old)
        await store.settle(f"{key}:r", 7)
    assert (await store.prune(KEEP, now=old + KEEP + 1))["reservations"] == 2
    assert [await store.spent(k) for k in ("run:waits", "searches:run:waits")] == [7, 7]
    assert not await store.reserve("again", 4, [("searches:run:waits", 10)])  # 7 + 4 is past the cap of 10


async def test_a_pull_requests_findings_are_kept_for_months_and_for_good_while_one_is_open(
        store: Any) -> None:  # noqa: F811
    """Findings are forgotten 90 days after their last save, except a pull request's with one still open: its
    merge, however late, files that one as tech debt."""
    await store.save_findings(PullFindings(repo="o/r", number=5, sha="a" * 40, findings={"f1": {"state": "fixed"}}))
    await store.save_findings(PullFindings(repo="o/r", number=6, sha="b" * 40,
                                           findings={"f1": {"state": "fixed"}, "f2": {"state": "open"}}))
    saved = float(await scalar(store, "SELECT MAX(saved_at) FROM pull_findings"))
    assert (await store.prune(KEEP, now=saved + KEEP + 1))["pull_findings"] == 0  # payloads' age is not theirs
    assert await store.load_findings("o/r", 5) is not None
    assert (await store.prune(KEEP, now=saved + FINDINGS_KEEP_SECONDS + 1))["pull_findings"] == 1
    assert await store.load_findings("o/r", 5) is None
    kept = await store.load_findings("o/r", 6)
    assert kept is not None and kept.findings["f2"]["state"] == "open"
