"""Nobody on a thread waits in silence.

A delivery the bot acts on is answered 202 at once and worked on later; the job may wait behind other
threads' jobs, or in a retry's backoff while GitHub or the model is down. Two things keep the thread
informed, apart from the job slots (a person hears within seconds however busy the bot is):

- the *acknowledger*: a job of a kind the bot acts on that has not finished ``ack_after`` seconds after it
  arrived gets a short note on its thread saying it is queued or retrying, and why;
- the *failure note*: a job that ends without success (a refusal, or out of tries) edits that note, or
  posts it, naming the cause and how to re-run it (``/retry``).

Both use one marker per delivery, so a thread gets one note per delivery, edited in place; a job that then
succeeds deletes its note (the status comment or reply says the rest). Where nothing can be posted (the App
was uninstalled, GitHub refuses every write) the end is an ERROR log line with the delivery id and a metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from gidgethub import BadRequest

from bot.core import commands, events
from bot.core.catalog import Catalog
from bot.core.markers import marker
from bot.github.client import GitHubApp
from bot.github.writes import upsert_comment
from bot.logs import log_context, scrub
from bot.run.jobs import Outcome, transient
from bot.run.periodic import every
from bot.settings import Settings
from bot.store import Job, JobInfo, Store
from bot.web.metrics import Metrics

log = logging.getLogger(__name__)

# Actions that start or move a run; "labeled" only with a label that maps to a workflow.
STARTS = frozenset({"opened", "reopened", "ready_for_review", "synchronize"})


def where_to_tell(event: object, catalog: Catalog, *, any_label: bool = False) -> tuple[int, str] | None:
    """(thread number, what it is about) for an event the bot acts on visibly; None for the rest (a
    comment without a command of ours, a label that maps to nothing, a failure on the default branch, whose
    issue does not exist yet). Pure."""
    if isinstance(event, events.WorkItem):
        kind = "pull request" if event.is_pull_request else "issue"
        labels = {k.lower() for k in (catalog.triage.get("labels") or {})}
        # A repository's own config may map more labels: a failure is told for any label, a wait for the
        # shipped label map's (where the wait is most likely the bot's own doing).
        labelled = event.action == "labeled" and (any_label or (event.added_label or "").lower() in labels)
        if event.action in STARTS or labelled:
            return event.number, f"this {kind}" + (" (new commits)" if event.action == "synchronize" else "")
        return None
    if isinstance(event, events.Comment):
        names = [f"`/{c.name}`" for c in commands.parse(event.body) if c.known]
        return (event.number, f"{', '.join(names[:3])} in comment {event.comment_id}") if names else None
    if isinstance(event, events.CiFailure) and event.pull_numbers:
        from bot.core.render import code_span  # the renderer pulls in the agent side: loaded when first needed

        return event.pull_numbers[0], f"the failed check {code_span(event.name, 200)}"
    return None


# A note is the last word: a 5xx on its POST is tried again, briefly (seconds at the default retry base of 5 s;
# scaled with it, as the job retries are).
NOTE_TRIES = (0.0, 1.0, 4.0)
BURST = 8  # notes posted at once in one pass: thirty waiting deliveries must not wait for each other


class Notices:
    def __init__(self, *, store: Store, github: GitHubApp, catalog: Catalog, settings: Settings,
                 metrics: Metrics, bot_login: Callable[[], str | None]) -> None:
        self.store, self.github, self.catalog, self.settings = store, github, catalog, settings
        self.metrics, self.bot_login = metrics, bot_login
        # One writer per delivery's note in this process: the acknowledger and the failure note never
        # interleave (the acknowledger re-reads the job's state under it, and backs off once it has ended).
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, delivery_id: str) -> asyncio.Lock:
        if len(self._locks) > 10_000:
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}
        return self._locks.setdefault(delivery_id, asyncio.Lock())

    def _target(self, job: Job, *, failed: bool = False) -> tuple[events.Event, int, str] | None:
        event = events.parse(job.event, job.payload, job.delivery_id)
        if isinstance(event, (events.Ignored, events.Malformed, events.Installation)):
            return None
        if events.is_self_or_foreign_bot(event, self.bot_login(), self.settings.bot_allowlist):
            return None
        place = where_to_tell(event, self.catalog, any_label=failed)
        return (event, *place) if place else None

    async def _post(self, job: Job, event: events.Event, number: int, body: str) -> bool:
        """Post or edit the delivery's note; False (and an ERROR line) when GitHub would not take it."""
        for pause in NOTE_TRIES:
            await asyncio.sleep(pause * self.settings.job_retry_base / 5.0)
            try:
                gh = await self.github.installation(event.installation_id)
                await upsert_comment(gh, self.store, repo=event.repo, number=number, body=body,
                                     mark=marker("note", job.delivery_id), bot_login=self.bot_login())
                return True
            except Exception as exc:  # the last word failed too: only operators can hear of it now
                why = f"could not post to {event.repo}#{number}: {type(exc).__name__}: {exc}"
                if not transient(exc) or pause == NOTE_TRIES[-1]:
                    self._silent(job, why)
                    return False
        return False

    def _silent(self, job: Job, why: str) -> None:
        log.error("delivery %s (job %s) ended with nobody told: %s", job.delivery_id, job.id, scrub(why)[:500],
                  extra={"run_id": job.delivery_id})
        self.metrics.silent(job.event)

    async def job_failed(self, job: Job, outcome: Outcome) -> None:
        """A job ended for good without success: its thread hears why, and how to run it again."""
        with log_context(delivery_id=job.delivery_id):
            if not outcome.tell:
                self._silent(job, outcome.reason)
                return
            target = self._target(job, failed=True)
            if target is None:  # e.g. a failure on the default branch, whose issue was never opened
                self._silent(job, f"no thread to tell: {outcome.reason}")
                return
            event, number, what = target
            from bot.core.render import failure_note

            async with self._lock(job.delivery_id):
                await self._post(job, event, number, failure_note(what, outcome.cause, outcome.hint,
                                                                  command=isinstance(event, events.Comment),
                                                                  retry=outcome.retry))

    async def job_done(self, job: Job) -> None:
        """A job succeeded: a note it left (queued, retrying, failed before a /retry) has said its piece."""
        known = await self.store.find_posted(marker("note", job.delivery_id))
        if known is None:
            return
        target = self._target(job, failed=True)
        if target is None:
            return
        with contextlib.suppress(Exception):  # a stale note is untidy, not harmful
            gh = await self.github.installation(target[0].installation_id)
            with contextlib.suppress(BadRequest):
                await gh.delete(f"/repos/{known.repo}/issues/comments/{known.github_id}")
            await self.store.forget_posted(known.marker)

    async def sweep(self) -> int:
        """One pass of the acknowledger: tell the threads of jobs waiting longer than ``ack_after``, several
        threads at once, each note under its delivery's lock."""
        slots = asyncio.Semaphore(BURST)
        threads: dict[str, list[JobInfo]] = {}
        for info in await self.store.unnoted_jobs(self.settings.ack_after):
            threads.setdefault(info.job.thread, []).append(info)

        async def thread(infos: list[JobInfo]) -> int:
            # One thread's jobs one after another: its first note is then enough for the rest.
            async with slots:
                return sum([await self._acknowledge(info) for info in infos])

        return sum(await asyncio.gather(*(thread(infos) for infos in threads.values())))

    async def _acknowledge(self, info: JobInfo) -> bool:
        target = self._target(info.job)
        if target is None or not await self.store.mark_noted(info.job.id):
            return False  # nothing to tell, or another process took it
        event, number, what = target
        with log_context(delivery_id=info.job.delivery_id):
            async with self._lock(info.job.delivery_id):
                now = await self.store.job_info(info.job.id)  # it may have ended meanwhile
                if now is None or now.state not in ("queued", "running") or await self._shown(now, event, number):
                    return False
                from bot.core.render import pending_note

                body = pending_note(what, running=now.state == "running", error=now.error, retry_at=now.run_after)
                if not await self._post(info.job, event, number, body):
                    return False
            after = await self.store.job_info(info.job.id)
            if after is not None and after.state == "done":  # it finished while we wrote: tidy up
                await self.job_done(info.job)
            return True

    async def _shown(self, info: JobInfo, event: events.Event, number: int) -> bool:
        """Whether the thread already shows this job's work: something posted since it arrived, or (while it
        runs) the status comment of the thread's run, which says who is at work. A job in a retry's backoff
        is never shown well enough: the status comment does not say it is waiting for GitHub."""
        if info.error:
            return False
        if await self.store.posted_since(event.repo, number, info.created_at):
            return True
        if info.state != "running":
            return False
        run = await self.store.active_run(f"{event.repo}#{number}")
        return run is not None and await self.store.find_posted(marker("status", run.id)) is not None

    async def run_forever(self) -> None:
        await every(max(0.05, min(5.0, self.settings.ack_after / 4)), "acknowledger", self.sweep)
