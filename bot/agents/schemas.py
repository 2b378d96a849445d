"""The JSON Schema of each step kind's result: what the model must return and what the engine may rely on.

One schema per kind, built for the step's wanted flags. The same schema is given to the model in the step's text
(not as structured output: a per-step ``output_config`` would invalidate the cached prompt, see ``prompts``) and
enforced locally with ``jsonschema`` in full.
Nullable fields use ``anyOf`` with null, never a list of types, which the SDK's transform rejects.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from bot.core import catalog

KINDS = ("triage", "analyze", "implement", "review", "approval", "validate", "context")
VERDICTS = ("APPROVED", "REJECTED")
SUBCLASSES = ("deployment", "infrastructure", "monitoring", "security")
# The spec's escalation paths, in its order; workflows/triage.yml describes each.
ESCALATION_TRIGGERS = ("conflicting-requirements", "security-vs-speed", "breaking-change", "repeated-rejections",
                       "out-of-scope")

Schema = dict[str, Any]


def _str(description: str = "") -> Schema:
    return {"type": "string", **({"description": description} if description else {})}


def _strs(description: str = "") -> Schema:
    return {"type": "array", "items": {"type": "string"}, **({"description": description} if description else {})}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(props: Mapping[str, Schema], required: tuple[str, ...] | None = None, description: str = "") -> Schema:
    out: Schema = {"type": "object", "properties": dict(props),
                   "required": list(props) if required is None else list(required), "additionalProperties": False}
    if description:
        out["description"] = description
    return out


@functools.cache
def workflow_names() -> tuple[str, ...]:
    """The seven workflows' names, from the catalog (the data is the source of truth)."""
    return tuple(sorted(catalog.load_catalog().workflows))


_ITEM = _object({"text": _str(), "path": _str("file the point is about"),
                 "line": {"type": "integer", "minimum": 1}}, required=("text",))

_ESCALATION = _object({
    "trigger": {"enum": list(ESCALATION_TRIGGERS)},
    "issue": _str("brief description of what needs a person's decision"),
    "options": {"type": "array", "minItems": 2,
                "items": _object({"title": _str(), "tradeoff": _str()})},
    "recommendation": _str("your recommendation, or an empty string"),
    "blocking": _str("what is blocked until it is resolved"),
}, description="Set only when a person must decide (see the escalation paths); otherwise null.")


def _common(flags_wanted: Mapping[str, str]) -> dict[str, Schema]:
    flags = _object({name: {"type": "boolean", "description": text} for name, text in flags_wanted.items()},
                    description="Every flag listed, true or false.")
    return {
        "summary": _str("Markdown for the people on the issue: what you found or did, and why."),
        "passed": {"type": "boolean", "description": "true only if every pass criterion of the step is met"},
        "criteria": {"type": "array", "description": "One entry per pass criterion (and checklist item).",
                     "items": _object({"criterion": _str(), "met": {"type": "boolean"}, "note": _str()})},
        "flags": flags,
        "escalate": _nullable(_ESCALATION),
    }


def _extra(kind: str) -> dict[str, Schema]:
    if kind == "triage":
        return {
            "workflow": {"enum": [*workflow_names(), None], "description": "null when no workflow fits"},
            "subclass": {"enum": [*SUBCLASSES, None], "description": "devops-pipeline only; else null"},
            "reason": _str("the evidence for the choice"),
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        }
    if kind in ("analyze", "validate"):
        return {"findings": _strs("each finding one line, with file:line or the log line as evidence")}
    if kind == "implement":
        change = _object({"path": _str("repository path"), "content": _str("the full new contents of the file"),
                          "reason": _str()})
        return {"changes": {"type": "array", "items": change}, "notes": _str("what a reviewer should know")}
    if kind == "review":
        items = {"type": "array", "items": _ITEM}
        return {
            "verdict": {"enum": list(VERDICTS)},
            "critical": {**items, "description": "MUST PASS failures; any one means REJECTED"},
            "warnings": items,
            "suggestions": items,
            "tech_debt": {"type": "array", "description": "deferred work worth its own issue",
                          "items": _object({"title": _str(), "body": _str()})},
        }
    if kind == "approval":
        return {"deployment_plan": _nullable(_str("how to roll the change out and back, or null if none applies"))}
    if kind == "context":
        task = _object({"title": _str(), "description": _str(), "labels": _strs()})
        return {
            "context": _object({"goals": _strs(), "constraints": _strs(), "decisions": _strs(),
                                "progress": _strs()}),
            "tasks": {"type": "array", "items": task,
                      "description": "the tasks to execute next (SETUP), each for its own workflow; else []"},
        }
    raise ValueError(f"no result schema for step kind {kind!r} (kinds: {', '.join(KINDS)})")


SUMMARY_SHAPES = {
    "approval": ("Shape the summary like: a first line saying what was done, then bullets "
                 "'- Root cause: …', '- Fix: …', '- Reviewed: …', and a last line asking to proceed."),
}


def result_schema(kind: str, flags_wanted: Mapping[str, str] | None = None) -> Schema:
    """The full schema for a `kind` result that must set every flag in `flags_wanted`."""
    props = {**_common(flags_wanted or {}), **_extra(kind)}
    if kind in SUMMARY_SHAPES:
        props["summary"] = _str(SUMMARY_SHAPES[kind])
    return _object(props)


def _deepest(error: ValidationError) -> ValidationError:
    """For an anyOf failure, the error of the branch that came closest (e.g. the object, not the null)."""
    while error.context:
        error = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
    return error


# Validators by the schema object they were built for: the runner reuses one schema object per step kind and flags
# (and a fresh validator loses what the last one learnt: a quarter more time per check). Keyed by identity, not by
# content (serialising the schema costs as much as the check), and each entry holds its schema, so no other schema
# can be given the same id while the entry lives; the ``is`` check says so again.
_VALIDATORS: OrderedDict[int, tuple[Schema, Draft202012Validator]] = OrderedDict()
MAX_VALIDATORS = 256


def _validator(schema: Schema) -> Draft202012Validator:
    entry = _VALIDATORS.get(id(schema))
    if entry is not None and entry[0] is schema:
        _VALIDATORS.move_to_end(id(schema))
        return entry[1]
    validator = Draft202012Validator(schema)
    _VALIDATORS[id(schema)] = (schema, validator)
    if len(_VALIDATORS) > MAX_VALIDATORS:
        _VALIDATORS.popitem(last=False)
    return validator


# The keywords the result schemas use, read by ``_surely_valid``; a schema with any other keyword goes to jsonschema.
# Levels of a value the quick check reads before it leaves the value to jsonschema: a result nests a few levels,
# and each costs it some three frames, so ``json.loads``'s own depth (~990) would overflow Python's stack.
DEEP = 32
_KNOWN = frozenset({"type", "properties", "required", "additionalProperties", "items", "anyOf", "enum", "minimum",
                    "maximum", "minItems", "description"})
_TYPES: dict[str, Any] = {"string": str, "boolean": bool, "object": dict, "array": list}


def _is_type(value: Any, name: str) -> bool:
    """JSON Schema's ``type`` as jsonschema's draft 2020-12 checker reads it, where that is plain; a float holding an
    integer (which jsonschema counts as an integer) is not taken here: the full check decides it."""
    if name == "null":
        return value is None
    if name in ("integer", "number"):
        return not isinstance(value, bool) and isinstance(value, int if name == "integer" else (int, float))
    kind = _TYPES.get(name)
    return kind is not None and isinstance(value, kind)


def _surely_valid(value: Any, schema: Any, depth: int = 0) -> bool:
    """True only when ``value`` certainly meets ``schema``; False when it does not or this cannot tell (a keyword or
    a case it does not read, or a value nested deeper than DEEP), and jsonschema checks it in full. About a tenth of
    jsonschema's time on a valid result (issue 16: five checks a run); every answer it cannot vouch for still gets
    jsonschema's own errors. ``depth``: the levels of ``value`` above this one."""
    if not isinstance(schema, dict) or not _KNOWN.issuperset(schema) or depth > DEEP:
        return False
    kind = schema.get("type")
    if kind is not None and not any(_is_type(value, t) for t in ([kind] if isinstance(kind, str) else kind)):
        return False
    if "enum" in schema and not _in_enum(value, schema["enum"]):
        return False
    if "anyOf" in schema and not any(_surely_valid(value, branch, depth) for branch in schema["anyOf"]):
        return False
    if isinstance(value, float) and not math.isfinite(value):  # never a valid result, whatever the schema says
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not _in_range(value, schema):
        return False
    if isinstance(value, list):
        return _list_valid(value, schema, depth + 1)
    if isinstance(value, dict):
        return _object_valid(value, schema, depth + 1)
    return True


def _in_enum(value: Any, enum: Any) -> bool:
    """A string or null among an enum's strings and null (jsonschema's own equality decides anything else)."""
    if not isinstance(enum, list):
        return False
    if value is None:
        return any(e is None for e in enum)
    return isinstance(value, str) and any(type(e) is str and e == value for e in enum)


def _in_range(value: float, schema: Schema) -> bool:
    low, high = schema.get("minimum"), schema.get("maximum")
    return (low is None or value >= low) and (high is None or value <= high)


def _list_valid(value: list[Any], schema: Schema, depth: int) -> bool:
    if len(value) < schema.get("minItems", 0):
        return False
    items = schema.get("items", {})  # none: each item still read, for a non-finite number
    return isinstance(items, dict) and all(_surely_valid(v, items, depth) for v in value)


def _object_valid(value: dict[Any, Any], schema: Schema, depth: int) -> bool:
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    if not isinstance(props, dict) or not isinstance(extra, bool):
        return False
    if not all(name in value for name in schema.get("required", ())):
        return False
    if not extra and not all(key in props for key in value):
        return False
    return all(_surely_valid(v, props.get(k, {}), depth) for k, v in value.items())  # an extra key's value read too


def _non_finite(value: Any) -> Iterator[tuple[tuple[Any, ...], float]]:
    """Where ``value`` holds NaN, Infinity or -Infinity, and which, in document order: JSON has none of them, but
    ``json.loads`` reads them, and jsonschema lets NaN through ``minimum`` and ``maximum`` (every comparison with it
    is false). A stack of its own, not recursion: ``json.loads`` reads nesting deeper than Python's stack allows a
    recursive walk (found by attack); each entry holds its parent's, so a path is built only for what is found."""
    stack: list[tuple[Any, Any]] = [(value, None)]  # (a value, its place: (key, parent's place) or None at the top)
    while stack:
        item, where = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            path: list[Any] = []
            while where is not None:
                key, where = where
                path.append(key)
            yield tuple(reversed(path)), item
        elif isinstance(item, dict):
            stack.extend((v, (k, where)) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((item[i], (i, where)) for i in range(len(item) - 1, -1, -1))


_JSON_NAMES = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}  # as the model wrote them


def _where(path: Any) -> str:
    return "/".join(str(p) for p in path) or "(top level)"


def validation_error(result: Any, schema: Schema) -> str | None:
    """The first few schema violations as one line each, or None when `result` is valid. A non-finite number
    anywhere is one, whatever the schema says: a confidence of NaN is no confidence (see ``_non_finite``)."""
    if _surely_valid(result, schema):  # it vouches only for finite numbers
        return None
    bad = list(_non_finite(result))
    lines = [f"{_where(path)}: {_JSON_NAMES[repr(value)]} is not a finite number; JSON has no NaN or Infinity"
             for path, value in bad[:5]]  # five are said; the rest are counted
    places = {path for path, _ in bad}  # jsonschema's word on the same value would only say it again
    errors = sorted((e for e in _validator(schema).iter_errors(result) if tuple(e.absolute_path) not in places),
                    key=lambda e: list(e.absolute_path))
    if not lines and not errors:
        return None
    lines += [f"{_where(e.absolute_path)}: {e.message[:300]}" for e in map(_deepest, errors[:max(0, 5 - len(lines))])]
    total = len(bad) + len(errors)
    more = f" (and {total - 5} more)" if total > 5 else ""
    return "; ".join(lines[:5]) + more
