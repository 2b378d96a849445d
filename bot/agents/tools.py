"""The agents' read-only tools: GitHub reads on the run's one repository, bounded and fenced.

Agents never write to GitHub; the executor does, after the engine decides. Every tool stays inside
the repository the run is about (search qualifiers naming other repositories are dropped), so a
prompt-injected model cannot read another repository of the installation and leak it here.
Results are cut to ``max_bytes`` and wrapped as untrusted data; a failed call becomes an error
result the model can read, never an exception.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp
import gidgethub
import gidgethub.abc

from bot.agents import logs
from bot.agents.request import RepoOverview
from bot.core.ci_output.reports import useful_annotations
from bot.core.sanitize import fence

log = logging.getLogger(__name__)
FAILED = ("failure", "timed_out", "cancelled", "action_required", "startup_failure")
_SCOPE_QUALIFIER = re.compile(r"(?i)(?:^|\s)-?(?:repo|org|user|owner):\S+")


class ToolError(Exception):
    """A tool call the model got wrong (bad arguments); the message is shown to the model."""


def bound(text: str, max_bytes: int) -> str:
    """`text` cut to `max_bytes` UTF-8 bytes, with a note saying how much was left out."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", "ignore") + f"\n[truncated: {len(data) - max_bytes} more bytes]"


class RepoReader:
    """Raw read-only GitHub calls on one repository, for the tools and the offline backend."""

    def __init__(self, gh: gidgethub.abc.GitHubAPI, repo: str) -> None:
        self.gh = gh
        self.repo = repo
        self.owner, _, self.name = repo.partition("/")

    async def get(self, template: str, /, **params: Any) -> Any:
        """GET ``/repos/{owner}/{repo}`` + `template` (a URI template), with `params` as its variables."""
        url_vars = {"owner": self.owner, "repo": self.name, **{k: v for k, v in params.items() if v is not None}}
        return await self.gh.getitem("/repos/{owner}/{repo}" + template, url_vars=url_vars)

    async def issue(self, number: int) -> dict:
        return await self.get("/issues/{number}", number=number)

    async def comments(self, number: int) -> list[dict]:
        return await self.get("/issues/{number}/comments{?per_page}", number=number, per_page=100)

    async def pull(self, number: int) -> dict:
        return await self.get("/pulls/{number}", number=number)

    async def pull_files(self, number: int) -> list[dict]:
        """Every changed file of a pull request, all pages (GitHub lists at most 3,000; a verdict that only saw
        the first page would miss a credential in file 101)."""
        url_vars: dict[str, str | int] = {"owner": self.owner, "repo": self.name, "number": number, "per_page": 100}
        return [f async for f in self.gh.getiter("/repos/{owner}/{repo}/pulls/{number}/files{?per_page}",
                                                  url_vars=url_vars)]

    async def contents(self, path: str, ref: str | None = None) -> Any:
        return await self.get("/contents/{+path}{?ref}", path=path.strip("/"), ref=ref or None)

    async def check_run(self, check_run_id: int) -> dict:
        return await self.get("/check-runs/{id}", id=check_run_id)

    async def annotations(self, check_run_id: int) -> list[dict]:
        return await self.get("/check-runs/{id}/annotations{?per_page}", id=check_run_id, per_page=50)

    async def suite_runs(self, check_suite_id: int) -> list[dict]:
        found = await self.get("/check-suites/{id}/check-runs{?per_page}", id=check_suite_id, per_page=100)
        return found["check_runs"]

    async def commit_runs(self, sha: str) -> list[dict]:
        return (await self.get("/commits/{sha}/check-runs{?per_page}", sha=sha, per_page=100))["check_runs"]

    async def run_jobs(self, run_id: int) -> list[dict]:
        return (await self.get("/actions/runs/{id}/jobs{?per_page}", id=run_id, per_page=100))["jobs"]

    async def job_log(self, job_id: int) -> str:
        """A job's full log (GitHub answers with a redirect to a plain-text download)."""
        text = await self.get("/actions/jobs/{id}/logs", id=job_id)
        return text if isinstance(text, str) else ""

    async def failed_job_logs(self, run_id: int | None = None, job_id: int | None = None) -> list[tuple[str, str]]:
        """(job name, full log) of one job, or of a workflow run's failed jobs (all jobs if none failed)."""
        if job_id is not None:
            return [(f"job {job_id}", await self.job_log(job_id))]
        if run_id is None:
            raise ToolError("give run_id or job_id")
        jobs = await self.run_jobs(run_id)
        chosen = [j for j in jobs if j.get("conclusion") in FAILED] or jobs
        return [(j.get("name") or f"job {j['id']}", await self.job_log(j["id"])) for j in chosen[:5]]

    async def commits(self, path: str | None = None, sha: str | None = None, per_page: int = 20) -> list[dict]:
        return await self.get("/commits{?path,sha,per_page}", path=path or None, sha=sha or None, per_page=per_page)

    async def search_issues(self, query: str, per_page: int = 10) -> dict:
        q = f"repo:{self.repo} {_SCOPE_QUALIFIER.sub(' ', query).strip()}"
        return await self.gh.getitem("/search/issues{?q,per_page}", url_vars={"q": q, "per_page": per_page})

    async def tree(self, ref: str) -> dict:
        """Every path of the repository at ``ref`` (a commit sha or branch), in one read."""
        return await self.get("/git/trees/{sha}{?recursive}", sha=ref, recursive=1)

    async def search_code(self, query: str, per_page: int = 20) -> dict:
        q = f"{_SCOPE_QUALIFIER.sub(' ', query).strip()} repo:{self.repo}"
        return await self.gh.getitem("/search/code{?q,per_page}", url_vars={"q": q, "per_page": per_page})


# ---------------------------------------------------------------- formatting

def _decode(entry: dict) -> str:
    if entry.get("encoding") != "base64" or entry.get("content") is None:
        return f"[{entry.get('path')}: {entry.get('size', 0)} bytes, too large for the contents API]"
    try:
        data = base64.b64decode(entry["content"])
        return data.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return f"[{entry.get('path')}: binary file, {entry.get('size', 0)} bytes]"


def _listing(entries: list[dict]) -> str:
    return "\n".join(f"{e.get('type', 'file'):4} {e.get('path')}" + (f"  ({e['size']} bytes)" if e.get("type") == "file"
                     else "") for e in entries) or "(empty directory)"


def format_issue(issue: dict, comments: Iterable[dict] = ()) -> str:
    kind = "Pull request" if "pull_request" in issue else "Issue"
    labels = ", ".join(lab.get("name", "") for lab in issue.get("labels") or [])
    head = (f"{kind} #{issue.get('number')} [{issue.get('state')}] {issue.get('title')}\n"
            f"by {(issue.get('user') or {}).get('login')}; labels: {labels or 'none'}\n\n{issue.get('body') or ''}")
    parts = [f"--- comment {c.get('id')} by {(c.get('user') or {}).get('login')} at {c.get('created_at')}\n"
             f"{c.get('body') or ''}" for c in comments]
    return "\n\n".join([head, *parts])


def format_files(files: Iterable[dict]) -> str:
    return "\n\n".join(f"{f.get('filename')} ({f.get('status')}, +{f.get('additions', 0)} -{f.get('deletions', 0)})\n"
                       f"{f.get('patch') or '[no patch: binary or too large]'}" for f in files) or "(no files)"


def first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0]


def format_commits(commits: Iterable[dict]) -> str:
    return "\n".join(f"{c['sha'][:10]} {c['commit']['committer'].get('date', '')} "
                     f"{c['commit']['author'].get('name', '')}: {first_line(c['commit']['message'])}"
                     for c in commits) or "(no commits)"


# ---------------------------------------------------------------- the tools

def _schema(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": False}


_NUM = {"type": "integer", "minimum": 1}
_REF = {"type": "string", "description": "branch, tag or commit sha; default: the commit this run works on"}
DEFINITIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "read_file": ("Read a text file of the repository.",
                  _schema({"path": {"type": "string"}, "ref": _REF}, ("path",))),
    "list_directory": ("List a directory of the repository ('' for the root).",
                       _schema({"path": {"type": "string"}, "ref": _REF})),
    "search_code": ("Search the repository's code on its default branch (GitHub code search syntax).",
                    _schema({"query": {"type": "string"}}, ("query",))),
    "get_issue": ("Read an issue or pull request of the repository, with its comments.",
                  _schema({"number": _NUM}, ("number",))),
    "get_pull_request": ("Read a pull request: title, body, branches, state and size.",
                         _schema({"number": _NUM}, ("number",))),
    "get_pull_files": ("List a pull request's changed files with their diffs.",
                       _schema({"number": _NUM}, ("number",))),
    "get_check_output": ("Read a check run's output and annotations.",
                         _schema({"check_run_id": _NUM}, ("check_run_id",))),
    "get_job_log": ("The failing part of a GitHub Actions log: give a workflow run_id (its failed jobs) "
                    "or a job_id (also a check run id).", _schema({"run_id": _NUM, "job_id": _NUM})),
    "list_commits": ("Recent commits, newest first (from the commit this run works on, or from `sha`), "
                     "optionally only those touching a path.",
                     _schema({"path": {"type": "string"}, "sha": {"type": "string"}})),
    "find_related_issues": ("Search the repository's issues and pull requests (GitHub issue search syntax).",
                            _schema({"query": {"type": "string"}}, ("query",))),
}


class Tools:
    """The tools one agent may use (its ``tools`` front matter), as API definitions and callables."""

    def __init__(self, reader: RepoReader, allowed: Iterable[str], max_bytes: int = 20_000,
                 pinned: str | None = None, pull: int | None = None) -> None:
        self.reader = reader
        self.names = tuple(n for n in dict.fromkeys(allowed) if n in DEFINITIONS)
        self.max_bytes = max_bytes
        # The run's commit: reads default to it, so a change is computed on the code it will be committed on,
        # never on a branch that moved meanwhile.
        self.pinned = pinned
        self.pull = pull  # the pull request the run is about: its diff is read at the pinned commit

    def definitions(self) -> list[dict[str, Any]]:
        """This agent's tool definitions for the Messages API, in a stable order."""
        return [{"name": n, "description": DEFINITIONS[n][0], "input_schema": DEFINITIONS[n][1]} for n in self.names]

    def all_definitions(self) -> list[dict[str, Any]]:
        """Every tool's definition, the same for every agent: tools open the cached prefix, so one list lets
        all specialists of a run share it. :meth:`call` still refuses a tool the agent may not use."""
        if not self.names:
            return []
        return [{"name": n, "description": DEFINITIONS[n][0], "input_schema": DEFINITIONS[n][1]} for n in DEFINITIONS]

    async def call(self, name: str, args: dict[str, Any]) -> tuple[str, bool]:
        """(fenced, bounded text, is_error) for one tool call."""
        label = f"{name} {json.dumps(args, sort_keys=True)[:100]}"
        if name not in self.names:
            return f"{name!r} is not one of your tools; you may use: {', '.join(self.names) or 'none'}", True
        handler: Callable[..., Awaitable[str]] = getattr(self, f"_{name}")
        try:
            text = await handler(**args)
        except gidgethub.HTTPException as e:
            return f"{name} failed: GitHub answered {int(e.status_code)} ({str(e)[:200] or 'no message'})", True
        except (ToolError, TypeError, ValueError, KeyError) as e:
            return f"{name} failed: {str(e)[:300]}", True
        except (TimeoutError, aiohttp.ClientError) as e:
            return f"{name} failed: GitHub could not be reached ({type(e).__name__})", True
        return fence(label, bound(text, self.max_bytes)), False

    async def _read_file(self, path: str, ref: str | None = None) -> str:
        data = await self.reader.contents(path, ref or self.pinned)
        if isinstance(data, list):
            return f"{path} is a directory:\n{_listing(data)}"
        return _decode(data)

    async def _list_directory(self, path: str = "", ref: str | None = None) -> str:
        data = await self.reader.contents(path, ref or self.pinned)
        return _listing(data) if isinstance(data, list) else f"{path} is a file ({data.get('size', 0)} bytes)"

    async def _search_code(self, query: str) -> str:
        found = await self.reader.search_code(query)
        items = found.get("items") or []
        return "\n".join(i.get("path", "") for i in items) or "no matches"

    async def _get_issue(self, number: int) -> str:
        issue, comments = await asyncio.gather(self.reader.issue(number), self.reader.comments(number))
        return format_issue(issue, comments)

    async def _get_pull_request(self, number: int) -> str:
        p = await self.reader.pull(number)
        state = f"{p.get('state')}{', draft' if p.get('draft') else ''}"
        return (f"Pull request #{p.get('number')} [{state}] {p.get('title')}\n"
                f"{p.get('head', {}).get('label')} ({p.get('head', {}).get('sha')}) -> {p.get('base', {}).get('ref')}\n"
                f"{p.get('changed_files', 0)} files, +{p.get('additions', 0)} -{p.get('deletions', 0)}, "
                f"{p.get('commits', 0)} commits, by {(p.get('user') or {}).get('login')}\n\n{p.get('body') or ''}")

    async def _get_pull_files(self, number: int) -> str:
        if number == self.pull and self.pinned:
            # The run's own pull request at the run's commit, whatever was pushed since: a review is of the head
            # its verdict names (GitHub's PR files are the three-dot comparison of its base with its head).
            pull = await self.reader.pull(number)
            found = await self.reader.get("/compare/{basehead}", basehead=f"{pull['base']['ref']}...{self.pinned}")
            return format_files(found.get("files") or [])
        return format_files(await self.reader.pull_files(number))

    async def _get_check_output(self, check_run_id: int) -> str:
        run, notes = await asyncio.gather(self.reader.check_run(check_run_id), self.reader.annotations(check_run_id))
        out = run.get("output") or {}
        lines = [f"Check run {run.get('id')} {run.get('name')!r}: {run.get('status')} / {run.get('conclusion')} "
                 f"on {run.get('head_sha')}", f"Title: {out.get('title') or ''}",
                 f"Summary:\n{out.get('summary') or ''}"]
        if out.get("text"):
            lines.append(f"Text:\n{logs.excerpt(out['text'])}")
        # The same annotations the one reader of CI output reads: the runner's exit-code trailer left out.
        lines += [f"{a.level}: {a.path}:{a.start_line} {a.title} {a.message}" for a in useful_annotations(notes)]
        return "\n".join(lines)

    async def _get_job_log(self, run_id: int | None = None, job_id: int | None = None) -> str:
        jobs = await self.reader.failed_job_logs(run_id, job_id)
        return "\n\n".join(f"=== {name} ===\n{logs.excerpt(text)}" for name, text in jobs) or "no jobs"

    async def _list_commits(self, path: str | None = None, sha: str | None = None) -> str:
        return format_commits(await self.reader.commits(path, sha or self.pinned))

    async def _find_related_issues(self, query: str) -> str:
        found = await self.reader.search_issues(query)
        return "\n".join(f"#{i['number']} [{i.get('state')}] {i.get('title')} ({i.get('html_url')})"
                         for i in found.get("items") or []) or "no matching issues"


# ---------------------------------------------------------------- the overview every step starts from

README_NAMES = ("readme.md", "readme.rst", "readme.txt", "readme")
CONTRIBUTING_DIRS = ("", ".github/", "docs/")  # where GitHub itself looks for CONTRIBUTING


def _find(paths: Iterable[str], names: Iterable[str], dirs: Iterable[str] = ("",)) -> str | None:
    """The first of ``dirs`` x ``names`` (any case, any extension for a name without one) among ``paths``."""
    by_lower = {p.lower(): p for p in paths}
    for d in dirs:
        for name in names:
            hit = by_lower.get(d + name) or next((p for low, p in by_lower.items() if "." not in name
                                                  and low.startswith(d + name + ".") and "/" not in low[len(d):]),
                                                 None)
            if hit:
                return hit
    return None


MAX_OVERVIEW_PATHS = 20_000


async def read_overview(reader: RepoReader, ref: str, max_bytes: int = 20_000) -> RepoOverview:
    """The repository's paths, README and CONTRIBUTING at ``ref``: one tree read and one read per file found."""
    tree = await reader.tree(ref)
    blobs = [e for e in tree.get("tree") or [] if e.get("type") == "blob"]
    paths = tuple(e["path"] for e in blobs)
    sizes = tuple(e["size"] if isinstance(e.get("size"), int) else 0 for e in blobs[:MAX_OVERVIEW_PATHS])
    wanted = [_find(paths, README_NAMES), _find(paths, ("contributing",), CONTRIBUTING_DIRS)]
    # An overview is kept per commit: a 100k-file tree would hold ~10 MiB each. The prompt shows a summary
    # bounded far below this anyway.
    cut = len(paths) > MAX_OVERVIEW_PATHS
    paths = paths[:MAX_OVERVIEW_PATHS]

    async def text(path: str | None) -> tuple[str, str] | None:
        return None if path is None else (path, bound(_decode(await reader.contents(path, ref)), max_bytes))

    readme, contributing = await asyncio.gather(*(text(p) for p in wanted))
    return RepoOverview(commit=ref, paths=paths, truncated=cut or bool(tree.get("truncated")),
                        readme=readme, contributing=contributing, sizes=sizes)


class OverviewCache:
    """Overviews by (repository, commit), most recent ``size`` kept. What a commit holds never changes, so every
    step of a run (and every run at the same commit) reads the tree, README and CONTRIBUTING once per process;
    a branch name moves, so an overview read by one is never kept."""

    def __init__(self, size: int = 64, max_bytes: int = 20_000) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._kept: OrderedDict[tuple[str, str], RepoOverview] = OrderedDict()
        self._reading: dict[tuple[str, str], asyncio.Future[RepoOverview | None]] = {}

    async def get(self, reader: RepoReader, ref: str | None, branch: str) -> RepoOverview | None:
        """The overview at ``ref`` (or ``branch``), or None when GitHub cannot give it: a step works without."""
        key = (reader.repo.lower(), ref or "")
        if (kept := self._kept.get(key)) is not None:  # only a commit's is ever kept
            self._kept.move_to_end(key)
            return kept
        if not ref:
            return await self._read(reader, ref, branch, key)
        # 200 runs started at one commit wait for one read rather than making 200.
        if (reading := self._reading.get(key)) is not None:
            return await asyncio.shield(reading)
        task = self._reading[key] = asyncio.ensure_future(self._read(reader, ref, branch, key))
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._reading.pop(key, None)
            else:
                task.add_done_callback(lambda _: self._reading.pop(key, None))

    async def _read(self, reader: RepoReader, ref: str | None, branch: str,
                    key: tuple[str, str]) -> RepoOverview | None:
        try:
            overview = await read_overview(reader, ref or branch, self.max_bytes)
        except (gidgethub.HTTPException, aiohttp.ClientError, TimeoutError, KeyError, TypeError) as e:
            log.warning("%s: no repository overview at %s (%r); the step starts without it", reader.repo,
                        ref or branch, e)
            return None
        if ref:
            self._kept[key] = overview
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return overview
