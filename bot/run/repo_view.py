"""How one repository sees the bot: the shipped catalog with its own agents and config applied.

Both come from the default branch (never a pull request's head, which anyone can write) and are
cached for five minutes per repository, so a busy repository costs a few reads, not a few per event.

Every read is optional: whatever shape GitHub's answer takes (a directory, a link, a submodule, content
that will not decode, a file too large for the contents API), the bot goes on and says what it could not
read. An unreadable or invalid config never loosens the bot: it keeps the repository's last config that
could be read, or, with none, runs in dry-run (its status comment only).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from cachetools import TTLCache
from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.core import config
from bot.core.catalog import Catalog, with_repo_agents
from bot.github.contents import FileText, Unreadable, list_dir, read_file
from bot.github.writes import digest
from bot.store import Store

log = logging.getLogger(__name__)

AGENTS_DIR = ".claude/agents"
MAX_AGENT_FILES = 50


@dataclass(frozen=True)
class RepoView:
    catalog: Catalog
    config: config.RepoConfig
    errors: tuple[str, ...] = ()  # what could not be read or used: said once, on an issue
    config_digest: str = ""  # names this set of problems (one issue per distinct set)
    fallback: str = ""  # what the bot runs on instead of a config it could not use; "" = that config


async def _agent_files(gh: GitHubAPI, repo: str, branch: str) -> tuple[dict[str, str], list[str]]:
    """A repository's own `.claude/agents/*.md` (Claude Code's subagent files), and what could not be read."""
    listing = await list_dir(gh, repo, AGENTS_DIR, branch)
    if isinstance(listing, Unreadable):
        return {}, [f"{AGENTS_DIR}: {listing.reason}; the shipped agents apply"]
    files: dict[str, str] = {}
    problems: list[str] = []
    wanted = [e for e in listing if e["name"].endswith(".md") and e.get("type") in (None, "file", "symlink")]
    for n, entry in enumerate(wanted):
        if n >= MAX_AGENT_FILES:  # every file read counts, readable or not
            problems.append(f"{AGENTS_DIR}: more than {MAX_AGENT_FILES} agent files; the rest are ignored")
            break
        found = await read_file(gh, repo, entry["path"], branch)
        if isinstance(found, Unreadable):
            problems.append(f"{entry['path']}: {found.reason}; file ignored")
        elif found is not None:
            files[entry["path"]] = found.text
    return files, problems


class RepoViews:
    def __init__(self, catalog: Catalog, store: Store, *, ttl: float = 300.0) -> None:
        self.catalog = catalog
        self.store = store
        self._cache: TTLCache[tuple[str, str], RepoView] = TTLCache(maxsize=1024, ttl=ttl)
        # A load in progress, shared by every job that needs the same view meanwhile: a burst of deliveries on one
        # repository would otherwise read its config and agent files once per job that started before the first
        # read came back (issue 16: GitHub reads per run).
        self._loading: dict[tuple[str, str], asyncio.Future[RepoView]] = {}

    async def get(self, gh: GitHubAPI, repo: str, branch: str) -> RepoView:
        key = (repo, branch)
        view = self._cache.get(key)
        if view is not None:
            return view
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = asyncio.ensure_future(self._load(gh, repo, branch))
            loading.add_done_callback(lambda done: self._loaded(key, done))
        # Shielded: a caller cancelled (its job stopped) leaves the load to the others waiting for it.
        return await asyncio.shield(loading)

    def _loaded(self, key: tuple[str, str], done: asyncio.Future[RepoView]) -> None:
        if self._loading.get(key) is done:
            del self._loading[key]
        if not done.cancelled() and done.exception() is None:  # a failed load is not kept: the next job tries
            self._cache[key] = done.result()

    async def _load(self, gh: GitHubAPI, repo: str, branch: str) -> RepoView:
        catalog = self.catalog
        files, problems = await _agent_files(gh, repo, branch)
        if files:
            catalog, agent_errors = with_repo_agents(catalog, files)
            problems += agent_errors
            for problem in agent_errors:
                log.warning("%s: %s", repo, problem)
        source = await fetch_config(gh, repo, branch)
        if source is None:
            return RepoView(catalog, config.RepoConfig(), tuple(problems), digest(*problems) if problems else "")
        errors = [source.problem] if source.problem else []
        if source.text is not None:
            cfg, errors = config.parse(source.text, known_workflows=set(catalog.workflows), source=source.name)
            if not errors:
                await self.store.save_config(repo, source.name, source.text)
                return RepoView(config.apply_to_catalog(catalog, cfg), cfg, tuple(problems),
                                digest(source.text, *problems) if problems else "")
        cfg, fallback = await self._fallback(repo, catalog)
        errors += problems
        return RepoView(config.apply_to_catalog(catalog, cfg), cfg, tuple(errors), digest(*errors), fallback)

    async def _fallback(self, repo: str, catalog: Catalog) -> tuple[config.RepoConfig, str]:
        """The config to use when the repository's cannot be: its last good one, else dry-run."""
        last = await self.store.last_config(repo)
        if last is not None:
            cfg, bad = config.parse(last[1], known_workflows=set(catalog.workflows), source=last[0])
            if not bad:
                return cfg, "the last configuration of this repository that could be read"
        # Lockdown on too: whether the file asked for it cannot be known, and outsiders' runs cost money.
        return config.RepoConfig(dry_run=True, lockdown=True, source="dry run: no usable configuration"), \
            "dry-run (it posts only its status comment) until the file can be read"


# ---- the config file ---------------------------------------------------------------------------

async def _read(gh: GitHubAPI, repo: str, ref: str | None = None) -> FileText | Unreadable | None:
    return await read_file(gh, repo, config.PATH, ref)


async def _read_org(gh: GitHubAPI, owner: str) -> FileText | Unreadable | None:
    """The organisation's file; an organisation ``.github`` repository the App cannot see (GitHub answers 403
    or 404 for those) has no file for it."""
    try:
        return await _read(gh, f"{owner}/.github")
    except BadRequest as exc:
        if exc.status_code == 403:
            return None
        raise


async def fetch_config(gh: GitHubAPI, repo: str, default_branch: str) -> config.Source | None:
    """The config that applies: the repository's, else its organisation's; None when neither has one."""
    found = await _read(gh, repo, default_branch)
    name = f"{repo}:{config.PATH}"
    owner = repo.split("/")[0]
    if found is None and repo.lower() != f"{owner}/.github".lower():
        found = await _read_org(gh, owner)
        name = f"{owner}/.github:{config.PATH}"
    if found is None:
        return None
    if isinstance(found, Unreadable):
        return config.Source(name, None, f"{name} could not be read: {found.reason}")
    return config.Source(name, found.text)


async def read_config_at(gh: GitHubAPI, repo: str, ref: str) -> FileText | Unreadable | None:
    """The config file as a pull request's head has it (for the PR's config check, never for acting)."""
    return await _read(gh, repo, ref)
