"""What a cold review and an attack found in the one reader of CI output and the CI paths, each fixed here with a
test that fails without its fix: flaky on a pull request started by a workflow run, reports that never raise,
one test named two ways counted once, the scan of a long log bounded, downloads streamed under their caps, a
suite's check runs paged, what GitHub would not give said once, and an agent's findings capped in its post.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from typing import Any

from bot.agents import ci_evidence
from bot.agents.ci_evidence import CiTarget, Gathered, gather
from bot.agents.tools import RepoReader
from bot.core import catalog, render
from bot.core.ci_output import digest, errors, reading, reports
from bot.core.ci_output.clean import clean_lines
from bot.core.ci_output.reading import read, signature
from bot.core.ci_output.records import Evidence, FailedCase
from bot.sandbox.team import Team
from tests.conftest import load_fixture
from tests.test_agents_common import REPO as COMMON_REPO
from tests.test_agents_common import gh  # noqa: F401
from tests.test_ci_flow import PYTEST, check_run, comments_with, job_log
from tests.test_ci_reports import zipped
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401

# ---- flaky on a pull request --------------------------------------------------------------------------------


def _pull_run(sandbox: Any, sha: str, jobs: dict[int, tuple[str, list[str]]]) -> dict[str, Any]:
    """A failed workflow run "CI" of pull request #2, its jobs {check run id: (name, log lines)}, all failed."""
    return sandbox.add_workflow_run(
        REPO, name="CI", head_sha=sha, head_branch="changes", event="pull_request", pull_requests=[2],
        jobs=[{"id": i, "name": name, "conclusion": "failure", "log": job_log(log)} for i, (name, log) in jobs.items()],
    )


def _pull_workflow_failure(sandbox: Any, sha: str, job_id: int) -> dict[str, Any]:
    """A failed workflow run of pull request #2 (its job `tests` is check run `job_id`): the workflow_run
    GitHub sends, named after the workflow, not the job."""
    wr = _pull_run(sandbox, sha, {job_id: ("tests", PYTEST)})
    p = load_fixture("check_run.completed.json")
    p.pop("check_run")
    return p | {
        "action": "completed",
        "workflow_run": {
            "id": wr["id"],
            "name": "CI",
            "head_sha": sha,
            "head_branch": "changes",
            "conclusion": "failure",
            "event": "pull_request",
            "pull_requests": [{"number": 2, "head": {"sha": sha}, "base": {"ref": "master"}}],
            "head_repository": {"full_name": REPO, "name": "Hello-World", "owner": {"login": REPO.split("/")[0]}},
        },
    }


async def test_a_workflow_run_failure_then_its_jobs_success_is_flaky_on_the_pull_request(
    bot: Any, sandbox: Any, team: Team
) -> None:
    """The run starts from the workflow run (named "CI", not after its job); the job's re-run passes: the
    failure was recorded under the job's check, on the pull request."""
    sha = load_fixture("check_run.completed.json")["check_run"]["head_sha"]
    await send(bot, sandbox, "workflow_run", _pull_workflow_failure(sandbox, sha, 880101))
    await send(bot, sandbox, "check_run", check_run(sha, 880102, conclusion="success", pull=2))
    [note] = comments_with(sandbox, 2, "**Flaky**")
    assert "`tests`" in note and sha[:12] in note


async def test_a_jobs_failure_arriving_during_the_pull_requests_run_is_recorded_too(
    bot: Any, sandbox: Any, team: Team
) -> None:
    """One job's failure starts the run; another job's failure arrives while it is active (no second run), and
    that job's re-run passes: still flaky, on the pull request."""
    sha = load_fixture("check_run.completed.json")["check_run"]["head_sha"]
    _pull_run(sandbox, sha, {880111: ("lint", ["E1 bad"]), 880112: ("tests", PYTEST)})
    await send(bot, sandbox, "check_run", check_run(sha, 880111, name="lint", pull=2))
    rt, _ = bot
    assert await rt.store.active_run(f"{REPO}#2")  # what the second failure finds
    await send(bot, sandbox, "check_run", check_run(sha, 880112, pull=2))
    await send(bot, sandbox, "check_run", check_run(sha, 880113, conclusion="success", pull=2))
    [note] = comments_with(sandbox, 2, "**Flaky**")
    assert "`tests`" in note


# ---- reports never raise --------------------------------------------------------------------------------------


def test_a_hostile_case_is_skipped_and_never_raises() -> None:
    xml = (
        '<testsuite><testcase classname="t" name="a" line="\u00b2"><failure message="x"/></testcase>'
        '<testcase classname="t" name="b" line="12"><failure message="y"/></testcase></testsuite>'
    )
    cases = reports.cases_from_xml(xml.encode())
    assert [(c.name, c.line) for c in cases] == [("t.a", None), ("t.b", 12)]


def test_a_case_whose_parse_raises_is_skipped_and_the_others_read(monkeypatch: Any) -> None:
    parse = reports._case

    def hostile(elem: Any) -> Any:
        if elem.get("name") == "a":
            raise AttributeError("a shape junitparser did not expect")
        return parse(elem)

    monkeypatch.setattr(reports, "_case", hostile)
    xml = (
        b'<testsuite><testcase classname="t" name="a"><failure message="x"/></testcase>'
        b'<testcase classname="t" name="b"><failure message="y"/></testcase></testsuite>'
    )
    assert [c.name for c in reports.cases_from_xml(xml)] == ["t.b"]


def test_a_case_name_loses_its_bidi_and_control_characters() -> None:
    assert reports.case_name("tests", "test\u202egnp.exe\u2066\x07") == "tests.testgnp.exe"


# ---- one test, two names ------------------------------------------------------------------------------------


def test_a_reports_name_and_the_logs_name_of_one_test_count_once() -> None:
    log = job_log(["FAILED tests/test_x.py::TestA::test_y - assert 1 == 2", "FAILED tests/test_x.py::test_z - boom"])
    r = read(Evidence(job="unit", log=log, cases=(FailedCase("tests.test_x.TestA.test_y", "assert 1 == 2"),)))
    assert r.tests == ("tests.test_x.TestA.test_y", "tests/test_x.py::test_z")
    assert digest.verdict(r) == "2 failing tests"


# ---- the scan of a long log is bounded ----------------------------------------------------------------------


def test_only_the_end_of_a_long_log_is_scanned_and_line_numbers_stay_the_logs(monkeypatch: Any) -> None:
    early = "FAILED tests/test_early.py::test_gone - boom"
    log = (
        "\n".join(
            [early, *["ok"] * errors.MAX_LINES, "FAILED tests/test_late.py::test_here - boom", "E   AssertionError: late"]
        )
        + "\n"
    )
    cleaned: list[int] = []
    def counted(text: str) -> list[str]:
        cleaned.append(text.count("\n"))
        return clean_lines(text)

    monkeypatch.setattr(reading, "clean_lines", counted)
    r = read(Evidence(job="unit", log=log))
    assert cleaned == [errors.MAX_LINES]  # what every scan after it sees
    assert r.tests == ("tests/test_late.py::test_here",)
    assert r.log_lines == errors.MAX_LINES + 3
    assert r.root is not None and r.root.line_number == errors.MAX_LINES + 3


# ---- infrastructure from the runner's own words -------------------------------------------------------------


def test_a_runners_warning_is_no_infrastructure_failure() -> None:
    r = read(Evidence(job="build", log="##[warning]The runner has received a shutdown signal.\nbuild failed\n"))
    assert r.infra is None


def test_once_a_test_is_named_only_the_runners_error_lines_name_infrastructure() -> None:
    said = [
        "E   github.RateLimitExceededException: 403 {'message': 'API rate limit exceeded for 10.1.2.3.'}",
        "FAILED tests/test_client.py::test_quota - RateLimitExceededException: 403",
    ]
    printed = read(Evidence(job="unit", log=job_log(said)))
    assert printed.tests and printed.infra is None  # the test's own output: the change's failure
    r = read(Evidence(job="unit", log=job_log([*said, "##[error]The runner has received a shutdown signal."])))
    assert r.infra is not None and r.infra.kind == "runner-lost"
    assert "not this change" not in digest.verdict(r) and signature(r) == "unit: tests: tests/test_client.py::test_quota"


# ---- downloads streamed under their caps --------------------------------------------------------------------


class _Held(deque[bytes]):
    """The chunks a download holds, with the most it ever held at once."""

    peak = 0

    def append(self, chunk: bytes) -> None:
        super().append(chunk)
        _Held.peak = max(_Held.peak, sum(map(len, self)))


async def test_a_log_over_the_cap_keeps_its_end_and_says_so(gh: Any, sandbox: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(ci_evidence, "MAX_LOG_BYTES", 4096)
    monkeypatch.setattr(ci_evidence, "CHUNK", 1024)
    monkeypatch.setattr(ci_evidence, "deque", _Held)
    _Held.peak = 0
    log = "x" * 10_000 + "\nFAILED tests/test_a.py::test_end - boom\n"
    run = sandbox.add_workflow_run(COMMON_REPO, name="CI", jobs=[{"name": "unit", "conclusion": "failure", "log": log}])
    found = await gather(
        RepoReader(gh, COMMON_REPO), CiTarget("workflow_run", run["id"], "CI", run["head_sha"]), default_branch="main"
    )
    [evidence] = found.evidence
    assert len(evidence.log.encode()) == 4096 and evidence.log.endswith("test_end - boom\n")
    assert any("only the last 4096 kept" in m for m in found.missing)
    assert 0 < _Held.peak <= 4096 + 1024  # never the whole body in memory


async def test_an_artifact_larger_than_its_listing_says_is_refused_as_it_arrives(
    gh: Any, sandbox: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(ci_evidence, "MAX_ARTIFACT_BYTES", 2048)
    monkeypatch.setattr(ci_evidence, "CHUNK", 512)
    monkeypatch.setattr(reports, "MAX_ARTIFACT_BYTES", 2048)
    monkeypatch.setattr(ci_evidence, "deque", _Held)
    _Held.peak = 0
    junit = b'<testsuite><testcase classname="t" name="a"><failure message="x"/></testcase></testsuite>'
    run = sandbox.add_workflow_run(COMMON_REPO, name="CI", jobs=[{"name": "unit", "conclusion": "failure", "log": "x"}])
    sandbox.add_artifact(
        COMMON_REPO, run["id"], "test-results", zipped({"a.xml": junit, "pad.bin": os.urandom(8192)}), size_in_bytes=100
    )
    found = await gather(
        RepoReader(gh, COMMON_REPO), CiTarget("workflow_run", run["id"], "CI", run["head_sha"]), default_branch="main"
    )
    assert found.evidence[0].cases == () and any("over the 2048 cap" in m for m in found.missing)
    assert _Held.peak <= 2048 + 512  # the download stopped once past the cap


# ---- a suite's check runs, paged -----------------------------------------------------------------------------


async def test_a_suites_failed_check_past_its_first_page_is_found(gh: Any, sandbox: Any) -> None:
    app = {"id": 77, "slug": "other-ci", "name": "Other CI"}
    first = sandbox.add_check_run(
        COMMON_REPO,
        name="c-0",
        conclusion="failure",
        app=app,
        output={"title": "broke", "summary": "FAILED tests/test_a.py::test_a - boom"},
    )
    suite = first["check_suite"]["id"]
    for i in range(1, 150):
        sandbox.add_check_run(
            COMMON_REPO, name=f"c-{i}", conclusion="success", app=app, check_suite_id=suite, head_sha=first["head_sha"]
        )
    found = await gather(
        RepoReader(gh, COMMON_REPO), CiTarget("check_suite", suite, "Other CI", first["head_sha"]), default_branch="main"
    )
    assert [e.job for e in found.evidence] == ["c-0"] and found.checks == [("c-0", "other-ci")]
    assert found.evidence[0].check_id == first["id"]  # the empty-log signature's stable name


class _Compare:
    """GitHub's compare answer for 45 commits after green, 20 a page, oldest first, as the real API pages it."""

    shas = [f"{i:040x}" for i in range(1, 46)]

    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    async def get(self, template: str, /, **params: Any) -> Any:
        self.asked.append(params)
        page, per = params.get("page", 1), params["per_page"]
        listed = self.shas[(page - 1) * per : page * per]
        return {"total_commits": len(self.shas), "commits": [{"sha": s, "commit": {"message": s[-2:]}} for s in listed]}


async def test_the_commits_since_green_are_the_newest_when_github_pages_them() -> None:
    reader = _Compare()
    since = await ci_evidence._since(ci_evidence._Reads(reader), "g" * 40, _Compare.shas[-1])  # type: ignore[arg-type]
    assert [p.get("page", 1) for p in reader.asked] == [1, 3] and all(p["per_page"] == 20 for p in reader.asked)
    assert since[0][0] == _Compare.shas[-1] and [s for s, _ in since] == _Compare.shas[40:][::-1]


# ---- what GitHub would not give, said ------------------------------------------------------------------------


def test_what_could_not_be_read_is_one_digest_line_and_one_log_line(caplog: Any) -> None:
    r = read(Evidence(job="unit", log=""))
    missing = ["log of unit: GitHub answered 410", *[f"artifact a{i}: GitHub answered 404" for i in range(6)]]
    body = digest.render(r, missing=missing)
    [line] = [x for x in body.splitlines() if "Could not be read" in x]
    assert "`log of unit: GitHub answered 410`" in line and "and 3 more" in line
    logger = logging.getLogger("test.ci")
    with caplog.at_level(logging.WARNING, logger="test.ci"):
        Gathered(missing=missing).log_missing(logger, "CI failure")
        Gathered(missing=missing[1:]).log_missing(logger, "CI failure")
        Gathered().log_missing(logger, "CI failure")
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING"]


# ---- an agent's findings in its post ------------------------------------------------------------------------


def test_a_steps_findings_are_capped_and_each_one_line() -> None:
    wf = catalog.load_catalog().workflows["error-investigation"]
    step = wf.steps[0].id
    findings = [f"Error {i}: line one\nline two {'x' * 5000}" for i in range(255)]
    out = render.step_output(wf, step, 1, "error-detective", {"summary": "s", "findings": findings})
    listed = [x for x in out.splitlines() if x.startswith("- ")]
    assert len(listed) == render.MAX_FINDINGS + 1 and listed[-1] == "- … and 235 more"
    assert all(len(x) <= render.FINDING_CHARS + 2 for x in listed) and "line two" in listed[0]


# ---- NUnit 3 and xUnit v2, in their own formats ---------------------------------------------------------------

# As `dotnet test --logger "nunit"` / nunit3-console writes TestResult.xml (trimmed: one fixture, three cases).
NUNIT3 = b"""<?xml version="1.0" encoding="utf-8" standalone="no"?>
<test-run id="0" runstate="Runnable" testcasecount="3" result="Failed" total="3" passed="1" failed="1" skipped="1"
  engine-version="3.16.3.0" clr-version="8.0.0" start-time="2024-05-01 10:00:00Z" end-time="2024-05-01 10:00:01Z">
  <test-suite type="Assembly" id="0-1004" name="Calc.Tests.dll" fullname="/src/Calc.Tests/bin/Calc.Tests.dll"
    runstate="Runnable" testcasecount="3" result="Failed" site="Child" total="3" passed="1" failed="1" skipped="1">
    <test-suite type="TestFixture" id="0-1000" name="CalculatorTests" fullname="Calc.Tests.CalculatorTests"
      classname="Calc.Tests.CalculatorTests" runstate="Runnable" testcasecount="3" result="Failed" site="Child">
      <test-case id="0-1001" name="Add_ReturnsSum" fullname="Calc.Tests.CalculatorTests.Add_ReturnsSum"
        methodname="Add_ReturnsSum" classname="Calc.Tests.CalculatorTests" runstate="Runnable" seed="1" result="Failed"
        start-time="2024-05-01 10:00:00Z" end-time="2024-05-01 10:00:00Z" duration="0.021" asserts="1">
        <failure>
          <message><![CDATA[  Expected: 5
  But was:  4
]]></message>
          <stack-trace><![CDATA[   at Calc.Tests.CalculatorTests.Add_ReturnsSum() in /src/Calc.Tests/CalculatorTests.cs:line 15
]]></stack-trace>
        </failure>
        <assertions><assertion result="Failed"><message><![CDATA[  Expected: 5
  But was:  4
]]></message></assertion></assertions>
      </test-case>
      <test-case id="0-1002" name="Sub_ReturnsDifference" fullname="Calc.Tests.CalculatorTests.Sub_ReturnsDifference"
        methodname="Sub_ReturnsDifference" classname="Calc.Tests.CalculatorTests" runstate="Runnable" seed="2"
        result="Passed" duration="0.001" asserts="1" />
      <test-case id="0-1003" name="Div_Later" fullname="Calc.Tests.CalculatorTests.Div_Later" methodname="Div_Later"
        classname="Calc.Tests.CalculatorTests" runstate="Ignored" seed="3" result="Skipped" label="Ignored">
        <reason><message><![CDATA[not yet]]></message></reason>
      </test-case>
    </test-suite>
  </test-suite>
</test-run>
"""

# As `dotnet test --logger "xunit"` / xunit.console -xml writes it (trimmed).
XUNIT2 = b"""<?xml version="1.0" encoding="utf-8"?>
<assemblies timestamp="05/01/2024 10:00:01">
  <assembly name="/src/Calc.Tests/bin/Calc.Tests.dll" run-date="2024-05-01" run-time="10:00:00"
    config-file="/src/Calc.Tests/bin/Calc.Tests.dll.config" test-framework="xUnit.net 2.6.1" environment="64-bit .NET 8.0"
    total="3" passed="1" failed="1" skipped="1" time="0.031" errors="0">
    <errors />
    <collection total="3" passed="1" failed="1" skipped="1" name="Test collection for Calc.Tests.CalculatorTests" time="0.021">
      <test name="Calc.Tests.CalculatorTests.Add_ReturnsSum" type="Calc.Tests.CalculatorTests" method="Add_ReturnsSum"
        time="0.0191" result="Fail">
        <failure exception-type="Xunit.Sdk.EqualException">
          <message><![CDATA[Assert.Equal() Failure: Values differ
Expected: 5
Actual:   4]]></message>
          <stack-trace><![CDATA[   at Calc.Tests.CalculatorTests.Add_ReturnsSum() in /src/Calc.Tests/CalculatorTests.cs:line 15]]></stack-trace>
        </failure>
      </test>
      <test name="Calc.Tests.CalculatorTests.Sub_ReturnsDifference" type="Calc.Tests.CalculatorTests"
        method="Sub_ReturnsDifference" time="0.0010" result="Pass" />
      <test name="Calc.Tests.CalculatorTests.Div_Later" type="Calc.Tests.CalculatorTests" method="Div_Later" time="0"
        result="Skip"><reason><![CDATA[not yet]]></reason></test>
    </collection>
  </assembly>
</assemblies>
"""


def test_nunit3_and_xunit2_reports_in_their_own_formats_name_their_failed_cases() -> None:
    [nunit] = reports.cases_from_xml(NUNIT3)
    assert (nunit.name, nunit.message) == ("Calc.Tests.CalculatorTests.Add_ReturnsSum", "Expected: 5")
    [xunit] = reports.cases_from_xml(XUNIT2)
    assert (xunit.name, xunit.message) == (
        "Calc.Tests.CalculatorTests.Add_ReturnsSum",
        "Assert.Equal() Failure: Values differ",
    )
    r = read(Evidence(job="dotnet", cases=reports.cases_from_zip(zipped({"TestResult.xml": NUNIT3}))))
    assert r.tests == ("Calc.Tests.CalculatorTests.Add_ReturnsSum",)
