"""How fast it starts: from launching ``python -m bot serve`` to a 200 on ``/healthz``, and to the first
delivery fully processed, median of 5.

Side by side, interleaved round by round so machine drift hits every row alike:

* ``serve`` on SQLite, a fresh file (migrations run) and an existing one;
* ``serve`` on PostgreSQL, an existing schema (when 127.0.0.1:5432 answers);
* the bare aiohttp app (``_bare.py``) to ``/healthz``: the floor for any aiohttp service;
* ``python -c pass`` and ``python -c "import anthropic"`` (to exit): the interpreter and the model SDK alone.

Ready to work: ``serve`` on SQLite (existing file) beside a sandbox GitHub in this process. An
``issues.opened`` delivery that no label or keyword places is posted the moment the port accepts it (as
GitHub would send one that was waiting); the time runs from launch until the sandbox holds the bot's
"which workflow?" comment on that issue: its token fetched, the repository read, the comment written.

``/healthz`` is polled every 5 ms over a raw socket. Then ``python -X importtime`` names the slowest imports
of ``bot.run.runtime`` (what ``serve`` imports before it listens).

    python benchmarks/startup.py            # ~1 minute
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as C

HERE = Path(__file__).resolve().parent
READY = "serve sqlite: first delivery processed"  # launch to its comment in the sandbox


async def time_to_healthz(cmd: list[str], env: dict[str, str], port: int, log: Path) -> float:
    with log.open("ab") as out:
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(*cmd, cwd=C.ROOT, env=env, stdout=out, stderr=out)
        try:
            t1 = await C.wait_http_ok(f"http://127.0.0.1:{port}/healthz", proc=proc, interval=0.005)
        finally:
            await C.stop(proc)
    return t1 - t0


async def time_to_first_comment(env: dict[str, str], port: int, log: Path, gh: Any, number: int) -> float:
    """Launch ``serve``, post one delivery as soon as the port takes it, and wait for its comment."""
    import aiohttp

    payload = C.issue_payload(number, [], title="Hello there", body="Just saying hi")
    gh.seed_from_payload(payload)
    body = json.dumps(payload).encode()
    with log.open("ab") as out:
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "serve", cwd=C.ROOT, env=env,
                                                    stdout=out, stderr=out)
        try:
            async with aiohttp.ClientSession() as http:
                while True:  # refused until it listens; /healthz is not asked first, GitHub would not ask
                    if proc.returncode is not None or time.monotonic() - t0 > 30:
                        raise RuntimeError(f"serve did not take the delivery: {log.read_text()[-500:]}")
                    try:
                        async with http.post(f"http://127.0.0.1:{port}/webhook", data=body,
                                             headers=C.webhook_headers("issues", body)) as r:
                            if r.status != 202:
                                raise RuntimeError(f"serve answered {r.status}: {await r.text()}")
                            break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.005)
            while not gh.comments(C.REPO, number):
                if proc.returncode is not None or time.monotonic() - t0 > 60:
                    raise RuntimeError(f"no comment on #{number}: {log.read_text()[-500:]}")
                await asyncio.sleep(0.005)
            return time.monotonic() - t0
        finally:
            await C.stop(proc)


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
    from bot.sandbox.github import SandboxGitHub
    from bot.sandbox.keys import throwaway_key

    C.emit({"bench": "startup", "machine": C.machine(), "rounds": args.rounds})
    private, public = throwaway_key()
    gh = SandboxGitHub(app_id=C.APP_ID, app_public_key_pem=public)
    await gh.start()
    gh.add_installation(C.INSTALLATION, "Codertocat")
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
                    (READY, f"sqlite:///{existing}"),
                ] + ([("serve postgres (existing schema)", schema.url)] if schema else [])
                for name, what in targets:
                    port = C.free_port()
                    if name == READY:
                        env = C.serve_env(port=port, database_url=what, github_url=gh.url, private_key=private,
                                          home=tmp_name)
                        seconds = await time_to_first_comment(env, port, log, gh, 100 + r)
                    elif name.startswith("python -c"):
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
            await gh.close()
            if schema is not None:
                schema.__exit__(None, None, None)
    bare = C.median(times["bare aiohttp app"])
    rows = []
    for name, values in times.items():
        med = C.median(values)
        rec = {"bench": "startup", "target": name, "median_s": round(med, 3), "min_s": round(min(values), 3),
               "max_s": round(max(values), 3), "runs_s": [round(v, 3) for v in values],
               "ratio_to_bare": round(med / bare, 2)}
        if name == READY:
            rec["meets_2s"] = med < 2.0
        elif name.startswith("serve"):
            rec["meets_1_5s"] = med < 1.5
        C.emit(rec)
        rows.append(rec)
    imports = await slowest_imports()
    for imp in imports:
        C.emit({"bench": "startup", "import": imp["module"], "cumulative_ms": imp["cumulative_ms"]})
    C.table(rows, ["target", "median_s", "min_s", "max_s", "ratio_to_bare", "meets_1_5s", "meets_2s"],
            title=f"start-up: launch to 200 on /healthz (to exit; to the first comment), {args.rounds} interleaved rounds")
    C.table(imports, ["module", "cumulative_ms"], title="slowest imports under `import bot.run.runtime` (-X importtime)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    sys.exit(asyncio.run(main(parser.parse_args())))
