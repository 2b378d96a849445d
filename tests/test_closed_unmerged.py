"""A pull request closed without a merge: retention kept its findings for good while one was open (waiting for a merge
that never comes). The close is now noted (``pull_findings.closed_at``), cleared when it is reopened, and retention
lets the findings of one closed 90 days ago go, open ones too. Reopened and merged later, it still files what is
open. Through the webhook with GitHub's real ``pull_request.closed`` (unmerged) and ``pull_request.reopened``
examples of @octokit/webhooks-examples; the store's part on SQLite and PostgreSQL."""
from __future__ import annotations

import copy
import logging
import time
from typing import Any

import pytest

from bot.sandbox.team import Team
from bot.store.base import FINDINGS_KEEP_SECONDS, PullFindings
from tests.conftest import post_webhook
from tests.test_attacks_today import TESTS, filed
from tests.test_attacks_verdicts import KEY
from tests.test_converging_reviews import merged
from tests.test_retention import scalar
from tests.test_store import store  # noqa: F401  (SQLite and PostgreSQL, skipped without a server)
from tests.test_verdicts import pull_with
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401

KEEP = 14 * 86_400.0
OPEN = {"f1": {"state": "open"}}


async def test_a_closed_pull_requests_open_findings_go_90_days_after_the_close(store: Any) -> None:  # noqa: F811
    for n in (1, 2, 3):
        await store.save_findings(PullFindings(repo="o/r", number=n, sha="a" * 40, findings=OPEN))
    now = time.time()
    assert await store.close_findings("o/r", 1, now - FINDINGS_KEEP_SECONDS - 10)  # closed 90 days ago
    assert await store.close_findings("o/r", 2, now - FINDINGS_KEEP_SECONDS + 3600)  # closed 89 days 23 hours ago
    assert await store.close_findings("o/r", 3, now - FINDINGS_KEEP_SECONDS - 10)
    assert await store.close_findings("o/r", 3, None)  # ... and reopened: waits for its merge again
    assert (await store.prune(KEEP, now=now))["pull_findings"] == 1
    assert [await store.load_findings("o/r", n) is not None for n in (1, 2, 3)] == [False, True, True]
    assert (await store.prune(KEEP, now=now + 3 * 3600))["pull_findings"] == 1  # #2's 90 days are up
    assert await store.load_findings("o/r", 3) is not None  # open, reopened: kept for good, as before
    assert await scalar(store, "SELECT COUNT(*) FROM pull_findings") == 1


async def test_a_close_or_reopen_older_than_the_one_applied_changes_nothing(store: Any) -> None:  # noqa: F811
    """Closed at 100 (its job failed: a 503), reopened at 200, then the close's redelivery or ``jobs retry``: the
    open pull request is not marked closed (retention would delete its open findings 90 days later)."""
    await store.save_findings(PullFindings(repo="o/r", number=1, sha="a" * 40, findings=OPEN))
    assert await store.close_findings("o/r", 1, None, at=200.0)  # the reopen, processed first
    assert not await store.close_findings("o/r", 1, 100.0, at=100.0)  # the close, late
    assert not await store.close_findings("o/r", 1, 100.0, at=None)  # a close GitHub gave no time: cannot be ordered
    assert await closed_row(store, 1) == (None, 200.0)
    assert await store.close_findings("o/r", 1, 300.0, at=300.0)  # closed again, for good
    assert not await store.close_findings("o/r", 1, None, at=200.0)  # the reopen's redelivery, late
    assert await closed_row(store, 1) == (300.0, 300.0)
    assert await store.close_findings("o/r", 1, None, at=300.0)  # reopened in the same second: kept, never lost
    assert await closed_row(store, 1) == (None, 300.0)
    assert await store.close_findings("o/r", 1, None, at=None)  # a reopen with no time: applied (it keeps them)
    assert await closed_row(store, 1) == (None, 300.0)


async def test_a_review_saved_after_the_close_keeps_the_close(store: Any) -> None:  # noqa: F811
    """The close is processed while the pull request's review still runs (no findings saved yet): a row with none
    holds the close, and the review's save keeps it; its open findings go 90 days after the close."""
    now = time.time()
    assert await store.close_findings("o/r", 4, now - FINDINGS_KEEP_SECONDS - 10, at=now - 100, sha="b" * 40)
    kept = await store.load_findings("o/r", 4)
    assert kept == PullFindings(repo="o/r", number=4, sha="b" * 40, findings={})  # as a review with none left it
    await store.save_findings(PullFindings(repo="o/r", number=4, sha="c" * 40, findings=OPEN))  # the review, late
    assert await closed_row(store, 4) == (now - FINDINGS_KEEP_SECONDS - 10, now - 100)
    assert (await store.prune(KEEP, now=now))["pull_findings"] == 1
    assert await store.load_findings("o/r", 4) is None


async def closed_row(store: Any, number: int) -> tuple[Any, Any]:
    closed = await scalar(store, f"SELECT closed_at FROM pull_findings WHERE number = {number}")
    at = await scalar(store, f"SELECT state_at FROM pull_findings WHERE number = {number}")
    return closed, at


def example(examples: list[tuple[str, dict[str, Any]]], action: str, p: dict[str, Any],
            updated_at: str | None = None) -> dict[str, Any]:
    """GitHub's real example of ``pull_request.<action>`` (closed: the unmerged one), about our pull request;
    ``updated_at``: when GitHub made this change (the examples' reopen predates their close: two pull requests)."""
    found = next(e for name, e in examples if name == "pull_request" and e["action"] == action
                 and e["pull_request"].get("merged") is not True)
    ex = copy.deepcopy(found) | {"installation": p["installation"], "repository": p["repository"]}
    ex["pull_request"] |= {"number": p["pull_request"]["number"], "head": p["pull_request"]["head"]}
    if updated_at is not None:
        ex["pull_request"]["updated_at"] = updated_at
    return ex


async def deliver(bot: Any, payload: dict[str, Any]) -> None:
    """Posted as GitHub does, without seeding the sandbox from the example's other fields."""
    rt, client = bot
    resp = await post_webhook(client, "pull_request", payload)
    assert resp.status == 202, await resp.text()
    await rt.jobs.drained(30)
    assert set(await rt.store.job_states()) == {"done"}


async def closed_at(bot: Any, number: int) -> Any:
    return await scalar(bot[0].store, f"SELECT closed_at FROM pull_findings WHERE number = {number}")


async def test_closed_then_reopened_then_merged_still_files_its_open_finding(
        bot: Any, sandbox: Any, team: Team, webhook_examples: list[tuple[str, dict[str, Any]]]) -> None:
    p = pull_with(sandbox, 690, {"app/client.py": KEY + "\n", **TESTS})
    await send(bot, sandbox, "pull_request", p)
    before = len(sandbox.writes)
    await deliver(bot, example(webhook_examples, "closed", p))
    assert await closed_at(bot, 690) is not None and len(sandbox.writes) == before  # noted; nothing on GitHub
    await deliver(bot, example(webhook_examples, "reopened", p, updated_at="2019-05-15T15:30:00Z"))
    assert await closed_at(bot, 690) is None
    later = time.time() + FINDINGS_KEEP_SECONDS + 86_400
    assert (await bot[0].store.prune(KEEP, now=later))["pull_findings"] == 0  # open, reopened: kept for its merge
    await send(bot, sandbox, "pull_request", merged(p, p["pull_request"]["head"]["sha"]))
    assert len(filed(sandbox)) == 1


async def test_closed_for_good_its_findings_go_90_days_after(
        bot: Any, sandbox: Any, team: Team, webhook_examples: list[tuple[str, dict[str, Any]]]) -> None:
    p = pull_with(sandbox, 692, {"app/client.py": KEY + "\n", **TESTS})
    await send(bot, sandbox, "pull_request", p)
    await deliver(bot, example(webhook_examples, "closed", p))  # closed_at of 2019: kept 90 days from it
    assert float(await closed_at(bot, 692)) < time.time() - FINDINGS_KEEP_SECONDS
    assert (await bot[0].store.prune(KEEP))["pull_findings"] == 1
    assert await bot[0].store.load_findings(REPO, 692) is None


async def test_a_close_before_any_review_is_noted_and_asks_github_nothing(
        bot: Any, sandbox: Any, team: Team, webhook_examples: list[tuple[str, dict[str, Any]]], caplog: Any) -> None:
    """No findings saved yet (a review may still be running): a row with none holds the close, and the job asks
    GitHub for nothing (not even an installation token: it only writes the store)."""
    caplog.set_level(logging.INFO)
    p = pull_with(sandbox, 694, {"README.md": "words\n"})
    before = len(sandbox.writes)
    await deliver(bot, example(webhook_examples, "closed", p))
    assert len(sandbox.writes) == before and not [r for r in sandbox.requests if "access_tokens" in r.path]
    assert await closed_at(bot, 694) is not None and "closed without a merge: its review's findings" in caplog.text


async def test_a_close_delivered_after_the_reopen_leaves_the_findings_open(
        bot: Any, sandbox: Any, team: Team, webhook_examples: list[tuple[str, dict[str, Any]]], caplog: Any) -> None:
    """The close's job failed (a 503) and the reopen's succeeded; the close's redelivery comes last. GitHub's
    updated_at orders them: the pull request stays open, and its merge months later files its open finding."""
    caplog.set_level(logging.INFO)
    p = pull_with(sandbox, 698, {"app/client.py": KEY + "\n", **TESTS})
    await send(bot, sandbox, "pull_request", p)
    await deliver(bot, example(webhook_examples, "reopened", p, updated_at="2019-05-15T15:30:00Z"))
    await deliver(bot, example(webhook_examples, "closed", p))  # closed (and updated) at 15:21:18
    assert await closed_at(bot, 698) is None and "a later close or reopen was applied already" in caplog.text
    later = time.time() + FINDINGS_KEEP_SECONDS + 86_400
    assert (await bot[0].store.prune(KEEP, now=later))["pull_findings"] == 0
    await send(bot, sandbox, "pull_request", merged(p, p["pull_request"]["head"]["sha"]))
    assert len(filed(sandbox)) == 1


@pytest.mark.parametrize("updated_at", [None, "yesterday", 12, {"a": 1}, "9" * 5000],
                         ids=["null", "garbage", "number", "object", "huge"])
async def test_an_unreadable_updated_at_falls_back_to_the_close_time(
        bot: Any, sandbox: Any, team: Team, webhook_examples: list[tuple[str, dict[str, Any]]], updated_at: Any) -> None:
    p = pull_with(sandbox, 699, {"app/client.py": KEY + "\n", **TESTS})
    await send(bot, sandbox, "pull_request", p)
    close = example(webhook_examples, "closed", p)  # closed at 15:21:18
    close["pull_request"]["updated_at"] = updated_at
    await deliver(bot, close)
    assert await closed_at(bot, 699) is not None
    await deliver(bot, example(webhook_examples, "reopened", p))  # reopened at 15:20:33, before the close: stale
    assert await closed_at(bot, 699) is not None
    reopen = example(webhook_examples, "reopened", p)
    del reopen["pull_request"]["updated_at"]
    await deliver(bot, reopen)  # no time: a reopen is applied (it only keeps the findings)
    assert await closed_at(bot, 699) is None


async def test_sqlite_retention_finds_closed_rows_by_the_index(store: Any) -> None:  # noqa: F811
    if not hasattr(store, "_run"):
        pytest.skip("SQLite's query plan")
    plan = await store._run(lambda db: db.execute(
        "EXPLAIN QUERY PLAN DELETE FROM pull_findings WHERE closed_at <= 1").fetchall())
    assert any("pull_findings_closed" in str(tuple(r)) for r in plan)


async def test_closed_rows_are_pruned_in_batches_to_the_last(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr("bot.store.postgres.PRUNE_BATCH", 2)  # (SQLite's pass deletes them in one statement)
    now = time.time()
    for n in range(1, 6):
        assert await store.close_findings("o/r", n, now - FINDINGS_KEEP_SECONDS - 10, at=now - 10)
    assert (await store.prune(KEEP, now=now))["pull_findings"] == 5
    assert await scalar(store, "SELECT COUNT(*) FROM pull_findings") == 0


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


async def test_a_reopen_stamped_in_year_9999_does_not_outrank_every_later_close(
        bot: Any, sandbox: Any, team: Team, webhook_examples: list[tuple[str, dict[str, Any]]]) -> None:
    """A time later than GitHub's clock can be (bot/run/merged.py: CLOCK_SKEW) orders nothing: the reopen is
    applied as an undated one, and the real close after it still is (else its findings were kept for good)."""
    p = pull_with(sandbox, 700, {"app/client.py": KEY + "\n", **TESTS})
    await send(bot, sandbox, "pull_request", p)
    now = time.time()
    await deliver(bot, example(webhook_examples, "closed", p, updated_at=_iso(now - 60)))
    await deliver(bot, example(webhook_examples, "reopened", p, updated_at="9999-12-31T23:59:59Z"))
    assert await closed_at(bot, 700) is None
    await deliver(bot, example(webhook_examples, "closed", p, updated_at=_iso(now)))
    assert await closed_at(bot, 700) is not None


async def test_a_merge_is_noted_as_a_close_no_earlier_reopen_redelivered_undoes(
        bot: Any, sandbox: Any, team: Team, webhook_examples: list[tuple[str, dict[str, Any]]]) -> None:
    """The merge lets the findings go and notes a close (a review run after it keeps what it finds 90 days only);
    a reopen of before the merge, redelivered after it, is older than the merge and changes nothing."""
    p = pull_with(sandbox, 702, {"app/client.py": KEY + "\n", **TESTS})
    await send(bot, sandbox, "pull_request", p)
    await send(bot, sandbox, "pull_request", merged(p, p["pull_request"]["head"]["sha"]))
    kept = await bot[0].store.load_findings(REPO, 702)
    assert len(filed(sandbox)) == 1 and kept is not None and kept.findings == {}
    assert await closed_at(bot, 702) is not None
    await deliver(bot, example(webhook_examples, "reopened", p, updated_at=_iso(time.time() - 5)))
    assert await closed_at(bot, 702) is not None
