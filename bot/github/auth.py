"""GitHub App authentication: the app JWT and cached installation tokens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from cachetools import TLRUCache

# GitHub rejects an app JWT whose exp is over 10 minutes ahead, and clocks drift: backdate iat.
JWT_BACKDATE = 60
JWT_LIFETIME = 9 * 60
# Refresh an installation token this long before GitHub says it expires.
TOKEN_MARGIN = 5 * 60


# A signed JWT is used again for this long, so each is used with at least JWT_LIFETIME - JWT_REUSE (5 minutes)
# still to live: a request that waits in a queue or a retry never carries an expired one.
JWT_REUSE = 4 * 60


def app_jwt(app_id: int | str, private_key: Any, now: float | None = None) -> str:
    """The RS256 JWT that authenticates as the App itself. Without ``now``: the App's current one, signed again
    only every few minutes (:class:`AppJWT`), per App and key object."""
    if now is not None:
        return _sign(app_id, private_key, now)
    cached = _CURRENT.get(str(app_id))
    if cached is None or cached.key is not private_key:
        cached = _CURRENT[str(app_id)] = AppJWT(app_id, private_key)
    return cached.get()


def _sign(app_id: int | str, private_key: Any, now: float) -> str:
    issued = int(now) - JWT_BACKDATE
    claims = {"iat": issued, "exp": issued + JWT_BACKDATE + JWT_LIFETIME, "iss": str(app_id)}
    return jwt.encode(claims, private_key, algorithm="RS256")


class AppJWT:
    """The App's JWT, signed once and used again for JWT_REUSE seconds. Each token request and App lookup
    needs one, and an RS256 signature costs about a millisecond of the event loop: 200 installations starting
    at once signed 200 of them."""

    def __init__(self, app_id: int | str, key: Any, *, clock: Callable[[], float] = time.time) -> None:
        self.app_id, self.key, self._clock = app_id, key, clock
        self._value: str | None = None
        self._signed_at = 0.0
        self.signed = 0  # signatures made (the tests count them)

    def get(self) -> str:
        now = self._clock()
        # Renewed well before it expires; and at once if the clock went back (its iat could lie in the future).
        if self._value is None or not 0 <= now - self._signed_at < JWT_REUSE:
            self._value, self._signed_at = _sign(self.app_id, self.key, now), now
            self.signed += 1
        return self._value


_CURRENT: dict[str, AppJWT] = {}  # app id -> its current JWT (one App per process in practice)


def forget_app_jwt(app_id: int | str) -> None:
    """Sign a new JWT on the next call: GitHub refused the current one (401: a clock skew, a key rotated)."""
    _CURRENT.pop(str(app_id), None)


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: float  # unix time

    def __repr__(self) -> str:  # a token never reaches a log line by accident
        return f"Token(expires_at={self.expires_at})"


def parse_expiry(text: str) -> float:
    """GitHub's ``expires_at`` ("2016-07-11T22:14:10Z") as unix time."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


Fetch = Callable[[int], Awaitable[Token]]


class TokenCache:
    """Installation tokens kept until shortly before they expire, fetched once per installation.

    Concurrent deliveries for one installation share one in-flight fetch rather than each asking
    GitHub for a token (GitHub allows many, but each costs a request and a rate-limit unit).
    """

    def __init__(self, fetch: Fetch, *, maxsize: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self._fetch = fetch
        self._clock = clock
        self._cache: TLRUCache[int, Token] = TLRUCache(
            maxsize=maxsize, ttu=lambda _k, tok, now: tok.expires_at - TOKEN_MARGIN, timer=clock
        )
        self._locks: dict[int, asyncio.Lock] = {}
        self.fetches = 0

    async def get(self, installation_id: int) -> str:
        token = self._cache.get(installation_id)
        if token is not None:
            return token.value
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            token = self._cache.get(installation_id)
            if token is None:
                token = await self._fetch(installation_id)
                self.fetches += 1
                if token.expires_at - TOKEN_MARGIN > self._clock():
                    self._cache[installation_id] = token
        return token.value

    def forget(self, installation_id: int, value: str | None = None) -> None:
        """Drop a token GitHub refused (revoked, expired early); with ``value``, only if it is still the cached
        one (requests refused together do not each throw away the fresh token another just fetched)."""
        cached = self._cache.get(installation_id)
        if cached is not None and (value is None or cached.value == value):
            self._cache.pop(installation_id, None)
