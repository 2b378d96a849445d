"""Lockdown (``lockdown: true`` in a repository's config): the bot acts only for people with triage access or
more. Anyone else who opens an issue or pull request, or writes a command, gets one note per thread saying a
maintainer can start the bot with a label, and nothing else: no run, no reply, no review.

Who may act is asked of GitHub (the collaborator's role) when the delivery is handled, never read from the
payload's ``author_association``, which says nothing of triage access.
"""

from __future__ import annotations

import logging

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.core import render
from bot.core.config import RepoConfig
from bot.core.markers import marker
from bot.github.writes import digest, upsert_comment
from bot.run.runs import Deps

log = logging.getLogger(__name__)

MAY_ACT = frozenset({"admin", "maintain", "write", "triage"})


async def role_of(gh: GitHubAPI, repo: str, login: str) -> str:
    """The collaborator's role, asked of GitHub when the command runs (never author_association)."""
    try:
        data = await gh.getitem(f"/repos/{repo}/collaborators/{login}/permission")
    except BadRequest as exc:
        if exc.status_code in (403, 404):
            return "none"
        raise
    return str(data.get("role_name") or data.get("permission") or "none")


async def shuts_out(gh: GitHubAPI, deps: Deps, repo: str, number: int, login: str,
                    config: RepoConfig | None = None) -> bool:
    """Whether the repository is in lockdown and ``login`` may not start the bot there; if so, the note is
    posted on the thread unless this person had it there already. ``config``: the repository's, when the caller
    read it (else it is read here). Outside lockdown nobody's role is asked: /help and /status stay open to
    all at no cost, and a command's own permission check is the one read of the role."""
    if config is None:
        info = await gh.getitem(f"/repos/{repo}")
        config = (await deps.view(gh, repo, info.get("default_branch") or "main")).config
    if not config.lockdown or await role_of(gh, repo, login) in MAY_ACT:
        return False
    mark = marker("lockdown", repo, number, digest(login.lower()))
    if config.dry_run or await deps.store.find_posted(mark) is not None:
        log.info("%s#%s: lockdown: %s has no triage access; not acted on (told already or dry run)", repo, number,
                 login)
        return True
    log.info("%s#%s: lockdown: %s has no triage access; telling them once", repo, number, login)
    await upsert_comment(gh, deps.store, repo=repo, number=number, mark=mark, body=render.locked_down(login),
                         bot_login=deps.bot_login)
    return True
