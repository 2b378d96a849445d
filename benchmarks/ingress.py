"""How fast the webhook answers: signed ``issues.opened`` deliveries at full speed against ``python -m bot serve``.

Side by side in one run: a bare aiohttp app that only answers 202 (``_bare.py``), then ``serve`` on its
real store (SQLite, and PostgreSQL when 127.0.0.1:5432 answers), at 16 and 64 connections. The load
comes from another process: ``wrk`` with ``_wrk.lua`` when installed, else ``_loadgen.py`` (aiohttp).
Every delivery has its own ``X-GitHub-Delivery``; after each measurement the ``deliveries`` rows are
counted and compared with the 202s the load generator saw.

Two kinds of job behind the deliveries (``--modes``):

* ``ingress-only``: the issue's sender is another bot, so the delivery is verified, parsed, stored and
  answered 202 like any other, and its job only claims, skips ("by a bot account") and finishes. On
  PostgreSQL no worker runs at all: the jobs stay queued. This isolates the webhook path.
* ``with-jobs``: an issue no label or keyword places, from one of 16 installations; its job reads the
  repository and posts (then edits) the "which workflow?" comment on the sandbox GitHub: ~2 GitHub calls
  and ~6 store calls (plus, once per installation, a token and the repository's config). On SQLite the
  jobs run inside ``serve`` (8 at a time), competing with the webhook; on PostgreSQL one
  ``python -m bot worker --concurrency 8`` process runs them. One installation may write 80 times a
  minute (the bot's pacer, GitHub's secondary limit); 16 installations allow 1,280 jobs in the first
  minute, more than a measurement runs.

GITHUB_API_URL points at a SandboxGitHub in this (the driver's) process, so jobs succeed. Between the
warm-up and the measurement the script waits until the processes are idle (``settle_s``): ``serve`` imports
the agent side in the background after it listens, and that second of start-up belongs to startup.py.

    python benchmarks/ingress.py                       # everything, ~2 minutes
    python benchmarks/ingress.py --targets bare sqlite --duration 3
    python benchmarks/ingress.py --targets bare sqlite --modes ingress-only --connections 64 --duration 3 \
        --tree before=/tmp/old-checkout --tree after=. --rounds 3   # two trees' serve, rows alternating

Each row gives ``serve``'s CPU a request by thread (``py-spy dump`` names them) and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as C

HERE = Path(__file__).resolve().parent
THREADS = 256  # distinct issues the deliveries are spread over (each is one job "thread")
# with-jobs deliveries come from this many installations: each has its own write pacer (80 writes a
# minute, GitHub's secondary limit), so the jobs are not all parked behind one installation's pacer.
INSTALLATIONS = 16
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds so far of each of a process's threads, by thread id: where a delivery's CPU goes besides the
    event loop (the store's threads, the log writer)."""
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def thread_names(pid: int) -> dict[int, str]:
    """Python's names of a process's threads by thread id (``py-spy dump`` knows both), or {} without py-spy."""
    import re
    import subprocess

    if not shutil.which("py-spy"):
        return {}
    try:
        out = subprocess.run(["py-spy", "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {int(tid): name for tid, name in re.findall(r'^Thread (\d+) \([^)]*\): "([^"]+)"', out, re.M)}


def payloads(mode: str) -> list[dict[str, Any]]:
    if mode == "ingress-only":
        bot = {"login": "ci-helper[bot]", "type": "Bot", "id": 999001}
        return [C.issue_payload(1000 + i, [], title="Bump a dependency", body="Automated.", sender=bot)
                for i in range(THREADS)]
    out = []
    for i in range(THREADS):  # spread over INSTALLATIONS installations, one repository each
        out.append(C.spread(C.issue_payload(1000 + i, [], title="Hello there", body="Just saying hi"),
                            i % INSTALLATIONS))
    return out


def write_bodies(path: Path, items: list[dict[str, Any]]) -> int:
    from bot.web.server import sign

    size = 0
    with path.open("w", encoding="utf-8") as f:
        for p in items:
            body = json.dumps(p)
            size = len(body)
            f.write(f"{sign(C.SECRET, body.encode())}\t{body}\n")
    return size


async def load(loadgen: str, url: str, bodies: Path, connections: int, duration: int, prefix: str) -> dict[str, Any]:
    """One closed-loop load run from a separate process; its JSON summary."""
    if loadgen == "wrk":
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(HERE / "_wrk.lua"),
               url, "--", str(bodies), prefix]
    else:
        cmd = [sys.executable, str(HERE / "_loadgen.py"), "--url", url, "--bodies", str(bodies),
               "--connections", str(connections), "--duration", str(duration), "--prefix", prefix]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), duration + 60)
    for line in out.decode().splitlines():
        line = line.removeprefix("BENCH ").strip()
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"{loadgen} printed no summary: {out.decode()[-500:]} {err.decode()[-500:]}")


async def settle(procs: list[asyncio.subprocess.Process], limit: float = 30.0) -> float:
    """Wait until the processes under test are idle (under 10% of a core over 0.25 s): ``serve`` imports the
    agent side in the background after it listens (about a second of CPU, more on a busy machine), and the
    warm-up's jobs drain. The measured seconds are then the steady state; start-up is startup.py's to measure.
    Returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        before = sum(cpu_seconds(p.pid) for p in procs)
        await asyncio.sleep(0.25)
        if sum(cpu_seconds(p.pid) for p in procs) - before < 0.025:
            break
    return round(time.monotonic() - t0, 2)


def sqlite_counts(path: Path) -> dict[str, int]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        out = {"deliveries": db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]}
        for state, n in db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            out[f"jobs_{state}"] = n
        return out
    finally:
        db.close()


def pg_counts(schema: C.PgSchema) -> dict[str, int]:
    import psycopg

    with psycopg.connect(schema.url) as conn:
        out = {"deliveries": conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]}  # type: ignore[index]
        for state, n in conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall():
            out[f"jobs_{state}"] = n
        return out


async def measure(target: str, mode: str, connections: int, args: argparse.Namespace, tmp: Path,
                  tree: tuple[str, Path] = ("", C.ROOT)) -> dict[str, Any]:
    """Start the target fresh (new store, new sandbox), warm it up, load it, stop it, count the rows. ``tree``:
    the checkout whose ``bot`` serves (its name, and its directory), for side-by-side rows of two trees."""
    from bot.sandbox.github import SandboxGitHub
    from bot.sandbox.keys import throwaway_key

    tag = f"{target}{tree[0] and '-' + tree[0]}-{mode}-c{connections}-{int(time.time() * 1000) % 10**8}"
    work = tmp / tag
    work.mkdir()
    items = payloads(mode)
    bodies = work / "bodies.tsv"
    body_bytes = write_bodies(bodies, items)
    private, public = throwaway_key()
    gh = SandboxGitHub(app_id=C.APP_ID, app_public_key_pem=public)
    await gh.start()
    gh.add_installation(C.INSTALLATION, "Codertocat")
    for item in items:
        gh.seed_from_payload(item)
    port = C.free_port()
    schema = C.PgSchema("ingress") if target == "postgres" else None
    procs: list[asyncio.subprocess.Process] = []
    logs = []
    record: dict[str, Any] = {"bench": "ingress", "target": target if target == "bare" or not tree[0]
                              else f"{target}@{tree[0]}", "mode": "-" if target == "bare" else mode,
                              "connections": connections, "loadgen": args.loadgen, "body_bytes": body_bytes}
    try:
        if schema is not None:
            schema.__enter__()
        if target == "bare":
            cmd = [sys.executable, str(HERE / "_bare.py"), str(port)]
            env = dict(os.environ)
        else:
            db = schema.url if schema is not None else f"sqlite:///{work / 'bot.sqlite3'}"
            env = C.serve_env(port=port, database_url=db, github_url=gh.url, private_key=private, home=str(work))
            cmd = [sys.executable, "-m", "bot", "--log-level", args.log_level, "serve"]
        log = (work / "server.log").open("wb")
        logs.append(work / "server.log")
        server = await asyncio.create_subprocess_exec(*cmd, cwd=tree[1], env=env, stdout=log, stderr=log)
        procs.append(server)
        await C.wait_http_ok(f"http://127.0.0.1:{port}/healthz", proc=server)
        if target == "postgres" and mode == "with-jobs":
            wlog = (work / "worker.log").open("wb")
            logs.append(work / "worker.log")
            worker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "--log-level", "INFO", "worker", "--concurrency", "8",
                cwd=tree[1], env=env, stdout=wlog, stderr=wlog)
            procs.append(worker)
            deadline = time.monotonic() + 30  # the load starts once the worker listens for jobs
            while b"Starting worker" not in (work / "worker.log").read_bytes():
                if worker.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError("the worker did not start: " + (work / "worker.log").read_text()[-500:])
                await asyncio.sleep(0.05)
        url = f"http://127.0.0.1:{port}/webhook"
        # with-jobs: a longer warm-up, so the 16 installation tokens (and repository configs) are fetched
        # before the measurement rather than in it.
        warmup = args.warmup + (1 if mode == "with-jobs" and target != "bare" else 0)
        warm = await load(args.loadgen, url, bodies, connections, warmup, f"{tag}-warm")
        record["settle_s"] = await settle(procs)
        spy = None
        if args.profile and target != "bare":  # py-spy samples serve during the measured load: collapsed stacks
            spy = await asyncio.create_subprocess_exec(
                "py-spy", "record", "--pid", str(server.pid), "--duration", str(args.duration), "--rate", "200",
                "--format", "raw", "--threads", *(["--gil"] if os.environ.get("SPY_GIL") else []),
                *(["--idle"] if os.environ.get("SPY_IDLE") else []),
                *(["--native"] if os.environ.get("SPY_NATIVE") else []),
                "-o", str(Path(args.profile).resolve() / f"{tag}.txt"),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        cpu0 = {p.pid: cpu_seconds(p.pid) for p in procs}
        threads0 = thread_cpu(server.pid)
        t0 = time.monotonic()
        run = await load(args.loadgen, url, bodies, connections, args.duration, f"{tag}-run")
        if spy is not None:
            await spy.wait()
        wall = time.monotonic() - t0
        cpu = {p.pid: cpu_seconds(p.pid) - cpu0[p.pid] for p in procs}
        threads1 = thread_cpu(server.pid)
        names = thread_names(server.pid) if target != "bare" else {}
        if target != "bare":
            during = sqlite_counts(work / "bot.sqlite3") if schema is None else pg_counts(schema)
        seconds = run["duration_us"] / 1e6
        record |= {
            "accepted_per_s": round(run["accepted"] / seconds, 1), "requests": run["requests"],
            "accepted": run["accepted"], "non_202": run["other"], "errors": run["errors"],
            "p50_ms": round(run["p50_us"] / 1000, 2), "p90_ms": round(run["p90_us"] / 1000, 2),
            "p99_ms": round(run["p99_us"] / 1000, 2), "max_ms": round(run["max_us"] / 1000, 1),
            "server_cpu_pct": round(100 * cpu[server.pid] / wall, 0),
            # CPU per answer: less sensitive than deliveries/s to what else the two cores are running
            "server_cpu_us_each": round(1e6 * cpu[server.pid] / max(1, run["requests"]), 0),
            # the same by thread, named as Python names them (MainThread runs the event loop), µs a request
            "thread_cpu_us_each": {names.get(tid, "loop" if tid == server.pid else str(tid)):
                                   round(1e6 * (t - threads0.get(tid, 0.0)) / max(1, run["requests"]))
                                   for tid, t in sorted(threads1.items(), key=lambda kv: threads0.get(kv[0], 0.0) - kv[1])
                                   if t - threads0.get(tid, 0.0) > 0},
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
        record["threads_us"] = " ".join(f"{k}:{v}" for k, v in record["thread_cpu_us_each"].items() if v >= 5)
        if target != "bare":
            record["jobs_done_at_end"] = during.get("jobs_done", 0)
            record["jobs_failed_at_end"] = during.get("jobs_failed", 0)
            if len(procs) > 1:
                record["worker_cpu_pct"] = round(100 * cpu[procs[1].pid] / wall, 0)
        for p in reversed(procs):
            await C.stop(p)
        log.close()
        if target != "bare":
            after = sqlite_counts(work / "bot.sqlite3") if schema is None else pg_counts(schema)
            acked = warm["accepted"] + run["accepted"]
            record |= {"acked_202_total": acked, "rows_in_deliveries": after["deliveries"],
                       "missing_rows": max(0, acked - after["deliveries"]),
                       "rows_beyond_acked": after["deliveries"] - acked}  # answers in flight when the load stopped
            text = "".join(p.read_text(errors="replace") for p in logs)
            # serve writes JSON lines (its stderr is no terminal): an ERROR is '"level":"ERROR"' there, and a
            # check for " ERROR " alone counted only text lines and tracebacks.
            errors = [line for line in text.splitlines()
                      if " ERROR " in line or '"level":"ERROR"' in line or '"level": "ERROR"' in line
                      or "Traceback" in line]
            record["log_errors"] = len(errors)
            if errors:  # what they were, without timestamps
                record["log_error_samples"] = list(dict.fromkeys(_untimed(e)[:200] for e in errors))[:3]
    finally:
        for p in procs:
            await C.stop(p)
        await gh.close()
        if schema is not None:
            schema.__exit__(None, None, None)
    return record


def _untimed(line: str) -> str:
    """A log line without its time, so the same error at two moments is one sample: a JSON line's ``time`` field
    dropped (compact JSON has no space to split at), a text line's leading date and time cut."""
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            return line
        if isinstance(record, dict):
            record.pop("time", None)
            return json.dumps(record, ensure_ascii=False)
        return line
    return line.split(" ", 2)[-1]


async def store_ceiling(target: str, args: argparse.Namespace, seconds: float = 2.0) -> dict[str, Any]:
    """How many ``accept_delivery`` calls the store itself takes, in this process, without HTTP in front."""
    import uuid

    from bot.store import Delivery, open_store

    payload = payloads("ingress-only")[0]
    out: dict[str, Any] = {"bench": "ingress", "target": f"{target} (store alone)", "payload_bytes": len(json.dumps(payload))}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        schema = C.PgSchema("ceiling").__enter__() if target == "postgres" else None
        try:
            store = await open_store(schema.url if schema else f"sqlite:///{tmp}/store.sqlite3")
            try:
                for concurrency in (1, 16):
                    done = 0
                    deadline = time.monotonic() + seconds

                    async def worker() -> None:
                        nonlocal done
                        while time.monotonic() < deadline:  # noqa: B023 (awaited within this iteration)
                            await store.accept_delivery(Delivery(
                                id=str(uuid.uuid4()), event="issues", action="opened", installation_id=C.INSTALLATION,
                                repo=C.REPO, thread=f"{C.REPO}#{done % THREADS}", payload=payload))
                            done += 1
                    t0 = time.monotonic()
                    await asyncio.gather(*(worker() for _ in range(concurrency)))
                    rate = done / (time.monotonic() - t0)
                    out[f"c{concurrency}_per_s"] = round(rate, 0)
                    if concurrency == 1:
                        out["ms_each_sequential"] = round(1000 / rate, 2)
            finally:
                await store.close()
        finally:
            if schema is not None:
                schema.__exit__(None, None, None)
    out["concurrency"] = "1 / 16"
    out["accept_delivery_per_s"] = f"{out['c1_per_s']:.0f} / {out['c16_per_s']:.0f}"
    return out


async def main(args: argparse.Namespace) -> int:
    if args.loadgen == "auto":
        args.loadgen = "wrk" if shutil.which("wrk") else "aiohttp"
    C.emit({"bench": "ingress", "machine": C.machine(), "loadgen": args.loadgen, "duration_s": args.duration,
            "warmup_s": args.warmup, "threads": THREADS, "serve_log_level": args.log_level})
    targets = list(args.targets)
    if "postgres" in targets and (why := C.pg_reachable()) is not None:
        C.emit({"bench": "ingress", "target": "postgres", "skipped": why})
        targets.remove("postgres")
    rows: list[dict[str, Any]] = []
    ceilings: list[dict[str, Any]] = []
    tmp = tempfile.mkdtemp(prefix="bench-ingress-")
    try:
        for connections in args.connections:
            # The bare app before and after the bot's rows: the ratio uses their mean, and their
            # difference shows how much the machine drifted meanwhile (other processes, CPU steal).
            group: list[dict[str, Any]] = []
            # With --tree, each bot row is run once per tree, the trees alternating, --rounds times.
            trees = [(name, Path(d).resolve()) for name, d in (t.split("=", 1) for t in args.tree)] or [("", C.ROOT)]
            bots = [(t, m, tree) for _ in range(args.rounds) for t in targets if t != "bare" for m in args.modes
                    for tree in trees]
            plan = [("bare", "-", trees[0])] + bots + [("bare", "-", trees[0])]
            if "bare" not in targets:
                plan = bots
            for target, mode, tree in plan:
                rec = await measure(target, mode, connections, args, Path(tmp), tree)
                group.append(rec)
                C.emit(rec)
            bares = [r["accepted_per_s"] for r in group if r["target"] == "bare"]
            bare = sum(bares) / len(bares) if bares else None
            if bare:
                C.emit({"bench": "ingress", "connections": connections, "bare_accepted_per_s_runs": bares,
                        "bare_drift_pct": round(100 * (max(bares) - min(bares)) / max(bares), 1)})
            for rec in group:
                if rec["target"] != "bare":
                    rec["all_acked_stored"] = rec["missing_rows"] == 0
                    rec["meets_p99_50ms"] = rec["p99_ms"] < 50 if connections >= 64 else None
                    if bare:
                        rec["ratio_to_bare"] = round(rec["accepted_per_s"] / bare, 2)
                        rec["meets_half_of_bare"] = rec["ratio_to_bare"] >= 0.5
                    C.emit({"bench": "ingress", "verdict": True, **{k: rec.get(k) for k in (
                        "target", "mode", "connections", "accepted_per_s", "ratio_to_bare", "p99_ms",
                        "meets_half_of_bare", "meets_p99_50ms", "all_acked_stored")}})
                rows.append(rec)
        if args.store_ceiling:
            for target in targets:
                if target != "bare":
                    rec = await store_ceiling(target, args)
                    C.emit(rec)
                    ceilings.append(rec)
    finally:
        if args.keep:
            print(f"kept logs and stores in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if ceilings:
        C.table(ceilings, ["target", "concurrency", "accept_delivery_per_s", "ms_each_sequential"],
                title="store alone: Store.accept_delivery() called in-process (no HTTP), same 12 KB payload")
    C.table(rows, ["target", "mode", "connections", "accepted_per_s", "ratio_to_bare", "p50_ms", "p99_ms", "max_ms",
                   "server_cpu_pct", "server_cpu_us_each", "threads_us", "load_avg_1m", "settle_s", "non_202", "acked_202_total", "rows_in_deliveries", "missing_rows",
                   "jobs_done_at_end"],
            title=f"ingress: {args.duration} s closed-loop runs per row ({args.loadgen}{' -t1' if args.loadgen == 'wrk' else ''}), "
                  f"{THREADS} issues, serve log level {args.log_level}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=["bare", "sqlite", "postgres"],
                        choices=["bare", "sqlite", "postgres"])
    parser.add_argument("--modes", nargs="+", default=["ingress-only", "with-jobs"], choices=["ingress-only", "with-jobs"])
    parser.add_argument("--connections", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--duration", type=int, default=4, help="seconds of measured load per row (default 4)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of load before each measurement (default 1)")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "aiohttp"], default="auto")
    parser.add_argument("--no-store-ceiling", dest="store_ceiling", action="store_false",
                        help="skip the in-process Store.accept_delivery() rows")
    parser.add_argument("--profile", metavar="DIR", help="sample serve with py-spy while measuring; stacks go to DIR")
    parser.add_argument("--keep", action="store_true", help="keep each measurement's logs and SQLite files")
    parser.add_argument("--log-level", default="INFO", help="serve's --log-level (default INFO, as deployed)")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                        help="serve from this checkout too (repeat: rows alternate between the trees), e.g. "
                             "before=/tmp/old after=.")
    parser.add_argument("--rounds", type=int, default=1, help="bot rows repeated this many times (default 1)")
    sys.exit(asyncio.run(main(parser.parse_args())))
