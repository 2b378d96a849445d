"""Real ``python -m bot worker`` processes on real PostgreSQL against the sandbox GitHub: kills and sharing.

The web side (a Runtime on the same schema) takes the webhooks; workers are subprocesses configured
only through the environment, as on a PaaS. Every worker is killed in teardown, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.markers import markers_in
from bot.run.runtime import Runtime
from bot.sandbox.github import SandboxGitHub
from bot.settings import Settings
from bot.store.postgres import PostgresStore
from tests.conftest import APP_ID, INSTALLATION, ROOT, SECRET, load_fixture, post_webhook
from tests.test_postgres_store import fresh_schema

REPO = "Codertocat/Hello-World"
# Seconds without a heartbeat before a worker counts as dead (production: 30). A live worker must never look
# dead: its loop stalls while the first job imports the agent side (1 s idle, 3-4 s on a busy two-core
# machine) and heartbeats come every STALLED_AFTER / 3, so this must exceed 1.5 x the longest stall. The
# kill tests do not wait this long for real: they age the killed worker's last heartbeat (see ``dead``).
STALLED_AFTER = 15.0
# A job not finished this long after it arrived gets a note on its thread (production: 20 s); these tests
# count every write, so no note may come however slow the machine: the longest delay settings allow.
ACK_AFTER = 60.0


class HoldingSandbox(SandboxGitHub):
    """The sandbox GitHub, able to keep the answer to the first comment it creates until ``released``.

    The comment exists on "GitHub" meanwhile, but the bot has not heard back: the worst moment to die.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hold_first_post = False
        self.released = asyncio.Event()

    async def h_create_comment(self, rq: Any) -> Any:
        answer = super().h_create_comment(rq)
        if self.hold_first_post:
            self.hold_first_post = False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.released.wait(), 30)
        return answer


class Workers:
    """``python -m bot worker`` subprocesses with their output in files; all killed by :meth:`kill_all`."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *, concurrency: int = 2) -> subprocess.Popen[bytes]:
        out = open(self.logs / f"{name}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "bot", "worker", "--concurrency", str(concurrency),
                                 "--stalled-after", str(STALLED_AFTER)],
                                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.procs[name] = proc
        return proc

    async def exited(self, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
        """Wait without blocking the loop (the sandbox GitHub answers the workers from this same loop)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while proc.poll() is None:
            if loop.time() > deadline:
                raise AssertionError(f"worker did not exit in {timeout}s\n{self.tail()}")
            await asyncio.sleep(0.05)
        return proc.returncode

    def tail(self) -> str:
        return "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-25:])
                         for p in sorted(self.logs.glob("*.log")))

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


async def until(check: Callable[[], Any], timeout: float, what: str, workers: Workers) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := await check() if asyncio.iscoroutinefunction(check) else check()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{workers.tail()}")
        await asyncio.sleep(0.05)
    return result


@pytest.fixture
async def gh(app_keys: tuple[str, str], github_openapi: Any) -> AsyncIterator[HoldingSandbox]:
    sandbox = HoldingSandbox(app_id=APP_ID, app_public_key_pem=app_keys[1], validator=github_openapi)
    await sandbox.start()
    sandbox.add_installation(INSTALLATION, "Codertocat")
    yield sandbox
    sandbox.released.set()
    await sandbox.close()
    assert not sandbox.conformance_errors, sandbox.conformance_errors


@pytest.fixture
async def rt(gh: HoldingSandbox, app_keys: tuple[str, str]) -> AsyncIterator[Runtime]:
    async with fresh_schema() as url:
        settings = Settings(app_id=APP_ID, private_key=app_keys[0], webhook_secret=SECRET, github_api_url=gh.url,
                            database_url=url, ack_after=ACK_AFTER)
        runtime = await Runtime(settings, github_max_wait=5.0, github_backoff=0.01).start()
        yield runtime
        await runtime.close()


@pytest.fixture
def workers(rt: Runtime, app_keys: tuple[str, str], tmp_path: Path) -> Iterator[Workers]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "DATABASE_", "TRIAGE_LEAD_", "ANTHROPIC_", "PORT"))}
    env |= {"GITHUB_APP_ID": str(APP_ID), "GITHUB_PRIVATE_KEY": app_keys[0], "GITHUB_WEBHOOK_SECRET": SECRET,
            "GITHUB_API_URL": rt.settings.github_api_url, "DATABASE_URL": rt.settings.database_url,
            "TRIAGE_LEAD_WRITE_SPACING": "0", "TRIAGE_LEAD_ACK_AFTER": str(ACK_AFTER),
            "PYTHONUNBUFFERED": "1"}  # pacing has its own tests
    w = Workers(env, tmp_path)
    yield w
    w.kill_all()


async def dead(store: PostgresStore, worker_id: int) -> None:
    """A worker that was killed goes silent: age its last heartbeat past STALLED_AFTER, as waiting would."""
    await store._exec("UPDATE procrastinate_workers SET last_heartbeat = now() - make_interval(secs => %s)"
                      " WHERE id = %s", (2 * STALLED_AFTER, worker_id))


async def worker_ids(store: PostgresStore) -> list[int]:
    return [r["id"] for r in await store._all("SELECT id FROM procrastinate_workers ORDER BY id")]


def registered(store: PostgresStore, n: int) -> Callable[[], Any]:
    """A check for :func:`until`: ``n`` workers are registered."""
    async def check() -> bool:
        row = await store._one("SELECT COUNT(*) AS n FROM procrastinate_workers")
        return bool(row and row["n"] == n)
    return check


async def _heartbeats_after(store: PostgresStore, since: Any) -> bool:
    row = await store._one("SELECT COUNT(*) AS n FROM procrastinate_workers WHERE last_heartbeat > %s", (since,))
    return bool(row and row["n"] == 2)


def bot_markers(gh: SandboxGitHub, number: int) -> list[str]:
    return [k for c in gh.comments(REPO, number) if c["user"]["type"] == "Bot" for k in markers_in(c["body"])]


def issue(number: int, *, labelled: bool = False) -> dict[str, Any]:
    """``issues.opened`` for issue ``number``. Unlabelled, it is GitHub's example issue (a README typo), which
    triage maps to no workflow, and the bot posts exactly one comment (asking for a label); labelled, it is the
    fixture's bug report, and a whole workflow run starts."""
    payload = copy.deepcopy(load_fixture("issues.opened.json"))
    payload["issue"]["number"] = number
    if not labelled:
        payload["issue"] |= {"labels": [], "title": "Spelling error in the README file",
                             "body": "It looks like you accidently spelled 'commit' with two 't's."}
    return payload


async def test_a_worker_killed_after_its_post_landed_is_replaced_and_nothing_is_posted_twice(
        rt: Runtime, gh: HoldingSandbox, workers: Workers, aiohttp_client: Any) -> None:
    client = await aiohttp_client(rt.web_app())
    store: PostgresStore = rt.store  # type: ignore[assignment]
    gh.seed_from_payload(issue(1))
    gh.hold_first_post = True
    assert (await post_webhook(client, "issues", issue(1))).status == 202

    first = workers.start("first")
    await until(lambda: gh.written("comment"), 30, "the first worker's comment", workers)
    first.send_signal(signal.SIGKILL)
    assert await workers.exited(first) == -signal.SIGKILL
    assert await store.job_states() == {"running": 1}  # its job died with it
    assert len(gh.comments(REPO, 1)) == 1  # the comment landed; the bot never heard back

    [killed] = await worker_ids(store)
    await dead(store, killed)  # its replacement finds it silent when it starts
    workers.start("second")
    await rt.jobs.drained(60)
    assert len(gh.comments(REPO, 1)) == 1, workers.tail()
    assert [w.kind for w in gh.writes] == ["comment", "comment_edit"]  # found by its marker, edited
    rows = await store._all("SELECT state, attempts FROM jobs")
    assert [(r["state"], r["attempts"]) for r in rows] == [("done", 2)]

    async def succeeded() -> bool:  # procrastinate records it just after our own row says done
        statuses = await store._all("SELECT status::text AS s FROM procrastinate_jobs")
        return [r["s"] for r in statuses] == ["succeeded"]

    await until(succeeded, 15, "procrastinate to record the job as succeeded", workers)


async def test_a_worker_killed_mid_workflow_is_replaced_and_the_run_matches_an_uninterrupted_one(
        rt: Runtime, gh: HoldingSandbox, workers: Workers, aiohttp_client: Any) -> None:
    client = await aiohttp_client(rt.web_app())
    gh.seed_from_payload(issue(1, labelled=True))
    # A slow GitHub: the job is mid-way when killed (its first read: the default branch's ref).
    gh.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 502, delay=3.0)
    assert (await post_webhook(client, "issues", issue(1, labelled=True))).status == 202

    first = workers.start("first")
    await until(lambda: any(r.path.startswith(f"/repos/{REPO}/git/ref/heads/") for r in gh.requests), 30,
                "the slow request", workers)
    first.send_signal(signal.SIGKILL)
    await workers.exited(first)
    store: PostgresStore = rt.store  # type: ignore[assignment]
    [killed_worker] = await worker_ids(store)

    workers.start("second")
    await until(registered(store, 2), 30, "the second worker to register", workers)
    await dead(store, killed_worker)  # only now: the running replacement's periodic sweep (not its start-up one) acts
    await rt.jobs.drained(60)
    # The same event on another issue, never interrupted: what "exactly once" looks like here.
    gh.seed_from_payload(issue(2, labelled=True))
    assert (await post_webhook(client, "issues", issue(2, labelled=True))).status == 202
    await rt.jobs.drained(30)

    killed, clean = bot_markers(gh, 1), bot_markers(gh, 2)
    assert killed and len(killed) == len(set(killed)), workers.tail()  # no marker posted twice
    assert len(gh.comments(REPO, 1)) == len(gh.comments(REPO, 2)) and len(killed) == len(clean)
    assert await rt.store.job_states() == {"done": 2}


async def test_two_workers_share_fifty_deliveries_and_none_is_processed_twice(
        rt: Runtime, gh: HoldingSandbox, workers: Workers, aiohttp_client: Any) -> None:
    client = await aiohttp_client(rt.web_app())
    store: PostgresStore = rt.store  # type: ignore[assignment]
    procs = [workers.start("a", concurrency=2), workers.start("b", concurrency=2)]

    await until(registered(store, 2), 30, "two registered workers", workers)
    for n in range(1, 51):
        gh.seed_from_payload(issue(n))
        assert (await post_webhook(client, "issues", issue(n))).status == 202
    await rt.jobs.drained(40)

    # The guarantee, not a scheduling accident: which worker took how many is up to the workers (a quick one
    # may take all fifty). Every job was run by a registered worker, once; both workers are still alive and
    # still polling (their heartbeats move on after the work is done).
    per_worker = await store._all("SELECT worker_id, COUNT(*) AS n FROM procrastinate_jobs GROUP BY worker_id")
    assert all(r["worker_id"] is not None for r in per_worker) and sum(r["n"] for r in per_worker) == 50, per_worker
    assert [p.poll() for p in procs] == [None, None], workers.tail()
    beats = await store._one("SELECT MIN(last_heartbeat) AS t, COUNT(*) AS n FROM procrastinate_workers")

    async def both_beat_again() -> bool:
        return await _heartbeats_after(store, beats["t"] if beats else None)

    await until(both_beat_again, 30, "both workers to heart-beat again", workers)
    assert await store.job_states() == {"done": 50}
    per_issue = {n: len(gh.comments(REPO, n)) for n in range(1, 51)}
    assert set(per_issue.values()) == {1}, per_issue  # every one processed, none twice
    assert [w.kind for w in gh.writes] == ["comment"] * 50

    for proc in procs:  # SIGTERM: a clean stop, as on a deploy
        proc.send_signal(signal.SIGTERM)
    assert [await workers.exited(p) for p in procs] == [0, 0], workers.tail()
