"""Per-repository config: ``.github/triage-lead.yml`` on the default branch, else the organisation's.

Probot's convention: a repository's own file wins; without one, the file of the same path in the
organisation's ``.github`` repository applies. Strictly validated — an unknown key or a wrong type is
an error naming the key — and a broken file never silences the bot: it runs on defaults and says so.
Parsing and validation are pure; ``fetch`` does the I/O.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI
from jsonschema import Draft202012Validator

from bot.github.contents import FileText, Unreadable, read_file

PATH = ".github/triage-lead.yml"
_NAME = {"type": "string", "pattern": "^[a-z0-9-]+$"}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "workflows": {"type": "array", "items": _NAME, "uniqueItems": True,
                      "description": "the workflows that may start; default all seven"},
        "labels": {"type": "object", "additionalProperties": _NAME, "description": "label → workflow, over the defaults"},
        "max_review_iterations": {"type": "integer", "minimum": 1, "maximum": 10},
        "budgets": {"type": "object", "additionalProperties": False,
                    "properties": {"run_tokens": {"type": "integer", "minimum": 1000},
                                   "day_tokens": {"type": "integer", "minimum": 1000}}},
        "models": {"type": "object", "additionalProperties": False,
                   "properties": {t: {"type": "string", "minLength": 1} for t in ("opus", "sonnet", "haiku")}},
        "protected_paths": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "escalation_mentions": {"type": "array", "items": {"type": "string", "pattern": r"^@?[A-Za-z0-9][A-Za-z0-9-]*(/[A-Za-z0-9_.-]+)?$"}},
        "dry_run": {"type": "boolean"},
        "approval": {"type": "object", "additionalProperties": False,
                     "properties": {"not_author": {"type": "boolean",
                                                   "description": "a PR's author may not approve the bot's change to it"}}},
    },
}
_VALIDATOR = Draft202012Validator(SCHEMA)


@dataclass(frozen=True)
class RepoConfig:
    workflows: tuple[str, ...] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    max_review_iterations: int | None = None
    run_tokens: int | None = None
    day_tokens: int | None = None
    models: Mapping[str, str] = field(default_factory=dict)
    protected_paths: tuple[str, ...] = ()
    escalation_mentions: tuple[str, ...] = ()
    dry_run: bool = False
    approval_not_author: bool = False
    source: str = "defaults"

    def protected(self, path: str) -> bool:
        """Whether implementers may not touch ``path`` (glob patterns; a trailing / means a folder).
        A path that climbs out of the repository (absolute, or through ..) is always protected."""
        norm = posixpath.normpath(path.replace("\\", "/"))
        if norm.startswith(("/", "../")) or norm == "..":
            return True
        return any(norm.startswith(p) if p.endswith("/") else fnmatch.fnmatchcase(norm, p) for p in self.protected_paths)

    def mention_line(self) -> str:
        return " ".join(m if m.startswith("@") else f"@{m}" for m in self.escalation_mentions) + (" " if self.escalation_mentions else "")


def parse(text: str, *, known_workflows: set[str], source: str = PATH) -> tuple[RepoConfig, list[str]]:
    """A config and its errors; with any error, the defaults (never a half-applied file)."""
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        return RepoConfig(), [f"{source}: not valid YAML{where}"]
    if data is None:
        data = {}
    errors = [f"{source}: {'.'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}"
              for e in sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))]
    if not errors:
        for key, names in (("workflows", data.get("workflows") or []), ("labels", (data.get("labels") or {}).values())):
            errors += [f"{source}: {key}: '{n}' is not a workflow (known: {', '.join(sorted(known_workflows))})"
                       for n in names if n not in known_workflows]
    if errors:
        return RepoConfig(), errors
    budgets = data.get("budgets") or {}
    return RepoConfig(
        workflows=tuple(data["workflows"]) if "workflows" in data else None,
        labels={str(k).lower(): v for k, v in (data.get("labels") or {}).items()},
        max_review_iterations=data.get("max_review_iterations"),
        run_tokens=budgets.get("run_tokens"), day_tokens=budgets.get("day_tokens"),
        models=dict(data.get("models") or {}),
        protected_paths=tuple(data.get("protected_paths") or ()),
        escalation_mentions=tuple(data.get("escalation_mentions") or ()),
        dry_run=bool(data.get("dry_run", False)),
        approval_not_author=bool((data.get("approval") or {}).get("not_author", False)),
        source=source,
    ), []


@dataclass(frozen=True, slots=True)
class Source:
    """The config file that applies to a repository: its text, or why it could not be read."""

    name: str  # "owner/repo:.github/triage-lead.yml"
    text: str | None
    problem: str | None = None


async def _read(gh: GitHubAPI, repo: str, ref: str | None = None) -> FileText | Unreadable | None:
    return await read_file(gh, repo, PATH, ref)


async def _read_org(gh: GitHubAPI, owner: str) -> FileText | Unreadable | None:
    """The organisation's file; an organisation ``.github`` repository the App cannot see (GitHub answers 403
    or 404 for those) has no file for it."""
    try:
        return await _read(gh, f"{owner}/.github")
    except BadRequest as exc:
        if exc.status_code == 403:
            return None
        raise


async def fetch(gh: GitHubAPI, repo: str, default_branch: str) -> Source | None:
    """The config that applies: the repository's, else its organisation's; None when neither has one."""
    found = await _read(gh, repo, default_branch)
    name = f"{repo}:{PATH}"
    owner = repo.split("/")[0]
    if found is None and repo.lower() != f"{owner}/.github".lower():
        found = await _read_org(gh, owner)
        name = f"{owner}/.github:{PATH}"
    if found is None:
        return None
    if isinstance(found, Unreadable):
        return Source(name, None, f"{name} could not be read: {found.reason}")
    return Source(name, found.text)


async def read_at(gh: GitHubAPI, repo: str, ref: str) -> FileText | Unreadable | None:
    """The config file as a pull request's head has it (for the PR's config check, never for acting)."""
    return await _read(gh, repo, ref)


def apply_to_catalog(catalog: Any, cfg: RepoConfig) -> Any:
    """The catalog as this repository sees it: its label map and review-iteration limit."""
    if not cfg.labels and cfg.max_review_iterations is None:
        return catalog
    triage = dict(catalog.triage)
    triage["labels"] = {**{k.lower(): v for k, v in (triage.get("labels") or {}).items()}, **cfg.labels}
    workflows = catalog.workflows
    if cfg.max_review_iterations is not None:
        workflows = {n: dataclasses.replace(w, max_rejections=cfg.max_review_iterations) for n, w in workflows.items()}
    return dataclasses.replace(catalog, triage=triage, workflows=workflows)
