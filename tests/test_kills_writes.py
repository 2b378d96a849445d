"""The idempotent writes, called directly: a comment or an issue is made once and found again by the bot's own
marker, in the store or, when the store lost it, on GitHub, and never taken from anyone else.

Each function of bot/github/writes.py is called through the real gidgethub client over HTTP against the
sandbox GitHub (every request checked against GitHub's REST description where npm could fetch it), with the
real SQLite store. A lost store record is a fresh store; a comment deleted on GitHub is deleted in the sandbox.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from gidgethub import BadRequest

from bot.core.markers import marker, with_marker
from bot.github.client import GitHub
from bot.github.writes import BOT_LABEL, create_issue_once, digest, is_own, is_own_marked, upsert_comment
from bot.store import Posted, Store, open_store
from tests.conftest import INSTALLATION

REPO = "Codertocat/writes-test"
BOT = "triage-lead[bot]"  # the sandbox's App login
MARK = marker("status", "run-1")
KEY = "status:run-1"
DEBT = marker("debt", "0123456789abcdef")


@pytest.fixture
async def gh(sandbox: Any) -> AsyncIterator[GitHub]:
    sandbox.add_repo(REPO, installation_id=INSTALLATION)
    sandbox.add_issue(REPO, title="The thread", number=1)
    async with aiohttp.ClientSession() as session:
        yield GitHub(session, oauth_token=sandbox.mint_token(INSTALLATION), base_url=sandbox.url, backoff=0.01)


async def new_store(path: Path) -> Store:
    return await open_store("sqlite:///" + str(path))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await new_store(tmp_path / "a.sqlite3")
    yield s
    await s.close()


@pytest.fixture
async def lost(tmp_path: Path) -> AsyncIterator[Store]:
    """Another store: what the first one recorded is not in it (a lost record, a crash before recording)."""
    s = await new_store(tmp_path / "b.sqlite3")
    yield s
    await s.close()


def comment_ids(sandbox: Any) -> list[int]:
    return [c["id"] for c in sandbox.comments(REPO, 1)]


async def say(gh: GitHub, store: Store, body: str, *, mark: str = MARK, login: str | None = BOT) -> Posted:
    return await upsert_comment(gh, store, repo=REPO, number=1, mark=mark, body=body, bot_login=login)


async def file(gh: GitHub, store: Store, *, title: str = "Tech debt: add tests", login: str | None = BOT,
               labels: list[str] | None = None) -> tuple[Posted, bool]:
    return await create_issue_once(gh, store, repo=REPO, mark=DEBT, title=title, body="Deferred by the review.",
                                   labels=["tech-debt"] if labels is None else labels, bot_login=login)


# ---- whose is it ------------------------------------------------------------------------------

def test_only_this_apps_bot_account_is_its_own() -> None:
    bot = {"login": BOT, "type": "Bot"}
    assert is_own(bot, BOT) and is_own({"login": "Triage-Lead[bot]", "type": "Bot"}, BOT)  # logins ignore case
    assert is_own(bot, "TRIAGE-LEAD[BOT]")
    assert not is_own({"login": BOT, "type": "User"}, BOT)  # a person who took a look-alike name
    assert not is_own({"login": "other-app[bot]", "type": "Bot"}, BOT)  # another App
    assert not is_own({"type": "Bot"}, BOT) and not is_own(BOT, BOT) and not is_own(None, BOT)
    for unknown in (None, ""):  # login not known yet: nothing is the bot's own
        assert not is_own(bot, unknown)


def test_an_item_is_the_bots_own_only_when_its_account_wrote_it_and_the_marker_ends_it() -> None:
    bot = {"login": BOT, "type": "Bot"}
    item = {"user": bot, "body": with_marker("Status", MARK)}
    assert is_own_marked(item, KEY, BOT)
    assert not is_own_marked(item, "status:run-2", BOT)
    assert not is_own_marked(item, KEY, None)
    assert not is_own_marked({"user": bot, "body": f"{MARK}\nthen a quote of it"}, KEY, BOT)
    assert not is_own_marked({"user": {"login": "mallory", "type": "User"}, "body": item["body"]}, KEY, BOT)
    assert not is_own_marked({"user": bot, "body": None}, KEY, BOT)
    assert not is_own_marked([item], KEY, BOT)


def test_a_digest_is_short_stable_and_keeps_its_parts_apart() -> None:
    # markers already on GitHub were made with these: a different digest would post everything twice
    assert digest("Codertocat/Hello-World", "add rate limiting") == "893f3acc44727d00"
    assert digest() == "da39a3ee5e6b4b0d" and digest("a") == "86f7e437faa5a7fc"
    assert digest("ab", "c") != digest("a", "bc") != digest("abc")
    assert digest("o/r", "é") == digest("o/r", "é") and len(digest("x" * 10_000)) == 16


# ---- comments ---------------------------------------------------------------------------------

async def test_a_comment_is_created_then_edited_in_place(sandbox: Any, gh: GitHub, store: Store) -> None:
    first = await say(gh, store, "Step 1 of 5")
    [c] = sandbox.comments(REPO, 1)
    assert c["body"] == with_marker("Step 1 of 5", MARK) and c["user"]["login"] == BOT
    assert first == Posted(marker=MARK, repo=REPO, kind="comment", github_id=c["id"], number=1, url=c["html_url"])
    assert await store.find_posted(MARK) == first
    again = await say(gh, store, "Step 2 of 5")
    assert again == first and comment_ids(sandbox) == [c["id"]]
    assert sandbox.comments(REPO, 1)[0]["body"] == with_marker("Step 2 of 5", MARK)
    assert [w.data["id"] for w in sandbox.written("comment_edit")] == [c["id"]]
    # another marker on the same thread is another comment
    other = await say(gh, store, "Review", mark=marker("verdict", "run-1", "review", 1))
    assert other.github_id != first.github_id and len(comment_ids(sandbox)) == 2


async def test_a_comment_whose_record_was_lost_is_found_on_the_thread_and_edited(
        sandbox: Any, gh: GitHub, store: Store, lost: Store) -> None:
    sandbox.add_comment(REPO, 1, "a person's comment first")
    sandbox.add_comment(REPO, 1, with_marker("older status", marker("status", "run-0")), user=BOT, user_type="Bot")
    first = await say(gh, store, "Step 1 of 5")
    edited = await say(gh, lost, "Step 2 of 5")
    assert edited == first and len(comment_ids(sandbox)) == 3
    assert sandbox.comments(REPO, 1)[-1]["body"] == with_marker("Step 2 of 5", MARK)
    assert await lost.find_posted(MARK) == first  # recorded again
    assert len(sandbox.written("comment")) == 1  # only the first call created one


async def test_a_comment_deleted_on_github_is_posted_again(sandbox: Any, gh: GitHub, store: Store,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    first = await say(gh, store, "Step 1 of 5")
    del sandbox.repo(REPO).comments[first.github_id]  # someone deleted it; the store still remembers it
    with caplog.at_level(logging.INFO, logger="bot.github.writes"):
        again = await say(gh, store, "Step 2 of 5")
    [line] = [r.getMessage() for r in caplog.records if r.name == "bot.github.writes"]
    assert line == f"comment {first.github_id} for {KEY} was deleted on GitHub; posting it again"
    [c] = sandbox.comments(REPO, 1)
    assert again.github_id == c["id"] != first.github_id and c["body"] == with_marker("Step 2 of 5", MARK)
    assert again.url == c["html_url"] and await store.find_posted(MARK) == again


async def test_a_refused_edit_is_raised_and_nothing_is_posted_instead(sandbox: Any, gh: GitHub, store: Store) -> None:
    first = await say(gh, store, "Step 1 of 5")
    sandbox.fail("PATCH", rf"/repos/{REPO}/issues/comments/{first.github_id}", 403)
    with pytest.raises(BadRequest) as raised:
        await say(gh, store, "Step 2 of 5")
    assert raised.value.status_code == 403 and comment_ids(sandbox) == [first.github_id]


@pytest.mark.parametrize("user, user_type, body", [
    ("mallory", "User", with_marker("planted", MARK)),  # a person pasting the marker
    ("other-app[bot]", "Bot", with_marker("planted", MARK)),  # another App's bot
    (BOT, "Bot", f"{MARK}\n\nthe marker is not at the end"),  # the bot quoting it, say
], ids=["a-person", "another-app", "marker-not-at-the-end"])
async def test_a_marker_not_the_bots_own_is_never_taken(sandbox: Any, gh: GitHub, store: Store,
                                                         user: str, user_type: str, body: str) -> None:
    planted = sandbox.add_comment(REPO, 1, body, user=user, user_type=user_type)
    posted = await say(gh, store, "Status")
    assert posted.github_id != planted["id"] and len(comment_ids(sandbox)) == 2
    assert sandbox.comments(REPO, 1)[0]["body"] == body and not sandbox.written("comment_edit")


async def test_until_the_login_is_known_nothing_on_the_thread_is_taken(
        sandbox: Any, gh: GitHub, store: Store, lost: Store) -> None:
    first = await say(gh, store, "Status", login=None)
    second = await say(gh, lost, "Status", login=None)
    assert second.github_id != first.github_id and len(comment_ids(sandbox)) == 2
    third = await say(gh, lost, "Status again", login=None)  # the store's own record still holds
    assert third == second and len(comment_ids(sandbox)) == 2


# ---- issues -----------------------------------------------------------------------------------

async def test_an_issue_is_opened_once_with_the_bots_label(sandbox: Any, gh: GitHub, store: Store) -> None:
    posted, created = await file(gh, store, labels=["tech-debt", "good first issue"])
    assert created
    issue = sandbox.issue(REPO, posted.number)
    assert issue["title"] == "Tech debt: add tests" and issue["body"] == with_marker("Deferred by the review.", DEBT)
    assert [lab["name"] for lab in issue["labels"]] == ["tech-debt", "good first issue", BOT_LABEL]
    assert posted == Posted(marker=DEBT, repo=REPO, kind="issue", github_id=issue["id"], number=issue["number"],
                            url=issue["html_url"])
    assert await store.find_posted(DEBT) == posted
    assert await file(gh, store, title="Tech debt: add tests (again)") == (posted, False)
    assert len(sandbox.written("issue")) == 1


async def test_an_issue_whose_record_was_lost_is_found_by_its_creator_open_or_closed(
        sandbox: Any, gh: GitHub, store: Store, lost: Store) -> None:
    """Listed by creator, not by the bot's label: people can put that on any issue, rename or delete it."""
    sandbox.add_issue(REPO, title="someone's", labels=[BOT_LABEL])
    posted, _ = await file(gh, store)
    sandbox.repo(REPO).issues[posted.number].update(state="closed", labels=[])  # a person closed it, unlabelled it
    sandbox.requests.clear()
    assert await file(gh, lost) == (posted, False)
    assert await lost.find_posted(DEBT) == posted and len(sandbox.written("issue")) == 1
    [listing] = [r for r in sandbox.requests if r.method == "GET" and r.path == f"/repos/{REPO}/issues"]
    assert listing.query["creator"] == BOT and listing.query["state"] == "all" and "labels" not in listing.query


async def test_the_sandbox_lists_issues_by_creator_as_github_does(sandbox: Any, gh: GitHub, store: Store) -> None:
    """GitHub's ``creator``: the login, any case; the bot's label (or none) changes nothing."""
    mine, _ = await file(gh, store)
    sandbox.add_issue(REPO, title="someone's", labels=[BOT_LABEL])
    sandbox.add_issue(REPO, title="a namesake's", user="triage-lead", labels=[BOT_LABEL])
    listed = [i["number"] async for i in gh.getiter(f"/repos/{REPO}/issues?creator=Triage-Lead%5Bbot%5D&state=all")]
    assert listed == [mine.number]


@pytest.mark.parametrize("user, user_type, body", [
    ("mallory", "User", with_marker("planted", DEBT)),
    ("other-app[bot]", "Bot", with_marker("planted", DEBT)),
    (BOT, "Bot", f"{DEBT}\n\nthe marker is not at the end"),
], ids=["a-person", "another-app", "marker-not-at-the-end"])
async def test_an_issue_not_the_bots_own_is_never_taken(sandbox: Any, gh: GitHub, store: Store,
                                                        user: str, user_type: str, body: str) -> None:
    planted = sandbox.add_issue(REPO, title="planted", body=body, user=user, user_type=user_type, labels=[BOT_LABEL])
    posted, created = await file(gh, store)
    assert created and posted.number != planted["number"] and len(sandbox.written("issue")) == 1


async def test_until_the_login_is_known_no_issue_on_github_is_taken(
        sandbox: Any, gh: GitHub, store: Store, lost: Store) -> None:
    first, _ = await file(gh, store, login=None)
    second, created = await file(gh, lost, login=None)
    assert created and second.number != first.number and len(sandbox.written("issue")) == 2
    assert await file(gh, lost, login=None) == (second, False)  # the store's own record still holds
    assert len(sandbox.written("issue")) == 2


async def test_an_issue_stripped_of_the_bots_label_is_still_known_by_the_store(
        sandbox: Any, gh: GitHub, store: Store) -> None:
    posted, _ = await file(gh, store)
    sandbox.repo(REPO).issues[posted.number]["labels"] = []  # a person removed every label
    assert await file(gh, store) == (posted, False) and len(sandbox.written("issue")) == 1
