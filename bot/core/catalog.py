"""Load and validate the agents, workflows and triage data in ``workflows/`` (see its README.md). No network."""
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from graphlib import CycleError, TopologicalSorter
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

import yaml
from jsonschema import Draft202012Validator


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
# Claude Code's built-in read tools, as a repository's agent files name them, and our equivalents.
CLAUDE_TOOLS = {"read": "read_file", "glob": "list_directory", "ls": "list_directory", "grep": "search_code"}
MAX_PROMPT_CHARS = 20_000
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*\r?$\n?(.*)\Z", re.S | re.M)
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
    triage: dict[str, Any]
    root: Path | None = None
    # display path -> (schema file name, parsed document): what `validate` checks against the schemas
    raw: Mapping[str, tuple[str, Any]] = field(default_factory=dict)


def _s(value: Any) -> str:
    return value.strip() if isinstance(value, str) else "" if value is None else str(value)


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(_s(v) for v in value) if isinstance(value, list) else ()


def _split_front_matter(text: str, source: str) -> tuple[dict[str, Any], str]:
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


def _agent(meta: dict[str, Any], body: str, source: str, base: Agent | None = None) -> Agent:
    """Build leniently; `base` supplies what `meta` lacks (repository overrides)."""
    def get(key: str) -> Any:
        value = _s(meta.get(key))
        return value if value and value != "inherit" else getattr(base, key) if base is not None else value
    items = meta.get("tools")
    items = items.split(",") if isinstance(items, str) else items if isinstance(items, list) else []
    tools = tuple(dict.fromkeys(CLAUDE_TOOLS.get(_s(t).lower(), _s(t)) for t in items if _s(t)))
    tools = tools if "tools" in meta or base is None else base.tools
    return Agent(get("name"), get("description"), get("model"), tools, get("role"),
                 body or (base.prompt if base is not None else ""), source)


def _agent_problems(agent: Agent, schema_checked: bool = False) -> list[str]:
    """What a schema cannot phrase well (tools, body), and unless schema-checked, the other keys too."""
    src, a, out = agent.source, agent, []
    if not schema_checked:
        out += [f"{src}: name: {a.name!r} is not a kebab-case agent name"] if not _ID.match(a.name) else []
        out += [f"{src}: description: required key missing"] if not a.description else []
        out += [f"{src}: model: {a.model!r} is not one of {'|'.join(MODELS)}"] if a.model not in MODELS else []
        out += [f"{src}: role: {a.role!r} is not one of {', '.join(ROLES)}"] if a.role not in ROLES else []
    out += [f"{src}: tools: {t!r} is not a known tool ({', '.join(TOOLS)})" for t in a.tools if t not in TOOLS]
    if not a.prompt or len(a.prompt) > MAX_PROMPT_CHARS:
        out.append(f"{src}: (body): the system prompt must have 1 to {MAX_PROMPT_CHARS} characters")
    return out


def parse_agent(text: str, source: str) -> Agent:
    """Front matter (name, description, model, tools, role) + body (the prompt); ValueError names source and key."""
    meta, body = _split_front_matter(text, source)
    missing = [k for k in ("name", "description", "model", "tools", "role") if k not in meta]
    agent = _agent(meta, body, source)
    problems = [f"{source}: {k}: required key missing" for k in missing]
    problems += [p for p in _agent_problems(agent) if p.split(": ")[1] not in missing]
    if problems:
        raise ValueError("; ".join(problems))
    return agent


def _step(d: Any) -> Step:
    d = d if isinstance(d, dict) else {}
    w, g, r, sets = (d.get(k) for k in ("when", "gate", "route", "sets"))
    return Step(
        **{k: _s(d.get(k)) for k in ("id", "title", "agent", "kind", "task", "output")},
        pass_criteria=_strs(d.get("pass_criteria")), needs=_strs(d.get("needs")),
        when=When(_s(w.get("flag")), _s(w.get("set_by")), _s(w.get("text"))) if isinstance(w, dict) else None,
        gate=Gate(_s(g.get("on_reject")), _s(g.get("focus"))) if isinstance(g, dict) else None,
        route=Route(_s(r.get("flag")), _s(r.get("set_by")), _s(r.get("agent"))) if isinstance(r, dict) else None,
        sets=tuple(Flag(_s(k), _s(v)) for k, v in sets.items()) if isinstance(sets, dict) else (),
        workflow=_s(d["workflow"]) if "workflow" in d else None, note=_s(d.get("note")))


def _workflow(d: dict[str, Any], source: str) -> Workflow:
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
    raw: dict[str, tuple[str, Any]] = {}  # see Catalog.raw
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
        else:
            raw[src], workflows[path.stem] = ("schema.json", data), _workflow(data, src)
    triage = next((d for n, d in raw.values() if n == "triage.schema.json"), None)
    errors += [f"{root.name}/triage.yml: missing"] if triage is None else []
    return Catalog(MappingProxyType(agents), MappingProxyType(workflows), triage or {}, root,
                   MappingProxyType(raw)), errors


def load_catalog(root: Path = DEFAULT_ROOT) -> Catalog:
    """Load agents, workflows and triage data from `root`; ValueError listing every unloadable file."""
    catalog, errors = _load(Path(root))
    if errors:
        raise ValueError("\n".join(errors))
    return catalog


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
        problems = _agent_problems(agent)
        errors += [f"{p}; file ignored" for p in problems]
        if not problems:
            agents[name] = agent
    return replace(catalog, agents=MappingProxyType(agents)), errors


def _schema_errors(doc: Any, schema: dict[str, Any], src: str) -> list[str]:
    out: list[str] = []
    for e in Draft202012Validator(schema).iter_errors(doc):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path).lstrip(".")
        at = f"{src}: {where}." if where else f"{src}: "
        if e.validator == "additionalProperties" and e.validator_value is False and isinstance(e.instance, dict):
            allowed = e.schema.get("properties", {})
            out += [f"{at}{k}: unknown key (allowed: {', '.join(allowed)})" for k in e.instance if k not in allowed]
        elif e.validator == "required" and isinstance(e.instance, dict):
            out += [f"{at}{k}: required key missing" for k in e.validator_value if k not in e.instance]
        elif not (e.validator == "pattern" and where == "tools"):  # _agent_problems names the bad tool
            msg = e.message if len(e.message) < 200 else f"fails {e.validator}: {e.validator_value!r}"[:200]
            out.append(f"{src}: {where or '(top level)'}: {msg}")
    return out


def _check_workflow(wf: Workflow, agents: Mapping[str, Agent], names: Mapping[str, Workflow]) -> list[str]:
    src = wf.source or f"workflows/{wf.name}.yml"
    out = [f"{src}: name: {wf.name!r} does not match the file name"] if PurePosixPath(src).stem != wf.name else []
    by_id = {s.id: s for s in reversed(wf.steps)}
    out += [f"{src}: steps[{i}].id: duplicate step id {s.id!r}" for i, s in enumerate(wf.steps) if by_id[s.id] is not s]
    up = {s.id: wf.upstream(s.id) for s in wf.steps}
    for i, s in enumerate(wf.steps):
        at = f"{src}: steps[{i}]"
        out += [f"{at}.agent: unknown agent {s.agent!r}"] if s.agent not in agents else []
        out += [f"{at}.needs[{j}]: {n!r} is not a step" for j, n in enumerate(s.needs) if n not in by_id]
        for key, cond in (("when", s.when), ("route", s.route)):
            if cond is None:
                continue
            if cond.set_by not in up[s.id]:
                out.append(f"{at}.{key}.set_by: {cond.set_by!r} is not among the steps this step (transitively) needs")
            elif cond.flag not in {f.name for f in by_id[cond.set_by].sets}:
                out.append(f"{at}.{key}.flag: step {cond.set_by!r} does not declare {cond.flag!r} in its sets")
        if s.route is not None and s.route.agent not in agents:
            out.append(f"{at}.route.agent: unknown agent {s.route.agent!r}")
        if s.gate is not None:
            target, name = by_id.get(s.gate.on_reject), s.gate.on_reject
            out += [f"{at}.gate: only review steps have a gate (kind is {s.kind!r})"] if s.kind != "review" else []
            if target is None:  # no target: the schema's own text, so that it is reported once
                out.append(f"{at}.gate.on_reject: {f'{name!r} is not a step' if name else 'required key missing'}")
            elif target.kind != "implement":
                out.append(f"{at}.gate.on_reject: {target.id!r} is a {target.kind} step, not an implement step")
            elif target.id not in up[s.id]:
                out.append(f"{at}.gate.on_reject: the review must (transitively) need {target.id!r}, the step it gates")
        if s.kind == "implement":
            if not any(r.kind == "review" and r.gate and r.gate.on_reject == s.id for r in wf.steps):
                out.append(f"{at}: implement step {s.id!r} has no review step whose gate.on_reject points to it")
            out += [f"{at}.needs: implement step {s.id!r} would run in parallel with analyze step {a.id!r}; "
                    "it must (transitively) need it (Architecture → Implementation is sequential)"
                    for a in wf.steps if a.kind == "analyze" and a.id not in up[s.id] and s.id not in up[a.id]]
        if s.kind == "delegate" and s.workflow != "auto" and (s.workflow not in names or s.workflow == wf.name):
            out.append(f"{at}.workflow: {s.workflow!r} is neither 'auto' nor another workflow")
        out += [f"{at}.workflow: only delegate steps name a workflow"] if s.workflow and s.kind != "delegate" else []
    cyclic = [s.id for s in wf.steps if s.id in up[s.id]]
    out += [f"{src}: steps: needs form a cycle through {', '.join(map(repr, cyclic))}"] if cyclic else []
    first = wf.steps[0].id if wf.steps else ""
    out += [f"{src}: steps[{i}]: {s.id!r} is not reachable from the first step {first!r} through needs"
            for i, s in enumerate(wf.steps) if s.id != first and first not in up[s.id]]
    return out


def _check_triage(t: dict[str, Any], src: str, cat: Catalog) -> list[str]:
    def part(key: str, kind: type) -> Any:  # the schema reports a wrong type; here it only must not crash
        return t.get(key) if isinstance(t.get(key), kind) else kind()
    wfs, rows = cat.workflows, [(i, r) for i, r in enumerate(part("quick_reference", list)) if isinstance(r, dict)]
    refs = [(f"labels.{k}", v) for k, v in part("labels", dict).items()]
    refs += [(f"priority[{i}]", v) for i, v in enumerate(part("priority", list))]
    refs += [(f"{key}.{k}", k) for key in ("keywords", "subclass_keywords") for k in part(key, dict)]
    refs += [(f"quick_reference[{i}].workflow", r["workflow"]) for i, r in rows if "workflow" in r]
    out = [f"{src}: {at}: unknown workflow {name!r}" for at, name in refs if name not in wfs]
    out += [f"{src}: priority: workflow {n!r} is missing" for n in wfs if n not in part("priority", list)]
    for name, per in part("subclass_keywords", dict).items():
        out += [f"{src}: subclass_keywords.{name}.{k}: not a subclass of {name}"
                for k in (per if isinstance(per, dict) else ()) if name in wfs and k not in wfs[name].subclasses]
    for i, row in rows:
        who = [("start_with", row.get("start_with"))] + [("key_reviewers", a) for a in row.get("key_reviewers") or []]
        out += [f"{src}: quick_reference[{i}].{k}: unknown agent {a!r}" for k, a in who if a not in cat.agents]
    return out


def validate(catalog: Catalog) -> list[str]:
    """Every problem in the catalog, each naming its file and key; [] when it is sound."""
    out: list[str] = []
    for src, (name, doc) in catalog.raw.items():  # a root without its own schema files uses the shipped ones
        path = catalog.root / name if catalog.root and (catalog.root / name).is_file() else DEFAULT_ROOT / name
        try:
            out += _schema_errors(doc, json.loads(path.read_text(encoding="utf-8")), src)
        except (OSError, ValueError) as e:
            out.append(f"{path.parent.name}/{name}: cannot load the schema: {e}")
    for agent in catalog.agents.values():
        out += _agent_problems(agent, schema_checked=agent.source in catalog.raw)
        if not agent.source.startswith("repo:") and PurePosixPath(agent.source).stem != agent.name:
            out.append(f"{agent.source}: name: {agent.name!r} does not match the file name")
    out += [p for wf in catalog.workflows.values() for p in _check_workflow(wf, catalog.agents, catalog.workflows)]
    triage_src = next((k for k, (n, _) in catalog.raw.items() if n == "triage.schema.json"), "workflows/triage.yml")
    out += _check_triage(catalog.triage, triage_src, catalog)
    return list(dict.fromkeys(out))


def validate_paths(root: Path = DEFAULT_ROOT) -> list[str]:
    """For `python -m bot validate`: load and validate `root`, turning load errors into messages."""
    catalog, errors = _load(Path(root))
    return list(dict.fromkeys(errors + validate(catalog)))
