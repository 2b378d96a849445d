"""Environment → one typed, frozen settings object, read once at start-up.

Nothing else in the package reads ``os.environ``. A missing or malformed setting raises
:class:`SettingsError` naming it, never echoing a secret's value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_DATABASE_URL = "sqlite:///triage-lead.sqlite3"


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it and never holds its value."""


@dataclass(frozen=True)
class Settings:
    app_id: int | None = None
    private_key: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    github_api_url: str = DEFAULT_API_URL
    anthropic_api_key: str | None = field(default=None, repr=False)
    anthropic_base_url: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    port: int = 3000
    bot_allowlist: frozenset[str] = frozenset()
    job_concurrency: int = 8
    model_concurrency: int = 16
    run_token_budget: int = 2_000_000
    day_token_budget: int = 50_000_000
    model_overrides: tuple[tuple[str, str], ...] = ()  # (tier, model id)
    writes_per_minute: int = 80  # GitHub's secondary limit on content-creating requests
    write_spacing: float = 1.0  # seconds between writes of one installation, as GitHub asks
    max_comments_per_run: int = 60
    max_issues_per_run: int = 15
    job_retry_base: float = 5.0  # seconds before a failed job's first retry; x4 each time, six attempts
    ack_after: float = 20.0  # seconds a delivery may wait unseen before its thread gets a note (GitHub: within 60)
    keep_payload_days: float = 14.0  # days a finished delivery's payload is kept (bot/run/retention.py)
    redeliver_every: float = 300.0  # seconds between sweeps of GitHub's delivery log for failed deliveries; 0: off
    writes_per_hour: int = 500  # GitHub's hourly limit on content-creating requests, per installation
    # Hosts whose links and images may appear live in what the bot posts (besides the GitHub host itself):
    # any other link keeps its text and loses its target, since an image or link can carry data out.
    link_hosts: frozenset[str] = frozenset()
    replies_per_minute: int = 5  # command replies per person per thread a minute
    replies_per_hour: int = 30  # command replies per repository an hour, across its threads
    metrics_token: str | None = field(default=None, repr=False)  # bearer token /metrics requires, if set
    metrics_port: int | None = None  # serve /metrics on its own port (e.g. bound to an internal network)
    body_deadline: float = 10.0  # seconds a webhook body may take to arrive before the signature is checked
    unverified_bytes: int = 32 * 1024 * 1024  # bytes of not-yet-verified bodies held across all connections
    header_timeout: float = 5.0  # seconds a connection may stay idle or send its request line and headers
    # The Messages API's server-side web search for search-specialist (issue 17): off unless the operator turns
    # it on; each search is billed ($10 per 1,000) and counted in the budgets, at most this many per run.
    web_search: bool = False
    web_searches_per_run: int = 5

    @property
    def github_host(self) -> str:
        """The host people see GitHub on: github.com for api.github.com, the server's host for GHES."""
        host = (urlparse(self.github_api_url).hostname or "github.com").lower()
        return "github.com" if host == "api.github.com" else host

    @property
    def allowed_link_hosts(self) -> frozenset[str]:
        return frozenset({"github.com", self.github_host}) | self.link_hosts

    @property
    def web_search_cap(self) -> int:
        """The web searches a run may make: 0 while web search is off."""
        return self.web_searches_per_run if self.web_search else 0

    @property
    def has_app(self) -> bool:
        return self.app_id is not None and self.private_key is not None

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _int(env: Mapping[str, str], name: str, default: int | None, *, lo: int = 1, hi: int = 2**63) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, hi: float = 60) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number") from None
    if not 0 <= value <= hi:
        raise SettingsError(f"{name} must be between 0 and {hi:g}")
    return value


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
        raise SettingsError(f"{name} must be on or off")
    return raw in ("on", "true", "1", "yes")


def _url(env: Mapping[str, str], name: str, default: str | None, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    parsed = urlparse(raw)
    if parsed.scheme not in schemes or (parsed.scheme.startswith("http") and not parsed.netloc):
        raise SettingsError(f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return raw.rstrip("/") if parsed.scheme.startswith("http") else raw


def _private_key(env: Mapping[str, str]) -> str | None:
    text = env.get("GITHUB_PRIVATE_KEY", "").strip()
    name = "GITHUB_PRIVATE_KEY"
    if not text and env.get("GITHUB_PRIVATE_KEY_PATH", "").strip():
        name = "GITHUB_PRIVATE_KEY_PATH"
        path = Path(env["GITHUB_PRIVATE_KEY_PATH"].strip()).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise SettingsError(f"GITHUB_PRIVATE_KEY_PATH cannot be read ({exc.strerror})") from None
    if not text:
        return None
    # PaaS dashboards often store a PEM on one line with literal "\n" sequences, and `docker run
    # --env-file` keeps a .env file's quotes: a PEM never starts or ends with a quote.
    text = text.strip("\"'").replace("\\n", "\n")
    try:
        key = load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError):
        raise SettingsError(f"{name} is not a PEM-encoded private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SettingsError(f"{name} must be an RSA private key (GitHub App keys are RSA)")
    return text


def load(env: Mapping[str, str] | None = None, *, require_app: bool = True) -> Settings:
    """Read settings from ``env`` (default: the process environment).

    ``require_app`` is set by ``serve``: the real App cannot start without its id, key and secret.
    ``replay`` and the tests run on embedded defaults instead.
    """
    env = os.environ if env is None else env
    app_id = _int(env, "GITHUB_APP_ID", None)
    private_key = _private_key(env)
    secret = env.get("GITHUB_WEBHOOK_SECRET") or None
    if require_app:
        required = (("GITHUB_APP_ID", app_id), ("GITHUB_PRIVATE_KEY", private_key), ("GITHUB_WEBHOOK_SECRET", secret))
        for name, value in required:
            if value is None:
                hint = " (or GITHUB_PRIVATE_KEY_PATH)" if name == "GITHUB_PRIVATE_KEY" else ""
                raise SettingsError(f"{name}{hint} is required to serve the GitHub App")
    database_url = _url(env, "DATABASE_URL", DEFAULT_DATABASE_URL, ("sqlite", "postgresql", "postgres"))
    allow = frozenset(x.strip().lower() for x in env.get("TRIAGE_LEAD_BOT_ALLOWLIST", "").split(",") if x.strip())
    return Settings(
        app_id=app_id,
        private_key=private_key,
        webhook_secret=secret,
        github_api_url=_url(env, "GITHUB_API_URL", DEFAULT_API_URL, ("https", "http")),  # type: ignore[arg-type]
        anthropic_api_key=env.get("ANTHROPIC_API_KEY") or None,
        anthropic_base_url=_url(env, "ANTHROPIC_BASE_URL", None, ("https", "http")),
        database_url=database_url,  # type: ignore[arg-type]
        port=_int(env, "PORT", 3000, hi=65535),  # type: ignore[arg-type]
        bot_allowlist=allow,
        job_concurrency=_int(env, "TRIAGE_LEAD_JOB_CONCURRENCY", 8, hi=1024),  # type: ignore[arg-type]
        model_concurrency=_int(env, "TRIAGE_LEAD_MODEL_CONCURRENCY", 16, hi=4096),  # type: ignore[arg-type]
        run_token_budget=_int(env, "TRIAGE_LEAD_RUN_TOKEN_BUDGET", 2_000_000),  # type: ignore[arg-type]
        day_token_budget=_int(env, "TRIAGE_LEAD_DAY_TOKEN_BUDGET", 50_000_000),  # type: ignore[arg-type]
        writes_per_minute=_int(env, "TRIAGE_LEAD_WRITES_PER_MINUTE", 80, hi=80),  # type: ignore[arg-type]
        write_spacing=_float(env, "TRIAGE_LEAD_WRITE_SPACING", 1.0),
        max_comments_per_run=_int(env, "TRIAGE_LEAD_MAX_COMMENTS_PER_RUN", 60, hi=1000),  # type: ignore[arg-type]
        max_issues_per_run=_int(env, "TRIAGE_LEAD_MAX_ISSUES_PER_RUN", 15, hi=1000),  # type: ignore[arg-type]
        job_retry_base=_float(env, "TRIAGE_LEAD_JOB_RETRY_BASE", 5.0),
        ack_after=_float(env, "TRIAGE_LEAD_ACK_AFTER", 20.0),
        redeliver_every=_float(env, "TRIAGE_LEAD_REDELIVER_EVERY", 300.0, hi=86_400),
        keep_payload_days=_float(env, "TRIAGE_LEAD_KEEP_PAYLOAD_DAYS", 14.0, hi=3650),
        writes_per_hour=_int(env, "TRIAGE_LEAD_WRITES_PER_HOUR", 500, hi=500),  # type: ignore[arg-type]
        link_hosts=frozenset(h.strip().lower() for h in env.get("TRIAGE_LEAD_LINK_HOSTS", "").split(",") if h.strip()),
        replies_per_minute=_int(env, "TRIAGE_LEAD_REPLIES_PER_MINUTE", 5, hi=1000),  # type: ignore[arg-type]
        replies_per_hour=_int(env, "TRIAGE_LEAD_REPLIES_PER_HOUR", 30, hi=100_000),  # type: ignore[arg-type]
        metrics_token=env.get("TRIAGE_LEAD_METRICS_TOKEN") or None,
        metrics_port=_int(env, "TRIAGE_LEAD_METRICS_PORT", None, hi=65535),
        body_deadline=_float(env, "TRIAGE_LEAD_BODY_DEADLINE", 10.0, hi=300),
        unverified_bytes=_int(env, "TRIAGE_LEAD_UNVERIFIED_BYTES", 32 * 1024 * 1024, lo=25 * 1024 * 1024),  # type: ignore[arg-type]
        header_timeout=_float(env, "TRIAGE_LEAD_HEADER_TIMEOUT", 5.0, hi=300),
        web_search=_switch(env, "TRIAGE_LEAD_WEB_SEARCH", False),
        web_searches_per_run=_int(env, "TRIAGE_LEAD_WEB_SEARCHES_PER_RUN", 5, lo=0, hi=1000),  # type: ignore[arg-type]
        model_overrides=tuple((tier, env[f"TRIAGE_LEAD_MODEL_{tier.upper()}"].strip())
                              for tier in ("opus", "sonnet", "haiku")
                              if env.get(f"TRIAGE_LEAD_MODEL_{tier.upper()}", "").strip()),
    )
