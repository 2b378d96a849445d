"""Wires the parts together for ``serve``, ``replay`` and the tests: store, GitHub, jobs, web app."""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from bot import pipeline
from bot.github.client import GitHubApp
from bot.jobs import make_jobs
from bot.server import make_app
from bot.settings import Settings
from bot.store import Job, open_store

log = logging.getLogger(__name__)


class Runtime:
    """One running bot. ``start`` opens everything and resumes unfinished jobs; ``close`` undoes it."""

    def __init__(self, settings: Settings, *, github_max_wait: float = 120.0, github_backoff: float = 1.0) -> None:
        if settings.webhook_secret is None:
            raise ValueError("a webhook secret is required")
        self.settings = settings
        self.github_max_wait = github_max_wait
        self.github_backoff = github_backoff

    async def start(self) -> "Runtime":
        self.store = await open_store(self.settings.database_url)
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self.github = GitHubApp(self.settings, self.session, max_wait=self.github_max_wait,
                                backoff=self.github_backoff)
        self.deps = pipeline.Deps(settings=self.settings, store=self.store, github=self.github)
        self.jobs = make_jobs(self.settings.database_url, self.store, self._handle,
                              concurrency=self.settings.job_concurrency)
        self.app = make_app(self.store, self.settings.webhook_secret or "", self.jobs.kick)
        await self.jobs.start()
        return self

    async def _handle(self, job: Job) -> None:
        if self.deps.bot_login is None:
            try:
                self.deps.bot_login = await self.github.bot_login()
            except Exception as exc:  # not fatal: bot accounts are still skipped by their type
                log.warning("could not read the App's slug (%s); relying on account type only", exc)
        await pipeline.process(job, self.deps)

    async def close(self) -> None:
        await self.jobs.close()
        await self.session.close()
        await self.store.close()

    def web_app(self) -> web.Application:
        return self.app
