"""The offline backend (no model configured) and the read-only tools, against SandboxGitHub over HTTP."""

from __future__ import annotations

import pytest

from bot.agents.tools import RepoReader, Tools
from tests.test_agents_common import REPO, context, gh, make_request, make_runtime  # noqa: F401
from tests.test_agents_gate import PYTEST_LOG

NOISY_LOG = ("2024-05-01T10:00:00.0000000Z ##[group]Run actions/checkout@v4\n"
             + "".join(f"2024-05-01T10:00:01.0000000Z tests/test_x.py::test_{i} PASSED\n" for i in range(3000))
             + PYTEST_LOG)


async def test_offline_error_detective_reads_the_job_log_and_commits_since_green(gh, sandbox) -> None:
    green = sandbox.set_file(REPO, "app/api.py", "def create(): ...\n", message="Add create")
    sandbox.add_workflow_run(REPO, name="CI", head_sha=green, conclusion="success", jobs=[
        {"name": "lint", "conclusion": "success", "log": "all good"},
        {"name": "pytest", "conclusion": "success", "log": "1 passed"}])
    head = sandbox.set_file(REPO, "app/api.py", "def create(): raise\n", message="Change user creation")
    run = sandbox.add_workflow_run(REPO, name="CI", head_sha=head, jobs=[
        {"id": 770001, "name": "lint", "conclusion": "success", "log": "all good"},
        {"id": 770002, "name": "pytest", "conclusion": "failure", "log": NOISY_LOG}])
    ci = {"source": "workflow_run", "id": run["id"], "name": "CI", "head_sha": head, "summary": "1 job failed"}
    outcome = await make_runtime(gh, None).run(make_request("error-investigation", "detect",
                                                            context(None, title="CI failed", ci=ci, head_sha=head)))

    assert outcome.offline and outcome.error is None and outcome.usage.calls == 0
    result = outcome.result
    assert result is not None
    assert "Failing test: `tests/test_api.py::test_create_user`" in result["findings"]
    assert any(f.startswith("Error: ") for f in result["findings"])
    assert not any("exit code" in f for f in result["findings"])  # the runner's trailer is never the error
    commits = next(f for f in result["findings"] if f.startswith("Commits"))
    assert f"since the last green commit {green[:10]}" in commits and f"{head[:10]} Change user creation" in commits
    summary = result["summary"]
    assert "without a model" in summary and "**1 failing test** in `pytest`." in summary
    assert "- `tests/test_api.py::test_create_user`" in summary and "Process completed" not in summary
    assert result["passed"] is True
    logs_read = [r.path for r in sandbox.requests if r.path.endswith("/logs")]
    assert logs_read.count(f"/repos/{REPO}/actions/jobs/770002/logs") == 1  # the failed job's log, once
    assert f"/repos/{REPO}/actions/jobs/770001/logs" not in logs_read  # a job of it that passed: never


@pytest.mark.parametrize("log, database", [
    ('Traceback (most recent call last):\n  File "app/db.py", line 42, in connect\n'
     "sqlalchemy.exc.OperationalError: could not connect to server\n##[error]Process completed with exit code 1.", True),
    ('Traceback (most recent call last):\n  File "app/cli.py", line 3, in main\nKeyError: 42\n', False),
])
async def test_offline_error_detective_flags_a_database_failure(gh, sandbox, log: str, database: bool) -> None:
    run = sandbox.add_workflow_run(REPO, name="CI", jobs=[{"name": "migrate", "conclusion": "failure", "log": log}])
    ci = {"source": "workflow_run", "id": run["id"], "name": "CI", "head_sha": run["head_sha"], "summary": ""}
    outcome = await make_runtime(gh, None).run(make_request("error-investigation", "detect", context(None, ci=ci)))
    assert outcome.result is not None
    assert outcome.result["flags"] == {"database_related": database}


async def test_offline_error_detective_reads_a_log_pasted_in_the_issue(gh, sandbox) -> None:
    body = ("Since the deploy every request fails:\n```\nTraceback (most recent call last):\n"
            '  File "svc/handlers.py", line 88, in get_user\n    return users[uid]\nKeyError: 42\n```')
    sandbox.add_issue(REPO, title="500 on /users", body=body)
    outcome = await make_runtime(gh, None).run(make_request("error-investigation", "detect", context(1)))
    assert outcome.result is not None
    assert any(f.startswith("Error: ") and "KeyError: 42" in f for f in outcome.result["findings"])
    assert "from the issue's text" in outcome.result["summary"]
    assert outcome.result["flags"] == {"database_related": False}


async def test_offline_reviewer_rejects_a_diff_with_an_aws_key(gh, sandbox) -> None:
    pr = sandbox.add_pull(REPO, title="Add settings", files={
        "app/settings.py": "@@ -0,0 +1,2 @@\n+import os\n+AWS_ACCESS_KEY_ID = 'AKIAABCDEFGHIJKLMNOP'",
        "tests/test_settings.py": "@@ -0,0 +1,2 @@\n+def test_settings():\n+    assert True"})
    req = make_request("security-fix", "review", context(pr["number"], pr=True))
    outcome = await make_runtime(gh, None).run(req)
    result = outcome.result
    assert result is not None
    assert outcome.offline and result["verdict"] == "REJECTED" and result["passed"] is False
    assert [(c["path"], c["line"]) for c in result["critical"]] == [("app/settings.py", 2)]
    assert "no model reviewed pull request" in result["summary"] and "AKIA" not in str(result)
    secrets = next(c for c in result["criteria"] if c["criterion"] == "No exposed secrets or credentials")
    assert secrets["met"] is False


async def test_offline_reviewer_rejects_code_without_tests_and_approves_with_them(gh, sandbox) -> None:
    code = {"path": "src/users.py", "content": "def create(name):\n    return {'name': name}\n", "reason": "r"}
    test = {"path": "tests/test_users.py", "content": "def test_create():\n    assert True\n", "reason": "r"}
    no_tests = make_request("backend-feature", "review", context(None), inputs={"implementation": {"changes": [code]}})
    rejected = (await make_runtime(gh, None).run(no_tests)).result
    assert rejected is not None
    assert rejected["verdict"] == "REJECTED"
    assert rejected["critical"][0]["text"].startswith("src/users.py: Tests exist for new functionality")

    with_tests = make_request("backend-feature", "review", context(None),
                              inputs={"implementation": {"changes": [code, test]}})
    approved = (await make_runtime(gh, None).run(with_tests)).result
    assert approved is not None
    assert approved["verdict"] == "APPROVED" and approved["critical"] == []
    assert approved["summary"].startswith("**APPROVED** by the deterministic checks only: no model reviewed")


@pytest.mark.parametrize("workflow, step, agent, title", [
    ("error-investigation", "analyze", "backend-architect", "ANALYZE"),
    ("error-investigation", "fix", "principal-software-engineer", "FIX"),
    ("error-investigation", "monitor", "error-detective", "MONITOR"),
    ("security-fix", "assess", "code-reviewer", "ASSESS"),
])
async def test_agents_without_a_model_say_so(gh, sandbox, workflow: str, step: str, agent: str, title: str) -> None:
    sandbox.add_issue(REPO, title="t", body="b")
    outcome = await make_runtime(gh, None).run(make_request(workflow, step, context(1)))
    assert outcome.result is None and outcome.offline and outcome.error_kind == "no-model"
    assert outcome.error == f"No model is configured (ANTHROPIC_API_KEY is not set); {agent} needs one for {title}."


@pytest.mark.parametrize("title, body, labels, workflow, subclass", [
    ("It broke", "", ["bug", "performance"], "error-investigation", None),
    ("Terraform apply fails", "The k8s cluster autoscaling config is wrong.", [], "devops-pipeline", "infrastructure"),
    ("Hello", "Just saying hi <!-- security vulnerability cve exploit -->", [], None, None),
])
async def test_offline_triage_by_labels_then_keywords(gh, sandbox, title, body, labels, workflow, subclass) -> None:
    sandbox.add_issue(REPO, title=title, body=body, labels=labels)
    outcome = await make_runtime(gh, None).run(make_request("devops-pipeline", "triage", context(1)))
    result = outcome.result
    assert result is not None
    assert (result["workflow"], result["subclass"]) == (workflow, subclass)
    assert result["flags"] == {"infra_affects_services": False}
    assert result["confidence"] >= 0.5 if workflow else result["confidence"] < 0.5


async def test_offline_search_specialist_finds_related_issues(gh, sandbox) -> None:
    sandbox.add_issue(REPO, title="Stripe webhook signature check fails", body="", state="closed")
    sandbox.add_issue(REPO, title="Unrelated docs typo", body="")
    target = sandbox.add_issue(REPO, title="Integrate Stripe webhook retries", body="")
    outcome = await make_runtime(gh, None).run(make_request("integration-setup", "research", context(target["number"])))
    assert outcome.result is not None
    findings = outcome.result["findings"]
    assert len(findings) == 1 and findings[0].startswith("#1 [closed] Stripe webhook signature check fails")


async def test_tools_are_bounded_scoped_and_report_errors(gh, sandbox) -> None:
    sandbox.set_file(REPO, "big.txt", "x" * 5000)
    run = sandbox.add_workflow_run(REPO, jobs=[{"name": "pytest", "conclusion": "failure", "log": NOISY_LOG}])
    tools = Tools(RepoReader(gh, REPO), ["read_file", "get_job_log", "find_related_issues"], max_bytes=1000)
    text, err = await tools.call("read_file", {"path": "big.txt"})
    assert not err and "[truncated: 4000 more bytes]" in text
    text, err = await tools.call("get_job_log", {"run_id": run["id"]})
    assert not err and "FAILED tests/test_api.py::test_create_user" in text and "test_2999 PASSED" not in text
    text, err = await tools.call("read_file", {"path": "nope.txt"})
    assert err and "404" in text
    text, err = await tools.call("search_code", {"query": "x"})
    assert err and "is not one of your tools" in text
    await tools.call("find_related_issues", {"query": "crash repo:someone/else"})
    search = [r for r in sandbox.requests if r.path == "/search/issues"][-1]
    assert search.query["q"] == f"repo:{REPO} crash"


@pytest.mark.parametrize("ci", [{"source": "workflow_run", "id": "12", "name": "CI"}, {"source": "check_run", "id": True}])
async def test_offline_error_detective_on_a_ci_reference_of_another_shape_reads_the_issue(gh, sandbox, ci) -> None:
    sandbox.add_issue(REPO, title="CI broke", body="Traceback (most recent call last):\nKeyError: 7\n")
    outcome = await make_runtime(gh, None).run(make_request("error-investigation", "detect", context(1, ci=ci)))
    assert outcome.result is not None
    assert outcome.error is None and "from the issue's text" in outcome.result["summary"]
    assert not [r for r in sandbox.requests if "/actions/" in r.path or "/check-runs/" in r.path]


@pytest.mark.parametrize("status", [400, 502])
async def test_offline_error_detective_when_github_fails_the_ci_reads(gh, sandbox, status: int) -> None:
    """A read GitHub refuses (4xx) leaves the issue's text to read; a broken GitHub (5xx, after the client's
    retries) is no answer at all: the step fails for the job runner to retry, never a reading of nothing."""
    run = sandbox.add_workflow_run(REPO, name="CI", jobs=[{"name": "unit", "conclusion": "failure", "log": "x"}])
    sandbox.fail("GET", rf"/repos/{REPO}/actions/runs/{run['id']}/jobs", status, times=-1)
    sandbox.add_issue(REPO, title="CI broke", body="")
    ci = {"source": "workflow_run", "id": run["id"], "name": "CI", "head_sha": run["head_sha"], "summary": ""}
    outcome = await make_runtime(gh, None).run(make_request("error-investigation", "detect", context(1, ci=ci)))
    if status < 500:
        assert outcome.result is not None
        assert outcome.error is None and "from the issue's text" in outcome.result["summary"]
    else:
        assert outcome.result is None and "HTTP 502" in (outcome.error or "")


async def test_get_check_output_reads_the_annotations_the_reader_reads(gh, sandbox) -> None:
    notes = [{"path": ".github", "start_line": None, "annotation_level": "failure", "title": "",
              "message": "Process completed with exit code 1."},
             {"path": "src/app.ts", "start_line": 12, "annotation_level": "failure", "title": "TS2322",
              "message": "Type 'string' is not assignable to type 'number'."}]
    run = sandbox.add_check_run(REPO, name="tsc", output={"title": "1 error", "summary": "tsc failed",
                                                          "annotations": notes})
    tools = Tools(RepoReader(gh, REPO), ["get_check_output"])
    text, err = await tools.call("get_check_output", {"check_run_id": run["id"]})
    assert not err and "failure: src/app.ts:12 TS2322 Type 'string' is not assignable" in text
    assert "exit code" not in text  # the runner's trailer is no finding for the model either


def test_the_findings_name_a_bounded_number_of_failing_tests() -> None:
    from bot.agents.offline import MAX_FINDINGS, _findings
    from bot.core.ci_output.reading import Reading
    from bot.core.ci_output.records import Context

    many = Reading(job="unit", tests=tuple(f"t{i}" for i in range(500)))
    assert len(_findings([many], Context())) == MAX_FINDINGS


async def test_an_issue_that_names_no_failure_is_not_quoted_as_a_log(gh, sandbox) -> None:
    sandbox.add_issue(REPO, title="Typo", body="It looks like you spelled 'commit' with two 't's.")
    outcome = await make_runtime(gh, None).run(make_request("error-investigation", "detect", context(1)))
    assert outcome.result is not None
    assert "two 't's" not in outcome.result["summary"] and "model is needed" in outcome.result["summary"]
    assert outcome.result["passed"] is False


async def test_offline_triage_weighs_the_learned_model_as_the_lead_does(gh, sandbox) -> None:
    """The triage agent's no-model fallback and the Lead's own decision read the same evidence, the shipped
    learned model included (bot/core/classify_learned.py)."""
    sandbox.add_issue(REPO, title="App crashes when opening preferences", body="heap grows")
    outcome = await make_runtime(gh, None).run(make_request("devops-pipeline", "triage", context(1)))
    assert outcome.result is not None
    assert "the learned model" in outcome.result["reason"] and "a learned model" in outcome.result["summary"]
