"""The digest names every failing test it can and quotes the root error's own line whole (issue 15, points 5 and 8).

Built from records directly: what the digest does with a reading, not how the reading was made.
"""

from __future__ import annotations

from bot.core.ci_output import digest
from bot.core.ci_output.records import Reading, RootError


def test_tests_past_the_listed_ones_are_named_on_one_line() -> None:
    """A ctest run of nine failures (ctest-iphreeqc-parallel-files) names the ninth too, on one more line."""
    tests = tuple(f"TestIPhreeqcLib.Test{i}" for i in range(9))
    text = digest.render(Reading(job="test", tests=tests))
    assert all(f"`{t}`" in text for t in tests)
    assert text.count("\n- ") == digest.MAX_TESTS + 1 and "- … and 1 more: `TestIPhreeqcLib.Test8`" in text


def test_a_flood_of_tests_stays_on_one_line_and_says_how_many_are_not_listed() -> None:
    tests = tuple(f"tests/test_{i}.py::test_{i}" for i in range(500))
    text = digest.render(Reading(job="test", tests=tests))
    [more] = [line for line in text.splitlines() if line.startswith("- … and 492 more")]
    assert len(more) < digest.MORE_TESTS_CHARS + 100 and more.endswith(" not listed")
    named = more.count("`") // 2
    assert more.endswith(f" and {492 - named} not listed") and named > 5


def test_the_root_errors_own_line_is_quoted_whole_up_to_its_bound() -> None:
    """XCTest prints both values at the end of one long line (swift-embassy-header-parser): the root error's own line is
    quoted up to ROOT_LINE characters, the lines around it up to LINE."""
    root = "Tests/HTTPHeaderParserTests.swift:137: error: T.testColon : XCTAssertEqual failed: (" + "x" * 600 + ") - "
    around = "y" * 600
    text = digest.render(Reading(job="test", root=RootError(root, (root, around))))
    assert root.rstrip() in text and around not in text and "y" * digest.LINE + "…" in text
    huge = "AssertionError: " + "z" * 10_000
    text = digest.render(Reading(job="test", root=RootError(huge, (huge,))))
    assert huge[:digest.ROOT_LINE] + "…" in text and huge[:digest.ROOT_LINE + 1] not in text
