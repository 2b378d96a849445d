"""Issue 16 ("Speed where it counts") attacked from outside and by bad luck, after it was built.

Each working attack is an ``xfail(strict=True)`` test asserting what should hold; the plain tests are attacks
the speed changes withstood (group commit, conditional reads, partial saves, the cached App JWT, the log thread).

What got through, each fixed since (its test now plain):

1. App JWT: GitHub's 401 to a JWT call does not drop the cached JWT: the next try (and every App call for up to
   JWT_REUSE, 4 minutes) carries the very JWT GitHub refused.
2. App JWT: a JWT call's retries reuse the one JWT passed in; four waits GitHub asks for (up to max_wait, 120 s,
   each) on top of up to JWT_REUSE of age outlive its 9 minutes, and the last try goes out expired. (Fixed: a
   retry that would carry an expired JWT is not made; the caller's next try signs a fresh one.)
3. logs: the queue to the log thread is unbounded: with the writer stalled (a full pipe, a stuck collector),
   every line of a burst sits in memory, where a direct write would have pushed back on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import jwt
import pytest

import bot.core.secrets as secrets_module
import bot.github.auth as auth
import bot.store.sqlite as sqlite_module
from bot.github.auth import JWT_REUSE
from bot.github.client import GitHub, GitHubApp, ReadCache, TokenRefused
from bot.github.contents import read_file
from bot.logs import setup_logging, write_off_thread
from bot.settings import Settings
from bot.store import StoreUnavailable
from bot.store.sqlite import SQLiteStore
from bot.web import server
from tests.conftest import APP_ID, INSTALLATION, SECRET, load_fixture, webhook_headers
from tests.test_conditional_reads import PATH, REPO, Odd, app, client, odd  # noqa: F401
from tests.test_ingress_batch import rows, store  # noqa: F401
from tests.test_scale_saves import new_state, save
from tests.test_store import delivery


def stored_ids(path: str | Path) -> list[str]:
    """Delivery ids that have a job, read on a connection of their own (the store may be closed)."""
    return [r[0] for r in rows(Path(path), "SELECT d.id FROM deliveries d JOIN jobs j ON j.delivery_id = d.id")]


def issue_body(title: str = "t", body: str = "b") -> bytes:
    payload = load_fixture("issues.opened.json")
    payload["issue"]["title"], payload["issue"]["body"] = title, body
    return json.dumps(payload).encode()


async def post(http: Any, body: bytes, delivery_id: str) -> tuple[str, int, dict[str, Any]]:
    resp = await http.post("/webhook", data=body, headers=webhook_headers("issues", body, delivery=delivery_id))
    return delivery_id, resp.status, await resp.json()


# ---- ingress: group commit -----------------------------------------------------------------------------


async def test_a_burst_with_repeated_ids_stores_each_once_and_answers_each_caller(
    aiohttp_client: Any, store: SQLiteStore
) -> None:
    woken: list[str] = []
    http = await aiohttp_client(server.make_app(store, SECRET, woken.append))
    body = issue_body()
    # 250 ids; ids 0-49 sent twice: 0-24 right after their first (the same batch), 25-49 at the end (another).
    ids = [f"burst-{i}" for i in range(250) for _ in range(2 if i < 25 else 1)]
    ids += [f"burst-{i}" for i in range(25, 50)]
    assert len(ids) == 300
    answers = await asyncio.gather(*(post(http, body, d) for d in ids))
    by_id: dict[str, list[tuple[int, str]]] = {}
    for d, status, answer in answers:
        by_id.setdefault(d, []).append((status, answer.get("status", "")))
    for d, got in by_id.items():  # one 202 "accepted" per id; its repeat 200 "duplicate", never a second job
        assert sorted(got) == ([(200, "duplicate"), (202, "accepted")] if len(got) == 2 else [(202, "accepted")]), d
    assert Counter(stored_ids(store.path)) == Counter(set(ids)) and len(woken) == 250


async def test_a_body_not_utf8_is_refused_and_stores_nothing(aiohttp_client: Any, store: SQLiteStore) -> None:
    http = await aiohttp_client(server.make_app(store, SECRET, lambda _: None))
    good = issue_body(title="half an emoji")
    for n, bad in enumerate(
        (
            good.replace(b"half an emoji", b"half \xff\xfe"),  # not UTF-8 at all
            good.replace(b"half an emoji", b"half \xed\xa0\xbd"),
        )
    ):  # a surrogate, UTF-8-encoded
        _, status, _ = await post(http, bad, f"bad-{n}")
        assert status == 400
    assert stored_ids(store.path) == []


async def test_a_lone_surrogate_escape_is_stored_as_sent_and_read_back_as_parsed(
    aiohttp_client: Any, store: SQLiteStore
) -> None:
    http = await aiohttp_client(server.make_app(store, SECRET, lambda _: None))
    body = issue_body().replace(b'"title": "t"', b'"title": "half \\ud83d and \\u0000"')
    _, status, _ = await post(http, body, "surrogate")
    assert status == 202
    [row] = await store.jobs_for("surrogate")
    job = (await store.job_info(row["id"])).job  # type: ignore[union-attr]
    assert job.payload["issue"]["title"] == "half \ud83d and \x00" and job.payload == json.loads(body)


async def test_a_body_near_the_cap_in_a_batch_of_small_ones(aiohttp_client: Any, store: SQLiteStore) -> None:
    http = await aiohttp_client(server.make_app(store, SECRET, lambda _: None))
    big = issue_body(body="x" * (20 * 2**20))
    answers = await asyncio.gather(post(http, big, "big"), *(post(http, issue_body(), f"small-{i}") for i in range(20)))
    assert [status for _, status, _ in answers] == [202] * 21
    sql = "SELECT length(CAST(payload AS BLOB)) FROM deliveries WHERE id = 'big'"
    assert rows(Path(store.path), sql) == [(len(big),)]


async def test_a_locked_store_answers_503_to_the_whole_burst_and_stores_none(
    aiohttp_client: Any, store: SQLiteStore, monkeypatch: Any
) -> None:
    monkeypatch.setattr(sqlite_module, "HOOK_BUSY_TIMEOUT", 0.2)  # the budget, shortened: no long wait here
    http = await aiohttp_client(server.make_app(store, SECRET, lambda _: None))
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        answers = await asyncio.gather(*(post(http, issue_body(), f"locked-{i}") for i in range(30)))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert {status for _, status, _ in answers} == {503} and stored_ids(store.path) == []
    assert (await post(http, issue_body(), "after"))[1] == 202  # and the next delivery goes through


async def burst_with_a_fault(store: SQLiteStore, fault: Any) -> list[Any]:
    """300 deliveries at once; ``fault(store, the store's own _run_hook)`` runs before every batch but the first (the store breaks
    mid-burst). Every caller gets an answer: True or a StoreUnavailable."""
    run_hook, calls = store._run_hook, [0]

    async def faulty(fn: Any, deadline: float | None = None) -> Any:
        calls[0] += 1
        if calls[0] > 1:
            await fault(store, run_hook)
        return await run_hook(fn, deadline)

    store._run_hook = faulty  # type: ignore[method-assign]
    return await asyncio.wait_for(
        asyncio.gather(*(store.accept_delivery(delivery(i)) for i in range(300)), return_exceptions=True), 30
    )  # a hang fails, it is no figure


def no_202_without_a_row(store: SQLiteStore, answers: list[Any]) -> None:
    accepted = {f"d-{i}" for i, a in enumerate(answers) if a is True}
    assert all(a is True or isinstance(a, StoreUnavailable) for a in answers), answers
    assert 0 < len(accepted) < 300 and set(stored_ids(store.path)) == accepted


async def test_a_store_turned_read_only_mid_burst_never_answers_202_without_a_row(store: SQLiteStore) -> None:
    async def read_only(_: SQLiteStore, run_hook: Any) -> None:
        await run_hook(lambda db: db.execute("PRAGMA query_only = ON"))  # "attempt to write a readonly database"

    no_202_without_a_row(store, await burst_with_a_fault(store, read_only))


async def test_a_store_closed_mid_burst_never_answers_202_without_a_row_nor_hangs(store: SQLiteStore) -> None:
    async def close(s: SQLiteStore, _: Any) -> None:
        await s.close()

    no_202_without_a_row(store, await burst_with_a_fault(store, close))


async def test_shutdown_with_a_batch_pending_answers_503_to_each_waiting_caller(store: SQLiteStore) -> None:
    callers = [asyncio.ensure_future(store.accept_delivery(delivery(i))) for i in range(250)]
    intake = store._intake()
    while len(intake.pending) != 150:  # the writer is writing its first batch; the rest wait for the next
        await asyncio.sleep(0)
    assert intake.writer is not None
    intake.writer.cancel()  # what the loop's closing does to it
    answers = await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), 30)
    assert all(isinstance(a, StoreUnavailable) for a in answers), {type(a) for a in answers}
    assert intake.writer is None and intake.pending == []


# ---- conditional reads ---------------------------------------------------------------------------------


async def test_a_304_to_a_read_that_sent_no_validator_is_an_error_not_an_empty_200(odd: Any) -> None:  # noqa: F811
    srv, url = odd
    srv.answers["/never-cached"] = [(304, {"ETag": '"x"'}, None)]
    reads = ReadCache()
    async with aiohttp.ClientSession() as session:
        gh = await client(session, url, reads)
        with pytest.raises(Exception, match="304|Not Modified"):
            await gh.getitem("/never-cached")
    assert srv.sent("if-none-match") == [None] and len(reads) == 0 and reads.not_modified == 0


async def test_a_huge_etag_goes_back_as_sent(odd: Any) -> None:  # noqa: F811
    srv, url = odd
    huge = '"' + "e" * 8000 + '"'
    srv.answers["/huge"] = [(200, {"ETag": huge}, {"v": 1}), (304, {}, None)]
    async with aiohttp.ClientSession() as session:
        gh = await client(session, url, ReadCache())
        assert await gh.getitem("/huge") == await gh.getitem("/huge") == {"v": 1}
    assert srv.sent("if-none-match") == [None, huge]


async def test_a_read_after_the_bots_own_write_is_the_written_content(app: GitHubApp, sandbox: Any) -> None:
    sandbox.add_issue(REPO, title="before", number=7)
    gh = await app.installation(INSTALLATION)
    issue = f"/repos/{REPO}/issues/7"
    assert (await gh.getitem(issue))["title"] == (await gh.getitem(issue))["title"] == "before"  # 200, then 304
    await gh.patch(issue, data={"title": "after"})
    assert (await gh.getitem(issue))["title"] == "after"
    assert getattr(await read_file(gh, REPO, PATH), "text", None) == "labels: {a: b}\n"
    sha = (await gh.getitem(f"/repos/{REPO}/contents/{PATH}"))["sha"]  # a 304: the same file
    await gh.put(
        f"/repos/{REPO}/contents/{PATH}",
        data={"message": "m", "sha": sha, "content": base64.b64encode(b"labels: {c: d}\n").decode()},
    )
    assert getattr(await read_file(gh, REPO, PATH), "text", None) == "labels: {c: d}\n"
    assert sandbox.not_modified == 2


# ---- partial saves -------------------------------------------------------------------------------------


async def test_a_run_saved_in_parts_then_killed_loads_as_a_whole_save(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.sqlite3'}"
    first = SQLiteStore(url)
    await first.open()
    state = new_state("k1")
    await first.save_run(state.record)
    state.stored()
    state.data.replies, state.data.status_body, state.data.mention = 3, None, "@o/team"
    await save(first, state)  # partial: three keys; then the process dies (no close, no further save)
    reopened = SQLiteStore(url)
    await reopened.open()
    try:
        assert (await reopened.load_run("k1")).data == state.data.to_json()  # type: ignore[union-attr]
    finally:
        await reopened.close()
        await first.close()


async def test_two_jobs_saving_one_run_lose_neither_ones_change(store: SQLiteStore) -> None:
    a = new_state("c1")
    await store.save_run(a.record)
    a.stored()
    b = new_state("c1")
    b.stored()
    a.data.replies, b.data.mention = 2, "@o/team"
    await asyncio.gather(save(store, a), save(store, b))
    loaded = (await store.load_run("c1")).data  # type: ignore[union-attr]
    assert loaded["replies"] == 2 and loaded["mention"] == "@o/team"


# ---- the App JWT ---------------------------------------------------------------------------------------


async def jwt_app(app_keys: tuple[str, str], url: str, session: aiohttp.ClientSession, max_wait: float = 1.0) -> GitHubApp:
    settings = Settings(app_id=APP_ID, private_key=app_keys[0], webhook_secret=SECRET, github_api_url=url)
    return GitHubApp(settings, session, max_wait=max_wait, backoff=0.01)


TOKENS = "/app/installations/1/access_tokens"
TOKEN: tuple[int, dict[str, str], dict[str, str]] = (
    201,
    {},
    {"token": "ghs_" + "t" * 36, "expires_at": "2099-01-01T00:00:00Z"},
)


async def test_a_401_jwt_expired_is_answered_with_a_fresh_jwt(odd: Any, app_keys: tuple[str, str]) -> None:  # noqa: F811
    srv, url = odd
    srv.answers[TOKENS] = [(401, {}, {"message": "'Expiration time' claim ('exp') is too far in the future"}), TOKEN]
    async with aiohttp.ClientSession() as session:
        gh_app = await jwt_app(app_keys, url, session)
        with pytest.raises(TokenRefused):
            await gh_app.tokens.get(1)
        # the refused JWT is not kept for reuse: the next request signs one (within the same second its claims,
        # and so its text, are the same; the point is that a JWT of minutes ago is not sent again)
        assert str(gh_app.settings.app_id) not in auth._CURRENT
        assert await gh_app.tokens.get(1) == TOKEN[2]["token"]
        assert auth._CURRENT[str(gh_app.settings.app_id)].signed == 1


async def test_a_jwt_waited_on_through_retries_is_never_sent_expired(
    odd: Any,  # noqa: F811
    app_keys: tuple[str, str],
    monkeypatch: Any,
) -> None:
    srv, url = odd
    srv.answers[TOKENS] = [(403, {"Retry-After": "110"}, {"message": "secondary rate limit"})] * 4 + [TOKEN]
    start, waited = time.time(), [0.0]
    sent: list[tuple[float, str]] = []  # (virtual time, the JWT) of each try

    def now(_: Any = None) -> float:  # virtual time: the waits GitHub asked for, taken at once
        return start + waited[0]

    async def sleep(_: Any, seconds: float) -> None:
        waited[0] += seconds

    send = GitHub._request

    async def recorded(gh: GitHub, method: str, url: str, headers: Any, body: bytes = b"") -> Any:
        sent.append((now(), headers["authorization"].removeprefix("bearer ")))
        return await send(gh, method, url, headers, body)

    monkeypatch.setattr(GitHub, "sleep", sleep)
    monkeypatch.setattr(GitHub, "now", now)
    monkeypatch.setattr(GitHub, "_request", recorded)
    async with aiohttp.ClientSession() as session:
        gh_app = await jwt_app(app_keys, url, session, max_wait=120.0)
        gh_app.jwt()
        current = auth._CURRENT[str(APP_ID)]
        signed = start - (JWT_REUSE - 10)  # the cached JWT was signed 230 s ago
        current._value, current._signed_at = auth._sign(APP_ID, gh_app._key, signed), signed
        monkeypatch.setattr(current, "_clock", now)
        for _ in range(3):  # a refused token request is tried again, as the job's retry would
            try:
                await gh_app.tokens.get(1)
                break
            except TokenRefused:
                pass
    expiries = [jwt.decode(token, options={"verify_signature": False})["exp"] for _, token in sent]
    times = [at for at, _ in sent]
    assert all(exp > at for at, exp in zip(times, expiries, strict=True)), (times, expiries)  # none sent expired
    assert len(sent) == 5 and waited[0] == 330  # every 403 was tried again, the third one by a fresh JWT


# ---- the log thread ------------------------------------------------------------------------------------


class Stalled(io.StringIO):
    """A log stream whose writes wait until ``go`` is set (a full pipe, a stuck log collector)."""

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()

    def write(self, text: str) -> int:
        self.go.wait()
        return super().write(text)


@pytest.fixture
def off_thread() -> Any:
    """setup_logging to a stalled stream, written by the log thread; yields (stream, the queue handler, stop)."""
    root, stream = logging.getLogger(), Stalled()
    handlers, level = root.handlers[:], root.level
    setup_logging("INFO", json=True, stream=stream)
    stop = write_off_thread()
    yield stream, next(h for h in root.handlers if hasattr(h, "listener")), stop
    stream.go.set()
    stop()
    root.handlers[:] = handlers  # the session's logging as it was
    root.setLevel(level)


def test_a_burst_of_100k_lines_with_the_writer_stalled_stays_bounded(off_thread: Any) -> None:
    _stream, queued, _stop = off_thread
    log = logging.getLogger("bot.attack")
    for i in range(100_000):
        log.info("delivery %d accepted", i)
    assert len(queued.queue) <= 10_000
    _stream.go.set()
    log.error("after the stall")  # room again: the count of what was dropped is written first
    _stop()
    lines = [json.loads(line) for line in _stream.getvalue().splitlines()]
    assert any("log lines below WARNING were dropped" in line["message"] for line in lines), lines[-3:]
    assert lines[-1]["message"] == "after the stall"


def test_every_queued_line_is_written_at_exit_and_secrets_are_redacted(off_thread: Any) -> None:
    stream, _queued, stop = off_thread
    secret = "ghs_" + "s" * 36
    secrets_module.add_secret(secret)
    log = logging.getLogger("bot.attack")
    for i in range(2_000):
        log.info("line %d with %s", i, secret)
    log.error("the last words")
    stream.go.set()
    stop()  # what serve's exit does
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2_001 and lines[-1]["level"] == "ERROR" and secret not in stream.getvalue()


def test_a_secret_added_while_the_log_thread_compiles_is_still_redacted(monkeypatch: Any) -> None:
    late = "ghs_" + "l" * 36
    secrets_module.add_secret("ghs_" + "e" * 36)
    secrets_module._secret_pattern[0] = None
    adder = threading.Thread(target=secrets_module.add_secret, args=(late,))

    def compiling(pattern: str) -> Any:  # the log thread compiles; the event loop registers a token meanwhile
        adder.start()
        adder.join(0.3)  # done at once unless the store of secrets is locked while the pattern is built
        return re.compile(pattern)

    monkeypatch.setattr(secrets_module, "re", SimpleNamespace(compile=compiling, escape=re.escape))
    secrets_module.scrub("an earlier line")  # on the log thread
    monkeypatch.setattr(secrets_module, "re", re)
    adder.join()
    assert late not in secrets_module.scrub(f"a later line with {late}")
