"""The dashboard's board (issue 17, point 1), as read, not acted on: what the issue lists (the repository's runs and
failed jobs of this installation, bot/core/dashboard.py's lines), the ids its ticks carry and the records of them,
the repository's default branch (where its config is read) and whether that config has a dashboard.

bot/run/dashboard.py acts on it: the refresh that edits the issue, and the ticks people make there. Both read the
board and the tick records through this module, so neither half reaches into the other.
"""

from __future__ import annotations

import functools
from weakref import WeakKeyDictionary

from gidgethub.abc import GitHubAPI

from bot.core import config
from bot.core import dashboard as D
from bot.core.catalog import Catalog
from bot.core.config import RepoConfig
from bot.core.markers import marker
from bot.github.writes import digest
from bot.run.runs import Deps
from bot.run.state import RunState, unreadable
from bot.store import Job, RunRecord, Store

EDIT_WINDOW = 60.0  # seconds: one dashboard edit per repository in each
# A repository's default branch (where its config is read), as a delivery named it or GitHub last said, per running
# bot: kept this long, so a dashboard's refreshes and ticks do not each ask GitHub for it; a renamed default branch
# is seen within it.
BRANCH_TTL = 10 * EDIT_WINDOW
_BRANCHES: WeakKeyDictionary[Store, dict[str, tuple[str, float]]] = WeakKeyDictionary()


def mark_of(repo: str) -> str:
    """The dashboard issue's marker: the bot finds its own dashboard by it."""
    return marker("dashboard", repo)


def done_mark(repo: str, box: D.Box) -> str:
    """Recorded when the bot has acted on (or refused) a tick of ``box``, holding the tick's id: the next edit
    unticks the box if that is the box's latest tick."""
    return marker("box-done", repo, digest(box.key))


def tick_mark(repo: str, box: D.Box) -> str:
    """The id of the latest tick of ``box`` queued or refused (a box is ticked again only once it was unticked)."""
    return marker("box-tick", repo, digest(box.key))


def tick_id(delivery_id: str, box: D.Box) -> int:
    """A tick's id as the posted table holds it (a 60-bit number): its edit's delivery and its box."""
    return int(digest(delivery_id, box.key)[:15], 16)


@functools.lru_cache(maxsize=256)
def wants_dashboard(text: str, workflows: frozenset[str]) -> bool:
    """Whether a config file's text turns the dashboard on (cached: every job's refresh asks)."""
    return config.parse(text, known_workflows=set(workflows))[0].dashboard


def installation_of(job: Job) -> int | None:
    """The installation a job acts for (a delivery's, or a tick's): a repository's name can change hands (an
    account renamed, its name taken by another), so a job stored under the name is the dashboard's only if this
    is the dashboard's installation too."""
    p = job.payload
    installation = p.get("installation_id") or (p.get("installation") or {}).get("id")
    return installation if isinstance(installation, int) and not isinstance(installation, bool) else None


async def acted_on(deps: Deps, repo: str, box: D.Box) -> int | None:
    """The id of the tick of ``box`` the bot acted on, if it is the box's latest (its ticked line is that tick's);
    None while the latest tick's job has not acted yet. A done record without a tick record (written before ticks
    were recorded) counts as the latest."""
    done = await deps.store.find_posted(done_mark(repo, box))
    if done is None:
        return None
    latest = await deps.store.find_posted(tick_mark(repo, box))
    return done.github_id if latest is None or latest.github_id == done.github_id else None


def named(deps: Deps, repo: str, branch: str | None) -> None:
    """The default branch a delivery named: taken at once (a renamed one too), and kept for ``BRANCH_TTL``."""
    if branch:
        _BRANCHES.setdefault(deps.store, {})[repo] = (branch, deps.clock())


async def branch_of(gh: GitHubAPI, deps: Deps, repo: str) -> str:
    """The repository's default branch: as a delivery named it or GitHub said within ``BRANCH_TTL``, else read."""
    known, now = _BRANCHES.setdefault(deps.store, {}), deps.clock()
    if repo in known and now - known[repo][1] < BRANCH_TTL:
        return known[repo][0]
    branch = str((await gh.getitem(f"/repos/{repo}")).get("default_branch") or "main")
    known[repo] = (branch, now)
    return branch


async def read_board(deps: Deps, repo: str, catalog: Catalog, cfg: RepoConfig, installation_id: int) -> D.Board:
    """What the dashboard lists now: this installation's unfinished runs and failed jobs on ``repo``."""
    runs = tuple(run_line(record, catalog) for record in await deps.store.active_runs(repo, installation_id))
    failed = tuple(D.FailedLine(info.job.id, number_of(info.job.thread), info.job.event, info.error or "")
                   for info in await deps.store.failed_jobs(limit=100, repo=repo)
                   if in_repo(info.job.thread, repo) and installation_of(info.job) == installation_id)
    return D.Board(runs=runs, failed=failed, not_author=cfg.approval_not_author)


def run_line(record: RunRecord, catalog: Catalog) -> D.RunLine:
    """A stored run as the dashboard shows it (one whose state cannot be read: as such, to be cancelled)."""
    if unreadable(record) is not None:
        return D.RunLine(record.id, record.number, "unreadable", workflow=record.workflow or "")
    state = RunState.open(record)
    run, wf = state.run, catalog.workflows.get(state.run.workflow)

    def title(step: str) -> str:
        return wf.step(step).title if wf is not None else step

    def agent(step: str) -> str:
        return run.steps[step].agent or (wf.step(step).agent if wf is not None else "")

    options = run.escalation["options"] if run.escalation else []
    return D.RunLine(record.id, record.number, run.state, run.workflow, state.data.ctx.title,
                     at_work=tuple((title(s), agent(s)) for s in run.running()),
                     waiting=next((title(s) for s, st in run.steps.items() if st.status == "waiting"), ""),
                     head=run.head_sha or "", options=tuple(str(o.get("title", "")) for o in options),
                     issue=str(run.escalation["issue"]) if run.escalation else "", decided=len(run.decisions))


def in_repo(thread: str, repo: str) -> bool:
    """Whether ``thread`` (``owner/name#N``, or a repository's own) is one of ``repo``'s."""
    return thread == repo or thread.startswith(f"{repo}#")


def number_of(thread: str) -> int | None:
    """The issue or pull request number of ``thread``; None for a repository's own thread."""
    tail = thread.rpartition("#")[2]
    return int(tail) if "#" in thread and tail.isdigit() else None
