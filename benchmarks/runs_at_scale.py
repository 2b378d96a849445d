"""How far one process scales: 200 issues opened at once, every model call answered after 0.5 s.

The bot is an in-process :class:`bot.run.runtime.Runtime` on SQLite with its web app on a loopback port; the
200 ``issues.opened`` deliveries are posted to it concurrently over HTTP. The sandbox GitHub and
FakeAnthropic (every step answered with a valid result by the scripted Team, after ``--delay``) run in
a child process by default (``--fakes subprocess``), so their CPU is not charged to the bot's event
loop; ``--fakes inprocess`` puts them in this process too (``both`` measures each).

Side by side, same fakes, same workflow (``--label``, default ``api`` = backend-feature), in this order:

1. one run alone: its wall time from the POST to "waiting for /approve" is the critical path;
2. 200 runs, model-call limit 256, job concurrency 256: total time / critical path (target <= 1.5);
3. the same 200 with the App's login looked up before the burst (``rt.deps.bot_login`` set first): a what-if
   that isolates the cost of every starting job looking it up, each with a freshly signed app JWT;
4. 200 runs, model-call limit 20: FakeAnthropic's ``max_in_flight`` must stay <= 20;
5. 40 runs at the default job concurrency (8), limit 256: why job_concurrency has to be raised;
6. 200 runs spread over 200 installations with GitHub's write pacing on (80 writes a minute each):
   every installation needs its own token, each minted with a freshly signed app JWT.

``write_spacing=0``, ``writes_per_minute`` and ``writes_per_hour`` lifted (Settings fields; the environment caps
them at 80 and 500) for batches 1-5, which are on one installation: GitHub allows one installation 80
content-creating requests a minute and 500 an hour, so 200 runs of ~13 writes each need at least
2,600 / 80 = 33 minutes there (and over five hours by the hourly limit) whatever the bot does.
Batch 6 keeps the real pacing and spreads the issues over installations instead.
``job_concurrency`` is raised because a job holds its slot for the whole run up to the approval wait,
including every 0.5 s model call, so with the default 8 the runs go through in waves of eight.

    python benchmarks/runs_at_scale.py                 # ~2.5 minutes
    python benchmarks/runs_at_scale.py --runs 50 --no-default-jobs
    python benchmarks/runs_at_scale.py --runs 50 --no-default-jobs --no-spread --profile /tmp/scale.prof

``bot_cpu_ms_per_run`` is the bot process's CPU (every thread) over the batch divided by its runs;
``loop_cpu_ms_per_run`` is the event loop's thread alone (the store's thread and others make up the rest).
``github_requests_per_run``, ``saves_per_run`` (``save_run`` and ``save_run_fields``) and ``store_calls_per_run``
(every store method, each a round trip to the store's thread) are counted over the batch, divided by its runs.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import inspect
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _common as C
import aiohttp

HERE = Path(__file__).resolve().parent


class InProcessFakes:
    """The fakes in this process (the bot shares their event loop and CPU)."""

    placement = "inprocess"

    async def start(self, delay: float) -> InProcessFakes:
        self._cm = C.fakes(delay=delay)
        self.gh, self.fake, self.team, self.private_key = await self._cm.__aenter__()
        self.github_url, self.anthropic_url = self.gh.url, self.fake.url
        return self

    async def seed(self, first: int, count: int, label: str, installations: int) -> None:
        for number in range(first, first + count):
            self.gh.seed_from_payload(payload(number, label, installations))

    async def reset(self) -> None:
        self.fake.max_in_flight = self.fake.in_flight
        self.fake.requests.clear()
        self.gh.requests.clear()

    async def stats(self) -> dict[str, Any]:
        writes = sum(1 for r in self.gh.requests if r.method in ("POST", "PATCH", "PUT", "DELETE"))
        return {"max_in_flight": self.fake.max_in_flight, "model_calls": len(self.fake.requests),
                "github_requests": len(self.gh.requests), "github_writes": writes,
                "app_jwt_calls": sum(1 for r in self.gh.requests if r.auth_kind == "jwt")}

    def cpu(self) -> float:
        return 0.0  # charged to this process

    async def close(self) -> None:
        await self._cm.__aexit__(None, None, None)


class SubprocessFakes:
    """The fakes in a child process (``_fakes_server.py``), driven through its control port."""

    placement = "subprocess"

    async def start(self, delay: float) -> SubprocessFakes:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "_fakes_server.py"), "--delay", str(delay), cwd=C.ROOT,
            stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        info = json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 60))
        self.github_url, self.anthropic_url = info["github_url"], info["anthropic_url"]
        self.control, self.private_key = info["control_url"], info["private_key"]
        self.http = aiohttp.ClientSession()
        return self

    async def _call(self, method: str, path: str) -> dict[str, Any]:
        async with self.http.request(method, self.control + path) as r:
            r.raise_for_status()
            return await r.json()

    async def seed(self, first: int, count: int, label: str, installations: int) -> None:
        await self._call("POST", f"/seed?first={first}&count={count}&label={label}&installations={installations}")

    async def reset(self) -> None:
        await self._call("POST", "/reset")

    async def stats(self) -> dict[str, Any]:
        return await self._call("GET", "/stats")

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def close(self) -> None:
        await self.http.close()
        await C.stop(self.proc)


def payload(number: int, label: str, installations: int) -> dict[str, Any]:
    """The issue; with ``installations`` > 0 it belongs to installation ``number % installations``."""
    p = C.issue_payload(number, [label])
    return C.spread(p, number % installations) if installations else p


def threads_cpu() -> tuple[float, float]:
    """CPU seconds of this process so far: (the main thread, which runs the event loop; every other thread, such
    as the store's and the SDK's). Threads that ended are in neither."""
    tick, pid, loop, rest = os.sysconf("SC_CLK_TCK"), os.getpid(), 0.0, 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        cpu = (int(fields[11]) + int(fields[12])) / tick
        loop, rest = (loop + cpu, rest) if task.name == str(pid) else (loop, rest + cpu)
    return loop, rest


def count_store_calls(store: Any) -> Counter[str]:
    """The store's calls from here on, by method (each a round trip to its thread). A run's saves are ``save_run``
    and ``save_run_fields`` (a partial save the store declines, then saved whole, counts twice)."""
    calls: Counter[str] = Counter()
    for name in dir(type(store)):
        method = getattr(store, name, None)
        if name.startswith("_") or not inspect.iscoroutinefunction(method):
            continue

        async def counted(*args: Any, _name: str = name, _method: Any = method, **kwargs: Any) -> Any:
            calls[_name] += 1
            return await _method(*args, **kwargs)
        setattr(store, name, counted)
    return calls


def run_times(db_path: Path) -> list[tuple[float, float]]:
    """(created_at, updated_at) of each run: when it started, and its last save (the approval wait)."""
    db = sqlite3.connect(db_path)
    try:
        return list(db.execute("SELECT created_at, updated_at FROM runs"))
    finally:
        db.close()


async def batch(fakes: Any, *, name: str, n: int, first: int, label: str, model_concurrency: int,
                job_concurrency: int, tmp: Path, timeout: float, installations: int = 0,
                writes_per_minute: int = 1_000_000, writes_per_hour: int = 1_000_000, warm_login: bool = False,
                profile: Path | None = None) -> dict[str, Any]:
    """Open ``n`` issues at once against a fresh Runtime; wait until every job has finished."""
    from aiohttp import web

    from bot.run.runtime import Runtime
    from bot.settings import Settings

    await fakes.seed(first, n, label, installations)
    await fakes.reset()
    db = tmp / f"{name}.sqlite3"
    settings = Settings(app_id=C.APP_ID, private_key=fakes.private_key, webhook_secret=C.SECRET, write_spacing=0.0,
                        github_api_url=fakes.github_url, database_url=f"sqlite:///{db}",
                        anthropic_api_key=C.ANTHROPIC_KEY, anthropic_base_url=fakes.anthropic_url,
                        model_concurrency=model_concurrency, job_concurrency=job_concurrency,
                        writes_per_minute=writes_per_minute, writes_per_hour=writes_per_hour)
    rt = await Runtime(settings, github_max_wait=5.0, github_backoff=0.01, agent_options=C.AGENT_OPTIONS).start()
    store_calls = count_store_calls(rt.store)
    if warm_login:  # what-if: the App's login looked up once before the burst, not by every job that starts
        rt.deps.bot_login = await rt.github.bot_login()
        await fakes.reset()
    runner = web.AppRunner(rt.web_app(), access_log=None)
    await runner.setup()
    port = C.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    bodies = [json.dumps(payload(number, label, installations)).encode() for number in range(first, first + n)]
    record: dict[str, Any] = {"bench": "runs_at_scale", "config": name, "placement": fakes.placement, "runs": n,
                              "label": label, "model_concurrency": model_concurrency,
                              "job_concurrency": job_concurrency, "installations": installations or 1,
                              "writes_per_minute": writes_per_minute, "login_looked_up_before": warm_login}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            async def post(body: bytes) -> int:
                async with http.post(f"http://127.0.0.1:{port}/webhook", data=body,
                                     headers=C.webhook_headers("issues", body)) as r:
                    return r.status
            profiler = cProfile.Profile(time.thread_time) if profile else None  # the event loop's thread alone
            cpu0, t0, wall0, fakes0 = time.process_time(), time.monotonic(), time.time(), fakes.cpu()
            loop0, _ = threads_cpu()
            if profiler:
                profiler.enable()
            statuses = await asyncio.gather(*(post(b) for b in bodies))
            answered = time.monotonic() - t0
            await rt.jobs.drained(timeout)
            wall = time.monotonic() - t0
            cpu = time.process_time() - cpu0
            loop_cpu = threads_cpu()[0] - loop0
            if profiler and profile:
                profiler.disable()
                profiler.dump_stats(profile)
            fakes_cpu = fakes.cpu() - fakes0
        runs = await rt.store.run_states()
        jobs = await rt.store.job_states()
    finally:
        await runner.cleanup()
        await rt.close()
    stats = await fakes.stats()
    times = run_times(db)
    spans = [end - start for start, end in times]
    starts = [start - wall0 for start, _ in times]
    record |= {"total_s": round(wall, 3), "all_answered_s": round(answered, 3),
               "non_202": sum(1 for s in statuses if s != 202), "runs_waiting": runs.get("waiting", 0),
               "runs_by_state": runs, "jobs_failed": jobs.get("failed", 0),
               "run_span_p50_s": round(C.median(spans), 3), "run_span_max_s": round(max(spans, default=0), 3),
               "run_start_p50_s": round(C.median(starts), 3), "run_start_max_s": round(max(starts, default=0), 3),
               "app_jwt_calls": stats["app_jwt_calls"],
               "model_calls": stats["model_calls"], "model_calls_per_run": round(stats["model_calls"] / n, 2),
               "max_in_flight": stats["max_in_flight"], "github_requests": stats["github_requests"],
               "github_requests_per_run": round(stats["github_requests"] / n, 2),
               "saves_per_run": round((store_calls["save_run"] + store_calls["save_run_fields"]) / n, 2),
               "store_calls_per_run": round(sum(store_calls.values()) / n, 2),
               "store_calls_by_method": {k: round(v / n, 2) for k, v in store_calls.most_common()},
               "bot_process_cpu_s": round(cpu, 2), "bot_cpu_ms_per_run": round(1000 * cpu / n, 1),
               "loop_cpu_ms_per_run": round(1000 * loop_cpu / n, 1),
               "bot_cpu_pct_of_one_core": round(100 * cpu / wall, 0),
               "fakes_cpu_pct_of_one_core": round(100 * fakes_cpu / wall, 0) if fakes.placement == "subprocess" else None,
               "load_avg_1m_after": round(os.getloadavg()[0], 2)}
    return record


async def scenario(placement: str, args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    fakes = InProcessFakes() if placement == "inprocess" else SubprocessFakes()
    await fakes.start(args.delay)
    rows: list[dict[str, Any]] = []
    try:
        common = dict(label=args.label, tmp=tmp, timeout=args.timeout)
        one = await batch(fakes, name=f"{placement}-one", n=1, first=100, model_concurrency=256,
                          job_concurrency=256, **common)
        critical = one["total_s"]
        one["lower_bound_s"] = round(one["model_calls"] * args.delay, 2)  # this workflow's steps run one after another
        rows.append(one)
        C.emit(one)
        wide = await batch(fakes, name=f"{placement}-limit256", n=args.runs, first=1000, model_concurrency=256,
                           job_concurrency=256, profile=args.profile, **common)
        wide["ratio_to_one_run"] = round(wide["total_s"] / critical, 2)
        wide["meets_ratio_1_5"] = wide["ratio_to_one_run"] <= 1.5
        rows.append(wide)
        C.emit(wide)
        warm = await batch(fakes, name=f"{placement}-limit256-login-known", n=args.runs, first=5000,
                           model_concurrency=256, job_concurrency=256, warm_login=True,
                           profile=args.profile and args.profile.with_suffix(".login-known.prof"), **common)
        warm["ratio_to_one_run"] = round(warm["total_s"] / critical, 2)
        rows.append(warm)
        C.emit(warm)
        if not args.narrow:
            return rows
        narrow = await batch(fakes, name=f"{placement}-limit20", n=args.runs, first=2000, model_concurrency=20,
                             job_concurrency=256, **common)
        narrow["ratio_to_one_run"] = round(narrow["total_s"] / critical, 2)
        narrow["lower_bound_s"] = round(max(one["lower_bound_s"], -(-narrow["model_calls"] // 20) * args.delay), 2)
        narrow["meets_in_flight_le_20"] = narrow["max_in_flight"] <= 20
        rows.append(narrow)
        C.emit(narrow)
        if args.default_jobs:
            default = await batch(fakes, name=f"{placement}-defaultjobs", n=args.default_jobs_runs, first=3000,
                                  model_concurrency=256, job_concurrency=8, **common)
            default["ratio_to_one_run"] = round(default["total_s"] / critical, 2)
            default["lower_bound_s"] = round(-(-args.default_jobs_runs // 8) * critical, 2)
            rows.append(default)
            C.emit(default)
        if args.spread:
            spread = await batch(fakes, name=f"{placement}-spread", n=args.runs, first=4000, model_concurrency=256,
                                 job_concurrency=256, installations=args.runs, writes_per_minute=80,
                                 writes_per_hour=500, **common)
            spread["ratio_to_one_run"] = round(spread["total_s"] / critical, 2)
            rows.append(spread)
            C.emit(spread)
    finally:
        await fakes.close()
    return rows


async def main(args: argparse.Namespace) -> int:
    C.emit({"bench": "runs_at_scale", "machine": C.machine(), "loop": type(asyncio.get_running_loop()).__module__,
            "delay_s": args.delay, "runs": args.runs,
            "label": args.label, "workflow": C.LABELS.get(args.label)})
    placements = ["subprocess", "inprocess"] if args.fakes == "both" else [args.fakes]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for placement in placements:
            rows += await scenario(placement, args, Path(tmp))
    C.table(rows, ["placement", "config", "runs", "installations", "model_concurrency", "job_concurrency", "total_s", "lower_bound_s",
                   "ratio_to_one_run", "max_in_flight", "model_calls", "runs_waiting", "jobs_failed",
                   "run_start_max_s", "run_span_p50_s", "app_jwt_calls", "github_requests_per_run", "saves_per_run",
                   "store_calls_per_run", "bot_process_cpu_s", "bot_cpu_ms_per_run",
                   "loop_cpu_ms_per_run", "bot_cpu_pct_of_one_core", "fakes_cpu_pct_of_one_core"],
            title=f"runs at scale: {C.LABELS.get(args.label)} runs to the approval wait, model calls answered after "
                  f"{args.delay} s")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.5, help="seconds FakeAnthropic waits before answering")
    parser.add_argument("--label", default="api", choices=sorted(C.LABELS))
    parser.add_argument("--fakes", choices=["subprocess", "inprocess", "both"], default="subprocess")
    parser.add_argument("--no-default-jobs", dest="default_jobs", action="store_false",
                        help="skip the batch at the default job concurrency (8)")
    parser.add_argument("--default-jobs-runs", type=int, default=40,
                        help="issues in the default-job-concurrency batch (default 40: five waves of eight)")
    parser.add_argument("--no-narrow", dest="narrow", action="store_false",
                        help="stop after the login-known batch: skip the model-call-limit-20 batch and those after it "
                             "(quicker side-by-side rounds)")
    parser.add_argument("--no-spread", dest="spread", action="store_false",
                        help="skip the batch spread over one installation per issue with GitHub's write pacing on")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write a cProfile (CPU time) of the bot process during the limit256 batch to this file, "
                             "and of the login-known batch beside it (with --fakes subprocess, without the fakes)")
    parser.add_argument("--timeout", type=float, default=150.0, help="give up on a batch after this many seconds")
    parser.add_argument("--loop", choices=["serve", "asyncio"], default="serve",
                        help="the bot's event loop: serve's (uvloop where it is installed, as `python -m bot serve` "
                             "runs) or asyncio's own")
    parsed = parser.parse_args()
    from bot.cli.serve import _loop_factory

    with asyncio.Runner(loop_factory=_loop_factory() if parsed.loop == "serve" else None) as runner:
        sys.exit(runner.run(main(parsed)))
