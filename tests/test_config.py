"""Per-repository config: strict validation, org fallback, and each key changing what the bot does."""

from __future__ import annotations

from typing import Any

import pytest

from bot.core import config
from bot.core.catalog import load_catalog
from tests.test_workflows_e2e import (  # noqa: F401
    REPO,
    Team,
    body_of,
    bot,
    comment_payload,
    fake,
    issue_payload,
    posts,
    result,
    send,
    team,
)

KNOWN = set(load_catalog().workflows)


def test_valid_config() -> None:
    cfg, errors = config.parse("""
workflows: [security-fix, error-investigation]
labels: {needs-fix: error-investigation}
max_review_iterations: 2
budgets: {run_tokens: 50000}
models: {sonnet: claude-sonnet-4-6}
protected_paths: [".github/workflows/", "*.pem"]
escalation_mentions: ["@octo-org/leads", maintainer]
dry_run: false
dashboard: true
""", known_workflows=KNOWN)
    assert errors == [] and cfg.dashboard and not config.RepoConfig().dashboard
    assert cfg.workflows == ("security-fix", "error-investigation") and cfg.labels == {"needs-fix": "error-investigation"}
    assert cfg.protected(".github/workflows/ci.yml") and cfg.protected("keys/app.pem") and not cfg.protected("app.py")
    assert cfg.mention_line() == "@octo-org/leads @maintainer "


@pytest.mark.parametrize(("text", "named"), [
    ("colour: blue\n", "Additional properties are not allowed ('colour'"),
    ("max_review_iterations: three\n", "max_review_iterations: 'three' is not of type 'integer'"),
    ("budgets: {run_tokens: 10, per_day: 5}\n", "budgets"),
    ("workflows: [deploy-everything]\n", "workflows: 'deploy-everything' is not a workflow"),
    ("labels: {x: nope}\n", "labels: 'nope' is not a workflow"),
    ("dry_run: [1\n", "not valid YAML at line"),
    ("dashboard: yes please\n", "dashboard: 'yes please' is not of type 'boolean'"),
])
def test_invalid_config_names_the_key_and_falls_back(text: str, named: str) -> None:
    cfg, errors = config.parse(text, known_workflows=KNOWN)
    assert cfg == config.RepoConfig()
    assert errors and any(named in e for e in errors), errors


async def test_config_steers_triage_mentions_and_iterations(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_file(REPO, config.PATH, "labels: {needs-fix: backend-feature}\nmax_review_iterations: 1\n"
                                          "escalation_mentions: ['@octo-org/leads']\n")
    no = result("review", verdict="REJECTED", critical=[{"text": "bad"}])
    team.script["REVIEW"] = [no]
    await send(bot, sandbox, "issues", issue_payload(40, ["needs-fix"]))
    assert "backend-feature" in body_of(sandbox, 40, "status")
    esc = body_of(sandbox, 40, "escalation")
    assert "rejected the change 1 times" in esc and esc.rstrip().split("\n")[-3].startswith("@octo-org/leads Reply")


async def test_organisation_fallback_and_disabled_workflows(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.add_repo("Codertocat/.github")
    sandbox.set_file("Codertocat/.github", config.PATH, "workflows: [security-fix]\n")
    await send(bot, sandbox, "issues", issue_payload(41, ["bug"]))
    comments = sandbox.comments(REPO, 41)
    assert len(comments) == 1 and "turned off for this repository" in comments[0]["body"]


async def test_dry_run_posts_only_the_status_comment(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_file(REPO, config.PATH, "dry_run: true\n")
    await send(bot, sandbox, "issues", issue_payload(42, ["api"]))
    assert posts(sandbox, 42) == ["status"]
    assert "Waiting for `/approve`" in body_of(sandbox, 42, "status")
    assert [w.kind for w in sandbox.writes if w.kind not in ("comment", "comment_edit")] == []


async def test_protected_paths_are_never_changed(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_file(REPO, config.PATH, "protected_paths: [app/]\n")
    await send(bot, sandbox, "issues", issue_payload(43, ["api"]))
    esc = body_of(sandbox, 43, "escalation")
    assert "protected paths (`app/fix.py`)" in esc
    assert "verdict:review:1" not in posts(sandbox, 43)


async def test_broken_config_with_no_good_one_before_runs_dry_and_says_so_once(bot: Any, sandbox: Any,
                                                                              team: Team) -> None:
    sandbox.set_file(REPO, config.PATH, "colour: blue\n")
    await send(bot, sandbox, "issues", issue_payload(44, ["api"]))
    await send(bot, sandbox, "issues", issue_payload(45, ["api"]))
    issues = [w for w in sandbox.writes if w.kind == "issue"]
    assert len(issues) == 1 and "colour" in issues[0].data["body"]
    assert "backend-feature" in body_of(sandbox, 44, "status") and "backend-feature" in body_of(sandbox, 45, "status")
    assert posts(sandbox, 44) == posts(sandbox, 45) == ["status"]  # never looser than the file asked: dry-run


async def test_a_pr_changing_the_config_gets_a_check_run(bot: Any, sandbox: Any, team: Team) -> None:
    from tests.conftest import load_fixture

    sandbox.add_pull(REPO, title="Tune triage-lead", number=46, head_ref="tune",
                     files={config.PATH: "@@ -0,0 +1 @@\n+max_review_iterations: 99\n"})
    p = load_fixture("pull_request.opened.json")
    p["pull_request"] |= {"number": 46, "title": "Tune triage-lead", "labels": []}
    p["pull_request"]["head"] |= {"ref": "tune", "sha": sandbox.pull(REPO, 46)["head"]["sha"]}
    await send(bot, sandbox, "pull_request", p)
    # Only the config's check is asserted: the Lead may also place the pull request (then its review has a check too).
    checks = [w for w in sandbox.writes if w.kind == "check_run" and w.data["name"] == "triage-lead / config"]
    assert len(checks) == 1
    assert checks[0].data["conclusion"] == "failure" and "max_review_iterations" in checks[0].data["output"]["summary"]
