"""Conditional reads: a repeated GET carries the last ETag (or Last-Modified), GitHub answers 304 when nothing
changed, and that 304 costs no rate limit and reads as the 200 it stands for. Never stale, never shared
between installations, never for a write, bounded.

The sandbox plays GitHub (ETags salted by the token, weak comparison, 304 only where the REST description
lists it); a small local server plays what the sandbox is too well-behaved for (a proxy that 304s whatever it
is asked, a 404 after a 200, Last-Modified without an ETag, writes that carry ETags).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.github.client import GitHub, GitHubApp, ReadCache, Uninstalled
from bot.github.contents import read_file
from bot.sandbox.github.etags import DESCRIBED_304, matches
from tests.conftest import INSTALLATION

REPO = "Codertocat/Hello-World"
PATH = ".github/triage-lead.yml"
CONTENTS = f"/repos/{REPO}/contents/{PATH}"


@pytest.fixture
async def app(settings: Any, sandbox: Any) -> AsyncIterator[GitHubApp]:
    sandbox.add_repo(REPO, installation_id=INSTALLATION, default_branch="master")
    sandbox.set_file(REPO, PATH, "labels: {a: b}\n")
    async with aiohttp.ClientSession() as session:
        yield GitHubApp(settings, session, max_wait=1.0, backoff=0.01)


def statuses(sandbox: Any, path: str = CONTENTS) -> list[int]:
    return [r.status for r in sandbox.requests if r.method == "GET" and r.path == path]


async def text(app: GitHubApp) -> str | None:
    found = await read_file(await app.installation(INSTALLATION), REPO, PATH)
    return getattr(found, "text", None)


# ---- the bot against the sandbox ---------------------------------------------------------------------

@pytest.mark.parametrize("weak", [True, False], ids=["weak W/ etag", "strong etag"])
async def test_a_repeated_read_is_a_304_that_reads_as_the_same_file(app: GitHubApp, sandbox: Any,
                                                                    weak: bool) -> None:
    sandbox.weak_etags = weak
    assert await text(app) == await text(app) == "labels: {a: b}\n"
    assert statuses(sandbox) == [200, 304] and sandbox.not_modified == 1
    assert app.reads is not None and app.reads.not_modified == 1


async def test_a_304_costs_no_rate_limit(app: GitHubApp, sandbox: Any) -> None:
    gh = await app.installation(INSTALLATION)
    await read_file(gh, REPO, PATH)
    used = gh.rate_limit.remaining  # type: ignore[union-attr]
    await read_file(gh, REPO, PATH)
    assert statuses(sandbox) == [200, 304] and gh.rate_limit.remaining == used  # type: ignore[union-attr]


async def test_a_changed_file_is_read_again_never_stale(app: GitHubApp, sandbox: Any) -> None:
    assert await text(app) == "labels: {a: b}\n"
    sandbox.set_file(REPO, PATH, "labels: {c: d}\n")
    assert await text(app) == "labels: {c: d}\n"
    assert await text(app) == "labels: {c: d}\n"
    assert statuses(sandbox) == [200, 200, 304]


async def test_a_server_that_ignores_if_none_match_still_gives_the_right_file(app: GitHubApp, sandbox: Any) -> None:
    sandbox.honour_if_none_match = False
    assert await text(app) == "labels: {a: b}\n"
    sandbox.set_file(REPO, PATH, "labels: {c: d}\n")
    assert await text(app) == await text(app) == "labels: {c: d}\n"
    assert statuses(sandbox) == [200, 200, 200] and sandbox.not_modified == 0


async def test_a_new_token_gets_new_etags_and_a_full_answer(app: GitHubApp, sandbox: Any) -> None:
    """GitHub's ETag varies with the token (github/docs#34689): after a refresh the first read is a 200."""
    assert await text(app) == "labels: {a: b}\n"
    app.tokens.forget(INSTALLATION)
    assert await text(app) == await text(app) == "labels: {a: b}\n"
    assert statuses(sandbox) == [200, 200, 304]


async def test_no_entry_is_named_by_a_token(app: GitHubApp, sandbox: Any) -> None:
    await text(app)
    token = await app.tokens.get(INSTALLATION)
    assert app.reads is not None and len(app.reads) == 1
    keys = list(app.reads._entries)
    assert keys[0][0] == INSTALLATION and token not in repr(keys) and token[4:] not in repr(keys)


async def test_a_missing_file_is_asked_for_every_time(app: GitHubApp, sandbox: Any) -> None:
    gh = await app.installation(INSTALLATION)
    assert await read_file(gh, REPO, "nope.yml") is None and await read_file(gh, REPO, "nope.yml") is None
    assert statuses(sandbox, f"/repos/{REPO}/contents/nope.yml") == [404, 404]
    assert app.reads is not None and len(app.reads) == 0 and app.reads.conditional == 0


async def test_an_uninstalled_apps_reads_are_forgotten(app: GitHubApp, sandbox: Any) -> None:
    await text(app)
    app.tokens.forget(INSTALLATION)
    sandbox.fail("POST", r"/app/installations/\d+/access_tokens", 404)
    with pytest.raises(Uninstalled):
        await app.installation(INSTALLATION)
    assert app.reads is not None and len(app.reads) == 0


# ---- the sandbox speaks conditional requests as GitHub does ------------------------------------------------

async def test_the_sandbox_answers_304_only_where_the_description_lists_it(app: GitHubApp, sandbox: Any) -> None:
    token = sandbox.mint_token(INSTALLATION)
    headers = {"Authorization": f"token {token}", "Accept": "application/vnd.github+json"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for path, second in ((CONTENTS, 304), (f"/repos/{REPO}", 200)):
            async with http.get(sandbox.url + path) as first:
                tag = first.headers["ETag"]
                assert first.status == 200 and tag.startswith('W/"')
            async with http.get(sandbox.url + path, headers={"If-None-Match": tag.removeprefix("W/")}) as again:
                assert again.status == second, path  # weak comparison: "x" names W/"x"
                assert again.headers["ETag"] == tag
                assert (await again.read() == b"") == (second == 304)
    used = [r.status for r in sandbox.requests]
    assert used.count(304) == sandbox.not_modified == 1


def test_if_none_match_compares_weakly_and_takes_lists() -> None:
    assert matches('W/"a"', '"a"') and matches('"a"', 'W/"a"') and matches('"x", W/"a"', 'W/"a"')
    assert matches("*", '"a"') and not matches('"b"', '"a"') and not matches("", '"a"')


def test_the_sandbox_304s_exactly_where_githubs_description_lists_304(github_openapi: Any) -> None:
    if github_openapi is None:
        pytest.skip("GitHub's REST description is not at hand")
    from bot.sandbox.github import SandboxGitHub

    templates = {re.sub(r"\{(\w+):[^}]*\}", r"{\1}", t) for m, t, _, _ in SandboxGitHub()._route_table()
                 if m == "GET" and not t.startswith("/_sandbox/")}
    listed = set()
    for template in templates:
        path = template.replace("{", "x").replace("}", "x")
        # The sandbox's ``contents`` (the root) is the description's ``contents/{path}`` with an empty path.
        match = github_openapi.match("GET", path) or github_openapi.match("GET", path + "/")
        if match is not None and "304" in match.operation.responses:
            listed.add(template)
    assert DESCRIBED_304 == listed


# ---- the client against servers the sandbox is too well-behaved to be -----------------------------------

class Odd:
    """A server answering from ``answers[path]``: a list of (status, headers, body), the last one repeated; it
    answers 304 to any If-None-Match or If-Modified-Since when ``sloppy`` (a careless proxy)."""

    def __init__(self, sloppy: bool = False) -> None:
        self.answers: dict[str, list[tuple[int, dict[str, str], Any]]] = {}
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.sloppy = sloppy

    async def handle(self, rq: web.Request) -> web.Response:
        self.seen.append((rq.method, rq.path, {k.lower(): v for k, v in rq.headers.items()}))
        if self.sloppy and ("If-None-Match" in rq.headers or "If-Modified-Since" in rq.headers):
            return web.Response(status=304)
        queue = self.answers[rq.path]
        status, headers, body = queue.pop(0) if len(queue) > 1 else queue[0]
        return web.Response(status=status, headers=headers, text=json.dumps(body), content_type="application/json")

    def sent(self, header: str) -> list[str | None]:
        return [h.get(header) for _, _, h in self.seen]


@pytest.fixture
async def odd() -> AsyncIterator[tuple[Odd, str]]:
    server = Odd()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    async with TestServer(app) as ts:
        yield server, str(ts.make_url("")).rstrip("/")


async def client(session: aiohttp.ClientSession, url: str, reads: ReadCache, installation: int = 1) -> GitHub:
    async def token() -> str:
        return f"ghs_token{installation}"
    gh = GitHub(session, base_url=url, token=token, reads=reads, backoff=0.01, max_wait=1.0)
    gh.bucket = installation
    return gh


async def test_writes_are_never_conditional(odd: tuple[Odd, str]) -> None:
    server, url = odd
    server.answers["/repos/o/r/issues/1"] = [(200, {"ETag": '"w"'}, {"number": 1})]
    reads = ReadCache()
    async with aiohttp.ClientSession() as session:
        gh = await client(session, url, reads)
        for _ in range(2):
            await gh.patch("/repos/o/r/issues/1", data={"state": "open"})
    assert server.sent("if-none-match") == [None, None] and len(reads) == 0


async def test_last_modified_alone_makes_reads_conditional(odd: tuple[Odd, str]) -> None:
    server, url = odd
    stamp = "Thu, 05 Jul 2012 15:31:30 GMT"
    server.answers["/r"] = [(200, {"Last-Modified": stamp}, {"v": 1}), (304, {}, None)]
    async with aiohttp.ClientSession() as session:
        gh = await client(session, url, ReadCache())
        assert await gh.getitem("/r") == await gh.getitem("/r") == {"v": 1}
    assert server.sent("if-modified-since") == [None, stamp]


async def test_an_etag_is_the_only_validator_sent_when_there_is_one(odd: tuple[Odd, str]) -> None:
    """A date has one-second resolution: sent beside the ETag, a server may answer 304 to it for a change the bot
    itself made in the same second (a careless proxy here answers 304 to either)."""
    server, url = odd
    server.answers["/r"] = [(200, {"ETag": '"a"', "Last-Modified": "Thu, 05 Jul 2012 15:31:30 GMT"}, {"v": 1})]
    async with aiohttp.ClientSession() as session:
        gh = await client(session, url, ReadCache())
        await gh.getitem("/r")
        await gh.getitem("/r")
    assert server.sent("if-none-match") == [None, '"a"'] and server.sent("if-modified-since") == [None, None]


async def test_a_file_gone_after_a_200_is_gone(odd: tuple[Odd, str]) -> None:
    server, url = odd
    server.answers["/r"] = [(200, {"ETag": '"a"'}, {"v": 1}), (404, {"ETag": '"nf"'}, {"message": "Not Found"})]
    reads = ReadCache()
    async with aiohttp.ClientSession() as session:
        gh = await client(session, url, reads)
        await gh.getitem("/r")
        for _ in range(2):
            with pytest.raises(Exception, match="Not Found"):
                await gh.getitem("/r")
    assert server.sent("if-none-match") == [None, '"a"', None] and len(reads) == 0


async def test_pages_read_from_a_304_keep_their_next_link(odd: tuple[Odd, str]) -> None:
    server, url = odd
    server.answers["/list"] = [(200, {"ETag": '"1"', "Link": f'<{url}/list2>; rel="next"'}, [1]), (304, {}, None)]
    server.answers["/list2"] = [(200, {"ETag": '"2"'}, [2]), (304, {}, None)]
    async with aiohttp.ClientSession() as session:
        gh = await client(session, url, ReadCache())
        assert [x async for x in gh.getiter("/list")] == [x async for x in gh.getiter("/list")] == [1, 2]


async def test_one_installations_reads_never_answer_anothers(odd: tuple[Odd, str]) -> None:
    server, url = odd
    server.answers["/repos/o/private"] = [(200, {"ETag": '"p"'}, {"secret": "A's"})]
    reads = ReadCache()
    async with aiohttp.ClientSession() as session:
        await (await client(session, url, reads, installation=1)).getitem("/repos/o/private")
        server.sloppy = True  # a 304 to whoever sends a validator: B must send none
        server.answers["/repos/o/private"] = [(404, {}, {"message": "Not Found"})]
        with pytest.raises(Exception, match="Not Found"):
            await (await client(session, url, reads, installation=2)).getitem("/repos/o/private")
    assert server.sent("if-none-match") == [None, None]


async def test_another_media_type_is_another_read(odd: tuple[Odd, str]) -> None:
    server, url = odd
    server.sloppy = True
    server.answers["/f"] = [(200, {"ETag": '"j"'}, {"as": "json"})]
    async with aiohttp.ClientSession() as session:
        gh = await client(session, url, ReadCache())
        await gh.getitem("/f")
        await gh.getitem("/f", accept="application/vnd.github.raw+json")
    assert server.sent("if-none-match") == [None, None]


# ---- bounds ---------------------------------------------------------------------------------------------

KEY = (1, "https://api.github.com/x", "application/vnd.github+json")


def store(reads: ReadCache, n: int, size: int = 10) -> None:
    for i in range(n):
        reads.answer((1, f"u{i}", "a"), None, 200, {"etag": f'"{i}"'}, b"x" * size)


def test_the_cache_is_bounded_in_count() -> None:
    reads = ReadCache(max_entries=3, max_bytes=3000)
    store(reads, 10)
    assert len(reads) == 3 and reads.validators(reads.kept((1, "u9", "a"))) == {"if-none-match": '"9"'}


def test_the_cache_is_bounded_in_bytes_and_skips_what_is_too_large() -> None:
    reads = ReadCache(max_entries=100, max_bytes=1000, max_entry_bytes=400)
    store(reads, 5, size=300)
    assert len(reads) == 3  # 900 bytes of 1,000
    reads.answer(KEY, None, 200, {"etag": '"big"'}, b"x" * 401)
    assert reads.kept(KEY) is None


def test_the_cache_clears_one_installation_or_all() -> None:
    reads = ReadCache()
    store(reads, 2)
    reads.answer((2, "u0", "a"), None, 200, {"etag": '"b"'}, b"{}")
    reads.clear(1)
    assert len(reads) == 1 and reads.kept((2, "u0", "a")) is not None
    reads.clear()
    assert len(reads) == 0


def test_a_304_stands_for_the_entry_whose_etag_was_sent_not_a_newer_one() -> None:
    """Two reads of one URL in flight: the second's 200 lands first; the first's 304 confirms what it sent."""
    reads = ReadCache()
    reads.answer(KEY, None, 200, {"etag": '"1"'}, b'{"v": 1}')
    first = reads.kept(KEY)
    reads.answer(KEY, first, 200, {"etag": '"2"'}, b'{"v": 2}')
    assert reads.answer(KEY, first, 304, {"etag": '"1"'}, b"")[2] == b'{"v": 1}'
    assert reads.validators(reads.kept(KEY)) == {"if-none-match": '"2"'}
