"""Gathering a failed check's evidence through the real client against the sandbox GitHub: annotations and
JUnit artifacts before the log, green runs' logs and the commits since green, the default branch's run; every
read counted and bounded, and a piece GitHub refuses missing alone."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import gidgethub
import pytest

from bot.agents import ci_evidence
from bot.agents.ci_evidence import CiTarget, Gathered, gather
from bot.agents.tools import RepoReader
from bot.core.ci_output import reports
from tests.test_agents_common import REPO, gh  # noqa: F401
from tests.test_ci_reports import zipped

LOG = ("2024-05-01T10:00:00.0000000Z ##[group]Run pytest\n"
       "2024-05-01T10:00:01.0000000Z FAILED tests/test_api.py::test_create - AssertionError: 500 != 201\n"
       "2024-05-01T10:00:02.0000000Z ##[error]Process completed with exit code 1.\n")
GREEN_LOG = "2024-04-30T10:00:00.0000000Z ##[group]Run pytest\n2024-04-30T10:00:01.0000000Z 12 passed in 0.1s\n"
TRAILER = {"path": ".github", "start_line": 1, "end_line": 1, "annotation_level": "failure",
           "message": "Process completed with exit code 1."}
NOTE = {"path": "tests/test_api.py", "start_line": 42, "end_line": 42, "annotation_level": "failure",
        "title": "test_create", "message": "AssertionError: 500 != 201"}
JUNIT = (b'<testsuite><testcase classname="tests.test_api" name="test_create">'
         b'<failure message="AssertionError: 500 != 201"/></testcase><testcase classname="tests.test_api" '
         b'name="test_list"/></testsuite>')


def api_reads(sandbox: Any, since: int) -> list[str]:
    """GitHub API reads the sandbox saw after request number `since` (downloads behind a redirect are not reads
    of the API, and token requests are the client's own)."""
    return [f"{r.method} {r.path}" + (f"?{urlencode(r.query)}" if r.query else "") for r in sandbox.requests[since:]
            if r.path.startswith("/repos/") and r.method == "GET"]


async def gathered(gh: Any, sandbox: Any, target: CiTarget, **kw: Any) -> tuple[Gathered, list[str]]:
    since = len(sandbox.requests)
    found = await gather(RepoReader(gh, REPO), target, default_branch="main", **kw)
    reads = api_reads(sandbox, since)
    assert found.reads == len(reads), reads  # every read counted, and only reads
    assert sandbox.response_errors == []  # the sandbox answered as GitHub's description says
    return found, reads


def greens(sandbox: Any, n: int = 3, job: str = "pytest", log: str = GREEN_LOG) -> list[str]:
    """`n` commits on main, each with a green run of the CI workflow; their shas, oldest first."""
    shas = []
    for i in range(n):
        sha = sandbox.set_file(REPO, "app/api.py", f"v = {i}\n", message=f"Green {i}")
        sandbox.add_workflow_run(REPO, name="CI", head_sha=sha, head_branch="main", conclusion="success",
                                 jobs=[{"name": job, "conclusion": "success", "log": f"{log}run {i}\n"}])
        shas.append(sha)
    return shas


def pull_failure(sandbox: Any, jobs: list[dict[str, Any]], branch: str = "feature") -> tuple[dict[str, Any], list[str]]:
    """Two commits on a branch after main's head, and the failed CI run on the second; (run, branch shas)."""
    first = sandbox.set_file(REPO, "app/api.py", "def create(): raise\n", ref=branch, message="Break create\n\nwhy")
    head = sandbox.set_file(REPO, "app/other.py", "x = 1\n", ref=branch, message="Touch other")
    run = sandbox.add_workflow_run(REPO, name="CI", head_sha=head, head_branch=branch, event="pull_request", jobs=jobs)
    return run, [first, head]


def job_id(sandbox: Any, run: dict[str, Any], name: str) -> int:
    return next(j["id"] for j in sandbox.repo(REPO).jobs.values() if j["run_id"] == run["id"] and j["name"] == name)


def target(run: dict[str, Any]) -> CiTarget:
    return CiTarget("workflow_run", run["id"], "CI", run["head_sha"], "1 job failed")


async def test_structured_data_green_logs_and_commits_since_green_for_one_failed_job(gh, sandbox) -> None:
    green = greens(sandbox)
    run, (first, head) = pull_failure(sandbox, [
        {"name": "lint", "conclusion": "success", "log": "ok"},
        {"name": "pytest", "conclusion": "failure", "log": LOG, "annotations": [TRAILER, NOTE]}])
    sandbox.add_artifact(REPO, run["id"], "test-results", zipped({"reports/TEST-api.xml": JUNIT}))
    sandbox.add_artifact(REPO, run["id"], "dist", b"wheels, not reports")

    found, reads = await gathered(gh, sandbox, target(run), base_ref="main")

    [evidence] = found.evidence
    assert evidence.log_url is not None
    assert evidence.job == "pytest" and evidence.log == LOG and evidence.log_url.endswith(f"/job/{job_id(sandbox, run, 'pytest')}")
    assert [(a.path, a.start_line, a.message) for a in evidence.annotations] == [
        ("tests/test_api.py", 42, "AssertionError: 500 != 201")]  # the trailer is gone
    assert [(c.name, c.message) for c in evidence.cases] == [("tests.test_api.test_create", "AssertionError: 500 != 201")]
    assert evidence.green_logs == (f"{GREEN_LOG}run 2\n", f"{GREEN_LOG}run 1\n")  # the two newest green runs
    assert found.green_sha == green[-1]
    assert found.since_green == [(head, "Touch other"), (first, "Break create")]
    assert found.on_default == [] and found.missing == []
    downloads = [r for r in reads if "/actions/artifacts/" in r]
    assert len(downloads) == 1  # "dist" is not a report
    assert found.reads == len(reads) <= 17


async def test_a_plain_log_is_the_evidence_when_github_structures_nothing(gh, sandbox) -> None:
    run, _ = pull_failure(sandbox, [{"name": "pytest", "conclusion": "failure", "log": LOG}])
    found, _ = await gathered(gh, sandbox, target(run))
    [evidence] = found.evidence
    assert (evidence.log, evidence.annotations, evidence.cases, evidence.green_logs) == (LOG, (), (), ())
    assert found.green_sha is None and found.since_green == []


async def test_an_expired_log_falls_back_on_the_check_runs_output_and_says_what_was_missing(gh, sandbox) -> None:
    run, _ = pull_failure(sandbox, [{"name": "pytest", "conclusion": "failure", "log": None,
                                     "output": {"title": "1 failed", "summary": "FAILED tests/test_x.py::test_y"}}])
    found, reads = await gathered(gh, sandbox, target(run))
    assert found.evidence[0].log == "1 failed\nFAILED tests/test_x.py::test_y"
    assert found.missing == ["log of pytest: GitHub answered 410"]
    assert sum(r.endswith("/logs") for r in reads) == 1


async def test_a_log_that_is_not_utf8_is_read_and_a_huge_one_keeps_its_end(gh, sandbox, monkeypatch) -> None:
    binary = b"binary \xff\xfe output\n"
    run, _ = pull_failure(sandbox, [{"name": "pytest", "conclusion": "failure", "log": binary + LOG.encode()}])
    found, _ = await gathered(gh, sandbox, target(run))
    assert found.evidence[0].log == "binary \ufffd\ufffd output\n" + LOG and found.missing == []
    monkeypatch.setattr(ci_evidence, "MAX_LOG_BYTES", len(LOG))
    found, _ = await gathered(gh, sandbox, target(run))
    assert found.evidence[0].log == LOG
    assert found.missing == [f"log of pytest: {len(binary) + len(LOG)} bytes, only the last {len(LOG)} kept"]


async def test_a_refused_annotations_read_degrades_only_that_piece(gh, sandbox) -> None:
    greens(sandbox, 1)
    run, _ = pull_failure(sandbox, [{"name": "pytest", "conclusion": "failure", "log": LOG, "annotations": [NOTE]}])
    sandbox.fail("GET", r".*/check-runs/\d+/annotations", 404)
    found, _ = await gathered(gh, sandbox, target(run))
    [evidence] = found.evidence
    assert evidence.annotations == () and evidence.log == LOG and len(evidence.green_logs) == 1
    assert found.missing == ["annotations of pytest: GitHub answered 404"] and found.since_green


@pytest.mark.parametrize("status", [403, 404, 410, 422])
async def test_each_refusal_of_the_compare_read_loses_only_the_commits_since_green(gh, sandbox, status: int) -> None:
    greens(sandbox, 1)
    run, _ = pull_failure(sandbox, [{"name": "pytest", "conclusion": "failure", "log": LOG}])
    sandbox.fail("GET", r".*/compare/.*", status)
    found, _ = await gathered(gh, sandbox, target(run))
    assert found.since_green == [] and found.green_sha and found.evidence[0].green_logs
    assert found.missing == [f"commits since green: GitHub answered {status}"]


async def test_a_server_error_or_a_rate_limit_propagates_for_the_job_runner_to_retry(gh, sandbox) -> None:
    run, _ = pull_failure(sandbox, [{"name": "pytest", "conclusion": "failure", "log": LOG}])
    sandbox.fail("GET", r".*/actions/jobs/\d+/logs", 502, times=-1)
    with pytest.raises(gidgethub.GitHubBroken):
        await gather(RepoReader(gh, REPO), target(run), default_branch="main")
    sandbox.clear_faults()
    sandbox.fail("GET", r".*/check-runs/\d+/annotations", 403, times=-1,
                 headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "9999999999"})
    with pytest.raises(gidgethub.RateLimitExceeded):
        await gather(RepoReader(gh, REPO), target(run), default_branch="main")


# ---------------------------------------------------------------- artifacts

async def test_an_artifact_listed_over_the_cap_or_expired_is_never_downloaded(gh, sandbox) -> None:
    run, _ = pull_failure(sandbox, [{"name": "pytest", "conclusion": "failure", "log": LOG}])
    data = zipped({"TEST-api.xml": JUNIT})
    sandbox.add_artifact(REPO, run["id"], "test-results", data, size_in_bytes=reports.MAX_ARTIFACT_BYTES + 1)
    sandbox.add_artifact(REPO, run["id"], "junit", data, expired=True)
    found, reads = await gathered(gh, sandbox, target(run))
    assert found.evidence[0].cases == () and not any("/actions/artifacts/" in r for r in reads)


async def test_an_artifact_larger_than_its_listing_says_is_refused_after_download(gh, sandbox, monkeypatch) -> None:
    run, _ = pull_failure(sandbox, [{"name": "pytest", "conclusion": "failure", "log": LOG}])
    data = zipped({"TEST-api.xml": JUNIT})
    monkeypatch.setattr(ci_evidence, "MAX_ARTIFACT_BYTES", len(data) - 1)
    sandbox.add_artifact(REPO, run["id"], "test-results", data, size_in_bytes=100)
    found, reads = await gathered(gh, sandbox, target(run))
    assert found.evidence[0].cases == () and sum("/actions/artifacts/" in r for r in reads) == 1
    assert found.missing == [f"artifact test-results: {len(data)} bytes, over the {len(data) - 1} cap"]


async def test_an_artifact_expiring_between_listing_and_download_is_missing_alone(gh, sandbox) -> None:
    run, _ = pull_failure(sandbox, [{"name": "pytest", "conclusion": "failure", "log": LOG}])
    sandbox.add_artifact(REPO, run["id"], "test-results", zipped({"TEST-api.xml": JUNIT}))
    sandbox.fail("GET", r".*/actions/artifacts/\d+/zip", 410, body={"message": "Artifact has expired"})
    found, _ = await gathered(gh, sandbox, target(run))
    assert found.evidence[0].log == LOG and found.missing == ["artifact test-results: GitHub answered 410"]


BOMB = zipped({"bomb.xml": b"<testsuite>" + b" " * (reports.MAX_ENTRY_BYTES + 1) + b"</testsuite>"})
ENTITIES = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b'<testsuite><testcase name="&b;"><failure/></testcase></testsuite>')


@pytest.mark.parametrize("data", [BOMB, zipped({f"{i}.xml": JUNIT for i in range(reports.MAX_ENTRIES + 1)}),
                                  zipped({"TEST-x.xml": b"<testsuite><testcase"}), zipped({"TEST-x.xml": ENTITIES}),
                                  b"not a zip at all"], ids=["zip-bomb", "too-many-entries", "malformed-xml",
                                                             "entity-bomb", "not-a-zip"])
async def test_a_hostile_artifact_gives_nothing_and_no_crash(gh, sandbox, data: bytes) -> None:
    run, _ = pull_failure(sandbox, [{"name": "pytest", "conclusion": "failure", "log": LOG}])
    sandbox.add_artifact(REPO, run["id"], "test-results", data)
    found, _ = await gathered(gh, sandbox, target(run))
    assert found.evidence[0].cases == () and found.evidence[0].log == LOG
    assert found.missing == ["artifact test-results: no failed case in a readable JUnit report"]


async def test_a_report_goes_to_the_job_its_name_mentions(gh, sandbox) -> None:
    run, _ = pull_failure(sandbox, [{"name": "test (3.11)", "conclusion": "failure", "log": LOG},
                                    {"name": "test (3.12)", "conclusion": "failure", "log": LOG}])
    sandbox.add_artifact(REPO, run["id"], "test-results-3.12", zipped({"TEST-api.xml": JUNIT}))
    found, _ = await gathered(gh, sandbox, target(run))
    assert [len(e.cases) for e in found.evidence] == [0, 1]


# ---------------------------------------------------------------- bounds

async def test_reads_stay_bounded_however_much_failed(gh, sandbox) -> None:
    names = [f"job-{i}" for i in range(8)]
    for i in range(4):
        sha = sandbox.set_file(REPO, "app/api.py", f"v = {i}\n", message=f"Green {i}")
        sandbox.add_workflow_run(REPO, name="CI", head_sha=sha, head_branch="main", conclusion="success",
                                 jobs=[{"name": n, "conclusion": "success", "log": GREEN_LOG} for n in names])
    sandbox.add_workflow_run(REPO, name="CI", head_branch="main", conclusion="failure",
                             jobs=[{"name": n, "conclusion": "failure", "log": LOG} for n in names])
    for i in range(30):
        sandbox.set_file(REPO, "app/api.py", f"w = {i}\n", ref="feature", message=f"Change {i}")
    head = sandbox.resolve(sandbox.repo(REPO), "feature")
    run = sandbox.add_workflow_run(REPO, name="CI", head_sha=head, head_branch="feature", jobs=[
        {"name": n, "conclusion": "cancelled" if i < 3 else "failure", "log": None,
         "annotations": [NOTE] * 60} for i, n in enumerate(names)])
    for i in range(5):
        sandbox.add_artifact(REPO, run["id"], f"test-results-{i}", zipped({"TEST-api.xml": JUNIT}))

    found, reads = await gathered(gh, sandbox, target(run))

    assert [e.job for e in found.evidence] == names[3:]  # five jobs, the cancelled ones last and cut
    assert all(len(e.annotations) == 50 and len(e.green_logs) == 2 for e in found.evidence)
    assert sum("/actions/artifacts/" in r for r in reads) == ci_evidence.MAX_ARTIFACTS
    assert len(found.since_green) == ci_evidence.MAX_SINCE_GREEN and found.since_green[0][0] == head
    assert [e.job for e in found.on_default] == names[3:]
    assert sum(r.endswith("/compare/" + f"{found.green_sha}...{head}?per_page=20") for r in reads) == 1
    assert found.reads == 41  # the most one failure costs (GitHub's compare may take one more, for its last page)


# ---------------------------------------------------------------- the default branch

async def test_the_same_job_failing_on_the_default_branch_is_evidence_too(gh, sandbox) -> None:
    greens(sandbox, 1)
    sandbox.add_workflow_run(REPO, name="CI", head_branch="main", conclusion="failure", jobs=[
        {"name": "pytest", "conclusion": "failure", "log": "main's log"},
        {"name": "docs", "conclusion": "failure", "log": "not this job"}])
    run, _ = pull_failure(sandbox, [{"name": "pytest", "conclusion": "failure", "log": LOG}])
    found, _ = await gathered(gh, sandbox, target(run))
    assert [(e.job, e.log) for e in found.on_default] == [("pytest", "main's log")]


async def test_a_green_default_branch_and_a_failure_on_the_default_branch_itself_cost_no_log_read(gh, sandbox) -> None:
    greens(sandbox, 1)
    run, _ = pull_failure(sandbox, [{"name": "pytest", "conclusion": "failure", "log": LOG}])
    found, reads = await gathered(gh, sandbox, target(run))
    assert found.on_default == [] and sum(r.endswith("/logs") for r in reads) == 2  # its own and one green
    assert found.reads == 10  # the default branch's latest run is green: its jobs are not listed
    sha = sandbox.set_file(REPO, "app/api.py", "broken\n", message="Break main")
    on_main = sandbox.add_workflow_run(REPO, name="CI", head_sha=sha, head_branch="main",
                                       jobs=[{"name": "pytest", "conclusion": "failure", "log": LOG}])
    found, reads = await gathered(gh, sandbox, target(on_main))
    assert found.on_default == [] and not any("status=completed" in r for r in reads)
    assert found.since_green == [(sha, "Break main")]


# ---------------------------------------------------------------- check runs and suites

async def test_an_actions_check_run_is_read_as_its_job(gh, sandbox) -> None:
    greens(sandbox, 1)
    run, _ = pull_failure(sandbox, [{"name": "pytest", "conclusion": "failure", "log": LOG, "annotations": [NOTE]}])
    job = job_id(sandbox, run, "pytest")
    sandbox.repo(REPO).check_runs[job]["app"] = {"slug": "github-actions", "id": 15368}
    found, _ = await gathered(gh, sandbox, CiTarget("check_run", job, "pytest", run["head_sha"]))
    [evidence] = found.evidence
    assert (evidence.job, evidence.log, len(evidence.annotations), len(evidence.green_logs)) == ("pytest", LOG, 1, 1)
    assert found.green_sha and found.since_green


async def test_another_apps_check_run_gives_its_output_and_annotations_and_no_log_read(gh, sandbox) -> None:
    cr = sandbox.add_check_run(REPO, name="circleci: build", output={
        "title": "Build failed", "summary": "npm ERR! code ELIFECYCLE", "text": None, "annotations": [NOTE]},
        app={"slug": "circleci-checks", "id": 18001})
    found, reads = await gathered(gh, sandbox, CiTarget("check_run", cr["id"], "circleci: build", cr["head_sha"]))
    [evidence] = found.evidence
    assert evidence.log == "Build failed\nnpm ERR! code ELIFECYCLE" and len(evidence.annotations) == 1
    assert not any(r.endswith("/logs") or "/actions/runs" in r for r in reads) and found.reads == 3
    assert found.missing == []  # asking whether it is an Actions job is not a missing piece


async def test_a_check_suite_reads_its_failed_runs_and_finds_its_workflow_run(gh, sandbox) -> None:
    run, _ = pull_failure(sandbox, [{"name": "lint", "conclusion": "success", "log": "ok"},
                                    {"name": "pytest", "conclusion": "failure", "log": LOG}])
    for cr in sandbox.repo(REPO).check_runs.values():
        cr["app"] = {"slug": "github-actions", "id": 15368}
    sandbox.add_artifact(REPO, run["id"], "junit", zipped({"TEST-api.xml": JUNIT}))
    found, _ = await gathered(gh, sandbox, CiTarget("check_suite", run["check_suite_id"], "CI", run["head_sha"]))
    [evidence] = found.evidence
    assert (evidence.job, evidence.log, len(evidence.cases)) == ("pytest", LOG, 1)


async def test_nothing_readable_still_gives_the_targets_own_summary(gh, sandbox) -> None:
    sandbox.fail("GET", r".*/actions/runs/\d+/jobs", 404)
    run, _ = pull_failure(sandbox, [{"name": "pytest", "conclusion": "failure", "log": LOG}])
    found, _ = await gathered(gh, sandbox, target(run))
    assert [(e.job, e.log) for e in found.evidence] == [("CI", "1 job failed")]


# ---------------------------------------------------------------- GitHub's other shapes

async def test_answers_github_may_send_of_another_shape_never_break_the_gathering(gh, sandbox, github_openapi) -> None:
    """Every read answered with fields dropped, nulled or added (within GitHub's description): the gathering
    finishes, within its bound, whatever it could read."""
    from bot.sandbox.mutate import Mutator

    if github_openapi is None:
        pytest.skip("GitHub's REST description is not at hand")
    greens(sandbox, 2)
    run, _ = pull_failure(sandbox, [{"name": "pytest", "conclusion": "failure", "log": LOG, "annotations": [NOTE]}])
    sandbox.add_artifact(REPO, run["id"], "test-results", zipped({"TEST-api.xml": JUNIT}))
    mutated = 0
    for seed in range(12):
        sandbox.mutator = Mutator(github_openapi, seed, 1.0)
        found = await gather(RepoReader(gh, REPO), target(run), default_branch="main")
        assert found.evidence and found.reads <= 17
        mutated += len(sandbox.mutations)
    assert mutated > 12 * 5  # most reads were mutated, not a lucky seed that changed nothing



@pytest.mark.parametrize("odd", ["text", 7, [], [None, "x"], {"jobs": "x", "check_runs": 3}, {"jobs": [None, 3, "x"]},
                                 {"jobs": [{"id": "12", "conclusion": "failure", "name": 5}]},
                                 {"jobs": [{"id": True, "conclusion": "failure"}]}])
async def test_answers_of_the_wrong_type_read_as_nothing(gh, sandbox, odd: Any) -> None:
    """Answers outside GitHub's description (a proxy's page, an API that changed): wrong types everywhere."""
    greens(sandbox, 1)
    run, _ = pull_failure(sandbox, [{"name": "pytest", "conclusion": "failure", "log": LOG}])
    sandbox.fail("GET", r".*/actions/runs/\d+/jobs", 200, body=odd, times=-1)
    found = await gather(RepoReader(gh, REPO), target(run), default_branch="main")
    assert [(e.job, e.log) for e in found.evidence] == [("CI", "1 job failed")]
    sandbox.clear_faults()  # the job is found; everything about it is odd
    for path in (r".*/actions/runs/\d+", r".*/check-runs/\d+/annotations", r".*/actions/runs/\d+/artifacts",
                 r".*/actions/workflows/\d+/runs", r".*/compare/.*"):
        sandbox.fail("GET", path, 200, body=odd, times=-1)
    found = await gather(RepoReader(gh, REPO), target(run), default_branch="main")
    assert [(e.job, e.log, e.annotations, e.cases) for e in found.evidence] == [("pytest", LOG, (), ())]
    assert (found.green_sha, found.since_green, found.on_default) == (None, [], [])


async def test_a_job_named_and_linked_with_the_wrong_types_is_still_read(gh, sandbox) -> None:
    run, _ = pull_failure(sandbox, [{"name": "pytest", "conclusion": "failure", "log": LOG}])
    job = job_id(sandbox, run, "pytest")
    sandbox.fail("GET", r".*/actions/runs/\d+/jobs", 200, body={"jobs": [
        {"id": job, "conclusion": "failure", "name": 5, "html_url": ["x"]}]})
    found = await gather(RepoReader(gh, REPO), target(run), default_branch="main")
    assert [(e.job, e.log, e.log_url) for e in found.evidence] == [(f"job {job}", LOG, None)]
