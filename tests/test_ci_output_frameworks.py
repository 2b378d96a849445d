"""Failing tests named per framework (issue 15, point 5), on real CI output.

The tuning part of ``benchmarks/ci_logs`` is read in place (the held-back part is never read here); framework
forms it lacks come from real pastes under ``tests/fixtures/ci_logs`` (sources in its ``SOURCES.md``). Then the
lines that are not test names (summaries, passing tests, cascades), and hostile input.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from bot.core.ci_output.clean import clean_lines
from bot.core.ci_output.tests import MAX_NAME, MAX_TESTS, failing_tests

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "ci_logs"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ci_logs"


def _tuning() -> list[tuple[str, str, list[str]]]:
    rows = [json.loads(line) for line in (BENCH / "index.jsonl").read_text(encoding="utf-8").splitlines()]
    return [(r["id"], r["framework"], r["failing_tests"]) for r in rows if r["split"] == "tuning"]


TUNING = _tuning()


def same_test(written: str, found: str) -> bool:
    """Whether the name written in the index and the name the reader gives are one test in two naming
    conventions, each naming it unambiguously: JUnit 4's ``method(pkg.Class)`` as printed and ``pkg.Class.method``
    (Surefire's modern form, a JUnit report's ``classname.name``, the reader's), a test method written down
    bare (as the paste shows it) and the reader's name for it qualified by its class (read from a stack frame), or a
    ScalaTest test written as its line prints it and the reader's name for it under its spec (``Spec: test``)."""
    legacy = re.fullmatch(r"(\w+)\(([\w$.]+)\)", written)
    return found in (written, f"{legacy[2]}.{legacy[1]}" if legacy else written) or (
        re.fullmatch(r"\w+", written) is not None and found.endswith("." + written)) or (
        re.fullmatch(r"[A-Z][\w$]*: " + re.escape(written), found) is not None)


def named_as_written(written: list[str], found: list[str]) -> bool:
    """Each written test is exactly one found test, in the same order, with nothing more found."""
    return len(written) == len(found) and all(same_test(w, f) for w, f in zip(written, found, strict=True))


def _read(path: Path) -> list[str]:
    return failing_tests(clean_lines(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize(("log_id", "expected"), [pytest.param(i, t, id=f"{fw}:{i}") for i, fw, t in TUNING if t])
def test_names_every_failing_test_of_a_tuning_log(log_id: str, expected: list[str]) -> None:
    """Exactly the tests written down for the log, in their order (in an equivalent naming convention: see
    ``same_test``): no parent of a failed Go subtest, no suite or header already named in a longer form."""
    found = _read(BENCH / f"{log_id}.log")
    assert named_as_written(expected, found), found


@pytest.mark.parametrize(("written", "found", "same"), [
    ("testRead(ciir.umass.FileUtilsTest)", "ciir.umass.FileUtilsTest.testRead", True),
    ("TestX", "Ns.FooTests.TestX", True),
    ("pkg.A.test_x", "pkg.A.test_x", True),
    ("testRead(ciir.umass.FileUtilsTest)", "ciir.umass.OtherTest.testRead", False),
    ("testRead(FileUtilsTest)", "ciir.umass.FileUtilsTest.testRead", False),
    ("TestX", "Ns.FooTests.TestXY", False),
    ("should pop", "StackSpec: should pop", True),
    ("should pop", "StackSpec: should pop twice", False),
    ("should pop", "a.StackSpec: should pop", False),
    ("Foo › TestX", "Bar.Foo › TestX", False),
    ("a.b", "x.a.b", False),
])
def test_only_one_test_in_two_conventions_is_the_same_test(written: str, found: str, same: bool) -> None:
    assert same_test(written, found) is same


@pytest.mark.parametrize("log_id", [i for i, _, t in TUNING if not t])
def test_a_log_where_nothing_failed_as_a_test_names_none(log_id: str) -> None:
    """Build, lint, type-check and infrastructure failures name no test."""
    assert _read(BENCH / f"{log_id}.log") == []


def test_a_log_served_as_a_job_log_reads_the_same() -> None:
    """The way GitHub serves a job log (BOM, a timestamp per line, the exit-code trailer) changes nothing."""
    text = (BENCH / "go-otel-exact-merge-testify.log").read_text(encoding="utf-8")
    served = "\ufeff" + "\n".join(f"2026-01-01T00:00:{i % 60:02d}.1234567Z {line}" for i, line in
                                  enumerate([*text.splitlines(), "##[error]Process completed with exit code 1."]))
    assert failing_tests(clean_lines(served)) == failing_tests(clean_lines(text))


REAL = {
    "cargo-zetox-network-tests.log": ["toxcore_tests::network_tests::networking_core_new_test",
                                      "toxcore_tests::network_tests::networking_core_register_test"],
    "jest-hothouse-yarn-workspaces.log": ["YarnWorkspaces#getPackages should return package when lockfile exists"],
    "mstest-vstest-sample-project.log": ["SampleUnitTestProject.UnitTest1.FailingTest"],
    "pytest-pytest-check-summary.log": ["test_example_short_test_summary_info.py::test_message"],
    "pytest-pytest-legacy-fail-summary.log": ["foo.py::test[0]", "foo.py::test[2]"],
    "sbt-dotty-junit-interface.log": ["TestA.testThree"],
    "scalatest-leaderboard-foospec.log": ["FooSpec: should throw NoSuchElementException if an empty stack is popped"],
    "surefire-cda2fhir-datatypes.log": ["tr.com.srdc.cda2fhir.DataTypesTransformerTest.testString2DateTime",
                                        "tr.com.srdc.cda2fhir.DataTypesTransformerTest.testTS2DateTime"],
    "surefire-qa-catalogue-legacy.log": ["de.gwdg.metadataqa.marc.cli.ClassificationAnalysisTest.pica",
                                         "de.gwdg.metadataqa.marc.cli.utils.CollocationTest.formatRow"],
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_names_the_failing_tests_of_a_real_paste(name: str) -> None:
    assert _read(FIXTURES / name) == REAL[name]


def test_every_fixture_is_tested_and_has_its_source() -> None:
    sources = (FIXTURES / "SOURCES.md").read_text(encoding="utf-8")
    logs = sorted(p.name for p in FIXTURES.glob("*.log"))
    assert logs == sorted(REAL)
    assert [name for name in logs if f"`{name}` | https://github.com/" not in sources] == []


# ---- lines that are not test names -----------------------------------------------------------------------

NOT_TESTS = {
    "unittest summary": "Ran 3 tests in 0.002s\n\nFAILED (failures=1)",
    "surefire counts": "[INFO] Tests run: 5, Failures: 0, Errors: 0, Skipped: 0, Time elapsed: 0.1 s -- in a.BTest\n"
                       "[ERROR] Tests run: 50, Failures: 1, Errors: 0, Skipped: 0",
    "surefire class line": "[ERROR] Tests run: 3, Failures: 1, Errors: 0, Skipped: 0, Time elapsed: 0.1 s <<< FAILURE! "
                           "-- in org.foo.FooTest",
    "javac under [ERROR]": "[ERROR] /src/Foo.java:[12,5] cannot find symbol\n[ERROR]   symbol:   class Bar\n"
                           "[ERROR]   location: class a.Foo",
    "make cascade": "make: *** [test] Error 1\nmake: *** [Makefile:12: check] Error 2",
    "gradle cascade": "> Task :app:test FAILED\n:lint:test FAILED\nFAILURE: Build failed with an exception.\n"
                      "* What went wrong:\nExecution failed for task ':test'.\n"
                      "> There were failing tests. See the report at: file:///build/index.html",
    "gradle passing": "com.example.FooTest > adds PASSED\ncom.example.FooTest > skips SKIPPED",
    "cargo passing": "test parser::tests::empty ... ok\ntest result: ok. 5 passed; 0 failed; 0 ignored",
    "cargo summary": "test result: FAILED. 248 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out",
    "rust binary panic": "thread 'main' panicked at src/main.rs:3:5:\nattempt to subtract with overflow",
    "go passing and package lines": "--- PASS: TestAdd (0.00s)\nok  \texample.com/a\t0.01s\n"
                                    "FAIL\texample.com/b\t0.02s\nFAIL\texample.com/c [build failed]",
    "ctest passing": "1/2 Test #1: unit_tests .......................   Passed   23.59 sec\n"
                     "100% tests passed, 0 tests failed out of 2",
    "ctest not run list": "The following tests did not run:\n\t  3 - slow_test (Disabled)",
    "dotnet summary": "Passed   Foo.Bar [1 ms]\nFailed!  - Failed:     0, Passed:    10, Skipped:     0, Total:    10\n"
                      "Failed to restore /src/app.csproj (in 2.1 sec).\nFailed to download package 'x' [timeout]\nFailed tests",
    "phpunit warnings": "There was 1 warning:\n\n1) Foo\\BarTest::testX\nThis test did not perform any assertions",
    "rspec and exunit counts": "5 examples, 0 failures\n74 tests, 1 failure\nRandomized with seed 828107",
    "jest counts and notices": "Tests:       1 failed, 5 passed, 6 total\n  ● Validation Warning:\n"
                               "  › 1 snapshot failed.",
    "sbt summary": "[error] Failed: Total 3, Failed 1, Errors 0, Passed 2\n[info] *** 1 TEST FAILED ***\n"
                   "[error] (Test / test) sbt.TestsFailedException: Tests unsuccessful",
    "mocha progress": "  Suite\n    ✓ passes (5ms)\n    1) fails\n  1 passing (8ms)\n  1 failing",
    "a numbered list in prose": "1) Run the installer\n2) Restart the shell",
    "a breadcrumb in prose": "See Settings › Billing › Plans\nfor the limits.",
}


@pytest.mark.parametrize("text", NOT_TESTS.values(), ids=NOT_TESTS.keys())
def test_summaries_passing_tests_and_cascades_are_not_tests(text: str) -> None:
    assert failing_tests(clean_lines(text)) == []


def test_a_suite_is_not_named_when_its_tests_are() -> None:
    """jest's ``FAIL file`` names the file only when no test in it is named (a suite that could not run)."""
    named = " FAIL  src/a.test.js (5.2 s)\n  ● Bar › is filled\n\n    expect(received).toEqual(expected)"
    assert failing_tests(clean_lines(named)) == ["Bar › is filled"]
    assert failing_tests(clean_lines(" FAIL  src/b.test.js\n  ● Baz › runs")) == ["Baz › runs"]
    assert failing_tests(clean_lines(" FAIL  src/a.test.js (5.2 s)")) == ["src/a.test.js"]


def test_a_mocha_title_over_several_lines_is_one_name() -> None:
    """Mocha ≥ 4 prints a failure's title path one level per line, deeper each time, the last with a colon; the
    progress line of the same failure (``1) fails``, no colon) is not a second name."""
    text = ("  Suite\n    ✓ passes\n    1) fails\n\n\n  1 passing (8ms)\n  1 failing\n\n"
            "  1) Suite\n       fails:\n     Error: boom\n      at Context.<anonymous> (test/a.js:3:11)")
    assert failing_tests(clean_lines(text)) == ["Suite fails"]


def test_lines_of_a_runner_around_the_tests_are_read_through_its_prefix() -> None:
    """Tests run inside ``docker build`` (BuildKit) or ``docker compose`` reach the log with the wrapper's prefix."""
    text = ("#12 4.211 FAILED tests/test_api.py::test_health - assert 500 == 200\n"
            "api-1  | --- FAIL: TestHealth (0.01s)")
    assert failing_tests(clean_lines(text)) == ["tests/test_api.py::test_health", "TestHealth"]


def test_a_go_test_named_with_gomaxprocs_after_it_is_the_test_without_it() -> None:
    """Old Go (and ``-cpu``) prints ``TestResolver-4`` (go-weave-scope-resolver-cpu-suffix): ``-run TestResolver``
    reruns it. A subtest's own ``-1`` is part of its name."""
    text = "--- FAIL: TestResolver-4 (0.00s)\n\tresolver_test.go:89: didn't Stop in time\n--- FAIL: TestA/case-1 (0.00s)"
    assert failing_tests(clean_lines(text)) == ["TestResolver", "TestA/case-1"]


def test_a_nix_or_mock_build_prefix_is_read_through() -> None:
    """Package builds prefix every line: Nix with ``       > `` (cargo-prmt-git-module-nix), Fedora mock with
    ``BUILDSTDERR: ``; the test lines under them read as without."""
    nix = ("       > test test_git_module ... FAILED\n       > failures:\n       >\n"
           "       > ---- test_git_module stdout ----\n       > failures:\n       >     test_git_module")
    assert failing_tests(clean_lines(nix)) == ["test_git_module"]
    assert failing_tests(clean_lines("BUILDSTDERR: test input::tests::replace ... FAILED")) == [
        "input::tests::replace"]


def test_a_harness_printing_output_for_stdout_names_its_test() -> None:
    """A harness printing ``---- name output ----`` (cargo-free-mint-initial-balance) names the test as libtest's
    ``---- name stdout ----`` does."""
    line = "---- tests::free_mint_test_integration::test_free_mint_initialization output ----"
    assert failing_tests(clean_lines(line)) == ["tests::free_mint_test_integration::test_free_mint_initialization"]


def test_scalatest_under_a_community_builds_project_prefix_is_named_under_its_spec() -> None:
    """sbt's community build tags each line with its time and project (sbt-util-logexchange-scalatest)."""
    text = ("[17:48:27] [sbt-util] [info] LogExchangeSpec:\n"
            "[17:48:27] [sbt-util] [info] - should match real StringTypeTag[Throwable] *** FAILED ***")
    assert failing_tests(clean_lines(text)) == ["LogExchangeSpec: should match real StringTypeTag[Throwable]"]


def test_testng_under_gradle_is_named_without_its_default_suite() -> None:
    """TestNG run by Gradle prints its default suite and test names first (gradle-sphinx4-testng-lattice)."""
    line = "Gradle suite > Gradle test > edu.cmu.sphinx.result.LatticeCompTest.testLatticeComp FAILED"
    assert failing_tests(clean_lines(line)) == ["edu.cmu.sphinx.result.LatticeCompTest.testLatticeComp"]


STEF = ("org.opentest4j.AssertionFailedError: record 847 seed 1134697243567416 optIdx 0 ==> expected: <true> but was: "
        "<false>\n\tat app//org.junit.jupiter.api.AssertionFailureBuilder.build(AssertionFailureBuilder.java:151)\n"
        "\tat app//org.junit.jupiter.api.Assertions.assertTrue(Assertions.java:210)\n"
        "\tat app//com.example.oteltef.MetricsWriterTest.testMetricsWriteRead(MetricsWriterTest.java:85)")


def test_a_pasted_assertion_trace_names_its_test_frame() -> None:
    """Only the exception and its trace pasted (gradle-stef-metrics-writer-seed): the first frame of a test class
    below the assertion, past the assertion library's own frames."""
    assert failing_tests(clean_lines(STEF)) == ["com.example.oteltef.MetricsWriterTest.testMetricsWriteRead"]


@pytest.mark.parametrize("text", [
    STEF.split("\n", 1)[1],  # frames with no assertion above them: a crash's trace, not a failed test
    "java.lang.IllegalStateException: boom\n\tat com.example.FooTest.setUp(FooTest.java:3)",
    "java.lang.AssertionError\n" + "\tat com.example.Helper.check(Helper.java:1)\n" * 12
    + "\tat com.example.FooTest.late(FooTest.java:9)",
], ids=["no assertion", "not an assertion", "test frame past the frames read"])
def test_a_trace_names_no_test_without_an_assertion_and_its_test_frame(text: str) -> None:
    assert failing_tests(clean_lines(text)) == []


@pytest.mark.parametrize(("trace", "name"), [
    # a VB async test's state machine, the trace localised (dotnet-xunit-roslyn-escaped-item-spanish)
    ("Assert.Equal() Failure\nStack trace\n   en Xunit.Assert.Equal(String expected, String actual) en C:\\x.cs:línea 9\n"
     "   en Ns.UnitTests.FooTests.VB$StateMachine_106_TestBar.MoveNext() en /_/src/Foo.vb:línea 22",
     "Ns.UnitTests.FooTests.TestBar"),
    # a C# async test's state machine
    ("Xunit.Sdk.EqualException: Assert.Equal() Failure\n   at Ns.FooTests.<Adds_Two>d__3.MoveNext() in /src/FooTests.cs:line 40",
     "Ns.FooTests.Adds_Two"),
    # NUnit, the frame in German
    ("NUnit.Framework.AssertionException:   Expected: 5\n  But was:  4\n   bei Ns.CalcTest.Adds() in C:\\CalcTest.cs:Zeile 12",
     "Ns.CalcTest.Adds"),
], ids=["vb state machine, spanish", "c# state machine", "nunit, german"])
def test_a_pasted_dotnet_assertion_trace_names_its_test_frame(trace: str, name: str) -> None:
    assert failing_tests(clean_lines(trace)) == [name]


def test_a_dotnet_frame_below_no_assertion_names_no_test() -> None:
    crash = "System.NullReferenceException: Object reference not set\n   at Ns.FooTests.Adds() in /src/FooTests.cs:line 4"
    assert failing_tests(clean_lines(crash)) == []


def test_a_runners_own_line_names_the_test_before_any_frame() -> None:
    """The frame is a fallback: Surefire's own line names the test when there is one."""
    text = ("testRead(ciir.umass.edu.utilities.FileUtilsTest)  Time elapsed: 0.001 sec  <<< FAILURE!\n"
            "org.junit.ComparisonFailure: expected:<it is a test[]\n"
            "        at ciir.umass.edu.utilities.OtherTest.helper(OtherTest.java:13)")
    assert failing_tests(clean_lines(text)) == ["ciir.umass.edu.utilities.FileUtilsTest.testRead"]


def test_the_rerun_form_replaces_the_description_it_names() -> None:
    """RSpec names a failure by description, then prints the line that reruns it: one test, in the rerun form."""
    text = ("  1) Job sets the progress\n     Failure/Error: expect(x).to eq(1)\n\nFailed examples:\n\n"
            "rspec ./spec/job_spec.rb:13 # Job sets the progress")
    assert failing_tests(clean_lines(text)) == ["./spec/job_spec.rb:13"]


# ---- hostile input -----------------------------------------------------------------------------------------

def test_the_names_are_capped() -> None:
    lines = [f"--- FAIL: TestCase{i} (0.00s)" for i in range(5000)]
    assert failing_tests(lines) == [f"TestCase{i}" for i in range(MAX_TESTS)]


def test_a_flood_of_failures_is_read_quickly() -> None:
    """The scan stops once it has far more names than it returns: a log of 50,000 failures costs no more."""
    start = time.monotonic()
    assert len(failing_tests([f"--- FAIL: TestCase{i} (0.00s)" for i in range(50_000)])) == MAX_TESTS
    assert time.monotonic() - start < 2


def test_megabyte_lines_are_read_quickly() -> None:
    """Patterns see the head of a line only: forty 1 MB lines cost what forty short ones do."""
    start = time.monotonic()
    assert failing_tests(["x" * 1_000_000] * 40) == []
    assert time.monotonic() - start < 1


def test_a_hostile_line_is_bounded_and_cleaned() -> None:
    """A megabyte-long name with bidi overrides, zero-width and control characters: one short, clean name."""
    name = "Test\u202eevil\u200b\x00" + "é🙂" * 500_000
    [found] = failing_tests([f"--- FAIL: {name} (0.00s)"])
    assert len(found) <= MAX_NAME and found.startswith("Testevil") and "\u202e" not in found and "\x00" not in found


@pytest.mark.parametrize("line", ["a › " * 300_000, "_" * 1_000_000, "1) " + "x" * 1_000_000 + ":",
                                  " FAIL  " + "a > " * 300_000, "Failed " + "(" * 500_000])
def test_a_long_hostile_line_is_read_quickly(line: str) -> None:
    start = time.monotonic()
    found = failing_tests([line, "", "    expected"])
    assert time.monotonic() - start < 2 and all(len(n) <= MAX_NAME for n in found)


def test_odd_input_gives_nothing_rather_than_an_error() -> None:
    assert failing_tests([]) == []
    assert failing_tests(["", "\x00\x01", "\ud800", "1)", "●", "failures:", "There were 2 failures:"]) == []
