"""Attacks on lockdown (4e037dc), on the /approve written before a push (2503941) and on the review login
learned from the App's check run (ae98b31), made as an outsider would (or met by an unlucky maintainer),
through the webhook against the sandbox GitHub and the local Messages API.

An attack the bot defends against is a plain test asserting the defence. An attack that succeeds is kept,
marked ``xfail(strict=True)`` with the reason "ATTACK SUCCEEDS: ...": the test asserts what should hold,
fails today, and turns the suite red (strict) the day the hole is closed without the marker removed.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from bot.core.markers import marker, with_marker
from bot.run.pull_review import CHECK, review_marker
from bot.sandbox.github_state import iso
from bot.sandbox.team import Team
from tests.conftest import post_webhook
from tests.test_attacks_verdicts import FORK, bot_reviews, rewrite_answers, send_pull, synchronize
from tests.test_lockdown import LOCKDOWN, by, labeled, mine, notes
from tests.test_verdict_guards import BOT, CLEAN, added, open_pull
from tests.test_verdicts import pull_with, push, replies
from tests.test_workflows_e2e import REPO, bot, comment_payload, fake, issue_payload, posts, send, team  # noqa: F401

CONFIG = ".github/triage-lead.yml"


def as_user(payload: dict[str, Any], login: str, user_id: int) -> dict[str, Any]:
    """The payload as the account ``user_id`` sent it while its login was ``login`` (a comment's author too)."""
    p = copy.deepcopy(payload)
    person = {**p["sender"], "login": login, "type": "User", "id": user_id}
    p["sender"] = person
    if "comment" in p:
        p["comment"]["user"] = person
    return p


def config_checks(sandbox: Any) -> list[str]:
    return [w.data["head_sha"] for w in sandbox.writes if w.kind == "check_run" and w.data["name"] != CHECK]


async def approval_waiting(bot: Any, sandbox: Any, number: int) -> dict[str, Any]:
    """A maintainer's PR whose run waits for /approve; its opening payload."""
    sandbox.set_permission(REPO, "maintainer", "write")
    p = pull_with(sandbox, number, {"README.md": "words\n"})
    await send_pull(bot, sandbox, p)
    assert posts(sandbox, number)[-1] == "approval"
    return p


def approve_written_at(sandbox: Any, number: int, comment_id: int, at: float) -> dict[str, Any]:
    """The maintainer's /approve as GitHub stamps it when written at ``at`` (seeded, not delivered)."""
    approve = comment_payload(number, "/approve", pull=True, comment_id=comment_id)
    sandbox.seed_from_payload(approve)
    sandbox.repo(REPO).comments[comment_id]["created_at"] = approve["comment"]["created_at"] = iso(at)
    approve["comment"]["updated_at"] = iso(at)
    return approve


# ---- 1. lockdown: doing something for an outsider ----------------------------------------------

async def test_an_outsiders_fork_pull_request_gets_one_note_no_review_and_no_check(bot: Any, sandbox: Any,
                                                                                   team: Team) -> None:
    """Opened and pushed to from a fork by someone without triage access: one note, no model call, no
    review, no check run of the bot's verdict, whatever the push."""
    rt, _ = bot
    sandbox.set_file(REPO, CONFIG, LOCKDOWN)
    p = open_pull(sandbox, 401, user="forker", files=CLEAN, labels=["api"], head_repo=FORK)
    await send_pull(bot, sandbox, p)
    await send_pull(bot, sandbox, synchronize(sandbox, 401, by="forker"))
    assert team.calls == [] and await rt.store.active_run(f"{REPO}#401") is None
    assert sandbox.reviews(REPO, 401) == [] and not [w for w in sandbox.writes if w.kind == "check_run"]
    assert len(mine(sandbox, 401)) == len(notes(sandbox, 401)) == 1


async def test_a_maintainers_label_on_an_outsiders_fork_pull_request_starts_the_review(bot: Any, sandbox: Any,
                                                                                      team: Team) -> None:
    """Lockdown does not make the bot silent for the maintainer: their label on the fork's PR starts the run,
    and the PR gets its verdict; the outsider's own label (at opening) did not."""
    rt, _ = bot
    sandbox.set_file(REPO, CONFIG, LOCKDOWN)
    sandbox.set_permission(REPO, "keeper", "triage")
    p = open_pull(sandbox, 418, user="forker", files=CLEAN, labels=[], head_repo=FORK)
    await send_pull(bot, sandbox, p)
    await send_pull(bot, sandbox, p | {"action": "labeled", "label": {"name": "api", "id": 9, "color": "ededed"}})
    assert team.calls == [] and len(notes(sandbox, 418)) == 1
    by_keeper = p | {"action": "labeled", "label": {"name": "api", "id": 9, "color": "ededed"}}
    by_keeper = by_keeper | {"sender": {**p["sender"], "login": "keeper", "id": 5150}}
    await send_pull(bot, sandbox, by_keeper)
    assert team.calls and await rt.store.active_run(f"{REPO}#418") is not None
    assert sandbox.reviews(REPO, 418) and len(notes(sandbox, 418)) == 1


async def test_an_outsiders_pull_request_changing_the_config_gets_no_config_check(bot: Any, sandbox: Any,
                                                                                  team: Team) -> None:
    sandbox.set_file(REPO, CONFIG, LOCKDOWN)
    p = open_pull(sandbox, 402, user="forker", labels=["api"], head_repo=FORK,
                  files={CONFIG: added("lockdown: false"), **CLEAN})
    await send_pull(bot, sandbox, p)
    await send_pull(bot, sandbox, synchronize(sandbox, 402, by="forker"))
    assert len(notes(sandbox, 402)) == 1
    assert config_checks(sandbox) == [], "a check run made for an outsider in lockdown"


async def test_an_issue_templates_own_label_is_part_of_the_outsiders_opening(bot: Any, sandbox: Any,
                                                                             team: Team) -> None:
    """GitHub sends 'labeled' for a template's labels, with the outsider as sender: no run, the one note."""
    rt, _ = bot
    sandbox.set_file(REPO, CONFIG, LOCKDOWN)
    await send(bot, sandbox, "issues", by(issue_payload(403, ["api"]), "stranger"))
    await send(bot, sandbox, "issues", labeled(403, "api", "stranger"))
    await send(bot, sandbox, "issues", labeled(403, "bug", "stranger"))
    assert team.calls == [] and await rt.store.active_run(f"{REPO}#403") is None
    assert len(mine(sandbox, 403)) == 1


async def test_an_outsiders_retry_and_edited_commands_on_a_maintainers_run_do_nothing(bot: Any, sandbox: Any,
                                                                                      team: Team) -> None:
    """A maintainer's label started the run on an outsider's issue; the outsider's /retry, /cancel and an
    edit adding /approve are each not acted on (the run still waits), and they hear it once."""
    rt, _ = bot
    sandbox.set_file(REPO, CONFIG, LOCKDOWN)
    sandbox.set_permission(REPO, "keeper", "maintain")
    await send(bot, sandbox, "issues", by(issue_payload(404, []), "stranger"))
    await send(bot, sandbox, "issues", labeled(404, "api", "keeper"))
    assert (await rt.store.active_run(f"{REPO}#404")).state == "waiting"
    for body, cid in (("/retry", 40401), ("/cancel", 40402)):
        await send(bot, sandbox, "issue_comment", by(comment_payload(404, body, comment_id=cid), "stranger"))
    edit = by(comment_payload(404, "/approve", comment_id=40403), "stranger") | {"action": "edited"}
    edit["changes"] = {"body": {"from": "looks fine"}}
    await send(bot, sandbox, "issue_comment", edit)
    assert (await rt.store.active_run(f"{REPO}#404")).state == "waiting"
    assert len(notes(sandbox, 404)) == 1 and "so I haven't acted on it" not in replies(sandbox, 404)  # no refusal
    assert not [w for w in sandbox.writes if w.kind == "reaction"]


async def test_an_outsiders_approve_on_a_maintainers_pull_request_does_nothing(bot: Any, sandbox: Any,
                                                                              team: Team) -> None:
    """On a pull request (not an issue) waiting for /approve: the outsider's /approve and its edit are not
    applied, get no reaction, no refusal, no new review or check; one note."""
    rt, _ = bot
    sandbox.set_file(REPO, CONFIG, LOCKDOWN)
    await approval_waiting(bot, sandbox, 417)
    before = [w.kind for w in sandbox.writes if w.kind in ("review", "check_run")]
    await send(bot, sandbox, "issue_comment", by(comment_payload(417, "/approve", login="stranger", pull=True,
                                                             comment_id=94171), "stranger"))
    edit = by(comment_payload(417, "/approve 1", pull=True, comment_id=94171), "stranger") | {"action": "edited"}
    edit["changes"] = {"body": {"from": "/approve"}}
    await send(bot, sandbox, "issue_comment", edit)
    assert (await rt.store.active_run(f"{REPO}#417")).state == "waiting"
    assert len(notes(sandbox, 417)) == 1 and "so I haven't acted on it" not in replies(sandbox, 417)
    assert [w.kind for w in sandbox.writes if w.kind in ("review", "check_run")] == before
    assert not [w for w in sandbox.writes if w.kind == "reaction"]


async def test_a_login_in_another_case_is_the_same_person_told_once(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_file(REPO, CONFIG, LOCKDOWN)
    for i, login in enumerate(["stranger", "Stranger", "STRANGER"]):
        await send(bot, sandbox, "issue_comment", as_user(comment_payload(405, "/help", comment_id=40500 + i), login,
                                                          user_id=424240))  # one account: GitHub's logins ignore case
    assert len(notes(sandbox, 405)) == 1


async def test_a_renamed_account_is_not_told_again(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_file(REPO, CONFIG, LOCKDOWN)
    for i, login in enumerate(["stranger", "stranger-2", "stranger-3"]):
        c = as_user(comment_payload(406, "/help", comment_id=40600 + i), login, user_id=424242)
        await send(bot, sandbox, "issue_comment", c)
    assert len(notes(sandbox, 406)) == 1, "one account, told once per login it had"


async def test_a_flood_of_outsiders_cannot_make_the_bot_post_past_the_reply_ceiling(bot: Any, sandbox: Any,
                                                                                   team: Team) -> None:
    rt, _ = bot
    rt.deps.settings = rt.deps.settings.with_overrides(replies_per_hour=3)
    sandbox.set_file(REPO, CONFIG, LOCKDOWN)
    for i in range(6):
        sock = by(comment_payload(407, "/help", comment_id=40700 + i), f"sock-{i}")
        await send(bot, sandbox, "issue_comment", sock)
    assert len(mine(sandbox, 407)) <= 3, f"{len(mine(sandbox, 407))} bot comments for 6 throwaway accounts"


async def test_the_permission_endpoint_failing_never_acts_for_an_outsider(bot: Any, sandbox: Any,
                                                                          team: Team) -> None:
    """GitHub answering 502 for the role: the job fails (after its retries), nobody is taken for a maintainer:
    no run, no model call, no lockdown note (the role is unknown), only the failure note."""
    rt, client = bot
    sandbox.set_file(REPO, CONFIG, LOCKDOWN)
    sandbox.fail("GET", rf"/repos/{REPO}/collaborators/stranger/permission", 502, times=-1)
    payload = by(issue_payload(408, ["api"]), "stranger")
    sandbox.seed_from_payload(payload)
    assert (await post_webhook(client, "issues", payload)).status == 202
    await rt.jobs.drained(30)
    assert team.calls == [] and await rt.store.active_run(f"{REPO}#408") is None
    # The thread hears only that the work failed (for someone with write access to /retry), not the note:
    # nobody's role was known. An outsider cannot make GitHub answer 502, so this is no lever for them.
    assert await rt.store.job_states() == {"failed": 1} and notes(sandbox, 408) == []
    assert [c["body"].startswith("⚠️ triage-lead could not finish") for c in sandbox.comments(REPO, 408)] == [True]


async def test_a_maintainer_with_a_custom_role_is_acted_for(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_file(REPO, CONFIG, LOCKDOWN)
    sandbox.set_permission(REPO, "keeper", "write")
    rewrite_answers(sandbox, "GET", rf"/repos/{REPO}/collaborators/keeper/permission",
                    lambda d, rq: d | {"role_name": "docs-writer", "permission": "write"})
    await send(bot, sandbox, "issues", by(issue_payload(409, ["api"]), "keeper"))
    assert notes(sandbox, 409) == [] and team.calls


@pytest.mark.parametrize("answer", ["role-name-null", "role-name-unknown"])
async def test_an_odd_role_answer_never_opens_lockdown_to_an_outsider(answer: str, bot: Any, sandbox: Any,
                                                                      team: Team) -> None:
    """role_name null falls back to the legacy permission ('read': shut out); an unknown role_name is not a
    role that may act."""
    rt, _ = bot
    sandbox.set_file(REPO, CONFIG, LOCKDOWN)
    change = {"role-name-null": {"role_name": None}, "role-name-unknown": {"role_name": "Write ", "permission": "read"}}
    rewrite_answers(sandbox, "GET", rf"/repos/{REPO}/collaborators/stranger/permission",
                    lambda d, rq: d | change[answer])
    await send(bot, sandbox, "issues", by(issue_payload(410, ["api"]), "stranger"))
    assert team.calls == [] and len(notes(sandbox, 410)) == 1


async def test_a_role_name_null_for_an_admin_still_acts(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_file(REPO, CONFIG, LOCKDOWN)
    sandbox.set_permission(REPO, "keeper", "admin")
    rewrite_answers(sandbox, "GET", rf"/repos/{REPO}/collaborators/keeper/permission",
                    lambda d, rq: d | {"role_name": None})
    await send(bot, sandbox, "issues", by(issue_payload(411, ["api"]), "keeper"))
    assert notes(sandbox, 411) == [] and team.calls


async def test_an_unusable_config_that_asks_for_lockdown_calls_no_model_for_an_outsider(bot: Any, sandbox: Any,
                                                                                        team: Team) -> None:
    sandbox.set_file(REPO, CONFIG, LOCKDOWN + "workflows: [no-such-workflow]\n")
    await send(bot, sandbox, "issues", by(issue_payload(412, ["api"]), "stranger"))
    assert team.calls == [], "the model was called for an outsider in a repository that asked for lockdown"


async def test_a_config_broken_after_a_good_one_keeps_lockdown(bot: Any, sandbox: Any, team: Team) -> None:
    """The last good config (lockdown: true) stays in force while the file is broken YAML."""
    rt, _ = bot
    sandbox.set_file(REPO, CONFIG, LOCKDOWN)
    await send(bot, sandbox, "issues", by(issue_payload(413, ["api"]), "stranger"))
    sandbox.set_file(REPO, CONFIG, "lockdown: true\nworkflows: [\n")
    assert rt.deps.views is not None
    rt.deps.views._cache.clear()  # as after the cache's five minutes
    await send(bot, sandbox, "issues", by(issue_payload(414, ["api"]), "stranger"))
    assert team.calls == [] and len(notes(sandbox, 414)) == 1


async def test_an_organisations_lockdown_applies_to_a_repository_without_its_own_config(bot: Any, sandbox: Any,
                                                                                        team: Team) -> None:
    owner = REPO.split("/")[0]
    sandbox.add_repo(f"{owner}/.github")
    sandbox.set_file(f"{owner}/.github", CONFIG, LOCKDOWN)
    await send(bot, sandbox, "issues", by(issue_payload(415, ["api"]), "stranger"))
    assert team.calls == [] and len(notes(sandbox, 415)) == 1


# ---- 2. an /approve written before a push -------------------------------------------------------

async def test_an_approve_written_in_the_same_second_as_a_push_is_not_applied(bot: Any, sandbox: Any,
                                                                             team: Team) -> None:
    rt, _ = bot
    p = await approval_waiting(bot, sandbox, 420)
    now = float(int(time.time()))
    approve = approve_written_at(sandbox, 420, 94201, now)
    sync = push(sandbox, p, "docs/notes.md", "notes\n")
    sync["pull_request"]["updated_at"] = iso(now)  # the push lands the same second, after the comment
    await send_pull(bot, sandbox, sync)
    await send(bot, sandbox, "issue_comment", approve)
    run = await rt.store.active_run(f"{REPO}#420")
    assert run is not None and run.state == "waiting", "an approval written before the push approved its head"


async def test_an_approve_written_before_a_later_push_whose_event_came_first_as_an_older_one(
        bot: Any, sandbox: Any, team: Team) -> None:
    """Pushes B then C; B's synchronize is delivered after C landed, C's after the /approve written between
    them. Succeeded at ae98b31 (the run took GitHub's head C with B's updated_at, and C's own event then moved
    nothing): the head's time is now the pull's updated_at when GitHub's head is not the event's."""
    rt, _ = bot
    p = await approval_waiting(bot, sandbox, 421)
    now = time.time()
    sync_b = push(sandbox, p, "docs/b.md", "b\n")
    sync_b["pull_request"]["updated_at"] = iso(now - 120)
    approve = approve_written_at(sandbox, 421, 94211, now - 60)
    sync_c = push(sandbox, sync_b, "docs/c.md", "c\n")  # lands now: GitHub's head is C from here on
    await send_pull(bot, sandbox, sync_b)
    await send(bot, sandbox, "issue_comment", approve)
    await send_pull(bot, sandbox, sync_c)
    run = await rt.store.active_run(f"{REPO}#421")
    assert run is not None and run.state == "waiting", "an approval written before C's push approved C"


async def test_a_synchronize_delivered_twice_or_late_does_not_move_the_head_back(bot: Any, sandbox: Any,
                                                                                team: Team) -> None:
    """The newer push first, then the older push's event, then the newer again: the run follows GitHub's head
    (C), and an /approve written after C's push is applied to C."""
    rt, _ = bot
    p = await approval_waiting(bot, sandbox, 422)
    sync_b = push(sandbox, p, "docs/b.md", "b\n")
    sync_b["pull_request"]["updated_at"] = iso(time.time() - 120)
    sync_c = push(sandbox, sync_b, "docs/c.md", "c\n")
    sync_c["pull_request"]["updated_at"] = iso(time.time() - 60)
    for sync in (sync_c, sync_b, sync_c):
        await send_pull(bot, sandbox, sync)
    c_head = sync_c["pull_request"]["head"]["sha"]
    run = await rt.store.active_run(f"{REPO}#422")
    assert run is not None and run.state == "waiting"
    await send(bot, sandbox, "issue_comment", comment_payload(422, "/approve", pull=True, comment_id=94221))
    assert posts(sandbox, 422)[-1] == "done"
    record = await rt.store.load_run(run.id)
    assert record.data["run"]["approval"]["head_sha"] == c_head


async def test_an_approve_after_a_push_whose_event_never_arrives_is_not_applied(bot: Any, sandbox: Any,
                                                                                team: Team) -> None:
    rt, _ = bot
    p = await approval_waiting(bot, sandbox, 423)
    push(sandbox, p, "docs/lost.md", "lost\n")  # its synchronize never comes
    await send(bot, sandbox, "issue_comment", comment_payload(423, "/approve", pull=True, comment_id=94231))
    assert "was not applied" in replies(sandbox, 423)
    assert (await rt.store.active_run(f"{REPO}#423")).state == "waiting"


async def test_a_force_push_back_to_the_summarised_head_voids_an_approve_written_before_it(
        bot: Any, sandbox: Any, team: Team) -> None:
    """A → B → A (force-push back), the /approve written while B stood and delivered last: not applied."""
    rt, _ = bot
    p = await approval_waiting(bot, sandbox, 424)
    a_head, branch = p["pull_request"]["head"]["sha"], p["pull_request"]["head"]["ref"]
    sync_b = push(sandbox, p, "docs/b.md", "b\n")
    sync_b["pull_request"]["updated_at"] = iso(time.time() - 120)
    await send_pull(bot, sandbox, sync_b)
    approve = approve_written_at(sandbox, 424, 94241, time.time() - 60)
    sandbox.repo(REPO).refs[f"refs/heads/{branch}"] = a_head  # git push --force origin A:branch
    await send_pull(bot, sandbox, synchronize(sandbox, 424, by="Codertocat"))
    await send(bot, sandbox, "issue_comment", approve)
    assert (await rt.store.active_run(f"{REPO}#424")).state == "waiting"


async def test_an_old_comment_edited_after_the_push_to_add_approve_is_applied_once(bot: Any, sandbox: Any,
                                                                                  team: Team) -> None:
    """Written before the push, edited after it to add /approve: the edit is the command, written after the
    push (updated_at), so it stands; GitHub does not let anyone set these times."""
    rt, _ = bot
    p = await approval_waiting(bot, sandbox, 425)
    sync = push(sandbox, p, "docs/notes.md", "notes\n")
    sync["pull_request"]["updated_at"] = iso(time.time() - 60)
    await send_pull(bot, sandbox, sync)
    edit = comment_payload(425, "/approve", pull=True, comment_id=94251) | {"action": "edited"}
    edit["changes"] = {"body": {"from": "reading it"}}
    edit["comment"]["created_at"] = iso(time.time() - 120)
    await send(bot, sandbox, "issue_comment", edit)
    assert posts(sandbox, 425)[-1] == "done"


# ---- 3. the review login learned from the App's check run ---------------------------------------

@pytest.mark.parametrize("author", [("other-app[bot]", "Bot"), ("triage-lead-bot", "User")])
async def test_another_apps_or_users_review_carrying_our_marker_is_not_taken_as_ours(
        author: tuple[str, str], bot: Any, sandbox: Any, team: Team) -> None:
    """GET /app failing: the login comes from this App's own check run, so a review by another App or a user
    that carries the review's exact marker is not the bot's; the bot posts its own."""
    rt, _ = bot
    sandbox.fail("GET", "/app", 500, times=-1)
    rt.deps.bot_login = None
    payload = open_pull(sandbox, 430, user="alice", files=CLEAN, labels=["api"])
    head = payload["pull_request"]["head"]["sha"]
    sandbox.add_review(REPO, 430, with_marker("Looks good.", review_marker(REPO, 430, head)), user=author[0],
                       user_type=author[1], state="APPROVED")
    await send_pull(bot, sandbox, payload)
    assert len(bot_reviews(sandbox, 430)) == 1, [r["user"]["login"] for r in sandbox.reviews(REPO, 430)]
    assert BOT not in author[0]


async def test_the_bots_own_task_issue_is_worked_on_in_lockdown(bot: Any, sandbox: Any, team: Team) -> None:
    """A long-running project's task issue is opened by the App, which has no collaborator role. Succeeded at
    ae98b31 (shuts_out came before own_task: the bot shut itself out and sent itself the note); bots that reach
    on_work_item (itself, or the operator's allowlist) are now not asked for a role."""
    rt, _ = bot
    sandbox.set_file(REPO, CONFIG, LOCKDOWN)
    rt.deps.bot_login = BOT  # as GET /app tells the running App
    body = with_marker("Add the endpoint.\n\nA task of the multi-session project in #1; triage-lead runs its own "
                       "workflow here.", marker("task", "0123456789abcdef"))
    task = by(issue_payload(416, ["api"], title="Add the endpoint", body=body), BOT)
    task["sender"]["type"] = task["issue"]["user"]["type"] = "Bot"
    await send(bot, sandbox, "issues", task)
    assert notes(sandbox, 416) == [], "the bot told itself it has no triage access"
    assert team.calls and await rt.store.active_run(f"{REPO}#416") is not None


async def test_a_maintainers_run_on_an_outsiders_pull_request_follows_the_outsiders_pushes(
        bot: Any, sandbox: Any, team: Team) -> None:
    """Lockdown keeps the outsider from starting anything, not the maintainer's run from seeing the code it
    judges: a push by the outsider is judged at its new head, and they get no second note."""
    sandbox.set_file(REPO, CONFIG, LOCKDOWN)
    sandbox.set_permission(REPO, "keeper", "triage")
    p = open_pull(sandbox, 419, user="forker", files=CLEAN, labels=[], head_repo=FORK)
    await send_pull(bot, sandbox, p)
    by_keeper = p | {"action": "labeled", "label": {"name": "api", "id": 9, "color": "ededed"},
                     "sender": {**p["sender"], "login": "keeper", "id": 5150}}
    await send_pull(bot, sandbox, by_keeper)
    new = sandbox.set_file(FORK, "docs/more.md", "more\n", ref=p["pull_request"]["head"]["ref"])
    await send_pull(bot, sandbox, synchronize(sandbox, 419, by="forker"))
    assert new in {r.get("commit_id") for r in sandbox.reviews(REPO, 419)}, "the new head was never judged"
    assert len(notes(sandbox, 419)) == 1


async def test_an_allowed_bot_in_lockdown_gets_no_note(bot: Any, sandbox: Any, team: Team) -> None:
    """A bot the operator allowed is no person to tell: in lockdown it is not acted for, and only logged."""
    rt, _ = bot
    rt.deps.settings = rt.deps.settings.with_overrides(bot_allowlist=frozenset({"helper-bot[bot]"}))
    sandbox.set_file(REPO, CONFIG, LOCKDOWN)
    opened = by(issue_payload(420, ["api"]), "helper-bot[bot]")
    opened["sender"]["type"] = opened["issue"]["user"]["type"] = "Bot"
    await send(bot, sandbox, "issues", opened)
    assert mine(sandbox, 420) == [] and team.calls == []
