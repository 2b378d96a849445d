"""The result schemas' quick check (issue 16, sixth pass): ``schemas._surely_valid`` answers a valid result without
jsonschema, and must never pass what jsonschema refuses. Every result below is checked both ways, and each of
hundreds of broken variants of them (every value swapped for every JSON kind, every key dropped, an extra key at
every level, lists emptied and grown) must get the same answer from ``validation_error`` as from jsonschema alone."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from bot.agents import schemas
from bot.agents.schemas import KINDS, _surely_valid, result_schema, validation_error
from bot.sandbox.team import rejected, result

FLAGS = {"needs_security": "set it", "database_related": "set it"}
ESCALATE = {"trigger": "breaking-change", "issue": "which API", "recommendation": "", "blocking": "the merge",
            "options": [{"title": "keep", "tradeoff": "slow"}, {"title": "break", "tradeoff": "users"}]}
SWAPS: tuple[Any, ...] = (None, True, False, 0, 1, -1, 2, 1.0, 0.5, 1.5, math.nan, "", "x", "APPROVED",
                          "breaking-change", "security-fix", [], ["x"], {}, {"text": "t"})


def examples() -> list[tuple[str, dict[str, Any]]]:
    """Valid results of every kind: the team's defaults, with flags and an escalation, and a rejecting review."""
    flags = {name: True for name in FLAGS}
    out = [(kind, result(kind, flags)) for kind in KINDS]
    out += [(kind, result(kind, flags, escalate=copy.deepcopy(ESCALATE))) for kind in ("analyze", "review")]
    out.append(("review", rejected() | {"flags": flags}))
    out.append(("triage", result("triage", flags, workflow="security-fix", confidence=1)))
    out.append(("context", result("context", flags, tasks=[{"title": "t", "description": "d", "labels": ["a"]}])))
    out.append(("approval", result("approval", flags, deployment_plan="roll out, roll back")))
    return out


def _paths(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*at, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _paths(inner, (*at, i))


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def _with(doc: dict[str, Any], path: tuple[Any, ...], change: Any) -> dict[str, Any]:
    """A copy of ``doc`` with ``change(parent, last)`` applied where ``path`` points."""
    out = copy.deepcopy(doc)
    change(_at(out, path[:-1]), path[-1])
    return out


def variants(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Broken (and some still valid) copies of ``doc``: every value swapped for every kind, dropped, an extra key
    beside it and inside it, lists emptied and grown by one item of every kind."""
    for path in list(_paths(doc)):
        value = _at(doc, path)
        if isinstance(value, dict):
            yield _with(doc, (*path, "extra"), lambda parent, key: parent.__setitem__(key, "x")) if path else \
                doc | {"extra": "x"}
        if isinstance(value, list):
            for swap in SWAPS:
                yield _with(doc, (*path, len(value)), lambda parent, _, s=swap: parent.append(copy.deepcopy(s)))
            if value:
                yield _with(doc, (*path, 0), lambda parent, _: parent.clear())
        if not path:
            continue
        for swap in SWAPS:
            yield _with(doc, path, lambda parent, key, s=swap: parent.__setitem__(key, copy.deepcopy(s)))
        if isinstance(path[-1], str):
            yield _with(doc, path, lambda parent, key: parent.pop(key))


@pytest.mark.parametrize(("kind", "doc"), examples(), ids=lambda v: v if isinstance(v, str) else "")
def test_the_quick_check_passes_valid_results_and_never_what_jsonschema_refuses(kind: str,
                                                                               doc: dict[str, Any]) -> None:
    schema = result_schema(kind, FLAGS)
    full = Draft202012Validator(schema)
    assert full.is_valid(doc) and _surely_valid(doc, schema), "a valid result takes the quick check"
    checked = refused = 0
    for broken in variants(doc):
        valid = full.is_valid(broken)
        assert not (_surely_valid(broken, schema) and not valid), f"quick check passed what jsonschema refuses: {broken}"
        # a non-finite number jsonschema lets through is refused all the same (tests/test_leftovers30_finite.py)
        assert (validation_error(broken, schema) is None) == (valid and not any(schemas._non_finite(broken))), broken
        checked, refused = checked + 1, refused + (not valid)
    assert refused > 20 and checked > refused, (checked, refused)


@pytest.mark.parametrize(("what", "change"), [
    ("a required key missing", lambda d: d.pop("passed")),
    ("an extra key at the top", lambda d: d.__setitem__("extra", 1)),
    ("an extra key in a criterion", lambda d: d["criteria"].append({"criterion": "c", "met": True, "note": "",
                                                                     "x": 1})),
    ("a string where a boolean goes", lambda d: d.__setitem__("passed", "true")),
    ("a number where a string goes", lambda d: d.__setitem__("summary", 1)),
    ("an integer where a boolean goes", lambda d: d["flags"].__setitem__("needs_security", 1)),
    ("a verdict not in the enum", lambda d: d.__setitem__("verdict", "MAYBE")),
    ("an escalation with one option", lambda d: d.__setitem__("escalate", ESCALATE | {"options": ESCALATE["options"][:1]})),
    ("an escalation that is neither object nor null", lambda d: d.__setitem__("escalate", "no")),
    ("an item that is not an object", lambda d: d["warnings"].append("plain text")),
    ("a line below 1", lambda d: d["warnings"].append({"text": "t", "line": 0})),
    ("a line that is not an integer", lambda d: d["warnings"].append({"text": "t", "line": 2.5})),
])
def test_each_rule_the_quick_check_reads_still_refuses(what: str, change: Any) -> None:
    """One rule broken at a time in a valid review: refused with jsonschema's own message."""
    doc = result("review", {name: True for name in FLAGS})
    change(doc)
    assert validation_error(doc, result_schema("review", FLAGS)) is not None, what


@pytest.mark.parametrize("confidence", [-0.1, 1.01, math.inf, "0.5", True, None])
def test_a_confidence_out_of_its_range_or_type_is_refused(confidence: Any) -> None:
    doc = result("triage", {name: True for name in FLAGS}, confidence=confidence)
    assert validation_error(doc, result_schema("triage", FLAGS)) is not None


def test_a_schema_with_a_keyword_it_does_not_read_goes_to_jsonschema() -> None:
    """``pattern`` is not among the keywords the quick check reads: it never vouches, jsonschema decides."""
    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": "^a"}}}
    assert not _surely_valid({"name": "abc"}, schema)
    assert validation_error({"name": "abc"}, schema) is None
    assert validation_error({"name": "xyz"}, schema) is not None
