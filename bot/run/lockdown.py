"""Lockdown (``lockdown: true`` in a repository's config): the bot acts only for people with triage access or
more. Anyone else who opens an issue or pull request, or writes a command, gets one note per thread saying a
maintainer can start the bot with a label, and nothing else: no run, no reply, no review, no check run.

Who may act is asked of GitHub (the collaborator's role) when the delivery is handled, never read from the
payload's ``author_association``, which says nothing of triage access. Deciding (:func:`locked_out`) and
telling (:func:`tell_once`) are apart: the caller decides first, and acts on the answer.
"""

from __future__ import annotations

import logging

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.core import events, render
from bot.core.config import RepoConfig
from bot.core.markers import marker
from bot.github.pacing import replying
from bot.github.writes import digest, upsert_comment
from bot.run.replies import repository_hour
from bot.run.runs import Deps

log = logging.getLogger(__name__)

MAY_ACT = frozenset({"admin", "maintain", "write", "triage"})
ROLES = MAY_ACT | {"read", "none"}  # GitHub's own role names
BASE_PERMISSIONS = frozenset({"admin", "write", "read", "none"})  # what ``permission`` says of any role


async def role_of(gh: GitHubAPI, repo: str, login: str) -> str:
    """The collaborator's role, asked of GitHub when the command runs (never author_association). A custom role
    (an organisation's own name) counts as the base permission GitHub gives with it: write, read, ..."""
    try:
        data = await gh.getitem(f"/repos/{repo}/collaborators/{login}/permission")
    except BadRequest as exc:
        if exc.status_code in (403, 404):
            return "none"
        raise
    role, base = data.get("role_name"), data.get("permission")
    if isinstance(role, str) and role in ROLES:
        return role
    return base if isinstance(base, str) and base in BASE_PERMISSIONS else "none"


async def locked_out(gh: GitHubAPI, repo: str, who: events.Actor, config: RepoConfig) -> bool:
    """Whether the repository is in lockdown and ``who`` may not start the bot there. Outside lockdown nobody's
    role is asked: /help and /status stay open to all, and a command's own permission check is its one read."""
    return config.lockdown and await role_of(gh, repo, who.login) not in MAY_ACT


async def config_of(gh: GitHubAPI, deps: Deps, repo: str, branch: str | None) -> RepoConfig:
    """The repository's config, from ``branch`` (the default branch the delivery named) or GitHub's answer."""
    branch = branch or (await gh.getitem(f"/repos/{repo}")).get("default_branch") or "main"
    return (await deps.view(gh, repo, branch)).config


async def tell_once(gh: GitHubAPI, deps: Deps, repo: str, number: int, who: events.Actor,
                    config: RepoConfig) -> None:
    """The note, once per person (by account id: a renamed login is the same person) per thread, within the
    repository's hourly ceiling on replies (a flood of new accounts meets it, then only log lines). Never to a
    bot account, and not in a dry run."""
    where = f"{repo}#{number}"
    mark = marker("lockdown", repo, number, digest(str(who.id) if who.id is not None else who.login.lower()))
    if who.is_bot or config.dry_run or await deps.store.find_posted(mark) is not None:
        log.info("%s: lockdown: %s has no triage access; not acted on (told already, a bot, or a dry run)", where,
                 who.login)
        return
    if (wait := await deps.store.take_slots([repository_hour(repo, deps.settings)], deps.clock())) > 0:
        log.warning("%s: lockdown: %s has no triage access; not told: the repository's hourly replies are spent "
                    "(one fits in %.0f s)", where, who.login, wait)
        return
    log.info("%s: lockdown: %s has no triage access; telling them once", where, who.login)
    with replying():
        await upsert_comment(gh, deps.store, repo=repo, number=number, mark=mark, body=render.locked_down(who.login),
                             bot_login=deps.bot_login)
