"""How fast it starts: from launching ``python -m bot serve`` to a 200 on ``/healthz``, median of 5.

Side by side, interleaved round by round so machine drift hits every row alike:

* ``serve`` on SQLite, a fresh file (migrations run) and an existing one;
* ``serve`` on PostgreSQL, an existing schema (when 127.0.0.1:5432 answers);
* the bare aiohttp app (``_bare.py``) to ``/healthz``: the floor for any aiohttp service;
* ``python -c pass`` and ``python -c "import anthropic"`` (to exit): the interpreter and the model SDK alone.

``/healthz`` is polled every 5 ms over a raw socket. Then ``python -X importtime`` names the slowest imports
of ``bot.run.runtime`` (what ``serve`` imports before it listens).

    python benchmarks/startup.py            # ~1 minute
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as C

HERE = Path(__file__).resolve().parent


async def time_to_healthz(cmd: list[str], env: dict[str, str], port: int, log: Path) -> float:
    with log.open("ab") as out:
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(*cmd, cwd=C.ROOT, env=env, stdout=out, stderr=out)
        try:
            t1 = await C.wait_http_ok(f"http://127.0.0.1:{port}/healthz", proc=proc, interval=0.005)
        finally:
            await C.stop(proc)
    return t1 - t0


async def time_to_exit(code: str) -> float:
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, cwd=C.ROOT)
    await proc.wait()
    return time.monotonic() - t0


async def slowest_imports(n: int = 8) -> list[dict[str, Any]]:
    """``-X importtime`` of ``bot.run.runtime``: the top-level packages that took longest (cumulative)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-X", "importtime", "-c", "import bot.run.runtime",
                                                cwd=C.ROOT, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    rows = []
    for line in err.decode().splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].rstrip()
        depth = (len(name) - len(name.lstrip())) // 2
        if depth <= 1:  # bot.run.runtime itself and what it imports directly
            rows.append({"module": name.strip(), "cumulative_ms": round(int(parts[1]) / 1000, 1)})
    return sorted(rows, key=lambda r: -r["cumulative_ms"])[:n]


async def main(args: argparse.Namespace) -> int:
    from bot.sandbox.keys import throwaway_key

    C.emit({"bench": "startup", "machine": C.machine(), "rounds": args.rounds})
    private, _ = throwaway_key()
    unroutable = f"http://127.0.0.1:{C.free_port()}"  # no GitHub calls happen before /healthz answers
    pg_why = C.pg_reachable()
    if pg_why:
        C.emit({"bench": "startup", "target": "serve postgres", "skipped": pg_why})
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp_name:
        tmp = Path(tmp_name)
        log = tmp / "serve.log"
        existing = tmp / "existing.sqlite3"
        schema = None if pg_why else C.PgSchema("startup").__enter__()
        try:
            # Create the existing stores once (migrations applied), outside the timed rounds.
            for url in [f"sqlite:///{existing}"] + ([schema.url] if schema else []):
                port = C.free_port()
                env = C.serve_env(port=port, database_url=url, github_url=unroutable, private_key=private, home=tmp_name)
                await time_to_healthz([sys.executable, "-m", "bot", "serve"], env, port, log)
            for r in range(args.rounds):
                targets: list[tuple[str, Any]] = [
                    ("python -c pass", "pass"),
                    ("python -c 'import anthropic'", "import anthropic"),
                    ("bare aiohttp app", None),
                    ("serve sqlite (fresh file)", f"sqlite:///{tmp / f'fresh{r}.sqlite3'}"),
                    ("serve sqlite (existing)", f"sqlite:///{existing}"),
                ] + ([("serve postgres (existing schema)", schema.url)] if schema else [])
                for name, what in targets:
                    port = C.free_port()
                    if name.startswith("python -c"):
                        seconds = await time_to_exit(what)
                    elif what is None:
                        seconds = await time_to_healthz([sys.executable, str(HERE / "_bare.py"), str(port)],
                                                        dict(os.environ), port, log)
                    else:
                        env = C.serve_env(port=port, database_url=what, github_url=unroutable, private_key=private,
                                          home=tmp_name)
                        seconds = await time_to_healthz([sys.executable, "-m", "bot", "serve"], env, port, log)
                    times.setdefault(name, []).append(seconds)
        finally:
            if schema is not None:
                schema.__exit__(None, None, None)
    bare = C.median(times["bare aiohttp app"])
    rows = []
    for name, values in times.items():
        med = C.median(values)
        rec = {"bench": "startup", "target": name, "median_s": round(med, 3), "min_s": round(min(values), 3),
               "max_s": round(max(values), 3), "runs_s": [round(v, 3) for v in values],
               "ratio_to_bare": round(med / bare, 2)}
        if name.startswith("serve"):
            rec["meets_1_5s"] = med < 1.5
        C.emit(rec)
        rows.append(rec)
    imports = await slowest_imports()
    for imp in imports:
        C.emit({"bench": "startup", "import": imp["module"], "cumulative_ms": imp["cumulative_ms"]})
    C.table(rows, ["target", "median_s", "min_s", "max_s", "ratio_to_bare", "meets_1_5s"],
            title=f"start-up: launch to 200 on /healthz (or to exit), {args.rounds} interleaved rounds")
    C.table(imports, ["module", "cumulative_ms"], title="slowest imports under `import bot.run.runtime` (-X importtime)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    sys.exit(asyncio.run(main(parser.parse_args())))
