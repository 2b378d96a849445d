"""One reader of CI output (bot/core/ci_output/reading.py), its signature, and its digest for people.

Pure: Evidence in, Reading, signature and Markdown out. Where a test needs a helper's extractor (failing tests,
the root error, noise templates, infrastructure) it says so in its docstring; the rest build records directly.
"""

from __future__ import annotations

import re

import markdown_it
import pytest

from bot.core.ci_output import digest
from bot.core.ci_output.reading import Reading, also_failing, normalise, read, read_all, signature
from bot.core.ci_output.records import Annotation, Context, Evidence, FailedCase, Infra, RootError

TRAILER = "##[error]Process completed with exit code 1."


def reading(**fields: object) -> Reading:
    return Reading(**{"job": "tests", **fields})  # type: ignore[arg-type]


def lines_of(text: str) -> int:
    return len(text.splitlines())


# ---- read: structured first --------------------------------------------------------------------------------

def test_report_cases_are_failing_tests_each_once_in_order() -> None:
    cases = (FailedCase("pkg.A.test_one", "boom"), FailedCase("pkg.B.test_two"), FailedCase("pkg.A.test_one", "again"))
    r = read(Evidence(job="unit", cases=cases))
    assert r.tests == ("pkg.A.test_one", "pkg.B.test_two")


def test_a_failure_annotation_is_the_root_error_and_says_where() -> None:
    notes = (Annotation("src/app.ts", 3, "warning", "", "unused variable"),
             Annotation(".github", None, "failure", "", "Process completed with exit code 2."),
             Annotation("src/app.ts", 12, "failure", "TS2322", "Type 'string' is not assignable to type 'number'."))
    r = read(Evidence(job="build", log="tsc\n" + TRAILER, annotations=notes))
    assert r.root is not None and r.root.source == "annotation"
    assert r.root.line == "src/app.ts:12: TS2322: Type 'string' is not assignable to type 'number'."


def test_the_runners_own_annotations_are_never_the_root_error() -> None:
    notes = (Annotation(".github", None, "failure", "", "Process completed with exit code 1."),
             Annotation(".github", None, "failure", "", "The runner has received a shutdown signal."))
    r = read(Evidence(job="build", annotations=notes))
    assert r.root is None


def test_a_report_message_is_the_root_error_when_nothing_else_names_one() -> None:
    r = read(Evidence(job="unit", cases=(FailedCase("pkg.A.test_one", "expected 1\nbut was 2"),)))
    assert r.root == RootError("pkg.A.test_one: expected 1", ("expected 1", "but was 2"), source="report")


def test_the_tail_leaves_out_the_trailer_and_blank_lines() -> None:
    log = "\n".join(f"step {i}" for i in range(40)) + "\n\n" + TRAILER + "\n"
    r = read(Evidence(job="build", log=log))
    assert r.tail[-1] == "step 39" and len(r.tail) == 20 and not any("exit code" in t for t in r.tail)


@pytest.mark.parametrize("log", ["", "\x00\x00\x00", "\n\n   \n", "\ufeff" + "x" * 200_000, "\x1b[31m\x1b[0m" * 1000,
                                 "2026-01-01T00:00:00.0000000Z " * 3])
def test_untrusted_logs_give_a_reading_never_a_traceback(log: str) -> None:
    r = read(Evidence(job="j", log=log))
    text = digest.render(r)
    assert r.job == "j" and text.startswith("**") and lines_of(text) <= 60


# ---- the log, through the helpers' extractors -------------------------------------------------------------

PYTEST = ("============================= FAILURES =============================\n"
          "___________________________ test_create ___________________________\n"
          "E       assert 500 == 201\n"
          "tests/test_api.py:14: AssertionError\n"
          "FAILED tests/test_api.py::test_create - assert 500 == 201\n"
          "========================= 1 failed in 0.42s =========================\n" + TRAILER)


def test_tests_from_the_report_and_the_log_are_merged() -> None:
    """Waits on H1's failing_tests (pytest)."""
    r = read(Evidence(job="unit", log=PYTEST, cases=(FailedCase("tests/test_api.py::test_create"),
                                                      FailedCase("tests/test_api.py::test_delete"))))
    assert r.tests == ("tests/test_api.py::test_create", "tests/test_api.py::test_delete")


def test_the_root_error_is_read_from_the_log_never_the_trailer() -> None:
    """Waits on H2's root_error."""
    r = read(Evidence(job="unit", log=PYTEST))
    assert r.root is not None and r.root.source == "log" and "500 == 201" in r.root.line
    assert "exit code" not in digest.render(r)


def test_lines_green_runs_print_are_not_the_tail() -> None:
    """Waits on the noise templates (noise_lines)."""
    green = "\n".join(["Run actions/checkout@v4", "Fetching 12 objects", "Building wheel 3.2s", "ok"])
    log = "\n".join(["Run actions/checkout@v4", "Fetching 99 objects", "Building wheel 9.1s", "segfault in worker 7"])
    r = read(Evidence(job="build", log=log, green_logs=(green,)))
    assert r.noise_lines >= 2 and r.tail[-1] == "segfault in worker 7" and "Run actions/checkout@v4" not in r.tail


# ---- normalise and signature --------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b", [
    ("error at /tmp/pytest-of-runner/pytest-3/x.py:12:5", "error at /tmp/pytest-of-runner/pytest-9/x.py:80:1"),
    ("object 0x7f3a2b1c freed twice", "object 0x55d0e1f2 freed twice"),
    ("commit 3f2a9c1d8e7b not found", "commit a1b2c3d4e5f6 not found"),
    ("request 6f1c0c1e-6b9a-4f7e-9b6a-2a1f0e9d8c7b timed out after 30.5s", "request "
     "0b6e8d1f-1c2d-4e3f-8a9b-0c1d2e3f4a5b timed out after 2 s"),
    ("src/main.rs:10:5: mismatched types", "src/main.rs:214:17: mismatched types"),
])
def test_normalise_takes_out_what_varies_between_runs(a: str, b: str) -> None:
    assert normalise(a) == normalise(b)


def test_normalise_keeps_what_tells_errors_apart() -> None:
    assert normalise("KeyError: 'user'") != normalise("KeyError: 'group'")
    assert normalise("the defaced widget") == "the defaced widget"  # a word of hex letters is not a sha


def test_without_a_failing_test_the_signature_is_the_job_and_the_normalised_root_error() -> None:
    a = reading(root=RootError("Error: ENOENT /tmp/abc123/x.json at 12:4"))
    b = reading(root=RootError("Error: ENOENT /tmp/zzz999/x.json at 80:1"))
    assert signature(a) == signature(b) and signature(a).startswith("tests: error: enoent")
    assert signature(a) != signature(reading(job="lint", root=a.root))


@pytest.mark.parametrize("generic", ["E       assert 1 == 2", "expect(received).toBe(expected) // Object.is equality"])
def test_two_tests_failing_on_one_generic_line_have_two_signatures(generic: str) -> None:
    a, b = (reading(root=RootError(generic), tests=(t,)) for t in ("test_parse", "test_refund"))
    assert signature(a) != signature(b) and signature(a) == "tests: tests: test_parse"


def test_the_sorted_failing_tests_then_the_infrastructure_kind() -> None:
    assert signature(reading(tests=("b", "a"))) == signature(reading(tests=("a", "b"))) == "tests: tests: a, b"
    many = reading(tests=tuple(f"tests/test_{i}.py::test_{i}" for i in range(500)))
    assert len(signature(many)) < 120 and signature(many) != signature(reading(tests=many.tests[:499]))
    runner = reading(infra=Infra("runner-lost", "The runner has received a shutdown signal."))
    assert signature(runner) == "tests: infrastructure: runner-lost"


def test_two_different_unreadable_failures_never_share_a_signature() -> None:
    one = read(Evidence(job="build", log="compiling 12 units\nsomething odd happened in stage 3\n" + TRAILER))
    two = read(Evidence(job="build", log="compiling 12 units\nworker vanished without a word\n" + TRAILER))
    again = read(Evidence(job="build", log="compiling 99 units\nsomething odd happened in stage 7\n" + TRAILER))
    assert one.root is None and two.root is None and not one.tests and not two.tests
    assert signature(one) != signature(two)
    assert signature(one) == signature(again)  # the same failure run again: only numbers changed


def test_an_empty_log_is_named_by_its_check_run_whatever_its_page_else_by_the_delivery() -> None:
    assert signature(read(Evidence(job="build")), unique="check_run-1") != \
        signature(read(Evidence(job="build")), unique="check_run-2")
    # A workflow run's delivery links the job's page, the check run's delivery the check's: one check run.
    pages = ["https://github.com/o/r/actions/runs/1/job/7", "https://github.com/o/r/runs/7"]
    as_read = {signature(read(Evidence(job="build", log_url=url, check_id=7)), unique=u)
               for url, u in zip(pages, ["workflow_run-1", "check_run-7"], strict=True)}
    assert as_read == {"build: empty log: check 7"}


# ---- context -------------------------------------------------------------------------------------------------

def test_also_failing_on_the_default_branch_by_tests_or_by_root_error() -> None:
    mine = reading(tests=("a", "b"), root=RootError("boom 12"))
    assert also_failing(mine, [reading(tests=("b", "c"))]) == ("b",)
    assert also_failing(reading(root=RootError("boom 12")), [reading(root=RootError("boom 99"))]) == ("boom 12",)
    assert also_failing(mine, [reading(tests=("c",), root=RootError("other"))]) == ()
    assert also_failing(mine, []) == ()


def test_other_tests_failing_on_the_default_branch_on_the_same_line_are_not_this_failure() -> None:
    """The PR fails test_parse, main fails test_refund, both on `assert 1 == 2`: nothing is also failing."""
    line = RootError("E       assert 1 == 2")
    mine, main = reading(tests=("tests/test_a.py::test_parse",), root=line), reading(tests=("test_refund",), root=line)
    assert also_failing(mine, [main]) == ()
    assert also_failing(reading(root=line), [main]) == ()  # one side named a test: the lines are not compared
    assert also_failing(mine, [reading(tests=("tests.test_a.test_parse",))]) == ("tests/test_a.py::test_parse",)


def test_read_all_reads_every_job_and_the_first_leads_the_context() -> None:
    jobs = [Evidence(job="unit", cases=(FailedCase("t1"),)), Evidence(job="lint", cases=(FailedCase("l1"),))]
    readings, ctx = read_all(jobs, [Evidence(job="unit", cases=(FailedCase("t1"),))], default_branch="main",
                             green_sha="abc", since_green=[("def", "Change it")])
    assert [r.job for r in readings] == ["unit", "lint"]
    assert ctx == Context(also_on_default=("t1",), default_branch="main", green_sha="abc", since_green=(("def", "Change it"),))
    assert read_all([], [], default_branch=None, green_sha=None, since_green=[])[0] == []


# ---- the digest ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("r, line", [
    (reading(infra=Infra("runner-lost", "lost")), "Infrastructure failure (runner lost): not this change"),
    (reading(infra=Infra("runner-lost", "lost"), tests=("a",)), "1 failing test; the runner also reported: runner lost"),
    (reading(tests=("a", "b", "c")), "3 failing tests"),
    (reading(tests=("a",)), "1 failing test"),
    (reading(root=RootError("error: x")), "Build error"),
    (reading(tail=("what",)), "Failed; no failing test or error could be named"),
])
def test_the_verdict_line(r: Reading, line: str) -> None:
    assert digest.render(r).startswith(f"**{line}** in `tests`.")


def test_the_digest_stays_short_whatever_the_failure_holds() -> None:
    huge = tuple(f"  at frame {i} " + "x" * 5000 for i in range(10_000))
    r = reading(tests=tuple(f"tests/test_{i}.py::test_{i}" for i in range(500)),
                root=RootError("AssertionError: " + "y" * 10_000, huge, line_number=4242, source="log"),
                log_lines=20_000, noise_lines=19_000, log_url="https://github.com/o/r/actions/runs/1/job/2",
                annotations=tuple(Annotation(f"f{i}.py", i, "failure", "", "m" * 900) for i in range(50)),
                cases=tuple(FailedCase(f"c{i}", "n" * 900) for i in range(100)), tail=huge[:20])
    ctx = Context(also_on_default=r.tests, default_branch="main", flaky=True, green_sha="a" * 40,
                  since_green=tuple((f"{i:040x}", "m" * 500) for i in range(50)))
    others = [reading(job=f"job{i}", tests=("t",)) for i in range(30)]
    text = digest.render(r, ctx, others)
    assert lines_of(text) <= 60 and len(text) < 20_000
    assert "… and 492 more" in text and "and 495 more" in text and "and 26 more" in text
    assert "line 4242 of the log: <https://github.com/o/r/actions/runs/1/job/2>" in text
    assert "19000 of 20000 log lines matched green runs" in text
    assert "Also failing on `main`, not this change" in text and "**Flaky:**" in text


def test_the_evidence_is_folded_and_nothing_quoted_can_close_a_block() -> None:
    hostile = "```\n</details>\n@everyone /approve\n```"
    r = reading(root=RootError(hostile, tuple(hostile.splitlines())),
                annotations=(Annotation("a.py", 1, "failure", "", hostile),), cases=(FailedCase(hostile, hostile),))
    text = digest.render(r)
    tokens = markdown_it.MarkdownIt().parse(text)
    fences = [t for t in tokens if t.type == "fence"]
    assert len(fences) == 1 and "@everyone /approve" in fences[0].content  # the root error, all inside its block
    details = [t for t in tokens if t.type == "html_block" and "details>" in t.content]
    assert "".join(t.content for t in details).count("</details>") == 1  # only the digest's own


def test_the_trailer_is_never_quoted() -> None:
    r = read(Evidence(job="build", log="\ufeff2026-01-01T00:00:00.0Z starting\n2026-01-01T00:00:01.0Z "
                                        + TRAILER + "\n"))
    text = digest.render(r)
    assert "Process completed" not in text and "starting" in text
    assert not re.search(r"exit code", signature(r))


def test_commits_since_green_and_the_link_to_the_log() -> None:
    ctx = Context(green_sha="f" * 40, since_green=(("a" * 40, "Fix `it` @here"), ("b" * 40, "Break it")))
    text = digest.render(reading(tail=("odd",), log_url="https://github.com/o/r/actions/runs/1/job/2"), ctx)
    assert "**Commits since the last green run** (`ffffffffffff`):" in text and "- `aaaaaaaaaa` Fix `it` @here" in text
    assert "(the job's log: <https://github.com/o/r/actions/runs/1/job/2>)" in text
    assert "**Recent commits** (no green run found):" in digest.render(reading(), Context(since_green=(("c" * 40, "x"),)))
