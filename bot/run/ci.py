"""CI failures: on a pull request a run investigates it; on the default branch one issue per distinct failure.

A failure counts as the default branch's only when its commit is on that branch. A fork's run arrives without
pull requests (GitHub lists none for a fork) and names the fork's branch, often called like ours: taken at its
word, it would open an issue here and start a run whose change is built on the fork's commit.

The issue is read as the error-detective reads a failure (gather, one reader, one digest), so both say the same.
Where the bot posted about a check failing at a commit, it records so; a success of that check at that commit
(a re-run that passed) is then said to be flaky there, once.
"""

from __future__ import annotations

import asyncio
import logging

from gidgethub.abc import GitHubAPI

from bot.agents.ci_evidence import CiTarget, Gathered, failed_checks, gather
from bot.agents.tools import RepoReader
from bot.core import engine, events, render, texts, triage
from bot.core.ci_output import digest as ci_digest
from bot.core.ci_output import reading
from bot.core.ci_output.reading import Reading, read_all
from bot.core.ci_output.records import Context
from bot.core.markers import marker
from bot.github.changes import on_branch
from bot.github.writes import create_issue_once, digest, upsert_comment
from bot.logs import clip
from bot.run.runs import Deps, resume, start_run
from bot.run.state import CiRef, run_context
from bot.store import Posted

log = logging.getLogger(__name__)


async def _gather(f: events.CiFailure, gh: GitHubAPI, default: str) -> tuple[Gathered, list[Reading], Context]:
    """What GitHub says of the failure, and its reading (the reader runs in a thread: a long log is seconds of
    CPU, and the event loop serves every other delivery meanwhile)."""
    target = CiTarget(source=f.source, id=f.ci_id, name=f.name, head_sha=f.head_sha, summary=f.summary)
    got = await gather(RepoReader(gh, f.repo), target, default_branch=default)
    got.log_missing(log, f"CI failure {clip(f.name)} at {f.head_sha[:12]} in {f.repo}")
    readings, context = await asyncio.to_thread(read_all, got.evidence, got.on_default, default_branch=default,
                                                green_sha=got.green_sha, since_green=got.since_green)
    return got, readings, context


async def read_failure(f: events.CiFailure, gh: GitHubAPI, default: str) -> tuple[list[Reading], Context]:
    """The failure read the way the error-detective reads it (bot/agents/ci_evidence.gather, then one reader):
    the failed jobs' readings, the one people read first leading, and the failure's context. A GitHub Actions
    failure arrives as a check run per job, a check suite and a workflow run: each reads the failing job's log,
    so they share a signature. Gather always gives one piece of evidence at least (the event's own summary),
    so there is always a first reading."""
    _, readings, context = await _gather(f, gh, default)
    return readings, context


def issue_text(f: events.CiFailure, readings: list[Reading], context: Context,
               missing: list[str] | None = None) -> tuple[str, str, str, str]:
    """(job, signature, title, body) of the issue for a failure on the default branch: the first failed job's
    digest, the others named in it, and the pieces GitHub would not give."""
    first = readings[0]
    signature = reading.signature(first, unique=f"{f.source}-{f.ci_id}")
    title, body = render.ci_failure_issue(first.job, ci_digest.headline(first),
                                          ci_digest.render(first, context, readings[1:], missing or ()), signature,
                                          f.head_sha, f.details_url)
    return first.job, signature, title, body


async def _remember_failure(deps: Deps, f: events.CiFailure, checks: list[tuple[str, str | None]], number: int) -> None:
    """Record that the bot posted about these checks (name, App) failing at this commit on #`number`: a success
    of one of them at the same commit is then worth a job (the failure was flaky); every other success is
    dropped unread. Two keys each: by name alone (the server's cheap test before it queues a job) and by name
    and App (the job's test: another App's check of the same name passing says nothing of this one)."""
    for name, app in dict.fromkeys(checks):
        for key in (events.failure_seen(f.repo, name, f.head_sha), events.failure_seen(f.repo, name, f.head_sha,
                                                                                         app=app or "")):
            await deps.store.remember_posted(Posted(marker=key, repo=f.repo, kind="seen", github_id=0, number=number))


async def _failed_checks(f: events.CiFailure, gh: GitHubAPI) -> list[tuple[str, str | None]]:
    """The checks (name, App) whose later success says this failure was flaky: a check run is its own; a
    workflow run or a check suite names its failed jobs' checks (one read or two), not its own name."""
    if f.source == "check_run":
        return [(f.name, f.app_slug)]
    target = CiTarget(source=f.source, id=f.ci_id, name=f.name, head_sha=f.head_sha)
    return await failed_checks(RepoReader(gh, f.repo), target)


async def on_ci_success(s: events.CiSuccess, gh: GitHubAPI, deps: Deps) -> None:
    """A check that failed at a commit passed at the same commit: say "flaky" once where the failure was posted
    (only the same App's check: no App can pass another's)."""
    seen = await deps.store.find_posted(events.failure_seen(s.repo, s.name, s.head_sha, app=s.app_slug or ""))
    if seen is None or not seen.number:  # the server looked it up; a job queued before a purge finds nothing
        log.info("check %s passed at %s: no failure of it was posted, nothing to say", clip(s.name), s.head_sha[:12])
        return
    await upsert_comment(gh, deps.store, repo=s.repo, number=seen.number, bot_login=deps.bot_login,
                         mark=marker("ci-flaky", digest(s.repo, s.name, s.head_sha)),
                         body=texts.ci_flaky(s.name, s.head_sha, s.details_url))


async def _not_on_default(f: events.CiFailure, gh: GitHubAPI, default: str) -> str | None:
    """Why a failure naming the default branch is not proven to be on it (None: it is). A workflow run says
    which repository its commit came from, so a fork's run is told apart without a read; a check run or suite
    does not, so GitHub is asked whether the commit is on the default branch (one read)."""
    if f.head_repo:  # a workflow run's head_repository; check runs and suites leave it out, so GitHub is asked
        return None if f.head_repo.lower() == f.repo.lower() else f"it ran on {f.head_repo}'s commit {f.head_sha[:12]}"
    if await on_branch(gh, f.repo, default, f.head_sha):
        return None
    return f"its commit {f.head_sha[:12]} is not on it (a fork's, or unknown here)"


async def on_ci_failure(f: events.CiFailure, gh: GitHubAPI, deps: Deps) -> None:
    own = await deps.store.load_run(f.delivery_id)
    if own is not None:  # this delivery's run was started before the process died
        await resume(gh, deps, own, engine.Start(), f.delivery_id)
        return
    repo_info = await gh.getitem(f"/repos/{f.repo}")
    default = repo_info.get("default_branch") or f.default_branch or "main"
    view = await deps.view(gh, f.repo, default)
    decision = triage.decide(f, view.catalog, enabled=view.config.workflows)
    if decision.workflow is None:
        log.info("CI failure %s not investigated: %s", f.name, decision.reason)
        return
    ci = CiRef(source=f.source, id=f.ci_id, name=f.name, head_sha=f.head_sha, summary=f.summary)
    if f.pull_numbers:
        number = f.pull_numbers[0]
        # Recorded first: the failure is on this pull request's thread whether or not a run starts now (each
        # job's own check run arrives while the workflow run's run is active), so a later pass is flaky here.
        await _remember_failure(deps, f, await _failed_checks(f, gh), number)
        if await deps.store.active_run(f"{f.repo}#{number}"):
            log.info("%s#%s already has an active run; CI failure %s noted in it only by the check", f.repo, number, f.name)
            return
        pr = await gh.getitem(f"/repos/{f.repo}/pulls/{number}")
        ctx = run_context(f.repo, number, pull=True, head_sha=pr["head"]["sha"], head_ref=pr["head"]["ref"],
                          head_repo=(pr["head"].get("repo") or {}).get("full_name"),
                          base_sha=(pr.get("base") or {}).get("sha"), default_branch=default,
                          title=pr.get("title", ""), body=pr.get("body") or "", ci=ci)
        await start_run(gh, deps, run_id=f.delivery_id, number=number,
                        installation_id=f.installation_id, decision=decision, ctx=ctx)
        return
    if f.head_branch != default:
        log.info("CI failure %s on branch %s without a pull request: not investigated", f.name, f.head_branch)
        return
    if (why := await _not_on_default(f, gh, default)) is not None:
        log.info("CI failure %s named branch %s without a pull request but %s: not investigated", clip(f.name),
                 clip(default), clip(why, 200))
        return
    got, readings, context = await _gather(f, gh, default)
    job, signature, title, body = issue_text(f, readings, context, got.missing)
    issue, created = await create_issue_once(gh, deps.store, repo=f.repo, mark=marker("ci", digest(f.repo, signature)),
                                             title=title, body=body, labels=["ci-failure"], bot_login=deps.bot_login)
    checks = got.checks + ([(f.name, f.app_slug)] if f.source == "check_run" else [])
    await _remember_failure(deps, f, checks, int(issue.number or 0))
    seen = marker("ci-seen", digest(f.repo, signature, f.head_sha))  # this failure at this commit
    opened_by = marker("ci-opened-by", f.delivery_id)
    if created:
        await deps.store.remember_posted(Posted(marker=opened_by, repo=f.repo, kind="seen", github_id=0))
    elif await deps.store.find_posted(opened_by) is not None:
        created = True  # this delivery opened the issue, then failed before its run started: start it now
    if not created:
        if await deps.store.find_posted(seen) is None:  # not the same failure reported by another event source
            await upsert_comment(gh, deps.store, repo=f.repo, number=int(issue.number or 0), bot_login=deps.bot_login,
                                 mark=marker("ci-repeat", digest(signature, f.head_sha)),
                                 body=render.ci_repeat(job, f.head_sha, f.details_url))
            await deps.store.remember_posted(Posted(marker=seen, repo=f.repo, kind="seen", github_id=0))
        return
    await deps.store.remember_posted(Posted(marker=seen, repo=f.repo, kind="seen", github_id=0))
    ctx = run_context(f.repo, issue.number, head_sha=f.head_sha, default_branch=default, title=title, body=body, ci=ci)
    await start_run(gh, deps, run_id=f.delivery_id, number=int(issue.number or 0),
                    installation_id=f.installation_id, decision=decision, ctx=ctx)
