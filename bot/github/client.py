"""gidgethub's aiohttp client, with the retries GitHub's rate limits call for, conditional reads (ETags), and the
App's clients."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import gidgethub
import jwt as pyjwt
from cachetools import LRUCache
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from gidgethub import sansio
from gidgethub.aiohttp import GitHubAPI
from multidict import CIMultiDict

from bot.github import speedups
from bot.github.auth import JWT_BACKDATE, Token, TokenCache, app_jwt, forget_app_jwt, parse_expiry
from bot.github.outgoing import outgoing
from bot.github.pacing import WRITES, LocalSlots, Slots, WritePacer
from bot.logs import add_secret
from bot.settings import Settings

log = logging.getLogger(__name__)
speedups.install()  # gidgethub's URL template and content-type parses, kept per input (bot/github/speedups.py)

USER_AGENT = "triage-lead"
# Methods that may be re-sent after a 5xx without risking a duplicate (a POST may have landed).
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})


def rate_limit_wait(status: int, headers: Mapping[str, str], message: str, now: float) -> float | None:
    """Seconds to wait before retrying a rate-limited request, or None if it is not one.

    GitHub signals a primary limit with ``x-ratelimit-remaining: 0`` and a reset time, and a
    secondary limit with a 403/429 that may carry ``retry-after``; without it, GitHub's docs say
    to wait at least a minute. gidgethub raises the secondary kind as a plain ``BadRequest``.
    """
    if status not in (403, 429):
        return None
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            return 60.0
    if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
        try:
            return max(0.0, float(headers["x-ratelimit-reset"]) - now)
        except ValueError:
            return 60.0
    if status == 429 or "secondary rate limit" in message.lower():
        return 60.0
    return None


# ---- conditional reads ---------------------------------------------------------------------------------

ReadKey = tuple[int | str, str, str]  # (installation id, URL with its query, Accept): never the token
# What a 304 does not repeat but the parser needs: the 200's media type and its pagination.
_KEPT_HEADERS = ("content-type", "link")


@dataclass(frozen=True, slots=True)
class Validated:
    """A GET's 200 kept for revalidation: its validators, and the bytes a 304 stands for. Bytes, not the parsed
    body: each caller gets its own freshly parsed copy (nothing it changes reaches the next one), and the size
    bound is exact."""

    etag: str | None
    last_modified: str | None
    headers: tuple[tuple[str, str], ...]
    body: bytes


class ReadCache:
    """Conditional GETs, per process: the last 200 of each read that carried an ``ETag`` or ``Last-Modified``,
    sent back as ``If-None-Match`` / ``If-Modified-Since``; GitHub's 304 then stands for that 200 and does not
    count against the rate limit. GitHub decides freshness on every read: nothing is served without asking, so
    a changed file is never stale. Only 200s are kept (a 404 asks again next time), bounded in count and
    bytes. GitHub's ETag changes with the installation token (github/docs#34689), so the first read after a
    token refresh is a 200 again."""

    def __init__(self, *, max_entries: int = 2048, max_bytes: int = 32 * 2**20,
                 max_entry_bytes: int = 2**20) -> None:
        # Every entry weighs at least max_bytes / max_entries, so the byte bound also bounds the count.
        self._floor = max(1, max_bytes // max_entries)
        self.max_entry_bytes = min(max_entry_bytes, max_bytes)
        self._entries: LRUCache[ReadKey, Validated] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda e: max(len(e.body), self._floor))
        self.conditional = 0  # reads sent with a validator
        self.not_modified = 0  # of those, answered 304 and served from here

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self, installation: int | str | None = None) -> None:
        """Forget everything, or one installation's reads (its App was uninstalled)."""
        if installation is None:
            self._entries.clear()
            return
        for key in [k for k in self._entries if k[0] == installation]:
            self._entries.pop(key, None)

    def kept(self, key: ReadKey) -> Validated | None:
        """What is kept for this read, if anything (its validators make the read conditional)."""
        entry = self._entries.get(key)
        self.conditional += entry is not None
        return entry

    @staticmethod
    def validators(entry: Validated | None) -> dict[str, str]:
        if entry is None:
            return {}
        if entry.etag:  # the strong validator alone: a date has one-second resolution, and a 304 to it could hide
            return {"if-none-match": entry.etag}  # the bot's own write made in the same second (RFC 9110 13.1.3)
        return {"if-modified-since": entry.last_modified} if entry.last_modified else {}

    def answer(self, key: ReadKey, sent: Validated | None, status: int, headers: Mapping[str, str],
               body: bytes) -> tuple[int, Mapping[str, str], bytes]:
        """The answer the caller sees. A 304 confirms the entry whose validators were ``sent`` (not whatever a
        concurrent read has kept since) and becomes its 200, with the 304's fresh rate-limit headers; a 200 is
        kept or replaces what was kept; a 404 or 410 forgets it. Other errors keep it (an outage)."""
        if status == 304 and sent is not None:
            self.not_modified += 1
            merged = CIMultiDict(sent.headers)
            merged.update((k, v) for k, v in headers.items() if k.lower() not in ("content-length", "content-type"))
            return 200, merged, sent.body
        etag, modified = headers.get("etag"), headers.get("last-modified")
        if status == 200 and (etag or modified) and len(body) <= self.max_entry_bytes:
            kept = tuple((k, headers[k]) for k in _KEPT_HEADERS if k in headers)
            self._entries[key] = Validated(etag, modified, kept, body)
        elif status in (200, 404, 410):  # no validators, too large, or gone: what was kept is no answer any more
            self._entries.pop(key, None)
        return status, headers, body


class Uninstalled(Exception):
    """GitHub answered 404 to the installation-token request: the App was uninstalled (or the installation
    was deleted). Nothing can be posted for it."""

    def __init__(self, installation_id: int) -> None:
        super().__init__(f"installation {installation_id} does not exist any more (the App was uninstalled?)")
        self.installation_id = installation_id


class TokenRefused(Exception):
    """GitHub would not issue an installation token (401, 403, 422: a clock off, a suspended installation,
    a key being rotated). Worth a few tries; never a reason to drop the work for good at once."""

    def __init__(self, installation_id: int, status: int, message: str) -> None:
        super().__init__(f"GitHub refused a token for installation {installation_id} ({status}: {message[:200]})")
        self.installation_id, self.status = installation_id, status


TokenSource = Callable[[], Awaitable[str]]


class GitHub(GitHubAPI):
    """A gidgethub client that waits out rate limits and retries idempotent calls after a 5xx.

    An installation's client holds no token: each request asks ``token`` for the current one (a long step
    outlives a token's hour), and a 401 makes it forget that one, take a fresh one and send again, once.

    Every write's text passes one renderer on its way out (bot/github/outgoing.py): whatever built it, nothing
    posted pings, links outside ``hosts``, commands or closes, except what a call names in ``keep=``.

    With ``reads``, its installation's GETs are conditional (:class:`ReadCache`): a repeated read that GitHub
    answers 304 costs no rate limit, and the caller sees the 200 it stands for.
    """

    def __init__(self, session: aiohttp.ClientSession, *args: Any, max_wait: float = 120.0,
                 max_attempts: int = 5, backoff: float = 1.0, pacer: WritePacer | None = None,
                 token: TokenSource | None = None, forget_token: Callable[[str | None], None] | None = None,
                 hosts: frozenset[str] = frozenset({"github.com"}), reads: ReadCache | None = None,
                 **kwargs: Any) -> None:
        super().__init__(session, USER_AGENT, *args, **kwargs)
        self.reads = reads  # conditional GETs, for an installation's own-token reads only
        self.hosts = hosts  # hosts whose links and images stay live in what the bot posts
        self.max_wait = max_wait
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.pacer = pacer
        self.token, self.forget_token = token, forget_token
        self.on_rate_limit: Callable[..., None] | None = None  # told each response's rate limit (metrics)
        self.bucket: int | str = "app"  # whose limit: an installation id, or "app" for JWT calls
        # The JWT each App call carried, by (method, URL): gidgethub sends that one string on every retry.
        self._jwts: dict[tuple[str, str], str] = {}

    def now(self) -> float:
        """Unix time, for rate-limit resets and JWT expiry (tests replace it, with ``sleep``, by a virtual clock)."""
        return time.time()

    async def post(self, url: str, url_vars: Mapping[str, Any] | None = {}, *, data: Any,
                   keep: Collection[str] = (), **kwargs: Any) -> Any:
        return await super().post(url, url_vars, data=outgoing(url, data, hosts=self.hosts, keep=keep), **kwargs)

    async def patch(self, url: str, url_vars: Mapping[str, Any] | None = {}, *, data: Any,
                    keep: Collection[str] = (), **kwargs: Any) -> Any:
        return await super().patch(url, url_vars, data=outgoing(url, data, hosts=self.hosts, keep=keep), **kwargs)

    async def put(self, url: str, url_vars: Mapping[str, Any] | None = {}, *, data: Any = b"",
                  keep: Collection[str] = (), **kwargs: Any) -> Any:
        return await super().put(url, url_vars, data=outgoing(url, data, hosts=self.hosts, keep=keep), **kwargs)

    async def _request(self, method: str, url: str, headers: Mapping[str, str],
                       body: bytes = b"") -> tuple[int, Mapping[str, str], bytes]:
        own_token = self.token is not None and "authorization" not in headers
        if headers.get("authorization", "").startswith("bearer "):
            self._jwts[(method, url)] = headers["authorization"].removeprefix("bearer ")
        # Only reads whose identity is the installation's are kept, keyed by its id: a caller's own token
        # (``oauth_token=``/``jwt=``) may see something else, and the token itself never names an entry.
        reads = self.reads if method == "GET" and own_token else None
        key: ReadKey = (self.bucket, url, headers.get("accept", ""))
        kept = reads.kept(key) if reads is not None else None
        headers = {**headers, **ReadCache.validators(kept)}
        sent, answer = await self._send(method, url, headers, body, own_token)
        if answer[0] == 401 and own_token and self.forget_token is not None:
            log.info("github %s %s answered 401; retrying once with a fresh installation token", method, url)
            self.forget_token(sent)
            _, answer = await self._send(method, url, headers, body, own_token)
        return answer if reads is None else reads.answer(key, kept, *answer)

    async def _send(self, method: str, url: str, headers: Mapping[str, str], body: bytes,
                    own_token: bool) -> tuple[str | None, tuple[int, Mapping[str, str], bytes]]:
        """(the token sent, if ours; the answer)."""
        token = None
        if own_token:
            if self.token is None:
                raise RuntimeError("an installation request without a token source")
            token = await self.token()
            headers = {**headers, "authorization": f"token {token}"}
        status, resp_headers, data = await super()._request(method, url, headers, body)
        if self.on_rate_limit is not None:  # every response, errors and retries included
            self.on_rate_limit(sansio.RateLimit.from_http(resp_headers), installation=self.bucket,
                               resource=resp_headers.get("x-ratelimit-resource", "core"))
        return token, (status, resp_headers, data)

    async def manage_rate_limit(self, *, method: str, url: str) -> None:
        # Token requests are not content: only writes to repositories are paced.
        if self.pacer is not None and method in WRITES and not url.endswith("/access_tokens"):
            await self.pacer.acquire()

    async def handle_rate_limit_error(self, *, method: str, url: str, exception: gidgethub.HTTPException,
                                      attempt: int) -> bool:
        # Every refused request passes here: note what was asked, so a person can be told what GitHub refused.
        exception.request_line = f"{method} {urlsplit(url).path}"  # type: ignore[attr-defined]
        if attempt >= self.max_attempts:
            return False
        status = int(exception.status_code)
        wait = rate_limit_wait(status, exception.headers, str(exception), self.now())
        # Creating an installation token twice is harmless, unlike creating a comment twice.
        safe = method in IDEMPOTENT or url.endswith("/access_tokens")
        if wait is None and status >= 500 and safe:
            wait = min(self.backoff * 2.0 ** (attempt - 1), 8.0 * self.backoff)
        if wait is None or wait > self.max_wait:
            return False
        if self._jwt_expired_after(method, url, wait):
            log.warning("github %s %s answered %s; not retrying in %.1fs: its JWT would have expired by then",
                        method, url, status, wait)
            return False  # the caller's next try signs a fresh JWT (the App's is renewed every JWT_REUSE)
        log.warning("github %s %s answered %s; retrying in %.1fs (attempt %d)", method, url, status, wait, attempt)
        await self.sleep(wait)
        return True

    def _jwt_expired_after(self, method: str, url: str, wait: float) -> bool:
        """Whether an App call's retry after ``wait`` would carry its JWT expired, or so nearly that GitHub's
        clock, which may run ahead of ours by as much as the JWT is backdated for, finds it expired."""
        token = self._jwts.get((method, url))
        if token is None:
            return False  # an installation's call: its token is asked for again on each try
        try:  # ours or the caller's: its claims are read, never trusted (GitHub checks the signature)
            expires = float(pyjwt.decode(token, options={"verify_signature": False, "verify_exp": False})["exp"])
        except (pyjwt.PyJWTError, KeyError, TypeError, ValueError):
            return False  # no expiry to read: GitHub's answer to the retry will say
        return self.now() + wait >= expires - JWT_BACKDATE


class GitHubApp:
    """The App's view of GitHub: one HTTP session, the app JWT, and cached installation tokens."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession, *, max_wait: float = 120.0,
                 backoff: float = 1.0, store: Slots | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """`store`: where every worker counts the installation's writes (without one, this process alone does);
        `clock` and `sleep`: the write pacers' (tests pass a virtual clock)."""
        self.pacers: dict[int, WritePacer] = {}
        if not settings.has_app:
            raise ValueError("GitHubApp needs GITHUB_APP_ID and a private key")
        self.settings = settings
        self.session = session
        self.max_wait = max_wait
        self.backoff = backoff
        self.slots: Slots = store if store is not None else LocalSlots()
        self._clock, self._sleep = clock, sleep
        self.tokens = TokenCache(self._fetch_token)
        # One per process, shared by every installation's client (keyed by installation); None: no conditional
        # reads, every read in full (the benchmarks compare both).
        self.reads: ReadCache | None = ReadCache()
        # Parsed once: PyJWT parses PEM text on every signature, about 50 ms of blocked event loop each.
        self._key = load_pem_private_key(settings.private_key.encode(), password=None)  # type: ignore[union-attr]
        self.on_rate_limit: Callable[..., None] | None = None  # set by the runtime: Metrics.rate_limit

    def _client(self, bucket: int | str = "app", **auth: Any) -> GitHub:
        gh = GitHub(self.session, base_url=self.settings.github_api_url, max_wait=self.max_wait,
                    backoff=self.backoff, hosts=self.settings.allowed_link_hosts, reads=self.reads, **auth)
        gh.on_rate_limit, gh.bucket = self.on_rate_limit, bucket
        return gh

    def app_client(self) -> GitHub:
        """Authenticated as the App (JWT): installation tokens, hook deliveries, manifests."""
        return self._client(oauth_token=None)

    def jwt(self) -> str:
        if self.settings.app_id is None:
            raise ValueError("the App's JWT needs GITHUB_APP_ID")
        return app_jwt(self.settings.app_id, self._key)

    async def _fetch_token(self, installation_id: int) -> Token:
        try:
            data = await self.app_client().post(
                "/app/installations/{installation_id}/access_tokens",
                url_vars={"installation_id": str(installation_id)}, data=b"", jwt=self.jwt(),
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code == 404:
                raise Uninstalled(installation_id) from None
            if int(exc.status_code) == 401 and self.settings.app_id is not None:
                forget_app_jwt(self.settings.app_id)  # the next try signs afresh instead of resending it
            if int(exc.status_code) in (401, 403, 422):
                raise TokenRefused(installation_id, int(exc.status_code), str(exc)) from None
            raise
        token = Token(value=data["token"], expires_at=parse_expiry(data["expires_at"]))
        add_secret(token.value)  # redacted by value from every log line and post from now on
        if "_" in token.value[:5]:  # "ghs_…": the part after the prefix is as secret as the whole
            add_secret(token.value.split("_", 1)[1])
        return token

    async def installation(self, installation_id: int) -> GitHub:
        """A client acting as the installation: each request takes the cache's current token (fetched at once
        here, so an uninstalled App is known before any work), and its writes are paced."""
        try:
            await self.tokens.get(installation_id)
        except Uninstalled:
            if self.reads is not None:
                self.reads.clear(installation_id)  # nothing it read may be answered from memory again
            raise
        return self._client(installation_id, pacer=self.pacer(installation_id),
                            token=lambda: self.tokens.get(installation_id),
                            forget_token=lambda sent: self.tokens.forget(installation_id, sent))

    def pacer(self, installation_id: int) -> WritePacer:
        """The installation's write pacer in this process (its windows are counted in the store, if any)."""
        if installation_id not in self.pacers:
            s = self.settings
            self.pacers[installation_id] = WritePacer(
                installation_id, per_minute=s.writes_per_minute, per_hour=s.writes_per_hour, spacing=s.write_spacing,
                slots=self.slots, clock=self._clock, sleep=self._sleep)
        return self.pacers[installation_id]

    async def bot_login(self) -> str:
        """The App's bot account login ("<slug>[bot]"), to recognise the bot's own comments."""
        app = await self.app_client().getitem("/app", jwt=self.jwt())
        return f"{app['slug']}[bot]"
