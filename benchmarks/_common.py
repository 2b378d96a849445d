"""What the benchmarks share: figures out (JSON lines, then a table), the machine, payloads, the fakes.

Nothing here is imported by the bot or the tests. The scripted specialists (:class:`Team`) follow the
idea of ``tests/test_workflows_e2e.py``: every agent step is answered with a valid result for its kind.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # this checkout's bot, whatever the editable install points at
    sys.path.insert(1, str(ROOT))
FIXTURES = ROOT / "fixtures"
REPO = "Codertocat/Hello-World"
INSTALLATION = 2311213  # the installation id in fixtures/*.json
APP_ID = 4242
SECRET = "bench-webhook-secret"
ANTHROPIC_KEY = "sk-ant-bench-key"
PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"
LABELS = {  # the label that starts each workflow (workflows/triage data)
    "devops": "devops-pipeline", "api": "backend-feature", "slow-query": "database-performance",
    "bug": "error-investigation", "security": "security-fix", "integration": "integration-setup",
    "epic": "long-running-project",
}


# ---- figures out ---------------------------------------------------------------------------

def emit(record: dict[str, Any]) -> None:
    """One figure (or one group of figures) as a JSON line on stdout."""
    print(json.dumps(record, sort_keys=False, default=str), flush=True)


def table(rows: Iterable[dict[str, Any]], columns: list[str], title: str = "") -> None:
    """A readable table of ``rows`` (Markdown pipes, so it can be pasted as is)."""
    rows = list(rows)

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "yes" if v else "NO"
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    if title:
        print(f"\n{title}")
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=False)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) + " |")
    sys.stdout.flush()


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")), "0")
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"nproc": os.cpu_count(), "mem_total_gib": round(int(mem) / 2**20, 1), "cpu": cpu,
            "python": platform.python_version(), "kernel": platform.release(),
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---- processes, ports, memory ----------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    """Resident memory of a process (VmRSS from /proc/<pid>/status), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def serve_env(*, port: int, database_url: str, github_url: str, private_key: str, extra: dict[str, str] | None = None,
              home: str | None = None) -> dict[str, str]:
    """The environment ``python -m bot serve`` is deployed with, pointed at local fakes."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": home or os.environ.get("HOME", "/tmp"),
           "GITHUB_APP_ID": str(APP_ID), "GITHUB_PRIVATE_KEY": private_key, "GITHUB_WEBHOOK_SECRET": SECRET,
           "GITHUB_API_URL": github_url, "DATABASE_URL": database_url, "PORT": str(port),
           "TRIAGE_LEAD_WRITE_SPACING": "0"}
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "LANG", "LC_ALL"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra or {})
    return env


async def wait_http_ok(url: str, *, timeout: float = 30.0, interval: float = 0.005,
                       proc: asyncio.subprocess.Process | None = None) -> float:
    """Poll ``url`` until it answers 200; returns the monotonic time it did. Raw sockets: no client start-up."""
    from urllib.parse import urlparse

    u = urlparse(url)
    request = f"GET {u.path or '/'} HTTP/1.1\r\nHost: {u.hostname}\r\nConnection: close\r\n\r\n".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.returncode is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode} before answering")
        try:
            reader, writer = await asyncio.open_connection(u.hostname, u.port)
            try:
                writer.write(request)
                await writer.drain()
                status = await asyncio.wait_for(reader.readline(), 5)
            finally:
                writer.close()
            if status.split()[1:2] == [b"200"]:
                return time.monotonic()
        except (TimeoutError, OSError, IndexError):
            pass
        await asyncio.sleep(interval)
    raise TimeoutError(f"{url} did not answer 200 within {timeout} s")


async def stop(proc: asyncio.subprocess.Process, timeout: float = 30.0) -> int:
    """SIGTERM a process we started, then wait; SIGKILL if it does not go."""
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    return proc.returncode  # type: ignore[return-value]


# ---- PostgreSQL --------------------------------------------------------------------------------

def pg_reachable() -> str | None:
    """None when PostgreSQL at 127.0.0.1:5432 answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(PG_BASE, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return None
    except Exception as exc:  # not installed, not running, refused
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


class PgSchema:
    """A fresh schema for one measurement (``search_path`` through the URL), dropped afterwards."""

    def __init__(self, tag: str) -> None:
        self.name = f"bench_{tag}_{uuid.uuid4().hex[:8]}"
        self.url = f"{PG_BASE}?options=-csearch_path%3D{self.name}"

    def __enter__(self) -> PgSchema:
        import psycopg

        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.name}"')
        return self

    def count(self, sql: str) -> int:
        import psycopg

        with psycopg.connect(self.url) as conn:
            row = conn.execute(sql).fetchone()
            return int(row[0]) if row else 0

    def __exit__(self, *exc: object) -> None:
        import psycopg

        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')


# ---- payloads ----------------------------------------------------------------------------------

def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def issue_payload(number: int, labels: list[str], title: str = "Something to do", body: str = "",
                  sender: dict[str, Any] | None = None) -> dict[str, Any]:
    p = load_fixture("issues.opened.json")
    p["issue"] |= {"number": number, "title": title, "body": body,
                   "labels": [{"name": name, "id": i, "color": "ededed"} for i, name in enumerate(labels)]}
    if sender is not None:
        p["sender"] = {**p["sender"], **sender}
    return p


def spread(payload: dict[str, Any], k: int) -> dict[str, Any]:
    """``payload`` moved to installation number ``k`` (owner ``bench-org-k``, one repository each)."""
    owner = {**payload["repository"]["owner"], "login": f"bench-org-{k}", "id": 7_100_000 + k}
    payload["repository"] |= {"id": 7_200_000 + k, "full_name": f"bench-org-{k}/Hello-World", "owner": owner}
    payload["installation"] = {**payload["installation"], "id": 7_300_000 + k}
    return payload


def comment_payload(number: int, body: str, login: str = "maintainer", comment_id: int = 9001) -> dict[str, Any]:
    p = load_fixture("issue_comment.created.json")
    p["issue"]["number"] = number
    p["issue"].pop("pull_request", None)
    p["comment"] |= {"id": comment_id, "body": body}
    p["comment"]["user"] = {**p["comment"]["user"], "login": login, "type": "User"}
    p["sender"] = p["comment"]["user"]
    return p


def webhook_headers(event: str, body: bytes, delivery: str | None = None) -> dict[str, str]:
    from bot.web.server import sign

    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(SECRET, body), "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/bench"}


# ---- scripted specialists: the tests' shared team ----------------------------------------------

from bot.sandbox.anthropic import Reply  # noqa: E402,F401  (re-exported for the scripts)
from bot.sandbox.team import STEP, Team, rejected, result  # noqa: E402,F401


@asynccontextmanager
async def fakes(*, delay: float = 0.0, min_cache_tokens: int | None = 0,
                tool_turns: int = 0) -> AsyncIterator[tuple[Any, Any, Team, str]]:
    """(sandbox GitHub, FakeAnthropic, Team, app private key): both fakes listening on loopback.

    The sandbox runs without GitHub's OpenAPI request check (that check is for tests, and costs CPU here).
    ``min_cache_tokens`` None caches by each model's real minimum (see FakeAnthropic).
    """
    from bot.sandbox.anthropic import FakeAnthropic
    from bot.sandbox.github import SandboxGitHub
    from bot.sandbox.keys import throwaway_key

    private, public = throwaway_key()
    gh = SandboxGitHub(app_id=APP_ID, app_public_key_pem=public)
    fake = FakeAnthropic(api_key=ANTHROPIC_KEY, delay=delay, min_cache_tokens=min_cache_tokens)
    await gh.start()
    await fake.start()
    gh.add_installation(INSTALLATION, "Codertocat")
    gh.seed_from_payload(load_fixture("issues.opened.json"))
    team = Team(fake, tool_turns)
    try:
        yield gh, fake, team, private
    finally:
        await fake.close()
        await gh.close()


def bot_settings(gh: Any, fake: Any, private_key: str, database_url: str, **overrides: Any) -> Any:
    """Settings for an in-process Runtime against the fakes (write spacing off unless overridden)."""
    from bot.settings import Settings

    base = dict(app_id=APP_ID, private_key=private_key, webhook_secret=SECRET, write_spacing=0.0,
                github_api_url=gh.url, database_url=database_url, anthropic_api_key=ANTHROPIC_KEY,
                anthropic_base_url=fake.url)
    base.update(overrides)
    return Settings(**base)


AGENT_OPTIONS = {"retry_base": 0.01, "max_retry_wait": 1.0}
