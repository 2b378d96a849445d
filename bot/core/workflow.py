"""What the catalog holds, as frozen records: agents, workflows and their steps, and the whole catalog.

Loading them from ``workflows/`` is bot/core/catalog.py, checking them bot/core/catalog_check.py; both import
these records, and ``bot.core.catalog`` re-exports them (callers import from there).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any


def _default_root() -> Path:
    """workflows/ beside the package (a checkout, an editable install), else where a wheel installs it."""
    beside = Path(__file__).resolve().parents[2] / "workflows"
    if beside.is_dir():
        return beside
    return Path(sys.prefix) / "share" / "triage-lead" / "workflows"


DEFAULT_ROOT = _default_root()
MODELS = ("opus", "sonnet", "haiku")
TOOLS = ("read_file", "list_directory", "search_code", "get_issue", "get_pull_request",
         "get_pull_files", "get_check_output", "get_job_log", "list_commits", "find_related_issues")
ROLES = ("Lead/Orchestrator", "Architect", "Implementer", "Investigator", "Quality Gate",
         "Coordinator", "Researcher", "Specialist")
FlagsByStep = Mapping[str, Mapping[str, Any]]  # step id -> the `flags` object of that step's result


@dataclass(frozen=True)
class Agent:
    name: str
    description: str
    model: str
    tools: tuple[str, ...]
    role: str
    prompt: str
    source: str


@dataclass(frozen=True)
class When:
    flag: str
    set_by: str
    text: str


@dataclass(frozen=True)
class Route:
    flag: str
    set_by: str
    agent: str


@dataclass(frozen=True)
class Gate:
    on_reject: str
    focus: str


@dataclass(frozen=True)
class Flag:
    name: str
    text: str


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    agent: str
    kind: str
    task: str
    output: str
    pass_criteria: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    when: When | None = None
    gate: Gate | None = None
    route: Route | None = None
    sets: tuple[Flag, ...] = ()  # boolean flags this step's result carries in its `flags` object
    workflow: str | None = None  # delegate steps only: "auto" or a workflow name
    note: str = ""

    def active(self, flags: FlagsByStep) -> bool:
        """False for a conditional step whose flag its `set_by` step did not set to true."""
        return self.when is None or flags.get(self.when.set_by, {}).get(self.when.flag) is True

    def agent_for(self, flags: FlagsByStep) -> str:
        """The agent to run: `route.agent` when the route's flag is true, else `agent`."""
        r = self.route
        return r.agent if r is not None and flags.get(r.set_by, {}).get(r.flag) is True else self.agent


@dataclass(frozen=True)
class Workflow:
    name: str
    title: str
    pattern: str
    pattern_note: str
    trigger: str
    announce: str
    subclasses: tuple[str, ...]
    max_rejections: int
    steps: tuple[Step, ...]
    source: str = ""

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(f"{self.name}: no step {step_id!r}")

    def upstream(self, step_id: str) -> frozenset[str]:
        """Ids of every step `step_id` needs, transitively (unknown ids ignored)."""
        needs = {s.id: s.needs for s in reversed(self.steps)}
        seen: set[str] = set()
        todo = [n for n in needs.get(step_id, ()) if n in needs]
        while todo:
            seen.add(n := todo.pop())
            todo += [m for m in needs[n] if m in needs and m not in seen]
        return frozenset(seen)

    def parallel_groups(self) -> tuple[tuple[str, ...], ...]:
        """Waves of step ids that may run at once (all needs in earlier waves); ValueError on a cycle."""
        pos = {s.id: i for i, s in reversed(list(enumerate(self.steps)))}
        sorter = TopologicalSorter({s.id: [n for n in s.needs if n in pos] for s in self.steps})
        try:
            sorter.prepare()
        except CycleError as e:
            raise ValueError(f"{self.name}: steps form a cycle: {' -> '.join(e.args[1])}") from None
        groups: list[tuple[str, ...]] = []
        while sorter.is_active():
            groups.append(tuple(sorted(sorter.get_ready(), key=pos.__getitem__)))
            sorter.done(*groups[-1])
        return tuple(groups)

    def order(self) -> tuple[str, ...]:
        """Step ids in a topological order of `needs`; ValueError on a cycle."""
        return tuple(s for group in self.parallel_groups() for s in group)


@dataclass(frozen=True)
class Catalog:
    agents: Mapping[str, Agent]
    workflows: Mapping[str, Workflow]
    triage: Mapping[str, Any]  # triage.yml as parsed: JSON-like data, its shape checked by triage.schema.json
    root: Path | None = None
    # display path -> (schema file name, parsed document): what `validate` checks against the schemas
    raw: Mapping[str, tuple[str, object]] = field(default_factory=dict)
