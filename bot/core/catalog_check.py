"""Checks on a loaded catalog, beyond what it takes to load it: each file against its JSON schema, then what a
schema cannot say (agents named by steps exist, flags are declared by the steps that set them, every implement
step has a review gating it, no cycles). Every problem names its file and key. No network.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from jsonschema import Draft202012Validator

from bot.core.workflow import DEFAULT_ROOT, MODELS, ROLES, TOOLS, Agent, Catalog, Workflow

MAX_PROMPT_CHARS = 20_000
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def agent_problems(agent: Agent, schema_checked: bool = False) -> list[str]:
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


def _schema_errors(doc: object, schema: dict[str, Any], src: str) -> list[str]:
    out: list[str] = []
    for e in Draft202012Validator(schema).iter_errors(doc):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path).lstrip(".")
        at = f"{src}: {where}." if where else f"{src}: "
        if e.validator == "additionalProperties" and e.validator_value is False and isinstance(e.instance, dict):
            allowed = e.schema.get("properties", {})
            out += [f"{at}{k}: unknown key (allowed: {', '.join(allowed)})" for k in e.instance if k not in allowed]
        elif e.validator == "required" and isinstance(e.instance, dict):
            out += [f"{at}{k}: required key missing" for k in e.validator_value if k not in e.instance]
        elif not (e.validator == "pattern" and where == "tools"):  # agent_problems names the bad tool
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


def _check_triage(t: Mapping[str, Any], src: str, cat: Catalog) -> list[str]:
    # The schema reports a wrong type; here a part of the wrong type only must not crash: it reads as empty.
    def items(key: str) -> list[Any]:
        value = t.get(key)
        return list(value) if isinstance(value, list | tuple) else []  # the shipped catalog's are frozen tuples

    def table(key: str) -> Mapping[Any, Any]:
        value = t.get(key)
        return value if isinstance(value, Mapping) else {}
    wfs, rows = cat.workflows, [(i, r) for i, r in enumerate(items("quick_reference")) if isinstance(r, Mapping)]
    refs = [(f"labels.{k}", v) for k, v in table("labels").items()]
    refs += [(f"priority[{i}]", v) for i, v in enumerate(items("priority"))]
    refs += [(f"{key}.{k}", k) for key in ("keywords", "subclass_keywords") for k in table(key)]
    refs += [(f"quick_reference[{i}].workflow", r["workflow"]) for i, r in rows if "workflow" in r]
    out = [f"{src}: {at}: unknown workflow {name!r}" for at, name in refs if name not in wfs]
    out += [f"{src}: priority: workflow {n!r} is missing" for n in wfs if n not in items("priority")]
    for name, per in table("subclass_keywords").items():
        out += [f"{src}: subclass_keywords.{name}.{k}: not a subclass of {name}"
                for k in (per if isinstance(per, Mapping) else ()) if name in wfs and k not in wfs[name].subclasses]
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
        out += agent_problems(agent, schema_checked=agent.source in catalog.raw)
        if not agent.source.startswith("repo:") and PurePosixPath(agent.source).stem != agent.name:
            out.append(f"{agent.source}: name: {agent.name!r} does not match the file name")
    out += [p for wf in catalog.workflows.values() for p in _check_workflow(wf, catalog.agents, catalog.workflows)]
    triage_src = next((k for k, (n, _) in catalog.raw.items() if n == "triage.schema.json"), "workflows/triage.yml")
    out += _check_triage(catalog.triage, triage_src, catalog)
    return list(dict.fromkeys(out))
