"""The seven workflows end to end: webhook → triage → agents (local Anthropic server) → GitHub (sandbox).

The agents' replies are scripted per step through the local Messages API server; everything else
is the real bot: HTTP webhook, store, job runner, engine, executor, gidgethub and the anthropic SDK.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.core.markers import markers_in
from bot.run.runtime import Runtime
from bot.sandbox.anthropic import FakeAnthropic
from bot.sandbox.team import Team, result
from bot.settings import Settings
from tests.conftest import load_fixture, post_webhook

REPO = "Codertocat/Hello-World"
@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    server = FakeAnthropic(api_key="sk-ant-test-key")
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def team(fake: FakeAnthropic) -> Team:
    return Team(fake)


@pytest.fixture
async def bot(settings: Settings, fake: FakeAnthropic, team: Team, sandbox: Any, aiohttp_client: Any) -> AsyncIterator[Any]:
    sandbox.seed_from_payload(load_fixture("issues.opened.json"))  # the repository and its installation
    s = settings.with_overrides(anthropic_api_key="sk-ant-test-key", anthropic_base_url=fake.url)
    rt = await Runtime(s, github_max_wait=5.0, github_backoff=0.01,
                       agent_options={"retry_base": 0.01, "max_retry_wait": 1.0}).start()
    client = await aiohttp_client(rt.web_app())
    yield rt, client
    await rt.close()


def issue_payload(number: int, labels: list[str], title: str = "Something to do", body: str = "") -> dict[str, Any]:
    p = load_fixture("issues.opened.json")
    p["issue"] |= {"number": number, "title": title, "body": body,
                   "labels": [{"name": name, "id": i, "color": "ededed"} for i, name in enumerate(labels)]}
    return p


def comment_payload(number: int, body: str, login: str = "maintainer", user_type: str = "User",
                    comment_id: int = 9001, pull: bool = False) -> dict[str, Any]:
    p = load_fixture("issue_comment.created.json")
    p["issue"]["number"] = number
    if pull:
        p["issue"]["pull_request"] = {"url": f"https://api.github.com/repos/{REPO}/pulls/{number}"}
    else:
        p["issue"].pop("pull_request", None)
    # Written now, as GitHub stamps a new comment: in the second after what the test did before (a person reads
    # before writing; GitHub's times are whole seconds, and an /approve in the second of a push counts as before it).
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
    p["comment"] |= {"id": comment_id, "body": body, "created_at": now, "updated_at": now}
    p["comment"]["user"] = {**p["comment"]["user"], "login": login, "type": user_type}
    p["sender"] = p["comment"]["user"]
    return p


async def send(bot: Any, sandbox: Any, event: str, payload: dict[str, Any]) -> None:
    rt, client = bot
    sandbox.seed_from_payload(payload)
    resp = await post_webhook(client, event, payload)
    assert resp.status == 202, await resp.text()
    await rt.jobs.drained(30)
    assert "failed" not in await rt.store.job_states()


def posts(sandbox: Any, number: int) -> list[str]:
    """The kinds of marker on each comment of a thread, in posting order: 'status', 'step:<id>:<n>', …"""
    out = []
    for c in sandbox.comments(REPO, number):
        for key in markers_in(c["body"]):
            parts = key.split(":")
            out.append(parts[0] if parts[0] in ("status", "done", "approval", "context") else ":".join([parts[0], *parts[2:]]))
    return out


def body_of(sandbox: Any, number: int, kind: str) -> str:
    for c in sandbox.comments(REPO, number):
        if any(k.startswith(kind) for k in markers_in(c["body"])):
            return c["body"]
    raise AssertionError(f"no {kind} comment on #{number}")


EXPECTED = {
    "devops-pipeline": ("devops", ["status", "step:triage:1", "skip:architecture-review", "step:implementation:1",
                                   "verdict:review:1", "approval"]),
    "backend-feature": ("api", ["status", "step:triage:1", "step:architecture:1", "skip:database-design",
                                "step:implementation:1", "verdict:review:1", "skip:context-save", "approval"]),
    "database-performance": ("slow-query", ["status", "step:investigate:1", "skip:architecture-review",
                                            "step:implementation:1", "verdict:review:1", "step:validation:1", "approval"]),
    "error-investigation": ("bug", ["status", "step:detect:1", "step:analyze:1", "step:fix:1", "verdict:review:1",
                                    "step:monitor:1", "approval"]),
    "security-fix": ("security", ["status", "step:assess:1", "skip:research", "step:architecture:1",
                                  "step:implementation:1", "verdict:review:1", "step:validation:1", "approval"]),
    "integration-setup": ("integration", ["status", "step:research:1", "step:architecture:1", "skip:mcp-creation",
                                          "step:implementation:1", "verdict:review:1", "approval"]),
    "long-running-project": ("epic", ["status", "step:setup:1", "context", "step:execute:1", "step:checkpoint:1",
                                      "step:handoff:1", "approval"]),
}


@pytest.mark.parametrize("workflow", sorted(EXPECTED))
async def test_each_workflow_end_to_end(workflow: str, bot: Any, sandbox: Any, team: Team) -> None:
    label, expected = EXPECTED[workflow]
    number = 10
    sandbox.set_permission(REPO, "maintainer", "maintain")
    await send(bot, sandbox, "issues", issue_payload(number, [label]))
    # A skipped step has no comment of its own (issue 16: a write per step saved); the status comment names it.
    assert posts(sandbox, number) == [k for k in expected if not k.startswith("skip:")]
    status = body_of(sandbox, number, "status")
    assert f"(`{workflow}`)" in status and "Waiting for `/approve`" in status and "```mermaid" in status
    assert status.count("· skipped, condition not met: _") == sum(k.startswith("skip:") for k in expected)
    assert "Ready to proceed" in body_of(sandbox, number, "approval")
    await send(bot, sandbox, "issue_comment", comment_payload(number, "/approve"))
    assert posts(sandbox, number)[-1] == "done"
    done = body_of(sandbox, number, "done")
    assert "Approved by @\u200bmaintainer" in done  # named, not pinged (issue 13)
    pulls = [w for w in sandbox.writes if w.kind == "pull"]
    if any(s.startswith("step:implementation") or s.startswith("step:fix") for s in expected):
        assert len(pulls) == 1 and pulls[0].data["draft"] is True
        assert f"Closes #{number}" in pulls[0].data["body"]
        assert sandbox.file_content(REPO, "app/fix.py", ref=pulls[0].data["head"]) == "def fix():\n    return 1\n"
        assert pulls[0].data["head"] in done or "Proposed changes" in done
    else:
        assert pulls == []
    assert "✅ Done" in body_of(sandbox, number, "status")


async def test_rejection_then_pass_on_the_second_try(bot: Any, sandbox: Any, team: Team) -> None:
    team.script["REVIEW"] = [result("review", verdict="REJECTED", critical=[{"text": "No input validation", "path": "app/fix.py", "line": 1}]),
                             result("review", suggestions=[{"text": "Add a docstring to fix()"}],
                                    tech_debt=[{"title": "Refactor the fix module", "body": "It grew organically."}])]
    await send(bot, sandbox, "issues", issue_payload(11, ["api"]))
    kinds = posts(sandbox, 11)
    assert kinds.index("verdict:review:1") < kinds.index("step:implementation:2") < kinds.index("verdict:review:2")
    rejected = body_of(sandbox, 11, "verdict")
    assert "❌ REJECTED" in rejected and "No input validation (`app/fix.py:1`)" in rejected
    assert "Sent back to **IMPLEMENTATION**" in rejected
    second = [c for c in team.fake.requests if "IMPLEMENTATION (implement)" in str(c["messages"][0]) and "attempt 2" in str(c["messages"][0])]
    assert second and "No input validation" in str(second[0]["messages"])  # the findings went back as feedback
    debt = [w for w in sandbox.writes if w.kind == "issue"]
    assert sorted(w.data["title"] for w in debt) == ["Refactor the fix module", "Suggestion: Add a docstring to fix()"]
    assert all(w.data["labels"] == ["tech-debt", "triage-lead"] for w in debt)
    assert "iteration 2" in body_of(sandbox, 11, "status")


async def test_three_rejections_escalate(bot: Any, sandbox: Any, team: Team) -> None:
    no = result("review", verdict="REJECTED", critical=[{"text": "SQL built by string formatting"}])
    team.script["REVIEW"] = [copy.deepcopy(no) for _ in range(3)]
    await send(bot, sandbox, "issues", issue_payload(12, ["api"]))
    assert posts(sandbox, 12).count("verdict:review:1") == 1 and "verdict:review:3" in posts(sandbox, 12)
    esc = body_of(sandbox, 12, "escalation")
    for heading in ("## Escalation Required", "**Issue**:", "**Workflow Stage**: REVIEW", "**Options**:",
                    "**Recommendation**:", "**Blocking**:"):
        assert heading in esc
    assert "rejected the change 3 times" in esc
    assert "needs-decision" in [lab["name"] for lab in sandbox.issue(REPO, 12)["labels"]]


async def test_conditional_step_taken(bot: Any, sandbox: Any, team: Team) -> None:
    team.flags["TRIAGE"] = {"infra_affects_services": True}
    await send(bot, sandbox, "issues", issue_payload(13, ["devops"]))
    assert "step:architecture-review:1" in posts(sandbox, 13)
    assert "skip:architecture-review" not in posts(sandbox, 13)


async def test_parallel_steps_overlap_in_time(bot: Any, sandbox: Any, team: Team) -> None:
    team.flags["ASSESS"] = {"unknown_vulnerability": True}
    team.delay = {"RESEARCH": 0.4, "ARCHITECTURE": 0.4}
    await send(bot, sandbox, "issues", issue_payload(14, ["security"]))
    spans = {title: (start, end) for title, _, start, end in team.calls if title in ("RESEARCH", "ARCHITECTURE")}
    (a0, a1), (b0, b1) = spans["RESEARCH"], spans["ARCHITECTURE"]
    assert a0 < b1 and b0 < a1, "research and architecture ran one after the other"
    assert "step:research:1" in posts(sandbox, 14)


async def test_approve_permissions_and_the_bot_itself(bot: Any, sandbox: Any, team: Team) -> None:
    await send(bot, sandbox, "issues", issue_payload(15, ["api"]))
    sandbox.set_permission(REPO, "reader", "read")
    await send(bot, sandbox, "issue_comment", comment_payload(15, "/approve", login="reader", comment_id=1))
    refusal = sandbox.comments(REPO, 15)[-1]["body"]
    assert "@\u200breader `/approve` needs write, maintain or admin access" in refusal and "`read`" in refusal
    writes = len(sandbox.writes)
    await send(bot, sandbox, "issue_comment", comment_payload(15, "/approve", login="triage-lead[bot]",
                                                              user_type="Bot", comment_id=2))
    assert len(sandbox.writes) == writes  # its own comment: not even read
    sandbox.set_permission(REPO, "maintainer", "write")
    await send(bot, sandbox, "issue_comment", comment_payload(15, "> /approve\n```\n/approve\n```\nthanks", comment_id=3))
    assert "done" not in posts(sandbox, 15)  # quoted and fenced commands are not commands
    await send(bot, sandbox, "issue_comment", comment_payload(15, "Looks good.\n/approve", comment_id=4))
    assert posts(sandbox, 15)[-1] == "done"
    # The completion comment answers an /approve that delivers: no 👀 on top (issue 16: one write fewer).
    assert not any(w.kind == "reaction" for w in sandbox.writes)


async def test_escalate_mid_run_and_resume(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_permission(REPO, "maintainer", "admin")
    await send(bot, sandbox, "issues", issue_payload(16, ["slow-query"]))
    await send(bot, sandbox, "issue_comment", comment_payload(16, "/escalate we need a product decision first"))
    assert [w.data.get("content") for w in sandbox.writes if w.kind == "reaction"] == ["eyes"]  # taken: 👀
    esc = body_of(sandbox, 16, "escalation")
    assert "we need a product decision first" in esc and "Escalation requested" in esc
    assert "needs-decision" in [lab["name"] for lab in sandbox.issue(REPO, 16)["labels"]]
    await send(bot, sandbox, "issue_comment", comment_payload(16, "/approve 1", comment_id=9002))
    assert "needs-decision" not in [lab["name"] for lab in sandbox.issue(REPO, 16)["labels"]]
    assert "Waiting for `/approve`" in body_of(sandbox, 16, "status")


async def test_unknown_command_help_and_status(bot: Any, sandbox: Any, team: Team) -> None:
    await send(bot, sandbox, "issues", issue_payload(17, ["integration"]))
    await send(bot, sandbox, "issue_comment", comment_payload(17, "/aprove", login="someone", comment_id=5))
    assert "`/aprove` isn't a command I know; did you mean `/approve`?" in sandbox.comments(REPO, 17)[-1]["body"]
    writes = len(sandbox.writes)
    await send(bot, sandbox, "issue_comment", comment_payload(17, "/lgtm\n/tmp is full", login="someone", comment_id=8))
    assert len(sandbox.writes) == writes  # other bots' commands and paths are not ours
    await send(bot, sandbox, "issue_comment", comment_payload(17, "/help", login="someone", comment_id=6))
    assert "| `/approve` |" in sandbox.comments(REPO, 17)[-1]["body"]
    await send(bot, sandbox, "issue_comment", comment_payload(17, "/status", login="someone", comment_id=7))
    assert "Integration" in sandbox.comments(REPO, 17)[-1]["body"]


async def test_unplaceable_issue_gets_asked_for_a_label(bot: Any, sandbox: Any, team: Team) -> None:
    await send(bot, sandbox, "issues", issue_payload(18, [], title="Hello", body="Just saying hi"))
    comments = sandbox.comments(REPO, 18)
    assert len(comments) == 1 and "I won't guess" in comments[0]["body"] and "`security`" in comments[0]["body"]
    assert team.fake.requests == []


def pr_payload(sandbox: Any, number: int, labels: list[str]) -> dict[str, Any]:
    p = load_fixture("pull_request.opened.json")
    pr = p["pull_request"]
    pr |= {"number": number, "labels": [{"name": n} for n in labels], "title": "Fix the crash"}
    sandbox.seed_from_payload(p)
    head = sandbox.pull(REPO, number)["head"]["sha"]
    pr["head"]["sha"] = head
    return p


async def test_push_after_summary_makes_approval_stale(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_permission(REPO, "maintainer", "write")
    p = pr_payload(sandbox, 20, ["api"])
    first = p["pull_request"]["head"]["sha"]
    await send(bot, sandbox, "pull_request", p)
    assert posts(sandbox, 20)[-1] == "approval"
    # The pull request is judged at its head; the gate's verdict on the bot's own change stays on the thread.
    assert [(w.data["event"], w.data["commit_id"]) for w in sandbox.writes if w.kind == "review"] == [("APPROVE", first)]
    checks = [w.data for w in sandbox.writes if w.kind == "check_run"]
    assert [(c["name"], c["head_sha"], c["conclusion"]) for c in checks] == [("triage-lead / code-review", first, "success")]
    new_head = sandbox.set_file(REPO, "README.md", "changed\n", ref=p["pull_request"]["head"]["ref"])
    sync = copy.deepcopy(p) | {"action": "synchronize"}
    sync["pull_request"]["head"]["sha"] = new_head
    await send(bot, sandbox, "pull_request", sync)
    assert any("approval is asked again" in c["body"] for c in sandbox.comments(REPO, 20))
    assert [w.data["commit_id"] for w in sandbox.writes if w.kind == "review"] == [first, new_head]
    assert f"`{new_head[:12]}`" in body_of(sandbox, 20, "approval")  # the request now names the new head
    await send(bot, sandbox, "issue_comment", comment_payload(20, "/approve", pull=True))
    assert posts(sandbox, 20)[-1] == "done"
    assert (sandbox.file_content(REPO, "app/fix.py", ref=p["pull_request"]["head"]["ref"]) is None)  # a draft PR, not a push


async def test_ci_failure_on_a_pull_request(bot: Any, sandbox: Any, team: Team) -> None:
    payload = load_fixture("check_run.completed.json")
    sandbox.seed_from_payload(payload)
    await send(bot, sandbox, "check_run", payload)
    kinds = posts(sandbox, 2)
    assert kinds[:2] == ["status", "step:detect:1"] and "error-investigation" in body_of(sandbox, 2, "status")
    assert "Why: the check 'Octocoders-linter' failed on changes." in body_of(sandbox, 2, "status")
    detect = [r for r in team.fake.requests if "DETECT (analyze)" in str(r["messages"][0])]
    assert detect and "CI failure: check_run" in str(detect[0]["messages"][0])  # the agent was told what failed


async def test_same_ci_failure_twice_on_the_default_branch(bot: Any, sandbox: Any, team: Team) -> None:
    base = load_fixture("check_run.completed.json")
    base["check_run"]["pull_requests"] = []
    base["check_run"]["check_suite"]["head_branch"] = base["repository"]["default_branch"]
    base["check_run"]["output"] = {"title": "1 failed", "summary": "FAILED tests/test_api.py::test_create - AssertionError: 500 != 201"}
    sandbox.seed_from_payload(base)
    await send(bot, sandbox, "check_run", base)
    second = copy.deepcopy(base)
    second["check_run"]["id"] += 1
    second["check_run"]["head_sha"] = "f" * 40
    sandbox.seed_from_payload(second)
    await send(bot, sandbox, "check_run", second)
    issues = [w for w in sandbox.writes if w.kind == "issue"]
    assert len(issues) == 1 and issues[0].data["title"].startswith("CI failure: Octocoders-linter")
    number = sandbox.issue(REPO, issues[0].number)["number"] if issues[0].number else None
    comments = [c["body"] for c in sandbox.comments(REPO, number)]
    assert any("The same failure of `Octocoders-linter` happened again" in b for b in comments)
    assert sum(1 for b in comments if "triage-lead:status:" in b) == 1  # one investigation, not two


async def test_repository_agent_overrides_the_shipped_prompt(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_file(REPO, ".claude/agents/code-reviewer.md",
                     "---\nname: code-reviewer\ndescription: house reviewer\n---\nHOUSE RULES: reject any TODO.\n")
    await send(bot, sandbox, "issues", issue_payload(30, ["api"]))
    review = [r for r in team.fake.requests if "REVIEW (review)" in str(r["messages"][0])]
    assert review and "HOUSE RULES: reject any TODO." in str(review[0]["messages"][0])
    architect = [r for r in team.fake.requests if "ARCHITECTURE (analyze)" in str(r["messages"][0])]
    assert "HOUSE RULES" not in str(architect[0]["messages"][0])


async def test_a_runaway_run_is_capped(bot: Any, sandbox: Any, team: Team) -> None:
    rt, _ = bot
    rt.deps.settings = rt.deps.settings.with_overrides(max_comments_per_run=4, max_issues_per_run=1)
    debt = [{"title": f"Debt item {i}", "body": "later"} for i in range(5)]
    team.script["REVIEW"] = [result("review", tech_debt=debt)]
    await send(bot, sandbox, "issues", issue_payload(31, ["api"]))
    assert len(sandbox.comments(REPO, 31)) == 4
    assert len([w for w in sandbox.writes if w.kind == "issue"]) <= 1
    status = body_of(sandbox, 31, "status")
    assert "Stopped: this run reached its limit of" in status and "Cancelled" in status


async def test_long_running_project_keeps_a_context_document_and_files_tasks(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_permission(REPO, "maintainer", "write")
    team.script["SETUP"] = [result("context", context={"goals": ["Ship v2 API"], "constraints": ["No downtime"],
                                                       "decisions": [], "progress": ["Scoped"]},
                                   tasks=[{"title": "Add the v2 endpoints", "description": "REST", "labels": ["api"]},
                                          {"title": "Speed up the orders query", "description": "slow", "labels": ["slow-query"]}])]
    team.script["CHECKPOINT"] = [result("context", context={"goals": ["Ship v2 API"], "constraints": [],
                                                            "decisions": ["Version by URL prefix"], "progress": ["Tasks filed"]})]
    team.script["HANDOFF"] = [result("context", summary="Next session: review the two task PRs.",
                                     context={"goals": ["Ship v2 API"], "constraints": [],
                                              "decisions": ["Version by URL prefix"], "progress": ["Tasks filed"]})]
    await send(bot, sandbox, "issues", issue_payload(32, ["epic"]))
    context = [c for c in sandbox.comments(REPO, 32) if "triage-lead:context:" in c["body"]]
    assert len(context) == 1  # one comment, edited in place at each checkpoint
    body = context[0]["body"]
    assert "Version by URL prefix" in body and "No downtime" not in body  # pruned at the checkpoint
    assert "Next session: review the two task PRs." in body
    tasks = [w for w in sandbox.writes if w.kind == "issue"]
    assert [t.data["title"] for t in tasks] == ["Add the v2 endpoints", "Speed up the orders query"]
    assert tasks[0].data["labels"] == ["api", "triage-lead"]
    await send(bot, sandbox, "issue_comment", comment_payload(32, "/status", login="someone", comment_id=77))
    assert "Handoff for the next session" in sandbox.comments(REPO, 32)[-1]["body"]


async def test_approved_ci_fix_is_pushed_to_the_pull_requests_branch(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_permission(REPO, "maintainer", "write")
    payload = load_fixture("check_run.completed.json")
    sandbox.seed_from_payload(payload)
    await send(bot, sandbox, "check_run", payload)
    assert posts(sandbox, 2)[-1] == "approval"
    branch = sandbox.pull(REPO, 2)["head"]["ref"]
    before = sandbox.pull(REPO, 2)["head"]["sha"]
    await send(bot, sandbox, "issue_comment", comment_payload(2, "/approve", pull=True))
    after = sandbox.pull(REPO, 2)["head"]["sha"]
    assert after != before and sandbox.file_content(REPO, "app/fix.py", ref=branch) == "def fix():\n    return 1\n"
    assert [w.kind for w in sandbox.writes if w.kind in ("pull", "ref_update")] == ["ref_update"]
    assert f"Fix pushed as {after}" in body_of(sandbox, 2, "done")


async def test_metrics_count_steps_tokens_and_rate_limit(bot: Any, sandbox: Any, team: Team) -> None:
    rt, client = bot
    await send(bot, sandbox, "issues", issue_payload(50, ["devops"]))
    text = await (await client.get("/metrics")).text()
    steps = re.search(r'triage_lead_step_duration_seconds_count\{kind="implement",workflow="devops-pipeline"\} (\S+)', text)
    assert steps and float(steps.group(1)) == 1.0
    for kind in ("output", "cache_write", "cache_read"):  # the stable prefix is cached from the second call on
        tokens = re.search(rf'triage_lead_model_tokens_total\{{kind="{kind}"\}} (\S+)', text)
        assert tokens and float(tokens.group(1)) > 0, kind
    assert re.search(r'triage_lead_github_rate_limit_remaining\{installation="2311213",resource="core"\} \d', text)
    assert 'triage_lead_webhook_deliveries_total{event="issues",outcome="accepted"} 1.0' in text


async def test_the_stable_prefix_is_shared_by_every_specialist_of_a_run(bot: Any, sandbox: Any, team: Team) -> None:
    await send(bot, sandbox, "issues", issue_payload(51, ["api"]))
    calls = team.fake.requests
    assert len({json.dumps([calls[i]["tools"], calls[i]["system"]]) for i in range(len(calls))}) == 1
    assert all(u["cache_read_input_tokens"] > 0 for u in team.fake.usage_log[1:])  # every call after the first


async def test_one_actions_failure_seen_as_check_run_and_workflow_run_opens_one_issue(
        bot: Any, sandbox: Any, team: Team) -> None:
    log = "##[group]Run pytest\nFAILED tests/test_api.py::test_create - AssertionError: 500 != 201\n##[error]Process completed with exit code 1."
    sha = "a" * 40
    wr = sandbox.add_workflow_run(REPO, name="CI", head_sha=sha, head_branch="master",
                                  jobs=[{"name": "tests", "conclusion": "failure", "log": log}])
    job_id = (await _jobs_of(sandbox, wr["id"]))[0]
    check = load_fixture("check_run.completed.json")
    check["check_run"] |= {"id": job_id, "name": "tests", "head_sha": sha, "pull_requests": []}
    check["check_run"]["check_suite"]["head_branch"] = "master"
    run_payload = load_fixture("check_run.completed.json")
    run_payload.pop("check_run")
    run_payload |= {"action": "completed", "workflow_run": {"id": wr["id"], "name": "CI", "head_sha": sha,
                                                            "head_branch": "master", "conclusion": "failure",
                                                            "pull_requests": []}}
    await send(bot, sandbox, "check_run", check)
    await send(bot, sandbox, "workflow_run", run_payload)
    issues = [w for w in sandbox.writes if w.kind == "issue"]
    assert len(issues) == 1 and issues[0].data["title"].startswith("CI failure: tests: tests/test_api.py::test_create")
    number = issues[0].data["number"] if "number" in issues[0].data else issues[0].number
    assert not any("happened again" in c["body"] for c in sandbox.comments(REPO, number))


async def _jobs_of(sandbox: Any, run_id: int) -> list[int]:
    return [j["id"] for j in sandbox.repo(REPO).jobs.values() if j["run_id"] == run_id]


async def test_a_failure_while_delivering_an_approved_change_is_retried(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_permission(REPO, "maintainer", "write")
    await send(bot, sandbox, "issues", issue_payload(52, ["api"]))
    sandbox.fail("POST", rf"/repos/{REPO}/pulls", 500)  # once: the done run still has its PR to open
    await send(bot, sandbox, "issue_comment", comment_payload(52, "/approve"))
    assert len([w for w in sandbox.writes if w.kind == "pull"]) == 1
    assert posts(sandbox, 52)[-1] == "done"
    assert not any("nothing to act on" in c["body"] for c in sandbox.comments(REPO, 52))


async def test_an_issue_filed_before_a_crash_is_found_without_search(bot: Any, sandbox: Any, team: Team) -> None:
    from bot.core.markers import marker
    from bot.github.writes import create_issue_once

    rt, _ = bot
    gh = await rt.github.installation(2311213)
    mark = marker("debt", "abc123")
    first, created = await create_issue_once(gh, rt.store, repo=REPO, mark=mark, title="Debt", body="later",
                                             labels=["tech-debt"], bot_login="triage-lead[bot]")
    # the record of the post is lost, as in a crash before it was saved:
    await rt.store._run(lambda db: db.execute("DELETE FROM posted"))
    again, created_again = await create_issue_once(gh, rt.store, repo=REPO, mark=mark, title="Debt", body="later",
                                                   labels=["tech-debt"], bot_login="triage-lead[bot]")
    assert created and not created_again and again.number == first.number
    assert not any("/search/issues" in r.path for r in sandbox.requests)
    assert len([w for w in sandbox.writes if w.kind == "issue"]) == 1
