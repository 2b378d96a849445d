"""Tech debt filed at merge (bot/run/merged.py) and pull requests closed or reopened, attacked from outside: a flood
of issues, forged markers that would stop a real finding being filed, GitHub answering oddly (5xx, unknown
state_reason, a label listing of thousands, a label renamed), the filing claim under a slow write and skewed
clocks, close and reopen deliveries with odd times, and what the bot's words could leak. Through the webhook against
the sandbox where the attack comes that way; the claim's races call the filing directly, as its own tests do.

An attack that succeeds is ``xfail(strict=True)`` naming the harm; one that is held is a passing test."""
from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import logging
import time
import types
from collections.abc import AsyncIterator
from typing import Any

import pytest

import bot.store.postgres as pg
from bot.core import findings as F
from bot.core.markers import markers_in
from bot.github.writes import BOT_LABEL
from bot.run import merged as M
from bot.sandbox.team import Team
from bot.store import PullFindings
from bot.store.base import FINDINGS_KEEP_SECONDS
from bot.store.postgres import PostgresStore
from tests.conftest import SECRET, post_webhook
from tests.test_attacks_today import KEY2, TESTS, close, filed
from tests.test_closed_unmerged import KEEP, closed_at, deliver, example
from tests.test_converging_reviews import merged
from tests.test_debt_filing_claims import reviewed
from tests.test_postgres_store import opened_store
from tests.test_verdicts import pull_with
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401

SHA = "a" * 40


def model(n: int, text: str | None = None, fid: str | None = None) -> dict[str, Any]:
    """A model finding as the store keeps it (``fid``: its id; the same id is the same finding)."""
    return F.Tracked(fid or f"m{n:02}", F.MODEL, "model:warning", "warning", text or f"finding number {n}",
                     "app/x.py", n + 1, F.OPEN, SHA, SHA).as_dict()


async def merge_with(bot: Any, sandbox: Any, number: int, findings: dict[str, Any],  # noqa: F811
                     edit: Any = None) -> None:
    """Pull request ``number`` with ``findings`` kept for it (as its review left them), merged; ``edit`` changes
    the merge delivery first."""
    p = pull_with(sandbox, number, {"README.md": f"words {number}\n"})
    await bot[0].store.save_findings(PullFindings(repo=REPO, number=number, sha=SHA, findings=findings))
    closing = merged(p, p["pull_request"]["head"]["sha"])
    if edit is not None:
        edit(closing["pull_request"])
    await send(bot, sandbox, "pull_request", closing)


def iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


# ---- floods -------------------------------------------------------------------------------------------------

async def test_many_merges_of_the_same_twelve_findings_file_ten_issues_in_all(
        bot: Any, sandbox: Any, team: Team) -> None:  # noqa: F811
    for number in range(1000, 1600, 100):  # far apart: the issues filed take the numbers after
        await merge_with(bot, sandbox, number, {f"m{n:02}": model(n) for n in range(12)})
    assert len(filed(sandbox)) == 10


async def test_a_finding_reworded_only_in_case_is_not_filed_again(bot: Any, sandbox: Any, team: Team) -> None:  # noqa: F811
    texts = ["SQL built by formatting in find()", "sql built by formatting in find().", "SQL built by formatting, in FIND()"]
    for number, text in zip(range(1000, 1300, 100), texts, strict=True):
        await merge_with(bot, sandbox, number, {"m-sql": model(1, text, "m-sql")})
    assert len(filed(sandbox)) == 1


async def test_closing_every_filing_as_completed_with_many_findings_stays_at_five_each(
        bot: Any, sandbox: Any, team: Team) -> None:  # noqa: F811
    for number in range(1000, 1800, 100):
        await merge_with(bot, sandbox, number, {f"m{n:02}": model(n) for n in range(3)})
        for n in filed(sandbox):
            close(sandbox, n, "completed")
    assert len(filed(sandbox)) == 15


# ---- forged markers: a real finding must still be filed --------------------------------------------------------

async def test_issues_carrying_the_debt_marker_by_others_never_pass_for_the_bots(
        bot: Any, sandbox: Any, team: Team) -> None:  # noqa: F811
    """The marker (keyed and unkeyed, and the next chain link's) planted where the bot looks: issues with its labels
    by a person, by a person named like the bot, by another App's bot, a pull request; a comment on one."""
    t = F.Tracked.from_dict(model(1, fid="m-planted"))
    assert t is not None
    key = M.finding_key(SECRET)
    marks = [M.debt_marker(REPO, t, key=key), M.debt_marker(REPO, t), M.debt_marker(REPO, t, 1, key)]
    planted = []
    for who, kind in (("mallory", "User"), ("triage-lead", "User"), ("evil-app[bot]", "Bot")):
        for mark in marks:
            issue = sandbox.add_issue(REPO, title="Tech debt: planted", body=f"nothing\n\n{mark}\n", user=who,
                                      user_type=kind, labels=["tech-debt", BOT_LABEL])
            sandbox.add_comment(REPO, issue["number"], f"x\n\n{mark}\n", user=who, user_type=kind)
            planted.append(issue["number"])
    pull_with(sandbox, 840, {"README.md": f"x\n\n{marks[0]}\n"})
    sandbox.repo(REPO).issues[840].update(body=f"x\n\n{marks[0]}\n", labels=[sandbox.label(sandbox.repo(REPO), BOT_LABEL)])
    planted.append(840)
    await merge_with(bot, sandbox, 842, {"m-planted": model(1, fid="m-planted")})
    [n] = [n for n in filed(sandbox) if n not in planted]
    assert sandbox.repo(REPO).issues[n]["user"]["login"] == sandbox.bot_login


# ---- GitHub's answers ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reason", ["not_planned", "duplicate", None, "reopened", "something_new", 7])
async def test_a_debt_issue_closed_for_any_other_reason_is_not_filed_again(
        bot: Any, sandbox: Any, team: Team, reason: Any) -> None:  # noqa: F811
    await merge_with(bot, sandbox, 850, {"m01": model(1)})
    [n] = filed(sandbox)
    close(sandbox, n, reason)
    await merge_with(bot, sandbox, 950, {"m01": model(1)})
    assert filed(sandbox) == [n]


async def test_a_5xx_on_the_issue_read_fails_the_job_visibly_and_keeps_the_findings(
        bot: Any, sandbox: Any, team: Team) -> None:  # noqa: F811
    rt, client = bot
    await merge_with(bot, sandbox, 854, {"m01": model(1)})
    [n] = filed(sandbox)
    p = pull_with(sandbox, 956, {"README.md": "w\n"})
    await rt.store.save_findings(PullFindings(repo=REPO, number=956, sha=SHA, findings={"m01": model(1)}))
    sandbox.fail("GET", rf"/repos/{REPO}/issues/{n}", 502, times=-1)
    sandbox.seed_from_payload(p)
    resp = await post_webhook(client, "pull_request", merged(p, p["pull_request"]["head"]["sha"]), delivery="d-956")
    assert resp.status == 202
    await rt.jobs.drained(30)
    assert "failed" in await rt.store.job_states() and await rt.store.load_findings(REPO, 956) is not None
    sandbox.clear_faults()
    resp = await post_webhook(client, "pull_request", merged(p, p["pull_request"]["head"]["sha"]), delivery="d-957")
    await rt.jobs.drained(30)  # redelivered
    kept = await rt.store.load_findings(REPO, 956)  # let go (a merge is noted as a close: an empty row stays)
    assert filed(sandbox) == [n] and kept is not None and kept.findings == {}


async def test_a_thousand_issues_labelled_by_people_do_not_make_each_filing_page_through_them(
        bot: Any, sandbox: Any, team: Team) -> None:  # noqa: F811
    for i in range(1000):
        sandbox.add_issue(REPO, title=f"old {i}", user="mallory", labels=[BOT_LABEL])
    before = len(sandbox.requests)
    await merge_with(bot, sandbox, 5000, {f"m{n:02}": model(n) for n in range(3)})
    listings = [r for r in sandbox.requests[before:] if r.method == "GET" and r.path == f"/repos/{REPO}/issues"]
    assert len(filed(sandbox)) == 3 and len(listings) <= 3, len(listings)


def unlabel(sandbox: Any, rename: str | None) -> None:
    """A maintainer renames the bot's label (``rename``) or deletes it (None): GitHub changes it on every issue."""
    repo = sandbox.repo(REPO)
    lab = repo.labels.pop(BOT_LABEL)
    for issue in repo.issues.values():
        had = any(x is lab for x in issue["labels"])
        issue["labels"] = [x for x in issue["labels"] if x is not lab]
        if had and rename is not None:
            issue["labels"].append(lab)
    if rename is not None:
        lab["name"] = rename
        repo.labels[rename.lower()] = lab


@pytest.mark.parametrize("rename", ["bot-filed", None], ids=["renamed", "deleted"])
async def test_a_label_renamed_before_a_retry_files_nothing_twice(
        bot: Any, sandbox: Any, team: Team, rename: str | None) -> None:  # noqa: F811
    deps = bot[0].deps
    event, _, gh = await reviewed(bot, sandbox, 862)
    sandbox.fail("POST", rf"/repos/{REPO}/issues", 502, times=-1, landed=True)
    with pytest.raises(Exception):  # noqa: B017  (GitHub's 502, whatever the client makes of it)
        await M.on_pull_merged(event, gh, deps)
    sandbox.clear_faults()
    [n] = filed(sandbox)
    unlabel(sandbox, rename)
    await M.on_pull_merged(event, gh, deps)
    assert filed(sandbox) == [n]


# ---- the claim ------------------------------------------------------------------------------------------------------

class SlowPosts:
    """An installation client whose POSTs wait first, as a write waits for its pacer's slot (up to an hour when an
    installation's 500 writes an hour are used up: bot/github/pacing.py waits without a bound)."""

    def __init__(self, gh: Any, wait: float) -> None:
        self._gh, self._wait = gh, wait

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gh, name)

    async def post(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(self._wait)
        return await self._gh.post(*args, **kwargs)


def slow(gh: Any, wait: float) -> Any:
    return SlowPosts(gh, wait)


async def test_a_lease_running_out_while_the_first_job_waits_to_post_files_one_issue(
        bot: Any, sandbox: Any, team: Team, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    deps = bot[0].deps
    event, t, gh = await reviewed(bot, sandbox, 864)
    monkeypatch.setattr(M, "CLAIM_LEASE", 0.3)  # scaled down with the wait: 900 s against the pacer's hour
    monkeypatch.setattr(M, "CLAIM_POLL", 0.02)
    first = asyncio.create_task(M._file(slow(gh, 1.2), deps, event, t, SHA))
    await asyncio.sleep(0.6)
    try:
        await M._file(gh, deps, dataclasses.replace(event, number=866), t, SHA)
    except M.FilingInProgress:
        pass  # held: the second job waits for the first, and fails to be retried
    await first
    assert len(filed(sandbox)) == 1


@pytest.fixture
async def pg_store() -> AsyncIterator[PostgresStore]:
    async with opened_store() as store:
        yield store


async def test_a_worker_with_a_clock_ahead_does_not_take_a_live_claim(
        bot: Any, sandbox: Any, team: Team, pg_store: PostgresStore,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    deps = dataclasses.replace(bot[0].deps, store=pg_store)
    event, t, gh = await reviewed(bot, sandbox, 868)
    monkeypatch.setattr(M, "CLAIM_POLL", 0.02)
    monkeypatch.setattr(M, "CLAIM_TRIES", 3)
    first = asyncio.create_task(M._file(slow(gh, 0.8), deps, event, t, SHA))  # worker A, its clock right
    await asyncio.sleep(0.3)
    skewed = types.SimpleNamespace(time=lambda: time.time() + M.CLAIM_LEASE + 60)
    monkeypatch.setattr(pg, "time", skewed)  # worker B, its clock 16 minutes ahead
    try:
        await M._file(gh, deps, dataclasses.replace(event, number=870), t, SHA)
    except M.FilingInProgress:
        pass  # held: B waits for A
    await first
    assert len(filed(sandbox)) == 1


# ---- closed and reopened -------------------------------------------------------------------------------------------

async def reviewed_with_key(bot: Any, sandbox: Any, number: int) -> dict[str, Any]:  # noqa: F811
    p = pull_with(sandbox, number, {"app/client.py": KEY2 + "\n", **TESTS})
    await send(bot, sandbox, "pull_request", p)
    return p


async def test_a_close_stamped_in_year_9999_does_not_outrank_every_later_reopen(
        bot: Any, sandbox: Any, team: Team, webhook_examples: list[tuple[str, dict[str, Any]]]) -> None:  # noqa: F811
    p = await reviewed_with_key(bot, sandbox, 872)
    await deliver(bot, example(webhook_examples, "closed", p, updated_at="9999-12-31T23:59:59Z"))
    await deliver(bot, example(webhook_examples, "reopened", p, updated_at=iso(time.time())))
    later = time.time() + FINDINGS_KEEP_SECONDS + 86_400
    await bot[0].store.prune(KEEP, now=later)
    await send(bot, sandbox, "pull_request", merged(p, p["pull_request"]["head"]["sha"]))
    assert len(filed(sandbox)) == 1


@pytest.mark.parametrize("close_at, reopen_at, late_close_at", [
    ("2026-12-03T15:00:00.500000Z", "2026-12-03T10:00:01-05:00", "2026-12-03T20:30:00.900+05:30"),
    ("2026-12-03T15:00:00+00:00", "2026-12-03T15:00:00.000001Z", "2026-12-03T15:00:00Z"),
    ("2026-12-04T04:59:59+14:00", "2026-12-03T15:00:00Z", "2026-12-03T14:59:59.999999Z"),
], ids=["offsets", "microseconds", "plus-14"])
async def test_closes_and_reopens_with_offsets_and_fractions_are_ordered_by_the_instant(
        bot: Any, sandbox: Any, team: Team, webhook_examples: list[tuple[str, dict[str, Any]]],  # noqa: F811
        close_at: str, reopen_at: str, late_close_at: str) -> None:
    p = await reviewed_with_key(bot, sandbox, 874)
    await deliver(bot, example(webhook_examples, "closed", p, updated_at=close_at))
    await deliver(bot, example(webhook_examples, "reopened", p, updated_at=reopen_at))
    assert await closed_at(bot, 874) is None
    await deliver(bot, example(webhook_examples, "closed", p, updated_at=late_close_at))  # the first close, again
    assert await closed_at(bot, 874) is None


async def test_an_author_closing_and_reopening_a_hundred_times_keeps_one_row(
        bot: Any, sandbox: Any, team: Team, webhook_examples: list[tuple[str, dict[str, Any]]]) -> None:  # noqa: F811
    p = await reviewed_with_key(bot, sandbox, 876)
    start = time.time() - 1000
    for i in range(0, 100, 2):
        await deliver(bot, example(webhook_examples, "closed", p, updated_at=iso(start + i)))
        await deliver(bot, example(webhook_examples, "reopened", p, updated_at=iso(start + i + 1)))
    rows = await bot[0].store._run(lambda db: db.execute("SELECT COUNT(*) FROM pull_findings").fetchone()[0])
    assert rows == 1 and await closed_at(bot, 876) is None


async def test_a_merge_with_merged_null_but_merged_at_set_files_its_debt(bot: Any, sandbox: Any, team: Team) -> None:  # noqa: F811
    def unsure(pr: dict[str, Any]) -> None:
        pr |= {"merged": None, "merged_at": iso(time.time())}
    await merge_with(bot, sandbox, 878, {"m01": model(1)}, unsure)
    assert len(filed(sandbox)) == 1


@pytest.mark.parametrize("sha", [None, "`@octocat [x](https://evil.example)` <!-- triage-lead:x -->"],
                         ids=["null", "hostile"])
async def test_a_merge_commit_sha_null_or_hostile_still_files_a_defused_issue(
        bot: Any, sandbox: Any, team: Team, sha: Any) -> None:  # noqa: F811
    def odd(pr: dict[str, Any]) -> None:
        pr["merge_commit_sha"] = sha
    await merge_with(bot, sandbox, 880, {"m01": model(1)}, odd)
    [n] = filed(sandbox)
    body = sandbox.repo(REPO).issues[n]["body"]
    assert "@octocat" not in body and "evil.example" not in body and markers_in(body)[-1].startswith("finding-debt")


async def test_a_merge_commit_sha_of_another_type_does_not_drop_the_merge(bot: Any, sandbox: Any, team: Team) -> None:  # noqa: F811
    p = pull_with(sandbox, 882, {"README.md": "w\n"})
    await bot[0].store.save_findings(PullFindings(repo=REPO, number=882, sha=SHA, findings={"m01": model(1)}))
    closing = merged(p, p["pull_request"]["head"]["sha"])
    closing["pull_request"]["merge_commit_sha"] = 12345
    sandbox.seed_from_payload(closing)
    resp = await post_webhook(bot[1], "pull_request", closing)
    await bot[0].jobs.drained(30)
    assert resp.status == 202 and len(filed(sandbox)) == 1


# ---- leaks ----------------------------------------------------------------------------------------------------------

WEAK = 'DB_PASSWORD = "hunter2hunter2"'


async def test_nothing_posted_or_logged_carries_a_credential_the_key_or_an_unkeyed_digest(
        bot: Any, sandbox: Any, team: Team, caplog: Any) -> None:  # noqa: F811
    caplog.set_level(logging.DEBUG)
    deps = bot[0].deps
    p = pull_with(sandbox, 884, {"app/db.py": WEAK + "\n", "app/client.py": KEY2 + "\n", **TESTS})
    await send(bot, sandbox, "pull_request", p)
    found = list(F.load((await deps.store.load_findings(REPO, 884)).findings).values())
    await send(bot, sandbox, "pull_request", merged(p, p["pull_request"]["head"]["sha"]))
    assert len(filed(sandbox)) == len(found) >= 2
    key = M.finding_key(SECRET)
    assert key is not None
    banned = {"hunter2hunter2", "AKIAI44QH8DHBEXAMPLE", SECRET, key.hex(), repr(key)[2:-1],
              F.fingerprint("hunter2hunter2"), F.fingerprint("AKIAI44QH8DHBEXAMPLE")}
    for t in found:
        banned |= {t.id, markers_in(M.debt_marker(REPO, t))[0].rsplit(":", 1)[1],
                   markers_in(M.filed_marker(REPO, t))[0].rsplit(":", 1)[1]}
    said = [json.dumps(w.data) for w in sandbox.writes] + [r.getMessage() for r in caplog.records]
    said += [json.dumps(i) for i in sandbox.repo(REPO).issues.values()]
    for text in said:
        for value in banned:
            assert value not in text, (value, text[:300])


# ---- a review that lands after the merge ---------------------------------------------------------------------------

async def test_a_review_run_after_the_merge_leaves_no_open_findings_kept_for_good(
        bot: Any, sandbox: Any, team: Team) -> None:  # noqa: F811
    p = pull_with(sandbox, 886, {"app/client.py": KEY2 + "\n", **TESTS})
    await send(bot, sandbox, "pull_request", merged(p, p["pull_request"]["head"]["sha"]))  # merged: nothing kept yet
    late = copy.deepcopy(p)
    await send(bot, sandbox, "pull_request", late)  # the opened delivery's job, run late (redelivered)
    await bot[0].store.prune(KEEP, now=time.time() + 10 * 365 * 86_400)
    kept = await bot[0].store.load_findings(REPO, 886)
    assert (kept is None or not F.load(kept.findings)) or len(filed(sandbox)) == 1


async def test_a_finding_text_with_a_forged_marker_mentions_and_a_fence_is_filed_defused(
        bot: Any, sandbox: Any, team: Team) -> None:  # noqa: F811
    t = F.Tracked.from_dict(model(1, fid="m-other"))
    assert t is not None
    forged = M.debt_marker(REPO, t, key=M.finding_key(SECRET))
    text = f"@octocat see [x](https://evil.example)\n```\n{forged}\n```\n#1 closes #2 {forged}"
    await merge_with(bot, sandbox, 888, {"m-evil": model(1, text, "m-evil")})
    [n] = filed(sandbox)
    issue = sandbox.repo(REPO).issues[n]
    own = markers_in(M.debt_marker(REPO, F.Tracked.from_dict(model(1, text, "m-evil")),  # type: ignore[arg-type]
                                   key=M.finding_key(SECRET)))
    assert markers_in(issue["body"]) == own and markers_in(issue["title"]) == []
    for part in (issue["title"], issue["body"]):
        assert "@octocat" not in part and "evil.example" not in part
    await merge_with(bot, sandbox, 988, {"m-other": model(1, fid="m-other")})  # the finding its marker forged
    assert len(filed(sandbox)) == 2


async def test_a_job_cancelled_while_the_renewal_ends_still_lets_the_claim_go(
        bot: Any, sandbox: Any, team: Team, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """A cold review: the filing job cancelled while it waited for the renewal task to end skipped the release, so
    a retry waited out the lease (900 s). The claim is released before that wait."""
    deps = bot[0].deps
    event, t, gh = await reviewed(bot, sandbox, 868)
    ending = asyncio.Event()

    async def slow_to_end(store: Any, repo: str, own: str) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            ending.set()
            await asyncio.sleep(5)  # still ending when the job itself is cancelled
            raise

    monkeypatch.setattr(M, "_renew", slow_to_end)
    job = asyncio.create_task(M._file(gh, deps, event, t, SHA))
    await asyncio.wait_for(ending.wait(), 10)
    job.cancel()
    await asyncio.gather(job, return_exceptions=True)
    assert len(filed(sandbox)) == 1
    key = M.finding_key(deps.settings.webhook_secret)
    own, public = M.filed_marker(event.repo, t), M.debt_marker(event.repo, t, key=key)
    for _ in range(100):  # free within moments (the release goes on, shielded, after the cancel), not in 900 s
        if await deps.store.claim_filing(own, public, M.CLAIM_LEASE) is not None:
            break
        await asyncio.sleep(0.03)
    else:
        raise AssertionError("the claim is still held: a retry would wait out its lease")
