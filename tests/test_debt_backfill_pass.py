"""The backfill of private tech-debt markers (``merged.backfill``) over the store itself, on SQLite and PostgreSQL
(skipped without a server): the chain walk shared with filing (keyed, then unkeyed, per link), every page of
``findings_page`` (past 100 rows, unreadable rows kept as having no findings), and ``backfill_once``: one pass per
install, recorded in the store, shared by the merges that start while it runs, tried again after a failure."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from bot.core import findings as F
from bot.run import merged as M
from bot.store import Posted
from bot.store.base import PullFindings
from tests.test_store import store  # noqa: F401  (SQLite and PostgreSQL, skipped without a server)

SECRET = "s3cret"
KEY = M.finding_key(SECRET)
REPO = "o/r"


def tracked(i: int) -> F.Tracked:
    return F.Tracked(id=f"f{i}", source=F.CHECK, rule="secret", severity="critical", text=f"a key {i}",
                     path="app/client.py", line=i, state=F.OPEN, first_sha="a" * 40, last_sha="a" * 40)


async def keep(store: Any, number: int, t: F.Tracked) -> None:
    await store.save_findings(PullFindings(repo=REPO, number=number, sha="a" * 40, findings={t.id: t.as_dict()}))


async def issue(store: Any, mark: str, number: int) -> None:
    """An issue the store knows by ``mark`` only (filed before the private marker existed)."""
    await store.remember_posted(Posted(marker=mark, repo=REPO, kind="issue", github_id=number, number=number, url=None))


async def raw(store: Any, sql: str) -> None:
    if hasattr(store, "_run"):
        await store._run(lambda db: db.execute(sql))
    else:
        await store._exec(sql)


async def noted(store: Any, t: F.Tracked, after: int | None = None) -> int | None:
    found = await store.find_posted(M.filed_marker(REPO, t, after))
    return None if found is None else found.number


async def test_the_chain_goes_on_past_an_unkeyed_link(store: Any) -> None:  # noqa: F811
    """Link 0 filed unkeyed (before keys) and closed as completed; link 1 filed keyed, open, with no private note:
    both are noted, so a rotation later still finds link 1."""
    t = tracked(1)
    await keep(store, 1, t)
    await issue(store, M.debt_marker(REPO, t), 10)
    await issue(store, M.debt_marker(REPO, t, 10, KEY), 11)
    assert await M.backfill(store, KEY) == 2
    assert (await noted(store, t), await noted(store, t, 10)) == (10, 11)
    assert await M.backfill(store, KEY) == 0  # idempotent


async def test_every_page_is_read_past_100_rows_and_an_unreadable_row_is_passed(store: Any) -> None:  # noqa: F811
    ts = {n: tracked(n) for n in range(1, 131)}
    for n, t in ts.items():
        await keep(store, n, t)
    await raw(store, "UPDATE pull_findings SET findings = 'not json' WHERE number = 100")  # the first page's last
    for n in (1, 101, 130):
        await issue(store, M.debt_marker(REPO, ts[n], key=KEY), 1000 + n)
    first = await store.findings_page()
    assert len(first) == 100 and first[-1].findings == {} and first[-1].number == 100
    assert [p.number for p in await store.findings_page((REPO, 100), limit=100)] == list(range(101, 131))
    assert await asyncio.wait_for(M.backfill(store, KEY), 20) == 3
    assert [await noted(store, ts[n]) for n in (1, 101, 130)] == [1001, 1101, 1130]


async def test_the_pass_runs_once_per_install(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Recorded in the store: the next process (or a rotation: the new key could not find the old key's issues
    anyway) does not read every row of pull_findings again."""
    await keep(store, 1, tracked(1))
    pages = count_pages(store, monkeypatch)
    await M.backfill_once(store, SECRET)
    assert pages == [("", 0), (REPO, 1)]
    M._BACKFILLS.pop(store)  # the next process
    await M.backfill_once(store, SECRET + "-rotated")
    assert pages == [("", 0), (REPO, 1)] and await store.is_done(M.BACKFILL_DONE)


async def test_a_merge_during_the_start_up_pass_waits_for_it(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    t = tracked(1)
    await keep(store, 1, t)
    await issue(store, M.debt_marker(REPO, t, key=KEY), 7)
    go, real = asyncio.Event(), store.findings_page

    async def slow(after: tuple[str, int] = ("", 0), limit: int = 100) -> list[PullFindings]:
        await go.wait()
        return await real(after, limit)
    monkeypatch.setattr(store, "findings_page", slow)
    start = M.start_backfill(store, SECRET)
    merge = asyncio.create_task(M.backfill_once(store, SECRET))
    await asyncio.sleep(0.05)
    assert start is not None and not merge.done()  # the merge's filing waits: the issue of before is not noted yet
    go.set()
    await merge
    assert start.done() and await noted(store, t) == 7
    assert M.start_backfill(store, SECRET) is start  # one pass per store


async def test_a_failed_pass_is_logged_and_run_again(store: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                      caplog: pytest.LogCaptureFixture) -> None:
    t = tracked(1)
    await keep(store, 1, t)
    await issue(store, M.debt_marker(REPO, t, key=KEY), 7)
    real = store.findings_page

    async def broken(after: tuple[str, int] = ("", 0), limit: int = 100) -> list[PullFindings]:
        raise RuntimeError("the disk")
    monkeypatch.setattr(store, "findings_page", broken)
    with caplog.at_level(logging.ERROR):
        await M.backfill_once(store, SECRET)
    assert "noting the issues filed before the private marker existed failed" in caplog.text
    assert not await store.is_done(M.BACKFILL_DONE)
    monkeypatch.setattr(store, "findings_page", real)
    await M.backfill_once(store, SECRET)  # the next merge
    assert await noted(store, t) == 7 and await store.is_done(M.BACKFILL_DONE)


def count_pages(store: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    asked: list[tuple[str, int]] = []
    real = store.findings_page

    async def counted(after: tuple[str, int] = ("", 0), limit: int = 100) -> list[PullFindings]:
        asked.append(after)
        return await real(after, limit)
    monkeypatch.setattr(store, "findings_page", counted)
    return asked
