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
    assert not await store.close_findings("o/r", 4, now)  # none kept: nothing to note
    assert (await store.prune(KEEP, now=now))["pull_findings"] == 1
    assert [await store.load_findings("o/r", n) is not None for n in (1, 2, 3)] == [False, True, True]
    assert (await store.prune(KEEP, now=now + 3 * 3600))["pull_findings"] == 1  # #2's 90 days are up
    assert await store.load_findings("o/r", 3) is not None  # open, reopened: kept for good, as before
    assert await scalar(store, "SELECT COUNT(*) FROM pull_findings") == 1


def example(examples: list[tuple[str, dict[str, Any]]], action: str, p: dict[str, Any]) -> dict[str, Any]:
    """GitHub's real example of ``pull_request.<action>`` (closed: the unmerged one), about our pull request."""
    found = next(e for name, e in examples if name == "pull_request" and e["action"] == action
                 and e["pull_request"].get("merged") is not True)
    ex = copy.deepcopy(found) | {"installation": p["installation"], "repository": p["repository"]}
    ex["pull_request"] |= {"number": p["pull_request"]["number"], "head": p["pull_request"]["head"]}
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
    await deliver(bot, example(webhook_examples, "reopened", p))
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


async def test_a_close_with_no_findings_kept_notes_nothing(
        bot: Any, sandbox: Any, team: Team, webhook_examples: list[tuple[str, dict[str, Any]]], caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    p = pull_with(sandbox, 694, {"README.md": "words\n"})
    before = len(sandbox.writes)
    await deliver(bot, example(webhook_examples, "closed", p))
    assert len(sandbox.writes) == before and "closed without a merge, with no findings" in caplog.text


async def test_a_close_dated_in_the_future_counts_from_now(
        bot: Any, sandbox: Any, team: Team, webhook_examples: list[tuple[str, dict[str, Any]]]) -> None:
    """GitHub's clock ahead of ours (or a close far in the future) must not keep the findings past 90 days from now."""
    p = pull_with(sandbox, 696, {"app/client.py": KEY + "\n", **TESTS})
    await send(bot, sandbox, "pull_request", p)
    ahead = example(webhook_examples, "closed", p)
    ahead["pull_request"]["closed_at"] = "2099-01-01T00:00:00Z"
    await deliver(bot, ahead)
    assert float(await closed_at(bot, 696)) <= time.time()
