"""CI failures: on a pull request a run investigates it; on the default branch one issue per distinct failure.

A failure counts as the default branch's only when its commit is on that branch. A fork's run arrives without
pull requests (GitHub lists none for a fork) and names the fork's branch, often called like ours: taken at its
word, it would open an issue here and start a run whose change is built on the fork's commit.
"""

from __future__ import annotations

import logging
import re

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.core import engine, events, render, triage
from bot.core.markers import marker
from bot.github.changes import on_branch
from bot.github.writes import create_issue_once, digest, upsert_comment
from bot.logs import clip
from bot.run.runs import Deps, resume, start_run
from bot.run.state import CiRef, run_context
from bot.store import Posted

log = logging.getLogger(__name__)


_NOISE = [(re.compile(r"\b[0-9a-f]{7,40}\b"), "<sha>"), (re.compile(r"\d+(\.\d+)?"), "<n>"),
          (re.compile(r"/tmp/\S+|/home/\S+"), "<path>"), (re.compile(r"\s+"), " ")]


def normalise(line: str) -> str:
    """The first error with run-specific noise (numbers, shas, temp paths) removed: the failure's signature."""
    out = line.strip().lower()
    for pattern, repl in _NOISE:
        out = pattern.sub(repl, out)
    return out[:200]


async def _first_error(f: events.CiFailure, gh: GitHubAPI) -> tuple[str, str]:
    """(the failing job's name, its first error). A GitHub Actions failure arrives as a check run per job,
    a check suite and a workflow run: all are read from the failing job's log, so they share a signature."""
    from bot.agents.logs import failures

    name, text = f.name, f.summary
    if f.source == "check_run" and f.app_slug == "github-actions":
        try:
            text = str(await gh.getitem(f"/repos/{f.repo}/actions/jobs/{f.ci_id}/logs"))  # job id = check run id
        except BadRequest as exc:  # logs expire (90 days by default) or are not readable: use the output
            if exc.status_code not in (404, 410):
                raise
            text = ""
    if f.source == "check_run" and not text.strip():
        run = await gh.getitem(f"/repos/{f.repo}/check-runs/{f.ci_id}")
        out = run.get("output") or {}
        text = "\n".join(str(out.get(k) or "") for k in ("title", "summary", "text"))
    elif f.source == "workflow_run":
        jobs = await gh.getitem(f"/repos/{f.repo}/actions/runs/{f.ci_id}/jobs")
        failed = [j for j in jobs.get("jobs", []) if j.get("conclusion") in events.CI_FAILED]
        if failed:
            name = str(failed[0].get("name") or name)
            text = str(await gh.getitem(f"/repos/{f.repo}/actions/jobs/{failed[0]['id']}/logs"))
    found = failures(text or "")
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return name, (found.errors or found.tests or lines or [f"{f.conclusion}"])[0]


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
    job, first = await _first_error(f, gh)
    signature = f"{job}: {normalise(first)}"
    title, body = render.ci_failure_issue(job, signature, first, f.head_sha, f.details_url)
    issue, created = await create_issue_once(gh, deps.store, repo=f.repo, mark=marker("ci", digest(f.repo, signature)),
                                             title=title, body=body, labels=["ci-failure"], bot_login=deps.bot_login)
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
