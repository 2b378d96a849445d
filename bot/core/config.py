"""Per-repository config: ``.github/triage-lead.yml`` on the default branch, else the organisation's.

Probot's convention: a repository's own file wins; without one, the file of the same path in the
organisation's ``.github`` repository applies. Strictly validated — an unknown key or a wrong type is
an error naming the key — and a broken file never silences the bot: it runs on defaults and says so.
Parsing and validation are pure; ``bot.run.repo_view`` reads the file.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from pathspec import GitIgnoreSpec

from bot.core.workflow import Catalog, Workflow

PATH = ".github/triage-lead.yml"
# Workflows, this config and the repository's agents: a change there changes what runs and who judges it.
DEFAULT_PROTECTED = (".github/", ".claude/")
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
        "protected_paths": {"type": "array", "items": {"type": "string", "minLength": 1},
                            "description": "gitignore patterns implementers may never change, over the defaults "
                                           "(.github/ and .claude/); a folder pattern (ending in /) matches at any "
                                           "depth unless it starts with /; case is ignored"},
        "allow_workflow_changes": {"type": "boolean",
                                   "description": "true lets implementers change .github/ (workflows, this file) "
                                                  "and .claude/ (agents), protected by default"},
        "escalation_mentions": {"type": "array", "items": {
            "type": "string", "pattern": r"^@?[A-Za-z0-9][A-Za-z0-9-]*(/[A-Za-z0-9_.-]+)?$"}},
        "dry_run": {"type": "boolean"},
        "lockdown": {"type": "boolean",
                     "description": "act only on issues, pull requests and comments from people with triage "
                                    "access or more; others get one note per thread saying a maintainer can "
                                    "start the bot with a label"},
        "dashboard": {"type": "boolean",
                      "description": "keep one dashboard issue listing the bot's runs in progress, waiting or "
                                     "blocked, and its failed jobs, with checkboxes to approve, retry or cancel"},
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
    allow_workflow_changes: bool = False
    escalation_mentions: tuple[str, ...] = ()
    dry_run: bool = False
    approval_not_author: bool = False
    lockdown: bool = False
    dashboard: bool = False
    source: str = "defaults"
    # Compiled once here, not per path checked. The defaults are a spec of their own so that a `!` pattern
    # in protected_paths can never reopen them: only allow_workflow_changes does.
    _protection: tuple[GitIgnoreSpec, ...] = field(init=False, repr=False, compare=False)
    # The protected folders themselves: a change whose path names one (``.github``) would replace the whole
    # folder (a tree entry overrides base_tree's entry of the same path), so it is refused too.
    _folders: GitIgnoreSpec = field(init=False, repr=False, compare=False)
    # The folders that hold a protected file named in full (`/deploy/prod.tf` → `deploy`): replaced whole by a
    # change at their path, the file would go with them. (prefix, at any depth?)
    _holders: tuple[tuple[str, bool], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lists = ([] if self.allow_workflow_changes else [DEFAULT_PROTECTED]) + [self.protected_paths]
        object.__setattr__(self, "_protection", tuple(GitIgnoreSpec.from_lines(gitignore_lines(ps))
                                                      for ps in lists if ps))
        folders = [p for ps in lists for p in ps if p.rstrip(" ").endswith("/") and not p.startswith("!")]
        object.__setattr__(self, "_folders", GitIgnoreSpec.from_lines(gitignore_lines(folders)))
        object.__setattr__(self, "_holders", tuple(h for ps in lists for p in ps if not p.startswith("!")
                                                   for h in _holding_folders(p)))

    def protected(self, path: str) -> bool:
        """Whether implementers may not touch ``path``. A path that climbs out (``..``) or names nothing is
        always protected: no honest change needs one."""
        norm = normalise_path(path)
        return (norm is None or any(_spec_protects(spec, norm) for spec in self._protection)
                or self._folders.match_file(norm + "/")
                or any(norm == f or (deep and norm.endswith("/" + f)) for f, deep in self._holders))

    def protection_rule(self) -> str:
        """What protects paths in this repository, for the message refusing a change (constant text only)."""
        own = "the configuration's `protected_paths`"
        if self.allow_workflow_changes:
            return f"{own} protect them"
        return "`.github/` and `.claude/` are protected unless the configuration sets `allow_workflow_changes: true`" \
            + (f", and {own} add more" if self.protected_paths else "")

    def mention_line(self) -> str:
        return (" ".join(m if m.startswith("@") else f"@{m}" for m in self.escalation_mentions)
                + (" " if self.escalation_mentions else ""))


def _holding_folders(pattern: str) -> list[tuple[str, bool]]:
    """The folders on the way to what ``pattern`` names, up to its first wildcard (``migrations/*.sql`` →
    ``migrations``; ``/deploy/prod.tf`` → ``deploy``), lower-cased, each with whether it may sit at any depth
    (as gitignore reads it: a pattern without an inner slash, or one starting with ``**/``)."""
    body = pattern.strip().lower()
    deep = body.startswith("**/") or "/" not in body.rstrip("/")
    parts = [p for p in body.removeprefix("**/").strip("/").split("/") if p]
    literal: list[str] = []
    for part in parts[:-1]:  # the last part is what is named itself (handled by the specs)
        if any(c in part for c in "*?[\\"):
            break
        literal.append(part)
    return [("/".join(literal[:i]), deep) for i in range(1, len(literal) + 1)]


def normalise_path(path: str) -> str | None:
    """A repository path as one canonical, lower-case string (``./a//B`` -> ``a/b``; a backslash counts as a
    separator), or None when it has a ``..`` segment or no name at all."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts).lower()


def gitignore_lines(patterns: Iterable[str]) -> list[str]:
    """``protected_paths`` as the gitignore lines they compile to: lower-cased (pathspec cannot ignore case),
    and a folder pattern with an inner slash (``.github/workflows/``) made to match at any depth, which
    gitignore would anchor at the root. A leading ``/`` still anchors it."""
    return [_any_depth(p.lower()) for p in patterns]


def _any_depth(pattern: str) -> str:
    neg = "!" if pattern.startswith("!") else ""
    body = pattern[len(neg):].rstrip(" ")  # gitignore drops trailing spaces; the folder's / is before them
    if body.endswith("/") and "/" in body[:-1] and not body.startswith(("/", "**/")):
        return f"{neg}**/{body}"
    return pattern


def _spec_protects(spec: GitIgnoreSpec, path: str) -> bool:
    """gitignore's rule that a file inside an excluded folder stays excluded whatever a later ``!`` says:
    pathspec matches the file alone, so each folder on the way is asked too."""
    parts = path.split("/")
    return any(spec.match_file("/".join(parts[:i]) + "/") for i in range(1, len(parts))) or spec.match_file(path)


def _pattern_errors(patterns: Iterable[str], source: str) -> list[str]:
    errors = []
    for i, pattern in enumerate(patterns):
        try:
            GitIgnoreSpec.from_lines(gitignore_lines([pattern]))
        except (ValueError, re.error) as exc:
            errors.append(f"{source}: protected_paths.{i}: '{pattern}' is not a gitignore pattern ({exc})")
    return errors


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
        errors += _pattern_errors(data.get("protected_paths") or (), source)
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
        allow_workflow_changes=bool(data.get("allow_workflow_changes", False)),
        escalation_mentions=tuple(data.get("escalation_mentions") or ()),
        dry_run=bool(data.get("dry_run", False)),
        approval_not_author=bool((data.get("approval") or {}).get("not_author", False)),
        lockdown=bool(data.get("lockdown", False)),
        dashboard=bool(data.get("dashboard", False)),
        source=source,
    ), []


@dataclass(frozen=True, slots=True)
class Source:
    """The config file that applies to a repository: its text, or why it could not be read."""

    name: str  # "owner/repo:.github/triage-lead.yml"
    text: str | None
    problem: str | None = None


def apply_to_catalog(catalog: Catalog, cfg: RepoConfig) -> Catalog:
    """The catalog as this repository sees it: its label map and review-iteration limit."""
    if not cfg.labels and cfg.max_review_iterations is None:
        return catalog
    triage = dict(catalog.triage)
    triage["labels"] = {**{k.lower(): v for k, v in (triage.get("labels") or {}).items()}, **cfg.labels}
    workflows: Mapping[str, Workflow] = catalog.workflows
    if cfg.max_review_iterations is not None:
        workflows = {n: dataclasses.replace(w, max_rejections=cfg.max_review_iterations) for n, w in workflows.items()}
    return dataclasses.replace(catalog, triage=triage, workflows=workflows)
