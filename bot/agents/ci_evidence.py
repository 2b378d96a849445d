"""What GitHub says about a failed check, read once for every path that reads CI failures (issue 15).

Structured data first: each failed job's check-run annotations and the workflow run's test-report artifacts
(JUnit XML), then the job log (its check run's output text when the log is gone). Then context: the same
workflow's last successful runs on the base (or default) branch give the same job's green logs (noise
templates) and the last green commit, one compare read gives the commits since it, and the same workflow's
latest run on the default branch says whether the job fails there too.

Every read is counted and bounded (:data:`MAX_JOBS` jobs, :data:`MAX_ARTIFACTS` downloads, :data:`MAX_GREEN_RUNS`
green runs, :data:`MAX_SUITE_PAGES` pages of a suite's runs, two compare pages; each download streamed under its
cap). A read GitHub refuses with 403, 404, 410 or 422 (an expired log or artifact, a deleted run, an unknown
commit) leaves that piece out and says so in ``missing``; a 5xx or a rate limit propagates, for a retry.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import gidgethub
from gidgethub import sansio

from bot.agents.tools import FAILED, RepoReader, first_line
from bot.core.ci_output.records import Annotation, Evidence, FailedCase
from bot.core.ci_output.reports import MAX_ARTIFACT_BYTES, cases_from_zip, is_report_artifact, useful_annotations

MAX_JOBS = 5  # failed jobs read per failure
MAX_ARTIFACTS = 2  # report artifacts downloaded per workflow run
MAX_GREEN_RUNS = 2  # green runs whose same-named job's log is read
MAX_SINCE_GREEN = 20  # commits since green kept, newest first
MAX_LOG_BYTES = 16 * 2**20  # of one job's log, its end kept
MAX_SUITE_PAGES = 3  # pages of 100 check runs read of one check suite
CHUNK = 64 * 2**10  # bytes read at a time from a download: memory holds the cap and one chunk, never the body
DEGRADED = frozenset({403, 404, 410, 422})  # this piece is missing; the rest is still worth reading
ACTIONS = "github-actions"  # the App whose check runs are jobs: its check run id is the job id


@dataclass(frozen=True)
class CiTarget:
    """The failed check as a run or handler knows it (``source``: check_run, check_suite or workflow_run)."""

    source: str
    id: int
    name: str
    head_sha: str
    summary: str = ""


@dataclass
class Gathered:
    """Evidence per failed job, the same jobs' latest failed run on the default branch (empty when it is green
    or unknown), the last green commit and the commits since it (newest first), and GitHub reads made.
    ``missing`` names each piece GitHub refused or a cap cut (logged once, and one line of the digest)."""

    evidence: list[Evidence] = field(default_factory=list)
    on_default: list[Evidence] = field(default_factory=list)
    green_sha: str | None = None
    since_green: list[tuple[str, str]] = field(default_factory=list)
    reads: int = 0
    missing: list[str] = field(default_factory=list)
    checks: list[tuple[str, str | None]] = field(default_factory=list)  # (check name, its App's slug) per job

    def log_missing(self, logger: logging.Logger, what: str) -> None:
        """One line for the operator: ERROR when a failed job's own log is gone (the reading is then thin),
        WARNING for any other piece."""
        if self.missing:
            gone = any(m.startswith("log of ") and "GitHub answered" in m for m in self.missing)
            logger.log(logging.ERROR if gone else logging.WARNING, "%s: %d piece(s) could not be read: %s", what,
                       len(self.missing), "; ".join(self.missing)[:1000])


@dataclass(frozen=True)
class _Job:
    """A failed job as found: its check run (for an Actions job also its job id), and what is known of it."""

    check_run: int
    name: str
    actions: bool
    output: str | None = None  # its check run's output text, when a read already gave it
    url: str | None = None
    app: str | None = None  # the slug of the App that created its check run


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _app(check_run: Mapping[str, Any]) -> str | None:
    return _str(_dict(check_run.get("app")).get("slug")) or None


def _failed(items: Any) -> list[dict[str, Any]]:
    """The failed ones of a listing of jobs or check runs; cancelled last: a matrix's fail-fast cancels the
    others, and those should not take the places of the jobs that failed."""
    return sorted((i for i in _dicts(items) if i.get("conclusion") in FAILED and _int(i.get("id")) is not None),
                  key=lambda i: i.get("conclusion") == "cancelled")


def _output_text(check_run: Mapping[str, Any]) -> str:
    out = _dict(check_run.get("output"))
    return "\n".join(t for t in (_str(out.get(k)) for k in ("title", "summary", "text")) if t)


class _Reads:
    """The reader, counting every read and turning a refused one into a missing piece."""

    def __init__(self, reader: RepoReader) -> None:
        self.reader, self.count = reader, 0
        self.missing: list[str] = []

    async def get(self, what: str, template: str, /, **params: Any) -> Any:
        return await self._get(what, template, params, note=True)  # None when GitHub refused this piece

    async def probe(self, what: str, template: str, /, **params: Any) -> Any:
        """:meth:`get` where a refusal is an answer (a check run that is not a job), not a missing piece."""
        return await self._get(what, template, params, note=False)

    async def _get(self, what: str, template: str, params: dict[str, Any], *, note: bool) -> Any:
        self.count += 1
        try:
            return await self.reader.get(template, **params)
        except gidgethub.BadRequest as e:
            self._refused(what, e, note)
            return None

    def _refused(self, what: str, e: gidgethub.BadRequest, note: bool = True) -> None:
        if isinstance(e, gidgethub.RateLimitExceeded) or int(e.status_code) not in DEGRADED:
            raise e
        if note:
            self.missing.append(f"{what}: GitHub answered {int(e.status_code)}")

    async def download(self, what: str, template: str, /, *, limit: int, tail: bool = False,
                       **params: Any) -> bytes | None:
        """The bytes behind GitHub's redirect (an artifact's zip, a job's log), or None when refused or (not
        `tail`) larger than `limit`; with `tail`, the last `limit` bytes of a larger body. gidgethub decodes
        every body as strict text (a zip, or a log with one invalid UTF-8 byte, would raise), so the request
        goes around it; a 5xx or a rate limit raises GitHub's error, for the job runner to retry."""
        self.count += 1
        gh = self.reader.gh
        url_vars = {"owner": self.reader.owner, "repo": self.reader.name, **params}
        url = sansio.format_url("/repos/{owner}/{repo}" + template, url_vars, base_url=gh.base_url)
        headers = sansio.create_headers(gh.requester, accept=sansio.accept_format(), oauth_token=gh.oauth_token)
        status, answer_headers, body, size = await _fetch(gh, url, headers, limit=limit, tail=tail)
        if status == 200:
            if size > limit:
                self.missing.append(f"{what}: {size} bytes, " + (f"only the last {limit} kept" if tail
                                                                   else f"over the {limit} cap"))
            return body if tail or size <= limit else None
        try:
            sansio.decipher_response(status, answer_headers, body)  # raises GitHub's error for this status
        except gidgethub.BadRequest as e:
            self._refused(what, e)
        return None


async def _fetch(gh: Any, url: str, headers: dict[str, str], *, limit: int,
                 tail: bool) -> tuple[int, Mapping[str, str], bytes, int]:
    """(status, headers, body, its size) of a GET holding at most `limit` bytes of the body (with `tail`, its
    end) and one chunk: over the cap, refused by its Content-Length unread, or by what arrives. Over aiohttp it
    streams, with our client's installation token; another gidgethub backend reads through ``_request``."""
    session = getattr(gh, "_session", None)
    if not isinstance(session, aiohttp.ClientSession):
        status, answer, body = await gh._request("GET", url, headers)
        return status, answer, (body[-limit:] if tail else body[:limit]), len(body)
    if (token := getattr(gh, "token", None)) is not None and "authorization" not in headers:
        headers = {**headers, "authorization": f"token {await token()}"}
    async with session.get(url, headers=headers) as resp:
        if resp.status != 200:  # an error's JSON: small, and read for its message
            return resp.status, resp.headers, await resp.content.read(CHUNK), 0
        if not tail and resp.content_length is not None and resp.content_length > limit:
            return 200, resp.headers, b"", resp.content_length
        chunks, held, size = deque[bytes](), 0, 0
        async for chunk in resp.content.iter_chunked(CHUNK):
            chunks.append(chunk)
            held, size = held + len(chunk), size + len(chunk)
            while tail and held - len(chunks[0]) >= limit:  # the oldest chunk is no longer in the last `limit`
                held -= len(chunks.popleft())
            if not tail and size > limit:
                return 200, resp.headers, b"", size
        return 200, resp.headers, b"".join(chunks)[-limit:], size  # not `tail`: all of it, within `limit`


# ---------------------------------------------------------------- the failed jobs

async def _from_check_run(reads: _Reads, target: CiTarget) -> tuple[list[_Job], int | None]:
    """An Actions check run is a job (its run id is one read away); another App's has only its output."""
    job = _dict(await reads.probe("job", "/actions/jobs/{id}", id=target.id))
    if job:
        return [_Job(target.id, _str(job.get("name")) or target.name, True, url=_str(job.get("html_url")) or None,
                     app=ACTIONS)], _int(job.get("run_id"))
    run = _dict(await reads.get("check run", "/check-runs/{id}", id=target.id))
    return [_Job(target.id, _str(run.get("name")) or target.name, False, _output_text(run),
                 _str(run.get("html_url")) or None, _app(run))], None


async def _suite_runs(reads: _Reads, suite_id: int) -> list[dict[str, Any]]:
    """The suite's check runs, 100 a page, at most :data:`MAX_SUITE_PAGES` pages (a matrix of 300 jobs)."""
    runs: list[dict[str, Any]] = []
    for page in range(1, MAX_SUITE_PAGES + 1):
        found = _dict(await reads.get("check suite's runs", "/check-suites/{id}/check-runs{?per_page,page}",
                                      id=suite_id, per_page=100, page=page))
        runs += (got := _dicts(found.get("check_runs")))
        if len(got) < 100 or len(runs) >= (_int(found.get("total_count")) or 0):
            break
    return runs


async def _from_suite(reads: _Reads, target: CiTarget) -> tuple[list[_Job], int | None]:
    jobs = [_Job(r["id"], _str(r.get("name")) or target.name, _app(r) == ACTIONS, _output_text(r),
                 _str(r.get("html_url")) or None, _app(r)) for r in _failed(await _suite_runs(reads, target.id))]
    if not any(j.actions for j in jobs):
        return jobs, None
    # An Actions check suite is one workflow run: found by the suite's id in one read.
    runs = _dict(await reads.get("workflow run", "/actions/runs{?check_suite_id,per_page}", check_suite_id=target.id,
                                 per_page=1))
    first = next(iter(_dicts(runs.get("workflow_runs"))), {})
    return jobs, _int(first.get("id"))


async def _run_jobs(reads: _Reads, run_id: int, what: str) -> list[dict[str, Any]]:
    found = _dict(await reads.get(what, "/actions/runs/{id}/jobs{?per_page}", id=run_id, per_page=100))
    return _dicts(found.get("jobs"))


async def _from_workflow_run(reads: _Reads, target: CiTarget) -> tuple[list[_Job], int | None]:
    jobs = await _run_jobs(reads, target.id, "workflow run's jobs")
    return [_Job(j["id"], _str(j.get("name")) or f"job {j['id']}", True, url=_str(j.get("html_url")) or None,
                 app=ACTIONS) for j in _failed(jobs)], target.id


async def _failed_jobs(reads: _Reads, target: CiTarget) -> tuple[list[_Job], int | None]:
    """The target's failed jobs (at most :data:`MAX_JOBS`) and its workflow run's id, if it has one."""
    if target.source == "workflow_run":
        jobs, run_id = await _from_workflow_run(reads, target)
    elif target.source == "check_suite":
        jobs, run_id = await _from_suite(reads, target)
    else:
        jobs, run_id = await _from_check_run(reads, target)
    return jobs[:MAX_JOBS], run_id


async def _log(reads: _Reads, job_id: int, what: str) -> str:
    """A job's log, at most its last :data:`MAX_LOG_BYTES` (where a failure ends); bytes that are not UTF-8
    (a test printing binary) are replaced, never a reason to lose the log."""
    data = await reads.download(what, "/actions/jobs/{id}/logs", limit=MAX_LOG_BYTES, tail=True, id=job_id)
    return "" if data is None else data.decode("utf-8", "replace")


async def _evidence(reads: _Reads, job: _Job) -> Evidence:
    """Annotations, then the log; the check run's output text stands in for a log that is gone or never was."""
    notes: tuple[Annotation, ...] = useful_annotations(await reads.get(
        f"annotations of {job.name}", "/check-runs/{id}/annotations{?per_page}", id=job.check_run, per_page=50))
    log = await _log(reads, job.check_run, f"log of {job.name}") if job.actions else ""
    if not log.strip():
        output = job.output
        if output is None:
            output = _output_text(_dict(await reads.get(f"check run {job.name}", "/check-runs/{id}", id=job.check_run)))
        log = output
    return Evidence(job=job.name, log=log, annotations=notes, log_url=job.url, check_id=job.check_run)


# ---------------------------------------------------------------- the workflow run's reports

def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9][a-z0-9.]*", text.lower()))


def _owner(artifact_name: str, evidence: list[Evidence]) -> int:
    """Which job a report belongs to: the one whose name's words the artifact's name holds, the most specific
    first (``test-results-3.12`` for ``test (3.12)``), else the first failed job."""
    words = _words(artifact_name)
    named = [(len(w), -i) for i, e in enumerate(evidence) if (w := _words(e.job)) and w <= words]
    return -max(named)[1] if named else 0


async def _with_reports(reads: _Reads, run_id: int, evidence: list[Evidence]) -> list[Evidence]:
    """`evidence` with the failed cases of the run's report-like artifacts (at most :data:`MAX_ARTIFACTS`)."""
    listing = _dict(await reads.get("artifacts", "/actions/runs/{id}/artifacts{?per_page}", id=run_id, per_page=100))
    chosen = [a for a in _dicts(listing.get("artifacts")) if is_report_artifact(a) and _int(a.get("id"))]
    out = list(evidence)
    for artifact in chosen[:MAX_ARTIFACTS]:
        name = _str(artifact.get("name"))
        data = await reads.download(  # the listing's size may be wrong: capped again, by what arrives
            f"artifact {name}", "/actions/artifacts/{id}/zip", limit=MAX_ARTIFACT_BYTES, id=artifact["id"])
        cases: tuple[FailedCase, ...] = cases_from_zip(data) if data else ()
        if data and not cases:
            reads.missing.append(f"artifact {name}: no failed case in a readable JUnit report")
        i = _owner(name, out)
        out[i] = dataclasses.replace(out[i], cases=out[i].cases + cases)
    return out


# ---------------------------------------------------------------- green runs and the default branch

async def _workflow_runs(reads: _Reads, workflow_id: int, branch: str, status: str, n: int) -> list[dict[str, Any]]:
    found = _dict(await reads.get(f"{status} runs on {branch}", "/actions/workflows/{id}/runs{?branch,status,per_page}",
                                  id=workflow_id, branch=branch, status=status, per_page=n))
    return _dicts(found.get("workflow_runs"))


async def _same_jobs_logs(reads: _Reads, run: Mapping[str, Any], names: list[str], conclusions: tuple[str, ...],
                          what: str) -> dict[str, str]:
    """{job name: log} of `run`'s jobs named in `names` that ended in one of `conclusions`."""
    run_id = _int(run.get("id"))
    if run_id is None:
        return {}
    jobs = {_str(j.get("name")): j for j in await _run_jobs(reads, run_id, f"jobs of {what} run {run_id}")
            if j.get("conclusion") in conclusions and _int(j.get("id")) is not None}
    return {name: await _log(reads, jobs[name]["id"], f"{what} log of {name}") for name in names if name in jobs}


async def _with_green_logs(reads: _Reads, green: list[dict[str, Any]], evidence: list[Evidence]) -> list[Evidence]:
    names = [e.job for e in evidence]
    logs: dict[str, tuple[str, ...]] = {}
    for run in green:  # the listing asked for MAX_GREEN_RUNS
        for name, text in (await _same_jobs_logs(reads, run, names, ("success",), "green")).items():
            logs[name] = logs.get(name, ()) + ((text,) if text.strip() else ())
    return [dataclasses.replace(e, green_logs=logs.get(e.job, ())) for e in evidence]


async def _since(reads: _Reads, green: str, head: str) -> list[tuple[str, str]]:
    """(sha, first line of message) of the commits after `green` up to `head`, newest first: a compare read of
    :data:`MAX_SINCE_GREEN` (GitHub lists them oldest first; when there are more, the last page too)."""
    basehead, per = f"{green}...{head}", MAX_SINCE_GREEN
    found = _dict(await reads.get("commits since green", "/compare/{basehead}{?per_page}", basehead=basehead,
                                  per_page=per))
    total = _int(found.get("total_commits")) or 0
    if total > per and len(_dicts(found.get("commits"))) < total:
        found = _dict(await reads.get("commits since green", "/compare/{basehead}{?per_page,page}",
                                      basehead=basehead, per_page=per, page=(total + per - 1) // per))
    commits = [c for c in _dicts(found.get("commits")) if _str(c.get("sha"))]
    return [(c["sha"], first_line(_str(_dict(c.get("commit")).get("message")))[:200])
            for c in reversed(commits)][:MAX_SINCE_GREEN]


async def _on_default(reads: _Reads, workflow_id: int, run_id: int, default_branch: str, names: list[str]) -> list[Evidence]:
    """The same jobs' logs from the workflow's latest completed run on the default branch, when they failed."""
    latest = next(iter(await _workflow_runs(reads, workflow_id, default_branch, "completed", 1)), {})
    if latest.get("conclusion") not in FAILED or _int(latest.get("id")) == run_id:
        return []
    logs = await _same_jobs_logs(reads, latest, names, FAILED, default_branch)
    return [Evidence(job=name, log=text) for name, text in logs.items()]


async def _context(reads: _Reads, run_id: int, head: str, evidence: list[Evidence], gathered: Gathered, *,
                   default_branch: str, base_ref: str | None) -> list[Evidence]:
    """Green logs, the last green commit, the commits since it, and the default branch's evidence."""
    run = _dict(await reads.get("workflow run", "/actions/runs/{id}", id=run_id))
    workflow_id = _int(run.get("workflow_id"))
    if workflow_id is None:
        return evidence
    green = await _workflow_runs(reads, workflow_id, base_ref or default_branch, "success", MAX_GREEN_RUNS)
    evidence = await _with_green_logs(reads, green, evidence)
    gathered.green_sha = (_str(green[0].get("head_sha")) or None) if green else None
    if gathered.green_sha and gathered.green_sha != head:
        gathered.since_green = await _since(reads, gathered.green_sha, head)
    # A failure on the default branch is itself what "also failing there" would report: not read twice.
    if _str(run.get("head_branch")) != default_branch:
        gathered.on_default = await _on_default(reads, workflow_id, run_id, default_branch, [e.job for e in evidence])
    return evidence


async def gather(reader: RepoReader, target: CiTarget, *, default_branch: str, base_ref: str | None = None) -> Gathered:
    """Everything worth reading about `target`, in a bounded number of reads (see the module's docstring)."""
    reads, gathered = _Reads(reader), Gathered()
    jobs, run_id = await _failed_jobs(reads, target)
    gathered.checks = [(j.name, j.app) for j in jobs]
    evidence = [await _evidence(reads, job) for job in jobs]
    if run_id is not None and evidence:
        evidence = await _with_reports(reads, run_id, evidence)
        evidence = await _context(reads, run_id, target.head_sha, evidence, gathered, default_branch=default_branch,
                                  base_ref=base_ref)
    gathered.evidence = evidence or [Evidence(job=target.name, log=target.summary)]
    gathered.reads, gathered.missing = reads.count, reads.missing
    return gathered


async def failed_checks(reader: RepoReader, target: CiTarget) -> list[tuple[str, str | None]]:
    """(check name, App slug) of the target's failed jobs as :func:`gather` finds them (a read or two)."""
    jobs, _ = await _failed_jobs(_Reads(reader), target)
    return [(j.name, j.app) for j in jobs]
