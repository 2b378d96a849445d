"""Who may do what: every command for every kind of account, on the real bot over HTTP.

The matrix: admin, maintain, write, triage, read, an outside contributor (no collaborator role), a bot
account (type Bot, ignored entirely, even with admin rights) and a person whose access was revoked between
posting the comment and the job running; times /approve, /escalate, /retry and /cancel (write and up) and
/status and /help (anyone). Each role drives four runs waiting for approval (the third escalated first by
an admin, so /retry has something to retry) and the engine state must change only for allowed roles.
Forks: a fork's pull request gets the analysis, but nothing is pushed anywhere until a person with write
access approves, and then never to the fork.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bot.core.markers import markers_in
from tests.conftest import load_fixture, post_webhook
from tests.test_workflows_e2e import REPO, Team, bot, comment_payload, fake, issue_payload, posts, team  # noqa: F401

WRITERS = ("admin", "maintain", "write")
ROLES = ("admin", "maintain", "write", "triage", "read", "outside", "bot", "revoked")
COMMANDS = ("approve", "escalate", "retry", "cancel", "status", "help")
LOGIN = {"admin": "ada", "maintain": "mai", "write": "wren", "triage": "tia", "read": "reed", "outside": "passerby",
         "bot": "dependabot[bot]", "revoked": "ex-maintainer"}
A, B, C, D = 20, 21, 22, 23  # /status, /help, /approve · /escalate · /retry (pre-escalated) · /cancel
PUSHES = ("ref", "ref_update", "blob", "tree", "commit", "contents", "pull")


async def send(bot: Any, sandbox: Any, event: str, *payloads: dict[str, Any]) -> None:
    rt, client = bot
    for payload in payloads:
        sandbox.seed_from_payload(payload)
        resp = await post_webhook(client, event, payload)
        assert resp.status == 202, await resp.text()
    await rt.jobs.drained(30)
    assert "failed" not in await rt.store.job_states()


async def states(rt: Any, sandbox: Any) -> list[str]:
    """The state of the run on each of the four threads (done and cancelled runs are no longer active)."""
    out = []
    for number in (A, B, C, D):
        record = await rt.store.active_run(f"{REPO}#{number}")
        out.append(record.state if record else "done" if "done" in posts(sandbox, number) else "cancelled")
    return out


def replies(sandbox: Any, number: int, since: int) -> list[str]:
    """Bodies of the bot's comments on a thread created after write number `since`."""
    return [w.data["body"] for w in sandbox.writes[since:] if w.kind == "comment" and w.number == number]


def permission_answers(sandbox: Any, login: str, since: int) -> list[tuple[int, int]]:
    """(request index, status) of each collaborator-permission request for `login` from `since` on."""
    path = f"/repos/{REPO}/collaborators/{login}/permission"
    return [(i, r.status) for i, r in enumerate(sandbox.requests)
            if i >= since and r.method == "GET" and r.path == path]


def comment_on(sandbox: Any, number: int, body: str, **kw: Any) -> dict[str, Any]:
    """An issue_comment payload whose issue carries the thread's labels as they are now (as GitHub's does), so
    seeding it into the sandbox does not reset them."""
    payload = comment_payload(number, body, **kw)
    payload["issue"]["labels"] = sandbox.issue(REPO, number)["labels"]
    return payload


def labels(sandbox: Any, number: int) -> list[str]:
    return [lab["name"] for lab in sandbox.issue(REPO, number)["labels"]]


@pytest.mark.parametrize("role", ROLES)
async def test_commands_by_role(role: str, bot: Any, sandbox: Any, team: Team) -> None:
    rt, client = bot
    login = LOGIN[role]
    kind = "Bot" if role == "bot" else "User"
    if role in WRITERS or role in ("triage", "read"):
        sandbox.set_permission(REPO, login, role)
    elif role == "bot":
        sandbox.set_permission(REPO, login, "admin")  # rights do not matter: a bot account is never obeyed
    elif role == "revoked":
        sandbox.set_permission(REPO, login, "write")  # still has write when the comment is posted
    sandbox.set_permission(REPO, "boss", "admin")
    await send(bot, sandbox, "issues", *(issue_payload(n, ["devops"], title=f"Deploy fails #{n}")
                                         for n in (A, B, C, D)))
    await send(bot, sandbox, "issue_comment",
               comment_on(sandbox, C, "/escalate before any retry", login="boss", comment_id=9000))
    assert await states(rt, sandbox) == ["waiting", "waiting", "escalated", "waiting"]

    writes, requests = len(sandbox.writes), len(sandbox.requests)
    comments = [(A, "/status", 1), (A, "/help", 2), (A, "/approve", 3), (B, "/escalate please decide", 4),
                (C, "/retry", 5), (D, "/cancel", 6)]
    if role == "revoked":  # GitHub gives no permission answer (slow 502s, retried) until after the revocation
        sandbox.fail("GET", rf"/repos/{REPO}/collaborators/{login}/permission", 502, times=-1, delay=0.2)
    for number, body, cid in comments:
        payload = comment_on(sandbox, number, body, login=login, user_type=kind, comment_id=9100 + cid)
        sandbox.seed_from_payload(payload)
        assert (await post_webhook(client, "issue_comment", payload)).status == 202
    revoked_at = len(sandbox.requests)
    if role == "revoked":
        sandbox.set_permission(REPO, login, "none")
        sandbox.clear_faults()
    await rt.jobs.drained(30)
    assert "failed" not in await rt.store.job_states()
    after = await states(rt, sandbox)

    if role == "bot":  # ignored entirely: not a read, not a write, not even /help
        assert sandbox.writes[writes:] == [] and sandbox.requests[requests:] == []
        assert after == ["waiting", "waiting", "escalated", "waiting"]
        return

    # /status and /help: anyone, and no permission check for them.
    status_reply, help_reply = replies(sandbox, A, writes)[:2]
    assert "DevOps / Infrastructure Issue" in status_reply and "Waiting for `/approve`" in status_reply
    assert "| `/approve` |" in help_reply and "need write access" in help_reply
    # The permission is asked of GitHub when each write command runs, after the comment: once per command.
    answers = permission_answers(sandbox, login, requests)
    assert [s for _, s in answers if s == 200] == [200] * 4
    reactions = [w for w in sandbox.writes[writes:] if w.kind == "reaction"]

    if role in WRITERS:
        assert after == ["done", "escalated", "waiting", "cancelled"]
        done = replies(sandbox, A, writes)[-1]
        assert f"Approved by @\u200b{login}" in done and "Proposed changes" in done
        assert len(sandbox.written("pull")) == 1
        assert f"@\u200b{login} asked for a decision: please decide" in "\n".join(replies(sandbox, B, writes))
        assert "needs-decision" in labels(sandbox, B)
        record = await rt.store.active_run(f"{REPO}#{C}")
        assert record.data["run"]["decisions"][-1]["by"] == login and "needs-decision" not in labels(sandbox, C)
        again = markers_in("\n".join(replies(sandbox, C, writes)))
        assert any(k.startswith("approval:") and k.endswith(":2") for k in again)  # the approval step ran again
        assert f"Cancelled by @\u200b{login}." in "\n".join(replies(sandbox, D, writes))
        # the /approve that delivers (9103) is answered by its completion comment, not also by a reaction
        assert sorted(w.data["subject_id"] for w in reactions) == [9104, 9105, 9106]
        return

    # Refused: nothing changed, and each refusal says politely who, which command and why.
    assert after == ["waiting", "waiting", "escalated", "waiting"]
    assert "needs-decision" in labels(sandbox, C) and "needs-decision" not in labels(sandbox, B)
    assert not [w for w in sandbox.writes[writes:] if w.kind not in ("comment",)], "a refused command wrote"
    shown = {"outside": "read", "revoked": "none"}.get(role, role)
    for number, command in ((A, "approve"), (B, "escalate"), (C, "retry"), (D, "cancel")):
        [refusal] = [r for r in replies(sandbox, number, writes) if f"`/{command}` needs" in r]
        assert refusal.startswith(f"@\u200b{login} `/{command}` needs write, maintain or admin access to this repository "
                                  f"(yours is `{shown}`), so I haven't acted on it.")
        assert "`/status` and `/help` are open to everyone." in refusal
    assert reactions == []
    if role == "revoked":  # every answer GitHub gave was given after the revocation
        assert all(i >= revoked_at for i, s in answers if s == 200)


# ---- forks ----------------------------------------------------------------------------------

FORK = "forker/Hello-World"


def fork_pr_payload(sandbox: Any, number: int, labels: list[str], files: dict[str, str]) -> dict[str, Any]:
    pr = sandbox.add_pull(REPO, number=number, title="Fix the crash", body="From my fork.", user="forker",
                          head_ref="patch-1", head_repo=FORK, files=files)
    payload = load_fixture("pull_request.opened.json")
    payload["pull_request"] |= {"number": number, "title": pr["title"], "body": pr["body"],
                                "labels": [{"name": n} for n in labels], "user": pr["user"]}
    payload["pull_request"]["head"] = copy.deepcopy(pr["head"])
    payload["pull_request"]["base"] = copy.deepcopy(pr["base"])
    payload["sender"] = pr["user"]
    return payload


def pushes(sandbox: Any) -> list[Any]:
    return [w for w in sandbox.writes if w.kind in PUSHES]


async def test_a_fork_pull_request_gets_analysis_and_nothing_is_pushed_until_a_writer_approves(
        bot: Any, sandbox: Any, team: Team) -> None:
    rt, _ = bot
    payload = fork_pr_payload(sandbox, 30, ["api"], {"app/api.py": "@@ -0,0 +1,1 @@\n+def handler(): return 1\n"})
    fork_refs = dict(sandbox.repo(FORK).refs)
    await send(bot, sandbox, "pull_request", payload)
    # the run's status comment comes first, then the PR's own review: it lacks tests, a finding the thread
    # comment (pr-verdict) keeps
    assert posts(sandbox, 30) == ["status", "pr-verdict", "step:triage:1", "step:architecture:1",
                                  "step:implementation:1", "verdict:review:1", "approval"]
    assert pushes(sandbox) == []  # the implementer's change set is only shown, folded in its comment

    sandbox.set_permission(REPO, "forker", "read")
    await send(bot, sandbox, "issue_comment",
               comment_on(sandbox, 30, "/approve", login="forker", comment_id=3001, pull=True))
    assert "`/approve` needs write" in sandbox.comments(REPO, 30)[-1]["body"]
    assert pushes(sandbox) == [] and (await rt.store.active_run(f"{REPO}#30")).state == "waiting"

    sandbox.set_permission(REPO, "maintainer", "write")
    await send(bot, sandbox, "issue_comment", comment_on(sandbox, 30, "/approve", comment_id=3002, pull=True))
    assert posts(sandbox, 30)[-1] == "done"
    [pull] = sandbox.written("pull")
    assert pull.repo == REPO and pull.data["head"].startswith("triage-lead/") and pull.data["draft"] is True
    assert {w.repo for w in pushes(sandbox)} == {REPO} and not sandbox.written("ref_update")
    assert sandbox.repo(FORK).refs == fork_refs  # the fork is never written
    # ...and none of the fork's commits enter this repository: the bot's branch starts from the PR's base.
    [ref] = sandbox.written("ref")
    assert sandbox.obj(ref.data["sha"], "commit")["parents"] == [payload["pull_request"]["base"]["sha"]]


async def test_a_ci_fix_for_a_fork_is_proposed_as_a_draft_never_pushed_to_the_fork(bot: Any, sandbox: Any,
                                                                                  team: Team) -> None:
    rt, _ = bot
    fork_pr_payload(sandbox, 31, [], {"app/api.py": "@@ -0,0 +1,1 @@\n+def handler(): return 1\n"})
    pr = sandbox.pull(REPO, 31)
    run = sandbox.add_workflow_run(REPO, name="CI", head_sha=pr["head"]["sha"], head_branch="patch-1",
                                   pull_requests=[31], jobs=[{"name": "tests", "conclusion": "failure",
                                                              "log": "FAILED tests/test_api.py::test_x\n"}])
    base = load_fixture("check_run.completed.json")
    fork_refs = dict(sandbox.repo(FORK).refs)
    await send(bot, sandbox, "workflow_run", {"action": "completed", "workflow_run": run, "sender": base["sender"],
                                              "repository": base["repository"], "installation": base["installation"]})
    status = next(c["body"] for c in sandbox.comments(REPO, 31) if "<!-- triage-lead:status:" in c["body"])
    assert "error-investigation" in status and posts(sandbox, 31)[-1] == "approval"
    assert pushes(sandbox) == []
    sandbox.set_permission(REPO, "maintainer", "maintain")
    await send(bot, sandbox, "issue_comment", comment_on(sandbox, 31, "/approve", comment_id=3101, pull=True))
    assert posts(sandbox, 31)[-1] == "done"
    assert not sandbox.written("ref_update") and [p.repo for p in sandbox.written("pull")] == [REPO]
    assert sandbox.repo(FORK).refs == fork_refs
