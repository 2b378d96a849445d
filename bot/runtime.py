"""Wires the parts together for ``serve``, ``replay`` and the tests: store, GitHub, jobs, web app.

The agent side (the pipeline, the anthropic SDK: about a second to import) is loaded on first use, so
``serve`` answers ``/healthz`` and takes deliveries before it is ready to think about them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import time
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from bot.catalog import Catalog, load_catalog
from bot.github.client import GitHubApp
from bot.jobs import make_jobs
from bot.logs import log_context
from bot.metrics import Metrics
from bot.server import make_app
from bot.settings import Settings
from bot.store import Job, open_store

if TYPE_CHECKING:
    from bot.pipeline import Deps

log = logging.getLogger(__name__)
BOT_LOGIN_RETRY = 300.0  # seconds between attempts to learn the App's login, when GitHub would not say


class Runtime:
    """One running bot. ``start`` opens everything and resumes unfinished jobs; ``close`` undoes it."""

    def __init__(self, settings: Settings, *, github_max_wait: float = 120.0, github_backoff: float = 1.0,
                 catalog: Catalog | None = None, agent_options: dict[str, Any] | None = None) -> None:
        if settings.webhook_secret is None:
            raise ValueError("a webhook secret is required")
        self.settings = settings
        self.github_max_wait = github_max_wait
        self.github_backoff = github_backoff
        self.catalog = catalog or load_catalog()
        self.agent_options = agent_options or {}

    async def start(self) -> "Runtime":
        self.store = await open_store(self.settings.database_url)
        self.metrics = Metrics()
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self.github = GitHubApp(self.settings, self.session, max_wait=self.github_max_wait,
                                backoff=self.github_backoff)
        self.github.on_rate_limit = self.metrics.rate_limit
        self._deps: Deps | None = None
        self._login_tried = -BOT_LOGIN_RETRY
        self.jobs = make_jobs(self.settings.database_url, self.store, self.handle,
                              concurrency=self.settings.job_concurrency, retry_base=self.settings.job_retry_base)
        self.app = make_app(self.store, self.settings.webhook_secret or "", self.jobs.kick, metrics=self.metrics)
        await self.jobs.start()
        return self

    @property
    def deps(self) -> Deps:
        """What jobs need; built on first use (it imports the pipeline and the anthropic SDK)."""
        if self._deps is None:
            from bot.pipeline import Deps

            self._deps = Deps(settings=self.settings, store=self.store, github=self.github, catalog=self.catalog,
                              anthropic=self._anthropic(), model_slots=asyncio.Semaphore(self.settings.model_concurrency),
                              agent_options=dict(self.agent_options), metrics=self.metrics)
        return self._deps

    def _anthropic(self) -> Any:
        """The model client, or None for the offline backend when no key is configured."""
        if not self.settings.anthropic_api_key:
            return None
        import anthropic

        # The agent runtime owns retries (it honours retry-after and never retries a spend limit).
        return anthropic.AsyncAnthropic(api_key=self.settings.anthropic_api_key, base_url=self.settings.anthropic_base_url,
                                        max_retries=0)

    async def _learn_login(self) -> None:
        """The App's bot login, asked once (and again every few minutes while GitHub would not say)."""
        if self.deps.bot_login is not None or time.monotonic() - self._login_tried < BOT_LOGIN_RETRY:
            return
        self._login_tried = time.monotonic()
        try:
            self.deps.bot_login = await self.github.bot_login()
        except Exception as exc:  # not fatal: bot accounts are still skipped by their type
            log.warning("could not read the App's slug (%s); relying on account type only", exc)

    async def handle(self, job: Job) -> None:
        """Process one job (the in-process runner and procrastinate workers both call this)."""
        from bot import pipeline

        with log_context(delivery_id=job.delivery_id):
            await self._learn_login()
            await pipeline.process(job, self.deps)

    async def close(self) -> None:
        await self.jobs.close()
        if self._deps is not None and self._deps.anthropic is not None:
            await self._deps.anthropic.close()
        await self.session.close()
        await self.store.close()

    def web_app(self) -> web.Application:
        return self.app
