"""How one repository sees the bot: the shipped catalog with its own agents and config applied.

Both come from the default branch (never a pull request's head, which anyone can write) and are
cached for five minutes per repository, so a busy repository costs a few reads, not a few per event.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass

from cachetools import TTLCache
from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot import config
from bot.catalog import Catalog, with_repo_agents

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepoView:
    catalog: Catalog
    config: config.RepoConfig
    errors: tuple[str, ...] = ()  # a broken config file: the bot runs on defaults and says so once
    config_digest: str = ""


async def _agent_files(gh: GitHubAPI, repo: str, branch: str) -> dict[str, str]:
    """A repository's own `.claude/agents/*.md` (Claude Code's subagent files)."""
    try:
        listing = await gh.getitem(f"/repos/{repo}/contents/.claude/agents?ref={branch}")
    except BadRequest as exc:
        if exc.status_code == 404:
            return {}
        raise
    files: dict[str, str] = {}
    for entry in listing if isinstance(listing, list) else []:
        if entry.get("type") == "file" and str(entry.get("name", "")).endswith(".md") and len(files) < 50:
            item = await gh.getitem(f"/repos/{repo}/contents/{entry['path']}?ref={branch}")
            files[entry["path"]] = base64.b64decode(item.get("content") or "").decode("utf-8", "replace")
    return files


class RepoViews:
    def __init__(self, catalog: Catalog, *, ttl: float = 300.0) -> None:
        self.catalog = catalog
        self._cache: TTLCache[tuple[str, str], RepoView] = TTLCache(maxsize=1024, ttl=ttl)

    async def get(self, gh: GitHubAPI, repo: str, branch: str) -> RepoView:
        key = (repo, branch)
        if key not in self._cache:
            self._cache[key] = await self._load(gh, repo, branch)
        return self._cache[key]

    async def _load(self, gh: GitHubAPI, repo: str, branch: str) -> RepoView:
        catalog = self.catalog
        files = await _agent_files(gh, repo, branch)
        if files:
            catalog, problems = with_repo_agents(catalog, files)
            for problem in problems:
                log.warning("%s: %s", repo, problem)
        found = await config.fetch(gh, repo, branch)
        if found is None:
            return RepoView(catalog=catalog, config=config.RepoConfig())
        source, text = found
        cfg, errors = config.parse(text, known_workflows=set(catalog.workflows), source=source)
        digest = hashlib.sha1(text.encode()).hexdigest()[:16]
        return RepoView(catalog=config.apply_to_catalog(catalog, cfg), config=cfg, errors=tuple(errors),
                        config_digest=digest)
