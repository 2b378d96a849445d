"""Issue 12: every verdict, approval and commit means what a maintainer reads into it.

Through the webhook against the sandbox GitHub and the local Messages API: the pull request is judged
by itself (never by the bot's own proposal), without a model nothing passes, approvals follow the head,
and nothing anyone pushed or merged is ever overwritten by the bot.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

from bot.sandbox.team import Team, rejected
from tests.conftest import load_fixture, post_webhook
from tests.test_injection import offline  # noqa: F401  (the bot with no model configured)
from tests.test_workflows_e2e import REPO, bot, comment_payload, fake, posts, pr_payload, send, team  # noqa: F401

CHECK = "triage-lead / code-review"
KEY_LINE = 'AWS_KEY = "AKIAIOSFODNN7EXAMPLE"\n'


def reviews(sandbox: Any) -> list[tuple[str, str]]:
    return [(w.data["event"], w.data["commit_id"]) for w in sandbox.writes if w.kind == "review"]


def checks(sandbox: Any) -> list[tuple[str, str]]:
    return [(w.data["conclusion"], w.data["head_sha"]) for w in sandbox.writes
            if w.kind == "check_run" and w.data["name"] == CHECK]


def check_text(sandbox: Any, sha: str) -> str:
    found = [w.data for w in sandbox.writes if w.kind == "check_run" and w.data["head_sha"] == sha]
    return "\n".join(f"{c['output']['title']}\n{c['output']['summary']}" for c in found)


def pull_with(sandbox: Any, number: int, files: dict[str, str], labels: list[str] | None = None) -> dict[str, Any]:
    """A pull request event whose head adds ``files``."""
    p = pr_payload(sandbox, number, labels or ["api"])
    for path, content in files.items():
        p["pull_request"]["head"]["sha"] = sandbox.set_file(REPO, path, content, ref=p["pull_request"]["head"]["ref"])
    return p


def push(sandbox: Any, p: dict[str, Any], path: str, content: str, *, by: str = "Codertocat",
         kind: str = "User") -> dict[str, Any]:
    """Commit on the PR's branch; the synchronize event GitHub would send for it (not sent here)."""
    sync = copy.deepcopy(p) | {"action": "synchronize"}
    sync["pull_request"]["head"]["sha"] = sandbox.set_file(REPO, path, content, ref=p["pull_request"]["head"]["ref"])
    sync["sender"] = {**sync["sender"], "login": by, "type": kind}
    sync["pull_request"]["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # GitHub's: the push
    return sync


def replies(sandbox: Any, number: int) -> str:
    return "\n".join(c["body"] for c in sandbox.comments(REPO, number))


async def test_a_pull_request_adding_a_credential_is_refused_whatever_the_model_says(
        bot: Any, sandbox: Any, team: Team) -> None:
    p = pull_with(sandbox, 40, {"app/client.py": KEY_LINE, "tests/test_client.py": "def test_c():\n    assert 1\n"})
    head = p["pull_request"]["head"]["sha"]
    await send(bot, sandbox, "pull_request", p)
    assert any(c.title == "PULL REQUEST REVIEW" for c in team.calls)  # the model reviewed it, and approved
    assert reviews(sandbox) == [("REQUEST_CHANGES", head)] and checks(sandbox) == [("failure", head)]
    assert "exposed credential" in check_text(sandbox, head) and "app/client.py:1" in check_text(sandbox, head)
    assert "AKIAIOSFODNN7EXAMPLE" not in str([w.data for w in sandbox.writes])
    # The workflow's gate judged the bot's own change (approved): on the thread only, never as a review or check.
    assert "verdict:review:1" in posts(sandbox, 40)


async def test_without_a_model_nothing_passes(offline: Any, sandbox: Any) -> None:
    clean = pull_with(sandbox, 41, {"README.md": "more words\n"})
    await send(offline, sandbox, "pull_request", clean)
    head = clean["pull_request"]["head"]["sha"]
    assert reviews(sandbox) == [("COMMENT", head)] and checks(sandbox) == [("action_required", head)]
    text = check_text(sandbox, head)
    assert "No model reviewed this change" in text and "exposed credentials" in text and "without any test" in text
    bad = pull_with(sandbox, 42, {"app/client.py": KEY_LINE, "tests/test_client.py": "def test_c():\n    assert 1\n"})
    await send(offline, sandbox, "pull_request", bad)
    head = bad["pull_request"]["head"]["sha"]
    assert reviews(sandbox)[-1] == ("REQUEST_CHANGES", head) and checks(sandbox)[-1] == ("failure", head)


async def test_the_pull_request_is_judged_once_per_head(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_permission(REPO, "maintainer", "write")
    p = pull_with(sandbox, 43, {"README.md": "words\n"})
    await send(bot, sandbox, "pull_request", p)
    await send(bot, sandbox, "issue_comment", comment_payload(43, "/cancel", pull=True, comment_id=9431))
    again = copy.deepcopy(p) | {"action": "labeled", "label": {"name": "api"}}
    await send(bot, sandbox, "pull_request", again)  # a second run on the same head: judged already
    assert posts(sandbox, 43).count("status") == 2
    assert len(reviews(sandbox)) == 1 and len(checks(sandbox)) == 1
    assert sum(c.title == "PULL REQUEST REVIEW" for c in team.calls) == 1  # no model call for a judged head


async def test_a_push_while_the_files_are_read_is_not_judged_under_the_older_head(
        bot: Any, sandbox: Any, team: Team) -> None:
    p = pull_with(sandbox, 49, {"README.md": "words\n"})
    first, branch = p["pull_request"]["head"]["sha"], p["pull_request"]["head"]["ref"]
    pushed: list[str] = []
    dispatch = sandbox._dispatch

    async def push_between_head_and_files(rq: Any, *args: Any) -> Any:
        """Someone pushes just as the review, having read the head, lists the files."""
        before = [r.path for r in sandbox.requests[-2:-1]]
        if rq.path.endswith("/pulls/49/files") and before == [rq.path.removesuffix("/files")] and not pushed:
            pushed.append(sandbox.set_file(REPO, "app/client.py", KEY_LINE, ref=branch))
        return await dispatch(rq, *args)

    sandbox._dispatch = push_between_head_and_files
    await send(bot, sandbox, "pull_request", p)
    assert pushed and first not in [sha for _, sha in reviews(sandbox) + checks(sandbox)]
    sync = copy.deepcopy(p) | {"action": "synchronize"}
    sync["pull_request"]["head"]["sha"] = pushed[0]
    await send(bot, sandbox, "pull_request", sync)
    assert reviews(sandbox) == [("REQUEST_CHANGES", pushed[0])] and checks(sandbox) == [("failure", pushed[0])]


async def test_a_bots_push_makes_the_approval_stale_and_is_asked_again(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_permission(REPO, "maintainer", "write")
    p = pull_with(sandbox, 44, {"README.md": "words\n"})
    await send(bot, sandbox, "pull_request", p)
    assert posts(sandbox, 44)[-1] == "approval"
    sync = push(sandbox, p, "requirements.txt", "requests==2.32.4\n", by="dependabot[bot]", kind="Bot")
    await send(bot, sandbox, "pull_request", sync)
    new = sync["pull_request"]["head"]["sha"]
    assert reviews(sandbox)[-1][1] == new and checks(sandbox)[-1][1] == new  # judged at the new head
    assert "approval is asked again" in replies(sandbox, 44)
    await send(bot, sandbox, "issue_comment", comment_payload(44, "/approve", pull=True, comment_id=9441))
    assert posts(sandbox, 44)[-1] == "done"


async def test_a_missed_push_is_found_at_approve(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_permission(REPO, "maintainer", "write")
    p = pull_with(sandbox, 45, {"README.md": "words\n"})
    await send(bot, sandbox, "pull_request", p)
    new = push(sandbox, p, "docs/notes.md", "notes\n")["pull_request"]["head"]["sha"]  # no synchronize arrives
    await send(bot, sandbox, "issue_comment", comment_payload(45, "/approve", pull=True, comment_id=9451))
    assert "was not applied" in replies(sandbox, 45) and posts(sandbox, 45)[-1] != "done"
    assert reviews(sandbox)[-1][1] == new and checks(sandbox)[-1][1] == new
    await send(bot, sandbox, "issue_comment", comment_payload(45, "/approve", pull=True, comment_id=9452))
    assert posts(sandbox, 45)[-1] == "done"


def ci_on_pull(sandbox: Any) -> tuple[dict[str, Any], str]:
    payload = load_fixture("check_run.completed.json")
    sandbox.seed_from_payload(payload)
    return payload, sandbox.pull(REPO, 2)["head"]["ref"]


async def test_the_authors_push_before_approve_is_never_reverted(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_permission(REPO, "maintainer", "write")
    payload, branch = ci_on_pull(sandbox)
    await send(bot, sandbox, "check_run", payload)
    assert posts(sandbox, 2)[-1] == "approval"
    pr = sandbox.pull(REPO, 2)
    sync = load_fixture("pull_request.opened.json") | {"action": "synchronize"}
    sync["pull_request"] = copy.deepcopy(pr)
    sync["pull_request"]["head"]["sha"] = theirs = sandbox.set_file(REPO, "app/fix.py", "def fix():\n    return 2\n",
                                                                    ref=branch, message="The author's own fix")
    await send(bot, sandbox, "pull_request", sync)
    assert [c.attempt for c in team.calls if c.title == "FIX"] == [1, 2]  # made again on the author's code
    assert "makes the proposed change again on the new head" in replies(sandbox, 2)
    await send(bot, sandbox, "issue_comment", comment_payload(2, "/approve", pull=True))
    head = sandbox.pull(REPO, 2)["head"]["sha"]
    assert sandbox.obj(head, "commit")["parents"] == [theirs]  # a fast-forward on top of the author's commit


async def test_a_push_nobody_reported_before_approve_on_a_ci_fix(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_permission(REPO, "maintainer", "write")
    payload, branch = ci_on_pull(sandbox)
    await send(bot, sandbox, "check_run", payload)
    theirs = sandbox.set_file(REPO, "app/fix.py", "def fix():\n    return 2\n", ref=branch)
    await send(bot, sandbox, "issue_comment", comment_payload(2, "/approve", pull=True, comment_id=9021))
    assert sandbox.pull(REPO, 2)["head"]["sha"] == theirs  # nothing committed on a stale change
    assert [c.attempt for c in team.calls if c.title == "FIX"] == [1, 2]
    await send(bot, sandbox, "issue_comment", comment_payload(2, "/approve", pull=True, comment_id=9022))
    assert sandbox.obj(sandbox.pull(REPO, 2)["head"]["sha"], "commit")["parents"] == [theirs]


async def test_a_merge_to_the_default_branch_before_approve_is_not_reverted(bot: Any, sandbox: Any, team: Team) -> None:
    from tests.test_workflows_e2e import issue_payload

    sandbox.set_permission(REPO, "maintainer", "write")
    team.tool_turns = 1  # every agent lists the repository first: its reads are pinned to the run's commit
    pinned = sandbox.set_file(REPO, "app/fix.py", "def fix():\n    return 0\n")
    await send(bot, sandbox, "issues", issue_payload(46, ["api"]))
    reads = [r for r in sandbox.requests if r.path.startswith(f"/repos/{REPO}/contents")]
    assert reads and all(r.query.get("ref") == pinned and r.status in (200, 304) for r in reads if ".claude" not in r.path and ".github" not in r.path)
    merged = sandbox.set_file(REPO, "app/fix.py", "def fix():\n    return 'merged'\n", message="Merge pull request #7")
    await send(bot, sandbox, "issue_comment", comment_payload(46, "/approve", comment_id=9461))
    assert posts(sandbox, 46)[-1] == "done"
    [ref] = [w.data for w in sandbox.written("ref")]
    assert sandbox.obj(ref["sha"], "commit")["parents"] == [pinned]  # built on what the run read
    assert sandbox.file_content(REPO, "app/fix.py") == "def fix():\n    return 'merged'\n"
    assert sandbox.branch_sha(sandbox.repo(REPO), None) == merged  # the bot never writes the default branch


async def test_a_push_during_an_escalation_is_judged_and_redone_before_the_option(
        bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_permission(REPO, "maintainer", "write")
    team.script["REVIEW"] = [rejected(), rejected(), rejected()]
    p = pull_with(sandbox, 47, {"README.md": "words\n"})
    await send(bot, sandbox, "pull_request", p)
    assert "Escalation Required" in replies(sandbox, 47)
    sync = push(sandbox, p, "app/fix.py", "def fix():\n    return 3\n")
    await send(bot, sandbox, "pull_request", sync)
    new = sync["pull_request"]["head"]["sha"]
    assert checks(sandbox)[-1][1] == new and reviews(sandbox)[-1][1] == new
    await send(bot, sandbox, "issue_comment", comment_payload(47, "/approve 1", pull=True, comment_id=9471))
    assert [c.attempt for c in team.calls if c.title == "IMPLEMENTATION"] == [1, 2, 3, 4]
    assert posts(sandbox, 47)[-1] == "approval"


async def test_a_late_review_of_an_old_head_is_not_posted_under_the_new_one(bot: Any, sandbox: Any, team: Team) -> None:
    """The PR is judged at its head as GitHub has it when the review runs: a push meanwhile wins."""
    p = pull_with(sandbox, 48, {"README.md": "words\n"})
    rt, client = bot
    stale = copy.deepcopy(p)
    newer = sandbox.set_file(REPO, "README.md", "newer\n", ref=p["pull_request"]["head"]["ref"])
    resp = await post_webhook(client, "pull_request", stale)
    assert resp.status == 202
    await rt.jobs.drained(30)
    assert [sha for _, sha in reviews(sandbox)] == [newer] and [sha for _, sha in checks(sandbox)] == [newer]


async def test_a_push_after_the_run_finished_is_still_judged(bot: Any, sandbox: Any, team: Team) -> None:
    """Branch protection waits for the check on every head: finished or cancelled, the PR keeps being judged."""
    sandbox.set_permission(REPO, "maintainer", "write")
    p = pull_with(sandbox, 50, {"README.md": "words\n"})
    await send(bot, sandbox, "pull_request", p)
    await send(bot, sandbox, "issue_comment", comment_payload(50, "/approve", pull=True, comment_id=9501))
    assert posts(sandbox, 50)[-1] == "done"
    sync = push(sandbox, p, "app/client.py", KEY_LINE)
    await send(bot, sandbox, "pull_request", sync)
    new = sync["pull_request"]["head"]["sha"]
    assert reviews(sandbox)[-1] == ("REQUEST_CHANGES", new) and checks(sandbox)[-1] == ("failure", new)
    assert [k for k in posts(sandbox, 50) if k != "pr-verdict"][-1] == "done"  # the workflow stays finished
    assert posts(sandbox, 50)[-1] == "pr-verdict"  # the credential: the pull request's verdict comment (issue 17)
    await send(bot, sandbox, "issue_comment", comment_payload(50, "/cancel", pull=True, comment_id=9502))
    later = push(sandbox, sync, "README.md", "fixed\n")
    await send(bot, sandbox, "pull_request", later)
    assert checks(sandbox)[-1][1] == later["pull_request"]["head"]["sha"]


async def test_an_approval_of_an_older_head_is_dismissed_when_the_new_head_is_not_approved(
        bot: Any, sandbox: Any, team: Team) -> None:
    """GitHub counts a reviewer's latest approving or blocking review: the App's APPROVE of head A must not stand
    on head B, which no model reviewed (here its run budget is spent)."""
    p = pull_with(sandbox, 51, {"README.md": "words\n"})
    first = p["pull_request"]["head"]["sha"]
    await send(bot, sandbox, "pull_request", p)
    assert reviews(sandbox) == [("APPROVE", first)]
    rt, _ = bot
    rt.settings = rt.settings.with_overrides(run_token_budget=1)
    rt.deps.settings = rt.settings
    sync = push(sandbox, p, "docs/notes.md", "notes\n")
    await send(bot, sandbox, "pull_request", sync)
    new = sync["pull_request"]["head"]["sha"]
    assert reviews(sandbox)[-1] == ("COMMENT", new) and checks(sandbox)[-1] == ("action_required", new)
    [dismissed] = [w.data for w in sandbox.writes if w.kind == "review_dismissal"]
    assert new[:12] in dismissed["message"]
    assert [r["state"] for r in sandbox.reviews(REPO, 51)] == ["DISMISSED", "COMMENTED"]


def seed_files(sandbox: Any, number: int, entries: Sequence[tuple[str, str | None, int]]) -> None:
    """The PR's files as GitHub would list them: (path, patch or None, changes)."""
    repo = sandbox.repo(REPO)
    issue = sandbox.get_issue(repo, number, pull=True)
    files = []
    for path, patch, changes in entries:
        entry = sandbox._file_entry(repo, path, "added", patch or "", None, "changes")
        if patch is None:
            entry.pop("patch", None)
        files.append(entry | {"changes": changes, "additions": changes, "deletions": 0})
    issue["__pull"]["files"] = files


async def test_a_credential_in_file_101_is_found(bot: Any, sandbox: Any, team: Team) -> None:
    p = pull_with(sandbox, 52, {"README.md": "words\n"})
    entries = [(f"docs/page{i:03}.md", "@@ -0,0 +1 @@\n+text", 1) for i in range(101)]
    seed_files(sandbox, 52, entries + [("tests/test_x.py", "@@ -0,0 +1 @@\n+def test(): pass", 1),
                                       ("app/zz_client.py", "@@ -0,0 +1 @@\n+" + KEY_LINE.strip(), 1)])
    await send(bot, sandbox, "pull_request", p)
    head = p["pull_request"]["head"]["sha"]
    assert reviews(sandbox) == [("REQUEST_CHANGES", head)] and "app/zz_client.py:1" in check_text(sandbox, head)


async def test_a_file_github_sends_without_a_diff_is_not_passed_unseen(bot: Any, sandbox: Any, team: Team) -> None:
    p = pull_with(sandbox, 53, {"README.md": "words\n", "logo.png": "\x89PNG\x00\x00 pixels"})
    seed_files(sandbox, 53, [("README.md", "@@ -0,0 +1 @@\n+words", 1), ("app/huge.py", None, 40_000),
                             ("logo.png", None, 0)])  # binary: read whole and clean, so it counts as checked
    await send(bot, sandbox, "pull_request", p)
    head = p["pull_request"]["head"]["sha"]
    assert reviews(sandbox) == [("COMMENT", head)] and checks(sandbox) == [("action_required", head)]
    text = check_text(sandbox, head)
    assert "`app/huge.py`" in text and "logo.png" not in text


async def test_a_credential_in_a_file_github_calls_binary_is_found(bot: Any, sandbox: Any, team: Team) -> None:
    """One NUL byte and GitHub sends no diff and counts no changed lines: the file is read whole instead."""
    p = pull_with(sandbox, 58, {"tests/test_x.py": "def test(): pass\n", "config/deploy.env": "\x00\n" + KEY_LINE})
    seed_files(sandbox, 58, [("tests/test_x.py", "@@ -0,0 +1 @@\n+def test(): pass", 1),
                             ("config/deploy.env", None, 0)])
    await send(bot, sandbox, "pull_request", p)
    head = p["pull_request"]["head"]["sha"]
    assert reviews(sandbox) == [("REQUEST_CHANGES", head)] and "config/deploy.env:2" in check_text(sandbox, head)


async def test_a_crash_between_the_review_and_the_check_posts_the_same_verdict_once(
        bot: Any, sandbox: Any, team: Team) -> None:
    p = pull_with(sandbox, 54, {"README.md": "words\n"})
    sandbox.fail("POST", rf"/repos/{REPO}/check-runs", 502, times=1)
    rt, client = bot
    assert (await post_webhook(client, "pull_request", p)).status == 202
    await rt.jobs.drained(30)
    head = p["pull_request"]["head"]["sha"]
    assert reviews(sandbox) == [("APPROVE", head)] and checks(sandbox) == [("success", head)]
    assert sum(c.title == "PULL REQUEST REVIEW" for c in team.calls) == 1  # the kept verdict, not a second opinion


async def test_push_events_out_of_order_never_move_the_head_back(bot: Any, sandbox: Any, team: Team) -> None:
    p = pull_with(sandbox, 55, {"README.md": "words\n"})
    first = p["pull_request"]["head"]["sha"]
    await send(bot, sandbox, "pull_request", p)
    b = push(sandbox, p, "docs/b.md", "b\n")
    c = push(sandbox, b, "docs/c.md", "c\n")
    await send(bot, sandbox, "pull_request", c)
    await send(bot, sandbox, "pull_request", b)  # GitHub delivered the older push last
    rt, _ = bot
    run = await rt.store.active_run(f"{REPO}#55")
    newest = c["pull_request"]["head"]["sha"]
    assert run is not None and run.data["run"]["head_sha"] == newest
    assert [sha for _, sha in reviews(sandbox)] == [first, newest]
    assert replies(sandbox, 55).count("approval is asked again") == 1


async def test_only_the_apps_own_push_of_its_run_leaves_the_approval_standing(bot: Any, sandbox: Any, team: Team) -> None:
    from bot.github.changes import RUN_TRAILER

    rt, client = bot
    p = pull_with(sandbox, 56, {"README.md": "words\n"})
    run_id = "5600aaaa-0000-0000-0000-000000000056"
    assert (await post_webhook(client, "pull_request", p, delivery=run_id)).status == 202
    await rt.jobs.drained(30)
    trailer = f"Fix\n\nProposed by triage-lead.\n\n{RUN_TRAILER}: {run_id}\n"
    ours = copy.deepcopy(p) | {"action": "synchronize"}
    ours["pull_request"]["head"]["sha"] = sandbox.set_file(REPO, "docs/ours.md", "x\n", message=trailer,
                                                           ref=p["pull_request"]["head"]["ref"])
    ours["sender"] = {**ours["sender"], "login": "triage-lead[bot]", "type": "Bot"}
    await send(bot, sandbox, "pull_request", ours)
    assert "approval is asked again" not in replies(sandbox, 56)  # the App's own commit of this run
    assert reviews(sandbox)[-1][1] == ours["pull_request"]["head"]["sha"]  # still judged: the PR changed
    planted = copy.deepcopy(ours) | {"sender": p["sender"]}  # a person's commit carrying the same trailer
    planted["pull_request"]["head"]["sha"] = sandbox.set_file(REPO, "docs/theirs.md", "y\n", message=trailer,
                                                              ref=p["pull_request"]["head"]["ref"])
    await send(bot, sandbox, "pull_request", planted)
    assert "approval is asked again" in replies(sandbox, 56)


async def test_a_force_push_github_cannot_compare_makes_the_change_again(bot: Any, sandbox: Any, team: Team) -> None:
    p = pull_with(sandbox, 57, {"README.md": "words\n"})
    await send(bot, sandbox, "pull_request", p)
    rewritten = sandbox.set_file(REPO, "docs/other.md", "z\n", ref="rewrite-57")  # not on top of the old head
    sandbox.repo(REPO).refs[f"refs/heads/{p['pull_request']['head']['ref']}"] = rewritten
    sync = copy.deepcopy(p) | {"action": "synchronize"}
    sync["pull_request"]["head"]["sha"] = rewritten
    await send(bot, sandbox, "pull_request", sync)
    assert [c.attempt for c in team.calls if c.title == "IMPLEMENTATION"] == [1, 2]
    assert "GitHub could not say which files they change" in replies(sandbox, 57)


async def test_a_push_landing_while_the_approved_fix_is_delivered_is_not_overwritten(
        bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_permission(REPO, "maintainer", "write")
    payload, branch = ci_on_pull(sandbox)
    await send(bot, sandbox, "check_run", payload)
    pushed: list[str] = []
    dispatch = sandbox._dispatch

    async def push_just_before_delivery(rq: Any, *args: Any) -> Any:
        if rq.path.endswith(f"/git/ref/heads/{branch}") and not pushed:
            pushed.append(sandbox.set_file(REPO, "app/fix.py", "def fix():\n    return 4\n", ref=branch))
        return await dispatch(rq, *args)

    sandbox._dispatch = push_just_before_delivery
    await send(bot, sandbox, "issue_comment", comment_payload(2, "/approve", pull=True, comment_id=9023))
    assert pushed and sandbox.pull(REPO, 2)["head"]["sha"] == pushed[0] and not sandbox.written("commit")
    assert "The branch moved after the approval" in replies(sandbox, 2)
    assert [c.attempt for c in team.calls if c.title == "FIX"] == [1, 2] and posts(sandbox, 2)[-1] == "approval"
