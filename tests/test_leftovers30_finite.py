"""A model's result holding NaN, Infinity or -Infinity is invalid (``json.loads`` reads them; jsonschema's
``minimum``/``maximum`` let NaN through): refused like any other schema violation, naming the field, on both the
quick check's path and jsonschema's."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import anthropic
import pytest

from bot.agents.runner import parse_result
from bot.agents.schemas import DEEP, _surely_valid, result_schema, validation_error
from bot.sandbox.anthropic import FakeAnthropic
from bot.sandbox.team import result
from tests.test_agents_common import KEY, REPO, context, fake, gh, make_request, make_runtime  # noqa: F401

NON_FINITE = [("NaN", math.nan), ("Infinity", math.inf), ("-Infinity", -math.inf)]
FLAGS = {"needs_security": "x"}
# Schemas the quick check reads (no bounds on the number, items and extra keys unconstrained) ...
PROPS: dict[str, Any] = {"score": {"type": "number"}, "scores": {"type": "array"},
                         "deep": {"type": "object", "properties": {"list": {"type": "array", "items": {"type": "number"}}}}}
QUICK = {"type": "object", "properties": PROPS}
# ... and one it never vouches for (``pattern``): jsonschema alone judges it.
FULL = {"type": "object", "properties": {**PROPS, "name": {"type": "string", "pattern": "^a"}}}


def placed(where: str, value: float) -> dict[str, Any]:
    """A result otherwise valid against QUICK and FULL, with ``value`` at ``where``."""
    doc: dict[str, Any] = {"score": 1.5, "scores": [1, 2.5], "deep": {"list": [0.5]}, "name": "abc"}
    if where == "score":
        doc["score"] = value
    elif where == "scores/1":
        doc["scores"][1] = value
    elif where == "deep/list/0":
        doc["deep"]["list"][0] = value
    elif where == "deep/extra":  # a key no schema names, which QUICK and FULL allow
        doc["deep"]["extra"] = {"inner": [value]}
    return doc


@pytest.mark.parametrize(("name", "value"), NON_FINITE)
@pytest.mark.parametrize("where", ["score", "scores/1", "deep/list/0", "deep/extra"])
@pytest.mark.parametrize("schema", [QUICK, FULL], ids=["quick", "jsonschema"])
def test_a_non_finite_number_anywhere_is_refused_naming_its_field(schema: Any, where: str, name: str,
                                                                  value: float) -> None:
    fine = placed("", 0.0)
    assert validation_error(fine, schema) is None
    doc = placed(where, value)
    assert not _surely_valid(doc, schema)
    problem = validation_error(doc, schema)
    field = "deep/extra/inner/0" if where == "deep/extra" else where
    assert problem is not None and f"{field}: {name} is not a finite number" in problem, problem


@pytest.mark.parametrize(("name", "value"), NON_FINITE)
def test_a_non_finite_number_at_the_top_level_is_refused(name: str, value: float) -> None:
    for schema in ({"type": "number"}, {"type": "number", "pattern": "^a"}, {}):
        assert validation_error(value, schema) == f"(top level): {name} is not a finite number; JSON has no NaN or " \
                                                  "Infinity", schema
    assert validation_error(1.5, {"type": "number"}) is None


@pytest.mark.parametrize(("name", "value"), NON_FINITE)
def test_a_triage_confidence_that_is_not_finite_is_refused(name: str, value: float) -> None:
    """jsonschema alone takes a NaN confidence (every comparison with NaN is false): the result's own schema."""
    schema = result_schema("triage", FLAGS)
    doc = result("triage", {"needs_security": True}, confidence=value)
    problem = validation_error(doc, schema)
    assert problem is not None and problem.startswith(f"confidence: {name} is not a finite number"), problem
    assert validation_error(result("triage", {"needs_security": True}), schema) is None


@pytest.mark.parametrize(("name", "value"), NON_FINITE)
def test_a_non_finite_number_next_to_other_violations_is_named_with_them(name: str, value: float) -> None:
    schema = result_schema("triage", FLAGS)
    doc = result("triage", {"needs_security": True}, confidence=value) | {"passed": "yes"}
    problem = validation_error(doc, schema)
    assert problem is not None and f"confidence: {name} is not a finite number" in problem and "passed:" in problem
    assert problem.count("confidence") == 1  # jsonschema's word on the same value is not said twice


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_the_models_json_text_with_a_non_finite_number_is_no_result(text: str) -> None:
    schema = result_schema("triage", FLAGS)
    raw = json.dumps(result("triage", {"needs_security": True})).replace('"confidence": 0.9', f'"confidence": {text}')
    value, problem = parse_result(raw, schema)
    assert value is None and problem is not None and f"confidence: {text} is not a finite number" in problem


async def test_a_nan_confidence_takes_the_correction_turn_then_gives_up(fake: FakeAnthropic, gh: Any,  # noqa: F811
                                                                        sandbox: Any) -> None:
    """The visible path every invalid result takes: one correction turn naming the field, then invalid-result."""
    sandbox.add_issue(REPO, title="t", body="b")
    request = make_request("backend-feature", "triage", context(1))
    nan = json.dumps(result("triage", dict.fromkeys(request.flags_wanted, False))).replace('"confidence": 0.9',
                                                                                          '"confidence": NaN')
    fake.script(nan, nan)
    client = anthropic.AsyncAnthropic(base_url=fake.url, api_key=KEY, max_retries=0)
    try:
        outcome = await make_runtime(gh, client).run(request)
    finally:
        await client.close()
    assert outcome.result is None and outcome.error_kind == "invalid-result" and len(fake.requests) == 2
    correction = fake.requests[1]["messages"][-1]["content"][-1]["text"]
    assert correction.startswith("That result is not valid: confidence: NaN is not a finite number"), correction
    assert outcome.error is not None and "confidence: NaN is not a finite number" in outcome.error


def _nested(depth: int, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


@pytest.mark.parametrize("depth", [DEEP + 2, 900])
def test_a_value_nested_as_deep_as_json_reads_is_judged_without_overflowing(depth: int) -> None:
    """``json.loads`` reads some 990 levels: the quick check leaves a value past DEEP to jsonschema, and the walk
    for non-finite numbers keeps its own stack, so neither overflows Python's."""
    text = json.dumps({"x": _nested(depth, 1)})
    value = json.loads(text)
    assert not _surely_valid(value, {"type": "object"})
    assert validation_error(value, {"type": "object"}) is None
    assert parse_result(text, {"type": "object"}) == (value, None)
    problem = validation_error({"x": _nested(depth, math.nan)}, {"type": "object"})
    assert problem == "x/" + "0/" * (depth - 1) + "0: NaN is not a finite number; JSON has no NaN or Infinity", problem


def test_non_finite_numbers_are_named_in_the_order_the_result_has_them() -> None:
    doc = {"a": [1, math.inf, {"b": math.nan}], "c": -math.inf, "d": {"e": [math.nan]}}
    problem = validation_error(doc, {"type": "object"})
    assert problem is not None and re.findall(r"([\w/]+): \S+ is not", problem) == ["a/1", "a/2/b", "c", "d/e/0"]


def test_a_reply_nested_deeper_than_json_reads_is_no_result() -> None:
    for text in ("[" * 100_000 + "]" * 100_000, '{"a": ' * 5_000 + "1" + "}" * 5_000):
        value, problem = parse_result(text, {"type": "object"})
        assert value is None and problem == "the answer is not JSON (nested too deeply to read)", problem


def test_the_walk_for_non_finite_numbers_does_not_recurse() -> None:
    """Deeper than the recursion limit: the walk needs no frame a level, whatever stack its caller is already at
    (a reply ``json.loads`` read near its limit, validated from deep inside a run)."""
    problem = validation_error({"x": _nested(5_000, math.inf)}, {"type": "object"})
    assert problem is not None and problem.startswith("x/0/0/") and ": Infinity is not a finite number" in problem
