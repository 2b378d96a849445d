"""The catalog of agents, workflows and triage data in ``workflows/`` (see its README.md): loaded from disk, and
the one place callers import it from (the records are bot/core/workflow.py, the checks bot/core/catalog_check.py).

The shipped catalog is read and parsed once per process (:func:`load_catalog` without a root) and shared: a
per-event caller (offline triage, a runtime) pays for it once, not ~100 ms each time. Nobody changes it (its
mappings are read-only, the triage data all the way down): a repository's view of it is a new catalog (``with_repo_agents``,
``config.apply_to_catalog``). An explicit ``root`` is read afresh each time (``validate --root``, tests editing
a copy). No network.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

import yaml

from bot.core import classify_learned
from bot.core.catalog_check import MAX_PROMPT_CHARS, agent_problems, validate
from bot.core.workflow import (
    DEFAULT_ROOT,
    MODELS,
    ROLES,
    TOOLS,
    Agent,
    Catalog,
    Flag,
    FlagsByStep,
    Gate,
    Route,
    Step,
    When,
    Workflow,
)

__all__ = ["CLAUDE_TOOLS", "DEFAULT_ROOT", "MAX_PROMPT_CHARS", "MODELS", "ROLES", "TOOLS", "Agent", "Catalog", "Flag",
           "FlagsByStep", "Gate", "Route", "Step", "When", "Workflow", "load_catalog", "parse_agent", "validate",
           "validate_paths", "with_repo_agents"]

# Claude Code's built-in read tools, as a repository's agent files name them, and our equivalents.
CLAUDE_TOOLS = {"read": "read_file", "glob": "list_directory", "ls": "list_directory", "grep": "search_code"}
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*\r?$\n?(.*)\Z", re.S | re.M)


def _s(value: object) -> str:
    return value.strip() if isinstance(value, str) else "" if value is None else str(value)


def _strs(value: object) -> tuple[str, ...]:
    return tuple(_s(v) for v in value) if isinstance(value, list) else ()


def _split_front_matter(text: str, source: str) -> tuple[dict[str, object], str]:
    m = _FRONT.match(text.lstrip("\ufeff"))
    if m is None:
        raise ValueError(f"{source}: no YAML front matter (open and close it with '---' lines)")
    try:
        meta = yaml.safe_load(m.group(1))
    except yaml.YAMLError as e:
        raise ValueError(f"{source}: front matter is not valid YAML: {e}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{source}: front matter must be a mapping of keys")
    return meta, m.group(2).strip()


def _agent(meta: Mapping[str, object], body: str, source: str, base: Agent | None = None) -> Agent:
    """Build leniently; `base` supplies what `meta` lacks (repository overrides)."""
    def get(key: str) -> str:
        value = _s(meta.get(key))
        return value if value and value != "inherit" else str(getattr(base, key)) if base is not None else value
    items = meta.get("tools")
    items = items.split(",") if isinstance(items, str) else items if isinstance(items, list) else []
    tools = tuple(dict.fromkeys(CLAUDE_TOOLS.get(_s(t).lower(), _s(t)) for t in items if _s(t)))
    tools = tools if "tools" in meta or base is None else base.tools
    return Agent(get("name"), get("description"), get("model"), tools, get("role"),
                 body or (base.prompt if base is not None else ""), source)


def parse_agent(text: str, source: str) -> Agent:
    """Front matter (name, description, model, tools, role) + body (the prompt); ValueError names source and key."""
    meta, body = _split_front_matter(text, source)
    missing = [k for k in ("name", "description", "model", "tools", "role") if k not in meta]
    agent = _agent(meta, body, source)
    problems = [f"{source}: {k}: required key missing" for k in missing]
    problems += [p for p in agent_problems(agent) if p.split(": ")[1] not in missing]
    if problems:
        raise ValueError("; ".join(problems))
    return agent


def _step(item: object) -> Step:
    d = item if isinstance(item, dict) else {}
    w, g, r, sets = (d.get(k) for k in ("when", "gate", "route", "sets"))
    return Step(
        **{k: _s(d.get(k)) for k in ("id", "title", "agent", "kind", "task", "output")},
        pass_criteria=_strs(d.get("pass_criteria")), needs=_strs(d.get("needs")),
        when=When(_s(w.get("flag")), _s(w.get("set_by")), _s(w.get("text"))) if isinstance(w, dict) else None,
        gate=Gate(_s(g.get("on_reject")), _s(g.get("focus"))) if isinstance(g, dict) else None,
        route=Route(_s(r.get("flag")), _s(r.get("set_by")), _s(r.get("agent"))) if isinstance(r, dict) else None,
        sets=tuple(Flag(_s(k), _s(v)) for k, v in sets.items()) if isinstance(sets, dict) else (),
        workflow=_s(d["workflow"]) if "workflow" in d else None, note=_s(d.get("note")))


def _workflow(d: Mapping[str, object], source: str) -> Workflow:
    steps, mr = d.get("steps"), d.get("max_rejections")
    return Workflow(
        name=_s(d.get("name")), title=_s(d.get("title")), pattern=_s(d.get("pattern")),
        pattern_note=_s(d.get("pattern_note")), trigger=_s(d.get("trigger")), announce=_s(d.get("announce")),
        subclasses=_strs(d.get("subclasses")), max_rejections=mr if isinstance(mr, int) else 0,
        steps=tuple(_step(s) for s in steps) if isinstance(steps, list) else (), source=source)


def _load(root: Path) -> tuple[Catalog, list[str]]:
    """The catalog at `root` and the files that could not be loaded (skipped)."""
    errors = [] if root.is_dir() else [f"{root}: not a directory"]
    agents: dict[str, Agent] = {}
    workflows: dict[str, Workflow] = {}
    raw: dict[str, tuple[str, object]] = {}  # see Catalog.raw
    triage: dict[str, Any] | None = None  # the first triage file (triage.yml before triage.yaml)
    for path in sorted((root / "agents").glob("*.md")) + sorted([*root.glob("*.yml"), *root.glob("*.yaml")]):
        src = f"{root.name}/{path.relative_to(root).as_posix()}"
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".md":
                meta, body = _split_front_matter(text, src)
                raw[src], agents[path.stem] = ("agent.schema.json", meta), _agent(meta, body, src)
                continue
            data = yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as e:  # ValueError: bad front matter or encoding
            errors.append(str(e) if str(e).startswith(src) else f"{src}: cannot load: {e}")
            continue
        if not isinstance(data, dict):
            errors.append(f"{src}: must be a mapping of keys")
        elif path.stem == "triage":
            raw[src] = ("triage.schema.json", data)
            triage = data if triage is None else triage
        else:
            raw[src], workflows[path.stem] = ("schema.json", data), _workflow(data, src)
    errors += [f"{root.name}/triage.yml: missing"] if triage is None else []
    return Catalog(MappingProxyType(agents), MappingProxyType(workflows), _frozen(triage or {}), root,
                   MappingProxyType(raw)), errors


def _refuse(self: object, *args: object, **kwargs: object) -> None:
    raise TypeError("the shipped catalog is shared and read-only; build a new one (config.apply_to_catalog)")


class _Table(dict[str, Any]):
    """A dict that refuses every write (a dict still, so readers' isinstance checks and comparisons hold); a copy
    (copy, deepcopy, pickle) is a plain dict a caller may change."""

    def __reduce__(self) -> tuple[type, tuple[dict[str, Any]]]:
        return dict, (dict(self),)


class _Items(list[Any]):
    """A list that refuses every write (a list still, so readers' isinstance checks and comparisons hold); a copy
    (copy, deepcopy, pickle) is a plain list a caller may change."""

    def __reduce__(self) -> tuple[type, tuple[list[Any]]]:
        return list, (list(self),)


# Set after the classes so each writer keeps dict's and list's declared signature for the type checker.
for _writer in ("__setitem__", "__delitem__", "__ior__", "clear", "pop", "popitem", "setdefault", "update"):
    setattr(_Table, _writer, _refuse)
for _writer in ("__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend", "insert", "pop", "remove",
                "clear", "sort", "reverse"):
    setattr(_Items, _writer, _refuse)


def _frozen(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """Triage data read-only all the way down: the shipped catalog is shared by every repository's runs, so a
    write into a nested label map or keyword list would reach all of them."""
    def freeze(value: object) -> object:
        if isinstance(value, dict):
            return _Table({k: freeze(v) for k, v in value.items()})
        if isinstance(value, list):
            return _Items(freeze(v) for v in value)
        return value
    return MappingProxyType({k: freeze(v) for k, v in data.items()})


def load_catalog(root: Path | None = None) -> Catalog:
    """Load agents, workflows and triage data from `root`, by default the shipped ones (read once per process,
    then shared); ValueError listing every unloadable file."""
    return _shipped() if root is None else _checked(Path(root))


@functools.cache
def _shipped() -> Catalog:
    return _checked(DEFAULT_ROOT)


def _checked(root: Path) -> Catalog:
    catalog, errors = _load(root)
    if errors:
        raise ValueError("\n".join(errors))
    return catalog


def learned_model(catalog: Catalog) -> classify_learned.Model | None:
    """The Lead's learned model shipped beside `catalog`'s files (``triage_model.json`` in its root), read once per
    folder and process; None when the catalog has no folder or no readable model (the rules then decide alone)."""
    return None if catalog.root is None else _model(Path(catalog.root) / classify_learned.MODEL_FILE)


@functools.lru_cache(maxsize=8)
def _model(path: Path) -> classify_learned.Model | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    return classify_learned.parse(text)


def with_repo_agents(catalog: Catalog, files: Mapping[str, str]) -> tuple[Catalog, list[str]]:
    """Add or override agents from a repository's `.claude/agents/*.md` (path -> text), Claude Code's format:
    a missing (or `inherit`) model, tools, role or body keeps the overridden agent's (new agent: sonnet, all
    tools, Specialist); Read/Glob/LS/Grep map to ours, others (Bash...) are dropped. Never raises."""
    agents, errors = dict(catalog.agents), []
    for path, text in sorted(files.items()):
        src = f"repo:{path}"
        try:
            meta, body = _split_front_matter(text, src)
        except ValueError as e:
            errors.append(f"{e}; file ignored")
            continue
        name = _s(meta.get("name")) or PurePosixPath(path).stem
        base = agents.get(name) or Agent(name, "", "sonnet", TOOLS, "Specialist", "", src)
        agent = _agent({**meta, "name": name}, body, src, base)
        dropped = [t for t in agent.tools if t not in TOOLS]
        if dropped:
            errors.append(f"{src}: tools: {', '.join(map(repr, dropped))} not available (read-only only); ignored")
        agent = replace(agent, tools=tuple(t for t in agent.tools if t in TOOLS))
        problems = agent_problems(agent)
        errors += [f"{p}; file ignored" for p in problems]
        if not problems:
            agents[name] = agent
    return replace(catalog, agents=MappingProxyType(agents)), errors


def validate_paths(root: Path = DEFAULT_ROOT) -> list[str]:
    """For `python -m bot validate`: load and validate `root`, turning load errors into messages."""
    catalog, errors = _load(Path(root))
    model = Path(root) / classify_learned.MODEL_FILE
    if model.exists() and learned_model(catalog) is None:  # the Lead would quietly decide by the rules alone
        errors.append(f"{Path(root).name}/{model.name}: not a learned model the Lead can read")
    return list(dict.fromkeys(errors + validate(catalog)))
