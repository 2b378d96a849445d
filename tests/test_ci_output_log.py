"""A failed job's log read like an engineer reads it (issue 15, point 5): cleaned lines, the root error,
infrastructure failures.

The tuning part of ``benchmarks/ci_logs`` is read in place, with the root error and infrastructure kind
written down in its index (the held-back part is never read here); forms it lacks are real-shaped logs
written below. Then the lines that must never be chosen (the trailer, cascades), false infrastructure
claims, and hostile input.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from bot.core.ci_output import errors
from bot.core.ci_output.clean import MAX_LINE, clean_lines
from bot.core.ci_output.errors import root_error
from bot.core.ci_output.infra import recognise

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "ci_logs"
TRAILER = "##[error]Process completed with exit code 1."
ROWS = [json.loads(line) for line in (BENCH / "index.jsonl").read_text(encoding="utf-8").splitlines()]
TUNING = [r for r in ROWS if r["split"] == "tuning"]
# What a quote may fairly drop around the line written down (as benchmarks/ci_reading.py's ``core``).
DECORATION = re.compile(r"^\s*(?:\ufeff?\d{4}-\d\d-\d\dT[\d:.]+Z|##\[error\]|(?:Error|ERROR|error):(?=\s+\S)"
                        r"|E(?=\s{2,})|\[(?:ERROR|error)\]|npm ERR!|#\d+(?=\s)|\d+\.\d+(?=\s))\s*")


def core(line: str) -> str:
    previous = None
    while previous != line:
        previous, line = line, DECORATION.sub("", line, count=1)
    return " ".join(line.split())


def served(text: str) -> str:
    """`text` as GitHub serves a failed job's log: a BOM, a timestamp on every line, the exit-code trailer."""
    lines = [*text.splitlines(), TRAILER]
    return "\ufeff" + "\n".join(f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.1234567Z {x}"
                                for i, x in enumerate(lines)) + "\n"


def root(text: str) -> str | None:
    found = root_error(clean_lines(text))
    return found.line if found else None


# ---- the set itself ---------------------------------------------------------------------------------------

def test_the_index_is_sorted_complete_and_split_by_the_hash_rule() -> None:
    """The README's rule: held back when sha256(id) % 3 == 0, so adding logs never moves one between parts."""
    ids = [r["id"] for r in ROWS]
    assert ids == sorted(set(ids))
    assert sorted(p.stem for p in BENCH.glob("*.log")) == ids
    for r in ROWS:
        assert set(r) == {"id", "source", "framework", "failing_tests", "root_error", "infrastructure", "note", "cut",
                          "split"}
        assert r["split"] == ("held-back" if int(hashlib.sha256(r["id"].encode()).hexdigest(), 16) % 3 == 0
                              else "tuning"), r["id"]


# ---- cleaning -----------------------------------------------------------------------------------------

def test_cleaning_strips_what_the_runner_and_terminal_add_and_keeps_line_numbers() -> None:
    log = ("\ufeff2026-01-01T00:00:00.1234567Z ##[group]Run pytest -q\n"
           "2026-01-01T00:00:01.1234567Z \x1b[31;1mE   assert 1 == 2\x1b[0m\n"
           "2026-01-01T00:00:02.1234567Z ##[endgroup]\n"
           "2026-01-01T00:00:03.1234567Z ##[error]Process completed with exit code 1.\r\n"
           "Downloading 10%\rDownloading 55%\rDownloading 100%\n"
           "\x1b]8;;https://example.com\x07link\x1b]8;;\x07 and \x00nul\n")
    assert clean_lines(log) == ["Run pytest -q", "E   assert 1 == 2", "", TRAILER, "Downloading 100%", "link and nul"]


def test_a_line_number_maps_back_to_the_raw_log() -> None:
    """GitHub numbers a job log's lines by newline only; a stray form feed or U+2028 in output starts none."""
    log = "one\ntwo\x0cstill two\nthree\u2028still three\nfour"
    assert len(clean_lines(log)) == 4
    assert clean_lines(log)[3] == "four"


@pytest.mark.parametrize("junk", [None, b"bytes", 42, ""])
def test_cleaning_anything_but_text_reads_as_an_empty_log(junk: object) -> None:
    assert clean_lines(junk) == []  # type: ignore[arg-type]


def test_a_huge_line_is_cut() -> None:
    lines = clean_lines("x" * (MAX_LINE * 10) + "\nnext")
    assert len(lines[0]) <= MAX_LINE + 2 and lines[1] == "next"


# ---- the root error on real logs -------------------------------------------------------------------------

# Where the index and the reader pick different lines of one failure, each line in the other's context. The two
# RSpec logs of the tuning part have one form (`Failure/Error:`, then `expected:` / `got:`) and were written down
# both ways (rspec-wca-post-count-seed quotes `Failure/Error:`): no rule quotes both as written, so one stays. The same
# holds for minitest's custom message above its `Expected` line.
QUOTED_OTHERWISE = {
    "rspec-little-plugger-default-path": "the index quotes RSpec's `got:` line; the reader quotes the "
                                         "`Failure/Error:` line above it, with `got:` in its context",
    "minitest-rails-generator-paths": "the index quotes the `Expected` line under the custom message `In stdout.`; "
                                      "the reader quotes the message, as minitest-rg-failure-and-error is written "
                                      "down (`Failure should be RED.` above its `Expected:`)",
}


@pytest.mark.parametrize("row", [pytest.param(r, id=f"{r['framework']}:{r['id']}", marks=[pytest.mark.xfail(
    strict=True, reason=QUOTED_OTHERWISE[r["id"]])] if r["id"] in QUOTED_OTHERWISE else []) for r in TUNING])
def test_the_root_error_of_a_tuning_log_is_the_line_written_down(row: dict[str, str]) -> None:
    text = (BENCH / f"{row['id']}.log").read_text(encoding="utf-8")
    found = root(text)
    assert found is not None and core(found) == core(row["root_error"])


@pytest.mark.parametrize("row", TUNING, ids=[r["id"] for r in TUNING])
def test_served_as_a_job_log_the_root_error_is_the_same_and_its_context_holds_it(row: dict[str, str]) -> None:
    """BOM, timestamps and the trailer change nothing; the context (root line included) quotes the line
    written down, and the line number points at it in the raw log."""
    text = (BENCH / f"{row['id']}.log").read_text(encoding="utf-8")
    pasted, job = root_error(clean_lines(text)), root_error(clean_lines(served(text)))
    assert pasted is not None and job is not None
    assert core(job.line) == core(pasted.line) and job.line_number == pasted.line_number
    assert any(core(x) == core(row["root_error"]) for x in job.context)
    raw = served(text).split("\n")[job.line_number - 1]  # type: ignore[operator]
    assert job.line in raw


SHAPES = {
    "tsc and npm's cascade": ("> app@1.0.0 build\n> tsc -p .\n\nsrc/index.ts(3,5): error TS2322: Type 'string' is "
                              "not assignable to type 'number'.\nnpm ERR! code ELIFECYCLE\nnpm ERR! errno 2\n"
                              "npm ERR! Exit status 2\n", "src/index.ts(3,5): error TS2322:"),
    "go build": ("go: downloading github.com/stretchr/testify v1.8.4\n# example.com/app\n./main.go:12:5: undefined: "
                 "foo\nFAIL\texample.com/app [build failed]\nFAIL\n", "./main.go:12:5: undefined: foo"),
    "javac under Gradle": ("> Task :compileJava FAILED\n/w/src/main/java/App.java:3: error: cannot find symbol\n"
                           "        Foo x = new Foo();\n1 error\n\nFAILURE: Build failed with an exception.\n\n"
                           "* What went wrong:\nExecution failed for task ':compileJava'.\n",
                           "App.java:3: error: cannot find symbol"),
    "docker build": ("#7 [build 3/5] RUN npm ci\n#7 1.234 npm ERR! code E404\n#7 1.235 npm ERR! 404 Not Found - GET "
                     "https://registry.npmjs.org/left-padd - Not found\n#7 ERROR: process \"/bin/sh -c npm ci\" did "
                     "not complete successfully: exit code: 1\nERROR: failed to solve: process \"/bin/sh -c npm ci\""
                     " did not complete successfully: exit code: 1\n", "404 Not Found - GET"),
    "a Java exception": ("Exception in thread \"main\" java.lang.NullPointerException: Cannot invoke "
                         "\"String.length()\"\n\tat App.main(App.java:5)\n", "java.lang.NullPointerException"),
    "pytest, past its progress lines": (
        "tests/test_a.py::test_ok PASSED\ntests/test_a.py::test_sum FAILED\n\n=== FAILURES ===\n"
        "___ test_sum ___\n\n    def test_sum():\n>       assert add(1, 1) == 3\nE       assert 2 == 3\n\n"
        "tests/test_a.py:4: AssertionError\n=== short test summary info ===\n"
        "FAILED tests/test_a.py::test_sum - assert 2 == 3\n", "E       assert 2 == 3"),
    "tsc's pretty form": ("src/app.ts:3:5 - error TS2322: Type 'string' is not assignable to type 'number'.\n\n"
                          "3     let n: number = 'x';\n\nFound 1 error in src/app.ts:3\n", "src/app.ts:3:5 - error TS2322"),
    "rspec, past its Failures: header": ("Failures:\n\n  1) Cart totals the items\n     Failure/Error: expect(total)"
                                         ".to eq(3)\n\n       expected: 3\n            got: 2\n",
                                         "Failure/Error: expect(total).to eq(3)"),
    "a Ruby error at the end of its line": ("/app/lib/cart.rb:3:in `total': undefined method `sum' for nil:NilClass "
                                            "(NoMethodError)\n\tfrom bin/run:2\n", "(NoMethodError)"),
    "an Elixir compile error": ("Compiling 3 files (.ex)\n** (CompileError) lib/a.ex:3: undefined function foo/0\n",
                                "** (CompileError) lib/a.ex:3"),
    "a script's missing command, then pnpm's cascade": (
        "/home/runner/work/_temp/3f2a.sh: line 3: jestt: command not found\n ERR_PNPM_RECURSIVE_RUN_FIRST_FAIL  "
        "app@1.0.0 test: `jestt`\nExit status 127\n", "jestt: command not found"),
    "a test status with no message printed (MSTest)": (
        "Starting test execution, please wait...\nPassed   Sample.UnitTest1.PassingTest\nFailed   Sample.UnitTest1."
        "FailingTest\n\nSkipped  Sample.UnitTest1.SkippingTest\n", "Failed   Sample.UnitTest1.FailingTest"),
    "Surefire's per-test header": (
        "[INFO] Running com.x.FooTest\n[ERROR] Tests run: 3, Failures: 1, Errors: 0, Skipped: 0, Time elapsed: 0.05 s "
        "<<< FAILURE! - in com.x.FooTest\n[ERROR] testAdd(com.x.FooTest)  Time elapsed: 0.01 s  <<< FAILURE!\n"
        "java.lang.AssertionError: expected:<1> but was:<2>\n\tat com.x.FooTest.testAdd(FooTest.java:12)\n",
        "java.lang.AssertionError: expected:<1> but was:<2>"),
    "numbered setup steps before the failure": (
        "1) Installing dependencies:\n   npm ci\n2) Building:\n   tsc -p .\nsrc/a.ts(1,7): error TS2304: Cannot "
        "find name 'x'.\n", "src/a.ts(1,7): error TS2304"),
    "a header whose message follows it (dotnet)": ("  Failed Clock.Tests.Adds [12 ms]\n  Error Message:\n"
                                                   "   Expected 3 but was 4\n", "Expected 3 but was 4"),
    # the forms below are lines of tuning logs (named), cut down
    "a Fedora package build's prefix (rustc-sd-fedora-buildstderr)": (
        "BUILDSTDERR:    Compiling sd v0.6.1 (/builddir/build/BUILD/sd-0.6.1)\nBUILDSTDERR: error[E0308]: mismatched "
        "types\nBUILDSTDERR:    --> src/input.rs:181:58\n", "BUILDSTDERR: error[E0308]: mismatched types"),
    "a panic with no thread name (cargo-free-mint-initial-balance)": (
        "---- tests::free_mint_test_integration::test_free_mint_initialization output ----\n    error output:\n"
        "        panicked at src/tests/free_mint_test_integration.rs:146:5:\n        assertion `left == right` failed",
        "panicked at src/tests/free_mint_test_integration.rs:146:5:"),
    "a panic with the thread's id, Rust 1.89's form (cargo-casbin-rs-enforce-ex)": (
        "failures:\n\n---- enforcer::tests::test_enforce_ex stdout ----\n\nthread 'enforcer::tests::test_enforce_ex' "
        "(7643) panicked at src/enforcer.rs:1739:9:\nassertion `left == right` failed\n", "(7643) panicked at"),
    "Gradle's cause when its test JVM died, under the task's header (gradle-conductor-test-executor-exit)": (
        "> Task :persistence:test FAILED\n\nFAILURE: Build failed with an exception.\n\n* What went wrong:\nExecution "
        "failed for task ':persistence:test'.\n> Process 'Gradle Test Executor 6' finished with non-zero exit value 1\n",
        "> Process 'Gradle Test Executor 6' finished"),
    "a Go subtest's FAIL line wrapped, its message below (go-fabric-etcdraft-goexit)": (
        "--- FAIL: TestSpawnEtcdRaft/Good (1.95s)\n        --- FAIL: TestSpawnEtcdRaft/Good/TLS_enabled_single_listener\n"
        "        (0.24s)\n                    testing.go:864: test executed panic(nil) or\n",
        "testing.go:864: test executed panic(nil) or"),
    "npm 2's environment lines before its network error (infra-bitflux-travis-npm-econnreset)": (
        "npm ERR! Linux 3.13.0-40-generic\nnpm ERR! argv \"/home/travis/.nvm/versions/node/v4.2.6/bin/node\"\n"
        "npm ERR! node v4.2.6\nnpm ERR! npm  v2.14.12\nnpm ERR! code ECONNRESET\nnpm ERR! errno ECONNRESET\n"
        "npm ERR! syscall read\nnpm ERR! network read ECONNRESET\nnpm ERR! network This is most likely not a "
        "problem with npm itself\n", "npm ERR! network read ECONNRESET"),
    "npm's summary, the nested network error further down its block (infra-keyman-git-dep-econnreset)": (
        "07:27:58   npm ERR! code 1\n07:27:58   npm ERR! git dep preparation failed\n07:27:58   npm ERR! command "
        "/usr/bin/node npm-cli.js install --force\n07:27:58   npm ERR! npm WARN using --force Recommended protections "
        "disabled.\n07:27:58   npm ERR! npm ERR! code ECONNRESET\n07:27:58   npm ERR! npm ERR! errno ECONNRESET\n"
        "07:27:58   npm ERR! npm ERR! network Invalid response body while trying to fetch "
        "https://registry.npmjs.org/@parcel%2freporter-tracer: aborted\n", "network Invalid response body"),
    "an error code, its message right under it (infra-nx-verdaccio-plugin-econnreset)": (
        "Error: JS packages plugin: outdated error: npm ERR! code ECONNRESET\nnpm ERR! errno ECONNRESET\n"
        "npm ERR! network Invalid response body while trying to fetch https://registry.npmjs.org/@types%2fnode: "
        "aborted\n", "network Invalid response body"),
    "npm 2's environment lines, then the failure, in one block": (
        "npm ERR! Linux 3.13.0-40-generic\nnpm ERR! argv \"/usr/bin/node\" \"/usr/bin/npm\" \"test\"\n"
        "npm ERR! node v4.2.6\nnpm ERR! npm  v2.14.12\n\nnpm ERR! missing script: test\n", "missing script: test"),
    "a workspace killed, then its exit code (infra-cypress-lerna-killed-137)": (
        "@packages/net-stubbing: Killed\n@packages/net-stubbing: error Command failed with exit code 137.\n"
        "lerna ERR! yarn run build-prod exited 137 in '@packages/net-stubbing'\n", "@packages/net-stubbing: Killed"),
    "a generic error, then the kernel's kill (infra-nimiq-gulp-killed-137)": (
        "[ { file: 'platform/browser/index.prefix.js',\n    error: 'Unexpected token (24:0)' },\n"
        "[02:39:45] Finished 'build-node' after 18 s\nKilled\nnpm ERR! code ELIFECYCLE\nnpm ERR! errno 137\n",
        "Killed"),
}


@pytest.mark.parametrize(("text", "expected"), SHAPES.values(), ids=SHAPES.keys())
def test_the_root_error_of_real_shaped_logs(text: str, expected: str) -> None:
    found = root(served(text))
    assert found is not None and expected in found


def test_the_context_runs_around_the_line_and_longer_after_a_panic() -> None:
    text = (BENCH / "cargo-materialize-storage-usage.log").read_text(encoding="utf-8")
    found = root_error(clean_lines(text))
    assert found is not None and found.line_number == 1
    assert found.context[0] == found.line and "left: 2929" in found.context[2]
    mocha = root_error(clean_lines((BENCH / "mocha-typescript-tmlanguage-baselines.log").read_text(encoding="utf-8")))
    assert mocha is not None and mocha.line == "     AssertionError: expected false to be true"  # as in the log
    assert mocha.line in mocha.context
    assert len(found.context) == 13  # the panic line and 12 of its assertion and backtrace
    plain = root_error(clean_lines("a\nb\nc\nerror: the thing broke\nd\ne\nf\ng\nh\ni\nj"))
    assert plain is not None and plain.context == ("b", "c", "error: the thing broke", "d", "e", "f", "g", "h", "i")


# ---- never the trailer or a cascade -----------------------------------------------------------------------

def test_a_log_that_is_only_the_trailer_has_no_root_error() -> None:
    assert root(TRAILER) is None
    assert root(served("")) is None


CASCADES = [
    "make[1]: *** [Makefile:12: all] Error 2", "make: *** [test] 错误 8",
    "error: could not compile `foo` (lib) due to 2 previous errors",
    "ERROR: InvocationError for command /usr/bin/pytest (exited with code 1)",
    "> There were failing tests. See the report at: file:///x/index.html", "npm ERR! code ELIFECYCLE",
    "Error: Process completed with exit code 1.", "FAILED (failures=1)", "Tests failed",
    "##[error]The operation was canceled.", "ERROR: failed to solve: process \"/bin/sh -c make\" did not complete "
    "successfully: exit code: 2", "[ERROR] Tests run: 50, Failures: 1, Errors: 0, Skipped: 0",
    "Execution failed for task ':test'.", "BUILD FAILED in 22s", "error Command failed with exit code 1.",
    "Error: The process '/usr/bin/git' failed with exit code 128", TRAILER,
]


def test_cascades_alone_give_no_root_error() -> None:
    assert root(served("\n".join(CASCADES))) is None


@pytest.mark.parametrize("cascade", CASCADES)
def test_a_cascade_printed_first_is_passed_over(cascade: str) -> None:
    assert root(f"{cascade}\nsrc/lib.rs:3:5: error: the real cause\n") == "src/lib.rs:3:5: error: the real cause"


def test_an_explaining_line_right_after_a_generic_one_wins() -> None:
    log = "Error: build failed\nsrc/a.c:3:1: error: expected ';'\n"
    assert root(log) == "src/a.c:3:1: error: expected ';'"


def test_a_noise_line_is_skipped() -> None:
    lines = ["error: optional plugin missing (also printed by green runs)", "collected 3 items", "", "a", "b",
             "E   assert 1 == 2"]
    assert root_error(lines) is not None and root_error(lines).line_number == 1  # type: ignore[union-attr]
    found = root_error(lines, noise=frozenset({0}))
    assert found is not None and found.line_number == 6


# ---- hostile input ----------------------------------------------------------------------------------------

def test_only_the_last_lines_of_a_huge_log_are_read() -> None:
    """The bound on work: an error above the last MAX_LINES lines is not looked at."""
    lines = ["error: far above", *(["ok"] * errors.MAX_LINES)]
    assert root_error(lines) is None
    assert root_error(lines[-errors.MAX_LINES + 1:] + ["error: near"]) is not None


def test_hostile_lines_give_a_result_not_a_traceback() -> None:
    nasty = ["\x00" * 5000, "thread '" + "'" * 5000, "E  " + "(" * 20000, "1) " + ":" * 9000,
             "error" * 10000, "\ud800 lone surrogate", "a" * 100000 + ": error: x"]
    found = root_error(nasty)
    assert found is not None and len(found.context) <= 9
    assert all(len(x) <= errors.CONTEXT_CHARS for x in found.context if x != found.line)


# ---- infrastructure ---------------------------------------------------------------------------------------

# A registry's refusal (HTTP 403) was written down as network (the npm registry refused pnpm's installer for days,
# reruns passed); the reader does not count a 403 as infrastructure, since a missing token for a private registry
# answers the same and is the project's own configuration.
REFUSED = "infra-pnpm-action-setup-fetch-403"


@pytest.mark.parametrize("row", [pytest.param(r, id=r["id"], marks=[pytest.mark.xfail(
    strict=True, reason="the index counts a registry's 403 as a network failure; the reader does not")]
    if r["id"] == REFUSED else []) for r in TUNING])
def test_infrastructure_of_a_tuning_log_is_the_kind_written_down_and_never_claimed_otherwise(row: dict[str, str]) -> None:
    for text in ((BENCH / f"{row['id']}.log").read_text(encoding="utf-8"),):
        for fed in (text, served(text)):
            found = recognise(clean_lines(fed))
            assert (found.kind if found else None) == row["infrastructure"]


INFRA = {
    "timeout": "##[error]The action 'Run tests' has timed out after 30 minutes.",
    "runner-lost": "##[error]The self-hosted runner: ci-7 lost communication with the server. Verify the machine "
                   "is running and has a healthy network connection.",
    "oom": "fatal error: runtime: out of memory\n\nruntime stack:\nruntime.throw({0x1c3c2f5, 0x16})",
    "killed": "go test ./...\nsignal: killed\nFAIL\tgithub.com/x/y\t600.123s",
    "timeout ": "##[error]The job running on runner GitHub Actions 12 has exceeded the maximum execution time of "
               "360 minutes.\n##[error]The operation was canceled.",
    "network ": "Error response from daemon: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup "
                "registry-1.docker.io on 127.0.0.53:53: no such host",
    "network": "fatal: unable to access 'https://github.com/x/y.git/': Could not resolve host: github.com",
    "rate-limit": "Error response from daemon: toomanyrequests: You have reached your pull rate limit.",
    "disk-full": "ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device",
    "cancelled": "Run npm test\n##[error]The operation was canceled.",
    # the kernel's own OOM report, printed by a job that runs dmesg (infra-pulsar-oom-killer-dmesg, infra-julia-...)
    "oom  ": "[ 2944.319334] java invoked oom-killer: gfp_mask=0x100cca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=0",
    "oom   ": "[  812.004411] Memory cgroup out of memory: Killed process 4242 (node) total-vm:9000000kB",
    # a workspace's prefix before the kernel's word (infra-commercetools-yarn-workspace-killed)
    "oom ": "➤ YN0000: [@commercetools-website/frontend-studio]: Killed\n➤ YN0000: [@commercetools-website/"
            "frontend-studio]: Process exited (exit code 137), completed in 2m 24s",
    # a shell's report of a child lost to SIGKILL (infra-self-hosted-docker-compose-killed)
    "oom    ": "/home/r/actions-runner/_work/_temp/1f.sh: line 1: 40423 Killed                  docker-compose up -d",
}


@pytest.mark.parametrize(("kind", "text"), INFRA.items(), ids=INFRA.keys())
def test_each_infrastructure_kind_on_real_shaped_lines(kind: str, text: str) -> None:
    found = recognise(clean_lines(served(text)))
    assert found is not None and found.kind == kind.strip()


def test_the_oom_killers_exit_code_and_a_registrys_network_error() -> None:
    found = recognise(clean_lines("Killed\n##[error]Process completed with exit code 137."))
    assert found is not None and found.kind == "oom"
    npm = recognise(["npm ERR! network request to https://registry.npmjs.org/x failed, reason: read ECONNRESET"])
    assert npm is not None and npm.kind == "network"


NOT_INFRA = {
    "pytest's own test_timeout": (
        "tests/test_client.py::test_network PASSED\ntests/test_client.py::test_timeout FAILED\n"
        "E           Failed: DID NOT RAISE <class 'TimeoutError'>\n"
        "FAILED tests/test_client.py::test_timeout - Failed: DID NOT RAISE <class 'TimeoutError'>\n"),
    "a test of connection errors": (
        "___ test_reconnects ___\nE   ConnectionResetError: [Errno 104] Connection reset by peer\n"
        "E   socket.timeout: timed out\n"),
    "go's own test timeout": "panic: test timed out after 10m0s\n\trunning tests:\n\t\tTestSlow (10m0s)\n",
    "a mocha timeout": "  1) api\n       times out:\n     Error: Timeout of 2000ms exceeded. For async tests and hooks, "
                       "ensure \"done()\" is called\n",
    "jest's ECONNREFUSED to its own server": "    connect ECONNREFUSED 127.0.0.1:5432\n",
    "the exit-code trailer": TRAILER,
    "pip's retry that then succeeded": (
        "WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection "
        "broken by 'NewConnectionError(': Failed to establish a new connection: [Errno -3] Temporary failure in name "
        "resolution')': /simple/requests/\nSuccessfully installed requests-2.32.3\nE   assert 1 == 2\n"),
    "a test asserting a 429": "E   AssertionError: expected status code 429, got 200\n",
    "a test named after a kill": "FAILED tests/test_jobs.py::test_worker_is_killed - assert 'Killed' == 'Done'\n",
    # a runtime's own heap cap (node-easy-genomics-heap-out-of-memory): the project sets it, a change can cross it
    "node's heap cap": "<--- JS stacktrace --->\nFATAL ERROR: Reached heap limit Allocation failed - JavaScript heap "
                       "out of memory\n 1: 0xb7a940 node::Abort() [node]\nAborted (core dumped)\n",
    "the jvm's heap cap": "[ERROR] Tests run: 4, Failures: 0, Errors: 1\njava.lang.OutOfMemoryError: Java heap space\n"
                          "\tat java.util.Arrays.copyOf(Arrays.java:3332)\n",
}


@pytest.mark.parametrize("text", NOT_INFRA.values(), ids=NOT_INFRA.keys())
def test_no_false_infrastructure_claims(text: str) -> None:
    assert recognise(clean_lines(served(text))) is None


def test_the_cause_wins_over_the_cancellation_it_brings() -> None:
    lines = ["##[error]The operation was canceled.", "You are running out of disk space. Free space left: 0 MB"]
    found = recognise(lines)
    assert found is not None and found.kind == "disk-full"


@pytest.mark.parametrize("code", ["1", "-1073741819"])  # Windows reports a crash as a negative exit code
def test_the_runners_trailer_alone_is_never_the_root_error(code: str) -> None:
    assert root_error([f"##[error]Process completed with exit code {code}."], frozenset()) is None
