"""Wires the parts together for ``serve``, ``replay`` and the tests: store, GitHub, jobs, web app.

The agent side is imported on a thread, never on the event loop, so ``serve`` answers ``/healthz`` and takes
deliveries while it loads: the pipeline (half a second under load) by ``preload`` or the first job, which
awaits it; the anthropic SDK (one to four seconds) after it, by the model client (``LazyClient``), so a
delivery answered without a model (the "which workflow?" question) never waits for the SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from bot.core.catalog import Catalog, load_catalog
from bot.github.client import GitHubApp
from bot.logs import add_secret, log_context
from bot.run.jobs import Handler, LocalJobs, OnDone, OnFailed, Outcome
from bot.run.notices import Notices
from bot.settings import Settings
from bot.store import Job, Store, open_store
from bot.web.metrics import Metrics
from bot.web.server import make_app, make_metrics_app

if TYPE_CHECKING:
    from bot.agents.calls import LazyClient
    from bot.run.pipeline import Deps

log = logging.getLogger(__name__)
BOT_LOGIN_RETRY = 300.0  # seconds between attempts to learn the App's login, when GitHub would not say
# The cycle collector's thresholds for a server's heap: a young collection every 10,000 container allocations, not
# Python's 700, at the same ratios between generations. Runs at scale (issue 16) allocate fast (requests, replies,
# run records): at 700 the loop spent ~3 s of 40 in collections, most of it on objects about to be freed anyway.
GC_THRESHOLDS = (10_000, 10, 10)


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

    async def start(self) -> Runtime:
        gc.set_threshold(*GC_THRESHOLDS)
        # Never logged: the App's secrets and each line of its key (installation tokens register as issued).
        key = self.settings.private_key or ""
        for value in (self.settings.webhook_secret, self.settings.anthropic_api_key, key,
                      *(line for line in key.splitlines() if len(line) >= 40)):
            add_secret((value or "").strip())
        self.store = await open_store(self.settings.database_url)
        self.metrics = Metrics()
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self.github = GitHubApp(self.settings, self.session, max_wait=self.github_max_wait,
                                backoff=self.github_backoff, store=self.store)  # writes paced across workers
        self.github.on_rate_limit = self.metrics.rate_limit
        self._deps: Deps | None = None
        self._pipeline: asyncio.Future[ModuleType] | None = None
        self._closing = False
        self._login_tried = -BOT_LOGIN_RETRY
        self.notices = Notices(store=self.store, github=self.github, catalog=self.catalog, settings=self.settings,
                               metrics=self.metrics, bot_login=lambda: self._deps.bot_login if self._deps else None)
        self.jobs = make_jobs(self.settings.database_url, self.store, self.handle,
                              concurrency=self.settings.job_concurrency, retry_base=self.settings.job_retry_base,
                              on_failed=self.job_failed, on_done=self.job_done)
        self.app = make_app(self.store, self.settings.webhook_secret or "", self.jobs.kick, metrics=self.metrics,
                            settings=self.settings)
        await self.jobs.start()
        # Apart from the job slots: a thread hears within seconds even when every slot is busy.
        self._tasks = [asyncio.create_task(self.notices.run_forever(), name="acknowledger")]
        if self.settings.redeliver_every > 0:  # GitHub never redelivers a failed delivery by itself
            from bot.run.redeliver import sweep_forever

            self._tasks.append(asyncio.create_task(sweep_forever(self.github, self.store,
                                                                 every=self.settings.redeliver_every),
                                                   name="redelivery sweep"))
        from bot.run.periodic import every
        from bot.run.retention import run_forever as retention

        self._tasks.append(asyncio.create_task(retention(self.store, keep_days=self.settings.keep_payload_days),
                                               name="retention"))
        self._tasks.append(asyncio.create_task(every(15.0, "dashboard refresh", self._dashboards), name="dashboards"))
        from bot.run.merged import start_backfill  # under the secret of now, before a rotation can hide them

        if (backfill := start_backfill(self.store, self.settings.webhook_secret)) is not None:
            self._tasks.append(backfill)  # once per install: a start after the first finds it done at once
        return self

    async def _dashboards(self) -> None:
        """Dashboard refreshes the one-edit-a-minute window put off (bot/run/dashboard.py), kept in the store: the
        last change on a repository is shown within a minute and a quarter, even when no later job comes, and after
        a restart too."""
        pipeline = await asyncio.shield(self.preload())
        await self._learn_login()  # after a restart, before any job: the dashboard is known as the bot's by it
        await pipeline.refresh_due(self.deps)

    async def job_failed(self, job: Job, outcome: Outcome) -> None:
        """A job ended for good without success: tell its thread (or, failing that, the operators)."""
        await self.notices.job_failed(job, outcome)
        await (await asyncio.shield(self.preload())).job_failed(job, self.store, time.time())  # its dashboard lists it

    async def job_done(self, job: Job) -> None:
        await self.notices.job_done(job)

    def preload(self) -> asyncio.Future[ModuleType]:
        """Start importing the agent side on a thread, once: the pipeline, then the anthropic SDK (when a key is
        set). A job that imported the pipeline itself would hold the event loop, and every delivery with it,
        for as long as the import takes, or wait on the thread's import lock doing the same."""
        if self._pipeline is None:
            self._pipeline = asyncio.get_running_loop().run_in_executor(None, importlib.import_module,
                                                                        "bot.run.pipeline")
            self._pipeline.add_done_callback(self._start_model_client)
        return self._pipeline

    def _start_model_client(self, imported: asyncio.Future[ModuleType]) -> None:
        """Once the pipeline is in: import the SDK on a thread too, so the first model call finds it loaded."""
        if self._closing or imported.cancelled() or imported.exception() is not None:
            return  # a failed import is the job's to report (handle awaits it); a closing runtime starts nothing
        from bot.agents.calls import freeze_once  # imported by now, with the pipeline

        freeze_once("pipeline")  # the modules just imported live as long as the process
        client = self.deps.anthropic
        if client is not None and hasattr(client, "start"):
            client.start()

    @property
    def deps(self) -> Deps:
        """What jobs need; built on first use (it imports the pipeline, on the caller's thread: ``handle`` awaits
        ``preload`` first)."""
        if self._deps is None:
            from bot.run.pipeline import Deps

            # Deps types the client as the SDK's; the lazy one stands in for it (ModelCaller resolves it).
            self._deps = Deps(settings=self.settings, store=self.store, github=self.github, catalog=self.catalog,
                              anthropic=self._anthropic(),
                              model_slots=asyncio.Semaphore(self.settings.model_concurrency),
                              agent_options=dict(self.agent_options), metrics=self.metrics)
        return self._deps

    def _anthropic(self) -> LazyClient | None:
        """The model client, or None for the offline backend when no key is configured. Made on first use: the
        SDK is imported on a thread then, if ``preload`` has not already."""
        key = self.settings.anthropic_api_key
        if not key:
            return None
        from bot.agents.calls import LazyClient

        def make() -> Any:
            import anthropic  # imported already, on LazyClient's thread

            # The agent runtime owns retries (it honours retry-after and never retries a spend limit). The SDK's
            # aiohttp transport, not its default httpx stack: that one spent about 2 ms of the event loop per
            # call and scans its whole pool on every request and response, so 200 runs at once cost more per run
            # than one. One client (one connection pool) for every call of every run; closed by close().
            return anthropic.AsyncAnthropic(api_key=key, base_url=self.settings.anthropic_base_url, max_retries=0,
                                            http_client=anthropic.DefaultAioHttpClient())

        return LazyClient(make, api_key=key)

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
        pipeline = await asyncio.shield(self.preload())  # the loop answers deliveries while it loads

        with log_context(delivery_id=job.delivery_id):
            await self._learn_login()
            await pipeline.process(job, self.deps)

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # The one HTTP session of each outside service, then the store, closed whatever the jobs (or the other
        # closes) raise: a session left open holds its connections until the process ends.
        async with contextlib.AsyncExitStack() as closing:
            closing.push_async_callback(self.store.close)
            closing.push_async_callback(self.session.close)
            if self._deps is not None and self._deps.anthropic is not None:
                closing.push_async_callback(self._deps.anthropic.close)
            await self.jobs.close()

    def web_app(self) -> web.Application:
        return self.app

    async def listen(self, host: str = "0.0.0.0") -> list[web.AppRunner]:
        """Serve as ``serve`` does: the webhook app on ``port``, and ``/metrics`` alone on ``metrics_port`` when
        set. The connection limits (header timeout, lingering) travel with the apps. The runners, to clean up."""
        apps = [(self.app, self.settings.port)]
        if self.settings.metrics_port is not None:
            apps.append((make_metrics_app(self.app), self.settings.metrics_port))
        runners: list[web.AppRunner] = []
        try:
            for app, port in apps:
                runner = web.AppRunner(app, access_log=None)
                runners.append(runner)
                await runner.setup()
                await web.TCPSite(runner, host, port).start()
        except BaseException:
            for runner in runners:
                await runner.cleanup()
            raise
        return runners


def make_jobs(database_url: str, store: Store, handler: Handler, *, concurrency: int = 8,
              retry_base: float = 5.0, on_failed: OnFailed | None = None, on_done: OnDone | None = None) -> LocalJobs:
    """The job queue for a database: in-process on SQLite, procrastinate workers on PostgreSQL."""
    if database_url.startswith("sqlite"):
        return LocalJobs(store, handler, concurrency=concurrency, retry_base=retry_base, on_failed=on_failed,
                         on_done=on_done)
    from bot.run.pg_worker import ProcrastinateJobs  # PostgreSQL only: keeps procrastinate off the SQLite path

    return ProcrastinateJobs(store, handler, concurrency=concurrency)  # type: ignore[return-value]
