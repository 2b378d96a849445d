"""The App's JWT is signed once and used again for a few minutes (issue 16), always with minutes still to live."""

from __future__ import annotations

import jwt

from bot.github.auth import JWT_LIFETIME, JWT_REUSE, AppJWT, app_jwt
from bot.sandbox.keys import throwaway_key

PRIVATE, PUBLIC = throwaway_key()


def expires(token: str) -> int:
    return int(jwt.decode(token, PUBLIC, algorithms=["RS256"], options={"verify_exp": False})["exp"])


def test_a_cached_jwt_is_renewed_before_it_expires() -> None:
    now = [1_000_000.0]
    current = AppJWT(7, PRIVATE, clock=lambda: now[0])
    first = current.get()
    now[0] += JWT_REUSE - 1
    assert current.get() == first and current.signed == 1  # used again, not signed again
    assert expires(first) - now[0] >= JWT_LIFETIME - JWT_REUSE  # minutes still to live when last used
    now[0] += 1
    second = current.get()
    assert second != first and current.signed == 2 and expires(second) > expires(first)
    now[0] -= 120  # the clock went back: a JWT issued "in the future" is not handed out
    assert current.get() != second and current.signed == 3


def test_the_apps_jwt_is_kept_per_app_and_key() -> None:
    assert app_jwt(7, PRIVATE) == app_jwt(7, PRIVATE)
    other, _ = throwaway_key()
    assert app_jwt(7, other) != app_jwt(7, PRIVATE)  # a new key: a new JWT at once
    assert jwt.decode(app_jwt(8, PRIVATE), PUBLIC, algorithms=["RS256"])["iss"] == "8"
