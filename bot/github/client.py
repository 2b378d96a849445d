"""gidgethub's aiohttp client, with the retries GitHub's rate limits call for, and the App's clients."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.serialization import load_pem_private_key
import gidgethub
from gidgethub import sansio
from gidgethub.aiohttp import GitHubAPI

from bot.github.auth import Token, TokenCache, app_jwt, parse_expiry
from bot.github.pacing import WRITES, WritePacer
from bot.settings import Settings

log = logging.getLogger(__name__)

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


class GitHub(GitHubAPI):
    """A gidgethub client that waits out rate limits and retries idempotent calls after a 5xx."""

    def __init__(self, session: aiohttp.ClientSession, *args: Any, max_wait: float = 120.0,
                 max_attempts: int = 5, backoff: float = 1.0, pacer: WritePacer | None = None, **kwargs: Any) -> None:
        super().__init__(session, USER_AGENT, *args, **kwargs)
        self.max_wait = max_wait
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.pacer = pacer
        self.on_rate_limit: Callable[..., None] | None = None  # told each response's rate limit (metrics)
        self.bucket: int | str = "app"  # whose limit: an installation id, or "app" for JWT calls

    async def _request(self, method: str, url: str, headers: Mapping[str, str],
                       body: bytes = b"") -> tuple[int, Mapping[str, str], bytes]:
        status, resp_headers, data = await super()._request(method, url, headers, body)
        if self.on_rate_limit is not None:  # every response, errors and retries included
            self.on_rate_limit(sansio.RateLimit.from_http(resp_headers), installation=self.bucket,
                               resource=resp_headers.get("x-ratelimit-resource", "core"))
        return status, resp_headers, data

    async def manage_rate_limit(self, *, method: str, url: str) -> None:
        # Token requests are not content: only writes to repositories are paced.
        if self.pacer is not None and method in WRITES and not url.endswith("/access_tokens"):
            await self.pacer.acquire()

    async def handle_rate_limit_error(self, *, method: str, url: str, exception: gidgethub.HTTPException,
                                      attempt: int) -> bool:
        if attempt >= self.max_attempts:
            return False
        status = int(exception.status_code)
        wait = rate_limit_wait(status, exception.headers, str(exception), time.time())
        # Creating an installation token twice is harmless, unlike creating a comment twice.
        safe = method in IDEMPOTENT or url.endswith("/access_tokens")
        if wait is None and status >= 500 and safe:
            wait = min(self.backoff * 2.0 ** (attempt - 1), 8.0 * self.backoff)
        if wait is None or wait > self.max_wait:
            return False
        log.warning("github %s %s answered %s; retrying in %.1fs (attempt %d)", method, url, status, wait, attempt)
        await self.sleep(wait)
        return True


class GitHubApp:
    """The App's view of GitHub: one HTTP session, the app JWT, and cached installation tokens."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession, *, max_wait: float = 120.0,
                 backoff: float = 1.0) -> None:
        self.pacers: dict[int, WritePacer] = {}
        if not settings.has_app:
            raise ValueError("GitHubApp needs GITHUB_APP_ID and a private key")
        self.settings = settings
        self.session = session
        self.max_wait = max_wait
        self.backoff = backoff
        self.tokens = TokenCache(self._fetch_token)
        # Parsed once: PyJWT parses PEM text on every signature, about 50 ms of blocked event loop each.
        self._key = load_pem_private_key(settings.private_key.encode(), password=None)  # type: ignore[union-attr]
        self.on_rate_limit: Callable[..., None] | None = None  # set by the runtime: Metrics.rate_limit

    def _client(self, bucket: int | str = "app", **auth: Any) -> GitHub:
        gh = GitHub(self.session, base_url=self.settings.github_api_url, max_wait=self.max_wait,
                    backoff=self.backoff, **auth)
        gh.on_rate_limit, gh.bucket = self.on_rate_limit, bucket
        return gh

    def app_client(self) -> GitHub:
        """Authenticated as the App (JWT): installation tokens, hook deliveries, manifests."""
        return self._client(oauth_token=None)

    def jwt(self) -> str:
        assert self.settings.app_id is not None
        return app_jwt(self.settings.app_id, self._key)

    async def _fetch_token(self, installation_id: int) -> Token:
        data = await self.app_client().post(
            "/app/installations/{installation_id}/access_tokens",
            url_vars={"installation_id": str(installation_id)}, data=b"", jwt=self.jwt(),
        )
        return Token(value=data["token"], expires_at=parse_expiry(data["expires_at"]))

    async def installation(self, installation_id: int) -> GitHub:
        """A client acting as the installation; its token comes from the cache, its writes are paced."""
        pacer = self.pacers.setdefault(installation_id, WritePacer(
            per_minute=self.settings.writes_per_minute, spacing=self.settings.write_spacing))
        return self._client(installation_id, oauth_token=await self.tokens.get(installation_id), pacer=pacer)

    async def bot_login(self) -> str:
        """The App's bot account login ("<slug>[bot]"), to recognise the bot's own comments."""
        app = await self.app_client().getitem("/app", jwt=self.jwt())
        return f"{app['slug']}[bot]"
