"""GitHub's compare of two commits, read by one rule for every caller (the pull request's review, a run's
"what changed since").

GitHub's compare is three-dot: the files changed from the two commits' merge base to the head, so going back to an
ancestor it lists nothing, and ``status`` says which way the head lies (identical, ahead, behind, diverged). It lists
at most 300 files, without saying it cut the list: a list that long counts as unknown, never as complete.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from gidgethub import BadRequest, GitHubBroken
from gidgethub.abc import GitHubAPI

from bot.core import findings as F

log = logging.getLogger(__name__)

MAX_FILES = 300  # GitHub's cap on a compare's files


@dataclass(frozen=True)
class Comparison:
    """One compare, ``base...head``."""

    status: str  # identical | ahead | behind | diverged; "" when GitHub did not say
    files: frozenset[str] | None  # every file named, a renamed file's old name too; None: unknown (capped list)
    renames: dict[str, str] = field(default_factory=dict)  # name at base -> name at head

    @property
    def forward(self) -> bool:
        """Whether the head only adds commits to the base: then the three-dot list is every file that differs."""
        return self.status in ("ahead", "identical")


async def compare(gh: GitHubAPI, repo: str, base: str, head: str) -> Comparison | None:
    """GitHub's compare of ``base...head``; None when GitHub cannot compare them (a head dropped by a force-push, an
    unknown commit, or a 5xx after the client's retries): the caller decides what unknown means."""
    if base == head:
        return Comparison("identical", frozenset())
    try:
        diff = await gh.getitem(f"/repos/{repo}/compare/{base}...{head}")
    except (BadRequest, GitHubBroken) as exc:
        if isinstance(exc, BadRequest) and exc.status_code not in (404, 422):
            raise
        if isinstance(exc, GitHubBroken):  # a 404 or 422 is a commit GitHub does not know: nothing to report
            log.warning("%s: GitHub could not compare %s...%s (%s): read as unknown", repo, base[:12], head[:12], exc)
        return None
    listed = diff.get("files") if isinstance(diff, dict) else None
    status = str(diff.get("status") or "") if isinstance(diff, dict) else ""
    if not isinstance(listed, list) or len(listed) >= MAX_FILES:
        return Comparison(status, None)
    files = [f for f in listed if isinstance(f, dict)]
    return Comparison(status, frozenset(str(f[k]) for f in files for k in ("filename", "previous_filename")
                                        if f.get(k)), F.renames(files))


async def changed_between(gh: GitHubAPI, repo: str, was: str, now: str) -> tuple[set[str] | None, dict[str, str]]:
    """(the files that differ between two heads of a pull request or None if GitHub cannot say, name at ``was`` →
    name at ``now`` of those renamed). The compare is three-dot (from the merge base): when ``now`` is not simply
    ahead of ``was`` (back to an ancestor it lists nothing; it misses files only a dropped commit touched) it is
    asked the other way too."""
    there = await compare(gh, repo, was, now)
    if there is not None and there.forward:
        return (None if there.files is None else set(there.files)), there.renames
    back = await compare(gh, repo, now, was)
    moved = {new: old for old, new in (back.renames if back else {}).items()} | (there.renames if there else {})
    if there is None or back is None or there.files is None or back.files is None:
        return None, moved
    return set(there.files | back.files), moved
