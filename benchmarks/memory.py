"""What waiting costs in memory: RSS of ``python -m bot serve`` with 10,000 runs waiting for ``/approve``.

A realistic run record is made first: one backend-feature issue is taken to the approval wait by an
in-process Runtime against the sandbox GitHub and FakeAnthropic (the scripted Team). Its ``data`` blob
(the engine's run, every step's result, the outbox, usage) is then stored 10,000 times, as 10,000
different issues, through the store API (``Store.save_run``) on SQLite, and by SQL on PostgreSQL.

Then ``serve`` is started on the full store and on an empty one (migrated, no runs), alternately,
``--rounds`` times each; RSS (VmRSS from /proc/<pid>/status) is read after start-up and a 200 on
``/healthz``, and again after a ``GET /metrics`` (which counts runs by state from the store).
GITHUB_API_URL is an unroutable loopback port: nothing calls GitHub before a delivery arrives.

    python benchmarks/memory.py             # ~1 minute
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as C
import aiohttp


async def template_run(tmp: Path) -> Any:
    """A RunRecord waiting for /approve, made by the real bot."""
    from aiohttp import web

    from bot.run.runtime import Runtime

    async with C.fakes() as (gh, fake, team, private):
        settings = C.bot_settings(gh, fake, private, f"sqlite:///{tmp / 'template.sqlite3'}")
        rt = await Runtime(settings, github_max_wait=5.0, github_backoff=0.01, agent_options=C.AGENT_OPTIONS).start()
        runner = web.AppRunner(rt.web_app(), access_log=None)
        await runner.setup()
        port = C.free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            payload = C.issue_payload(7, ["api"], title="Add an endpoint for exporting reports",
                                      body="We need GET /reports/export returning CSV. " * 20)
            gh.seed_from_payload(payload)
            body = json.dumps(payload).encode()
            headers = C.webhook_headers("issues", body)
            async with aiohttp.ClientSession() as http:
                async with http.post(f"http://127.0.0.1:{port}/webhook", data=body, headers=headers) as r:
                    assert r.status == 202, await r.text()
            await rt.jobs.drained(60)
            record = await rt.store.load_run(headers["X-GitHub-Delivery"])
        finally:
            await runner.cleanup()
            await rt.close()
    if record is None or record.state != "waiting":
        raise RuntimeError(f"the template run is not waiting for /approve: {record and record.state}")
    return record


def clones(template: Any, n: int) -> list[Any]:
    out = []
    for i in range(n):
        number = 100_000 + i
        run_id = f"bench-{i:05d}-{template.id[:20]}"
        data = json.loads(json.dumps(template.data).replace(template.id, run_id))
        data.setdefault("ctx", {})["number"] = number
        out.append(dataclasses.replace(template, id=run_id, number=number, thread=f"{template.repo}#{number}", data=data))
    return out


async def fill_sqlite(path: Path, runs: list[Any]) -> float:
    from bot.store import open_store

    store = await open_store(f"sqlite:///{path}")
    t0 = time.monotonic()
    try:
        for run in runs:
            await store.save_run(run)
    finally:
        await store.close()
    return time.monotonic() - t0


async def fill_postgres(schema: C.PgSchema, runs: list[Any]) -> float:
    import psycopg

    from bot.store import open_store

    store = await open_store(schema.url)  # migrates the schema
    await store.close()
    now = time.time()
    t0 = time.monotonic()
    with psycopg.connect(schema.url) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO runs (id, thread, repo, number, installation_id, workflow, state, data, created_at,"
                " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(r.id, r.thread, r.repo, r.number, r.installation_id, r.workflow, r.state, json.dumps(r.data), now, now)
                 for r in runs])
    return time.monotonic() - t0


async def measure(database_url: str, private_key: str, tmp: Path) -> dict[str, Any]:
    port = C.free_port()
    env = C.serve_env(port=port, database_url=database_url, github_url=f"http://127.0.0.1:{C.free_port()}",
                      private_key=private_key, home=str(tmp))
    with (tmp / "serve.log").open("ab") as log:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "serve", cwd=C.ROOT, env=env,
                                                    stdout=log, stderr=log)
        try:
            await C.wait_http_ok(f"http://127.0.0.1:{port}/healthz", proc=proc)
            await asyncio.sleep(0.5)  # let start-up work settle (job recovery runs right after listening)
            after_healthz = C.rss_kib(proc.pid)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    metrics = await r.text()
            waiting = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                          if line.startswith("triage_lead_runs{") and 'state="waiting"' in line)
            after_metrics = C.rss_kib(proc.pid)
        finally:
            await C.stop(proc)
    return {"rss_after_healthz_mib": round(after_healthz / 1024, 1), "rss_after_metrics_mib": round(after_metrics / 1024, 1),
            "waiting_runs_in_metrics": int(waiting)}


async def main(args: argparse.Namespace) -> int:
    C.emit({"bench": "memory", "machine": C.machine(), "runs": args.runs, "rounds": args.rounds})
    from bot.sandbox.keys import throwaway_key

    private, _ = throwaway_key()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp_name:
        tmp = Path(tmp_name)
        template = await template_run(tmp)
        blob = len(json.dumps(template.data))
        runs = clones(template, args.runs)
        stores: list[tuple[str, str, str]] = []  # (backend, "empty"|"full", url)
        full_sqlite, empty_sqlite = tmp / "full.sqlite3", tmp / "empty.sqlite3"
        fill_s = await fill_sqlite(full_sqlite, runs)
        await fill_sqlite(empty_sqlite, [])
        C.emit({"bench": "memory", "template_workflow": template.workflow, "data_blob_bytes": blob,
                "steps_in_blob": len(template.data.get("run", {}).get("steps", {})),
                "sqlite_fill_s": round(fill_s, 1), "sqlite_file_mib": round(full_sqlite.stat().st_size / 2**20, 1)})
        stores += [("sqlite", "empty", f"sqlite:///{empty_sqlite}"), ("sqlite", "full", f"sqlite:///{full_sqlite}")]
        schemas: list[C.PgSchema] = []
        why = C.pg_reachable() if args.postgres else "not asked (--no-postgres)"
        if why is None:
            full_pg, empty_pg = C.PgSchema("mem_full").__enter__(), C.PgSchema("mem_empty").__enter__()
            schemas += [full_pg, empty_pg]
            fill_p = await fill_postgres(full_pg, runs)
            await fill_postgres(empty_pg, [])
            C.emit({"bench": "memory", "postgres_fill_s": round(fill_p, 1)})
            stores += [("postgres", "empty", empty_pg.url), ("postgres", "full", full_pg.url)]
        else:
            C.emit({"bench": "memory", "target": "postgres", "skipped": why})
        try:
            samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for _ in range(args.rounds):
                for backend, kind, url in stores:
                    samples.setdefault((backend, kind), []).append(await measure(url, private, tmp))
        finally:
            for s in schemas:
                s.__exit__(None, None, None)
    for backend in dict.fromkeys(b for b, _, _ in stores):
        med = {kind: {k: C.median([s[k] for s in samples[(backend, kind)]]) for k in
                      ("rss_after_healthz_mib", "rss_after_metrics_mib")} for kind in ("empty", "full")}
        for kind in ("empty", "full"):
            rec = {"bench": "memory", "store": backend, "runs_waiting": args.runs if kind == "full" else 0,
                   **{k: round(v, 1) for k, v in med[kind].items()},
                   "rounds_rss_after_healthz_mib": [s["rss_after_healthz_mib"] for s in samples[(backend, kind)]],
                   "waiting_runs_in_metrics": samples[(backend, kind)][-1]["waiting_runs_in_metrics"]}
            if kind == "full":
                rec["delta_mib"] = round(med["full"]["rss_after_healthz_mib"] - med["empty"]["rss_after_healthz_mib"], 1)
                rec["delta_after_metrics_mib"] = round(
                    med["full"]["rss_after_metrics_mib"] - med["empty"]["rss_after_metrics_mib"], 1)
                rec["meets_within_20mb"] = abs(rec["delta_mib"]) <= 20 * 1.048576  # 20 MB in MiB
            C.emit(rec)
            rows.append(rec)
    C.table(rows, ["store", "runs_waiting", "rss_after_healthz_mib", "rss_after_metrics_mib", "delta_mib",
                   "delta_after_metrics_mib", "meets_within_20mb", "waiting_runs_in_metrics"],
            title=f"serve's resident memory (median of {args.rounds}), {blob:,}-byte run record x {args.runs:,}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-postgres", dest="postgres", action="store_false")
    sys.exit(asyncio.run(main(parser.parse_args())))
