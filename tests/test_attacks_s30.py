"""Attacks on the leftovers-30 change (tests/test_leftovers30_*.py): a hostile pull-request author against the check
findings matched by rule and file near their line, a hostile model against the refusal of non-finite numbers, and
store calls raced against its shutdown. A hole is an xfail(strict) saying how it should behave."""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import pytest

from bot.agents.runner import parse_result
from bot.agents.schemas import _surely_valid, result_schema, validation_error
from bot.core import findings as F
from bot.sandbox.team import result
from bot.store import StoreUnavailable
from bot.store.sqlite import SQLiteStore
from tests.test_leftovers30_check_edits import PAD, aws_key, first, identified, password, then

FLAGS = {"needs_security": "x"}


# --- check findings matched near their line -------------------------------------------------------------------


def test_another_variables_secret_added_near_a_removed_one_is_new() -> None:
    a = first([*PAD, f'db_password = "{password()}"'])
    [old] = a.new
    b = then(a, [*PAD, "", f'stripe_token = "{password()}"'])  # db_password removed, a different secret at 7
    assert len(b.new) == 1 and b.fixed == [old], b


def test_a_credential_in_the_diff_is_open_at_its_line_whatever_the_pushes() -> None:
    """Random pushes of credentials edited, moved, removed and added: every one flagged at a head is open there at
    its line (none reported fixed, none folded into another), and the open ones are exactly those."""
    rng = random.Random(3030)
    makers = [lambda: f'key_{rng.randrange(99)} = "{aws_key()}"', lambda: f'pwd_{rng.randrange(99)} = "{password()}"']
    for _ in range(60):
        lines = ["x = 1"] * 12
        rnd: F.Round | None = None
        for step in range(4):
            for n in rng.sample(range(len(lines)), rng.randrange(1, 5)):
                lines[n] = rng.choice(makers)() if rng.random() < 0.7 else f"y{n} = {step}"
            if rng.random() < 0.3:
                lines.insert(rng.randrange(len(lines)), "z = 0")
            now = identified(lines)
            rnd = first(lines) if rnd is None else then(rnd, lines, sha=f"{step:x}" * 40)
            flagged = sorted((s.rule, s.line) for _, s in now if s.line is not None)
            assert sorted((t.rule, t.line) for t in rnd.open() if t.line is not None) == flagged, (lines, rnd)
            assert len(rnd.new) + len(rnd.still_open) + len(rnd.reopened) == len(now), rnd


def test_two_credentials_near_one_earlier_are_one_carried_and_one_new() -> None:
    a = first([*PAD, f'AWS_KEY = "{aws_key()}"'])
    b = then(a, [*PAD, f'AWS_KEY = "{aws_key()}"', f'AWS_KEY2 = "{aws_key()}"'])
    assert len(b.new) == 1 and len(b.still_open) == 1 and b.fixed == [] and len(b.open()) == 2, b


# --- non-finite numbers in a model's result --------------------------------------------------------------------


def _nested(depth: int, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def test_deep_nesting_json_accepts_does_not_crash_validation() -> None:
    text = json.dumps({"x": _nested(400, 1)})
    value = json.loads(text)  # the model's text is read: the depth is within json's own
    assert validation_error(value, {"type": "object"}) is None
    assert parse_result(text, {"type": "object"}) == (value, None)


@pytest.mark.parametrize("depth", [0, 100, 200])
def test_a_nan_deep_inside_an_open_value_is_found(depth: int) -> None:
    problem = validation_error({"x": _nested(depth, float("nan"))}, {"type": "object"})
    assert problem is not None and "NaN is not a finite number" in problem, problem


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "1E999"])
def test_an_overflowing_float_literal_is_refused_as_infinity(literal: str) -> None:
    raw = json.dumps(result("triage", {"needs_security": True})).replace('"confidence": 0.9', f'"confidence": {literal}')
    value, problem = parse_result(raw, result_schema("triage", FLAGS))
    assert value is None and problem is not None and problem.startswith("confidence: ") and "Infinity" in problem


def test_a_huge_integer_is_judged_by_its_bounds_without_a_crash() -> None:
    schema = result_schema("triage", FLAGS)
    raw = json.dumps(result("triage", {"needs_security": True})).replace('"confidence": 0.9',
                                                                         f'"confidence": {10 ** 400}')
    value, problem = parse_result(raw, schema)
    assert value is None and problem is not None and problem.startswith("confidence: ") and "finite" not in problem


def test_non_finite_words_inside_strings_are_text() -> None:
    schema = result_schema("triage", FLAGS)
    doc = result("triage", {"needs_security": True}) | {"summary": "NaN Infinity -Infinity 1e400"}
    assert validation_error(doc, schema) is None


@pytest.mark.parametrize("key", ["a/b", "", "ünï", "0", "~1", "\x00"])
def test_a_nan_under_a_key_that_needs_escaping_is_refused(key: str) -> None:
    doc = {"deep": {key: [1.5, float("inf")]}}
    for schema in ({"type": "object"}, {"type": "object", "properties": {"deep": {"type": "object"}}}):
        assert not _surely_valid(doc, schema)
        problem = validation_error(doc, schema)
        assert problem is not None and "Infinity is not a finite number" in problem, problem


def test_a_giant_list_of_nans_is_refused_quickly_with_a_bounded_message() -> None:
    doc = {"scores": [float("nan")] * 200_000}
    start = time.monotonic()
    problem = validation_error(doc, {"type": "object", "properties": {"scores": {"type": "array"}}})
    assert time.monotonic() - start < 10
    assert problem is not None and problem.endswith("(and 199995 more)") and len(problem) < 1_000, problem


def test_a_nan_in_a_closed_schemas_extra_key_is_refused_once_named() -> None:
    schema = result_schema("triage", FLAGS)
    doc = result("triage", {"needs_security": True}) | {"extra": float("nan")}
    problem = validation_error(doc, schema)
    assert problem is not None and "extra: NaN is not a finite number" in problem and "'extra' was unexpected" in problem


# --- store calls raced against its shutdown ----------------------------------------------------------------------


@pytest.fixture
def store(sqlite_store: SQLiteStore) -> SQLiteStore:
    return sqlite_store


async def test_calls_raced_against_close_answer_or_say_closed(store: SQLiteStore) -> None:
    async def one(i: int) -> Any:
        await asyncio.sleep(0 if i % 3 else 0.0001)
        return await (store._run(lambda db: i) if i % 2 else store._run_hook(lambda db: i))

    calls = [asyncio.ensure_future(one(i)) for i in range(200)]
    await asyncio.sleep(0)
    got = await asyncio.wait_for(asyncio.gather(store.close(), store.close(), *calls, return_exceptions=True), 10)
    for i, outcome in enumerate(got[2:]):
        assert outcome == i or (isinstance(outcome, StoreUnavailable) and "closed" in str(outcome)), (i, outcome)
    assert got[:2] == [None, None]
    with pytest.raises(StoreUnavailable, match="store is closed"):
        await asyncio.wait_for(store._run(lambda db: 1), 5)
