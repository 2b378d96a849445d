"""GitHub's App-manifest flow without the web server: the manifest sent, the one open trip to GitHub, and the
checks on the App GitHub sends back."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from bot.cli.envfile import SetupError
from bot.logs import printable

MANIFEST_KEYS = ("name", "url", "hook_attributes", "redirect_url", "public", "default_events",
                 "default_permissions", "description")
PLACEHOLDER_HOSTS = frozenset({"example.com", "example.org", "example.net"})


def default_manifest() -> Path:
    """``app.yml`` in the working folder, else the one beside the package (a clone or editable install)."""
    here = Path("app.yml")
    return here if here.exists() else Path(__file__).resolve().parents[2] / "app.yml"


def github_web_url(api_url: str) -> str:
    """github.com for api.github.com; ``https://HOST`` for GitHub Enterprise Server's ``https://HOST/api/v3``."""
    parsed = urlparse(api_url.rstrip("/"))
    if parsed.netloc == "api.github.com":
        return "https://github.com"
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path.removesuffix('/api/v3')}"


def build_manifest(app_yml: Mapping[str, Any], *, redirect_url: str, webhook_url: str | None = None,
                   name: str | None = None) -> dict[str, Any]:
    """The JSON manifest GitHub takes, from ``app.yml``.

    A webhook URL still on a placeholder host is registered inactive, so GitHub does not send a
    repository's events to someone else's server before the real URL is set.
    """
    manifest = {k: app_yml[k] for k in MANIFEST_KEYS if k in app_yml}
    hook = dict(manifest.get("hook_attributes") or {})
    if webhook_url:
        hook.update(url=webhook_url, active=True)
    if urlparse(str(hook.get("url", ""))).hostname in PLACEHOLDER_HOSTS | {None}:
        hook.update(url=hook.get("url") or "https://example.com/webhook", active=False)
    manifest["hook_attributes"] = hook
    manifest["redirect_url"] = redirect_url
    if name:
        manifest["name"] = name
    return manifest


def read_manifest(path: Path) -> dict[str, Any]:
    """``app.yml`` read, or a SetupError saying what is wrong with it."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SetupError(f"cannot read {path} ({exc.strerror}); pass --manifest") from None
    except yaml.YAMLError as exc:
        raise SetupError(f"{path} is not YAML: {exc}") from None
    if not isinstance(data, dict) or not data.get("name") or not data.get("url"):
        raise SetupError(f"{path} is not a GitHub App manifest (it needs at least name and url)")
    return data

# ---- one flow at a time, and the App it must bring back ------------------------------------------

STATE_TTL = 30 * 60.0  # seconds a started flow waits for GitHub's redirect (GitHub's code itself lasts an hour)


@dataclass(frozen=True)
class Attempt:
    """One trip to GitHub: the ``state`` GitHub sends back, and the secret only the starting browser's cookie
    holds, so a process that reads the state still cannot complete the redirect."""

    state: str
    secret: str
    expires: float


class Claim(Enum):
    """What GitHub's redirect back amounts to."""

    TAKEN = "taken"              # the open flow's state and cookie: the flow is used up now
    UNKNOWN = "unknown"          # no such open flow: never started, used already, expired, or another state
    WRONG_BROWSER = "wrong"      # the open flow's state without its cookie


class OpenFlow:
    """At most one manifest flow is open; its state is single-use, expires, and is only good with its cookie.

    A second start from a browser without the open flow's cookie is refused, not allowed to replace it: the
    person's own reload still works (the browser sends the cookie), and a page opened by anything else is
    a visible alarm instead of a silent takeover of the person's flow.
    """

    def __init__(self, clock: Callable[[], float], ttl: float) -> None:
        self._clock, self._ttl = clock, ttl
        self._open: Attempt | None = None

    def _current(self) -> Attempt | None:
        if self._open is not None and self._clock() >= self._open.expires:
            self._open = None
        return self._open

    def start(self, cookie: str) -> Attempt | None:
        """The flow this browser may go on with (its own open one, or a new one); None while another is open."""
        if (current := self._current()) is not None:
            return current if hmac.compare_digest(cookie.encode(), current.secret.encode()) else None
        self._open = Attempt(secrets.token_urlsafe(24), secrets.token_urlsafe(32), self._clock() + self._ttl)
        return self._open

    def seconds_left(self) -> int:
        current = self._current()
        return max(1, int(current.expires - self._clock())) if current else 0

    def claim(self, state: str, cookie: str) -> Claim:
        """Check GitHub's redirect (both in constant time); the open flow is used up only when both match."""
        if (current := self._current()) is None:
            return Claim.UNKNOWN
        state_ok = hmac.compare_digest(state.encode(), current.state.encode())
        cookie_ok = hmac.compare_digest(cookie.encode(), current.secret.encode())
        if not state_ok:
            return Claim.UNKNOWN
        if not cookie_ok:
            return Claim.WRONG_BROWSER
        self._open = None
        return Claim.TAKEN


def _shown(value: object) -> str:
    """A name GitHub or a stranger chose, quoted and clipped for a log line or a page."""
    return repr(printable(str(value))[:100])


def missing_credentials(app: Mapping[str, Any]) -> list[str]:
    """What the conversion's answer lacks of what ``.env`` needs: the App id, its key, its webhook secret."""
    want = {"id": int, "pem": str, "webhook_secret": str}
    return [k for k, kind in want.items()
            if not app.get(k) or isinstance(app.get(k), bool) or not isinstance(app.get(k), kind)]


def wrong_app(app: Mapping[str, Any], *, name: str, org: str | None) -> str | None:
    """Why the App GitHub returned is not the one this flow asked for, naming both; None when it is.

    Without ``--org`` GitHub creates the App under the signed-in person's account, whose login the flow
    cannot know (it holds no token): there the name ties the App to this flow, and an App owned by an
    organization is refused.
    """
    raw_owner = app.get("owner")
    owner: dict[str, Any] = raw_owner if isinstance(raw_owner, dict) else {}
    login, kind = str(owner.get("login") or ""), owner.get("type")
    name_ok = app.get("name") == name
    owner_ok = login.casefold() == org.casefold() if org else kind == "User"  # logins ignore case on GitHub
    if name_ok and owner_ok:
        return None
    wanted = f"the organization {_shown(org)}" if org else "your personal account"
    return (f"GitHub returned the App {_shown(app.get('name'))} owned by {_shown(login)} ({_shown(kind)}), but "
            f"this set-up asked for {_shown(name)} owned by {wanted}")

