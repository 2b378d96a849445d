"""Rules of the house that a reader of one file cannot see: checked over the whole package."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parent.parent / "bot"


def test_no_assert_guards_runtime_code() -> None:
    """`python -O` strips asserts: an invariant the bot relies on is an explicit check raising a clear error.
    (The sandbox, a test double, is exempt.)"""
    found = [f"{path.relative_to(BOT.parent)}:{node.lineno}"
             for path in sorted(BOT.rglob("*.py")) if "sandbox" not in path.parts
             for node in ast.walk(ast.parse(path.read_text(), str(path))) if isinstance(node, ast.Assert)]
    assert found == [], found
