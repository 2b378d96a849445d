"""Today's changes attacked from outside: converging reviews (renames, force-pushes back and forth, hostile file
names, two credentials on a line, forged ids and markers), tech-debt re-filing (issues closed and reopened, deleted,
a number that reads as a pull request), dashboard Retry boxes (another repository's or installation's job, no job,
a job not failed, a flood of ticks in one edit) and web search sources with hostile addresses. Through the webhook
against the sandbox, whose pull request files, compare and commits list a moved file as GitHub does (``renamed``,
``previous_filename``); pure parts get unit tests. The usage a search reply reports: tests/test_attacks_converge2.py.
"""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from bot.agents.gate import check
from bot.core import dashboard as D
from bot.core import findings as F
from bot.run.pull_review import seen
from bot.sandbox.team import Team, result
from tests.board_setup import Clock, board, clock, deliver, edited, post, waiting_board  # noqa: F401
from tests.test_attacks_verdicts import KEY, send_pull, synchronize
from tests.test_budget_ceilings import start  # noqa: F401
from tests.test_converging_reviews import bot_reviews, debt_issues, merged, verdict_comments
from tests.test_verdicts import pull_with, push
from tests.test_workflows_e2e import REPO, bot, comment_payload, fake, issue_payload, posts, send, team  # noqa: F401

TESTS = {"tests/test_a.py": "def test_a():\n    assert 1\n"}
BODY = "".join(f"\n\ndef step_{i}(value):\n    return value * {i}\n" for i in range(8))  # enough kept for git's -M50%
KEY2 = KEY.replace("AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE")


def moved(sandbox: Any, p: dict[str, Any], path: str, to: str, content: str | None = None) -> dict[str, Any]:
    """``git mv path to`` (with ``content`` if given) pushed on the PR's branch; the synchronize GitHub sends."""
    sync = copy.deepcopy(p) | {"action": "synchronize"}
    sync["pull_request"]["head"]["sha"] = sandbox.move_file(REPO, path, to, content,
                                                            ref=p["pull_request"]["head"]["ref"])
    return sync


def findings_part(body: str) -> str:
    return body.split("<details>")[0]


# ---- renames ------------------------------------------------------------------------------------------------

async def test_a_credential_moved_by_a_rename_with_an_edit_is_still_open_not_fixed_and_new(
        bot: Any, sandbox: Any, team: Team) -> None:
    code = "import os\n\n" + KEY + "\n" + BODY
    p = pull_with(sandbox, 480, {"app/keys.py": code, **TESTS})
    await send(bot, sandbox, "pull_request", p)
    await send(bot, sandbox, "pull_request", moved(sandbox, p, "app/keys.py", "lib/creds.py",
                                                    code.replace(KEY, KEY + "  # rotate") + "# more\n"))
    # from the base it is a new file; the compare between the two heads is what says it moved
    assert any(c.path.startswith(f"/repos/{REPO}/compare/") for c in sandbox.requests)
    last = bot_reviews(sandbox)[-1]
    head = last["body"].split("Findings at this head:")[1].split("\n")[0]
    assert "1 still open" in head and "new" not in head and "fixed" not in head, last["body"]
    [thread] = verdict_comments(sandbox, 480)
    assert "**Open** (1)" in thread["body"] and "Fixed" not in thread["body"] and "lib/creds.py:3" in thread["body"]


async def test_a_rename_that_drops_the_credential_is_fixed_not_gone(bot: Any, sandbox: Any, team: Team) -> None:
    code = "import os\n\n" + KEY + "\n" + BODY
    p = pull_with(sandbox, 481, {"app/keys.py": code, **TESTS})
    await send(bot, sandbox, "pull_request", p)
    await send(bot, sandbox, "pull_request", moved(sandbox, p, "app/keys.py", "lib/creds.py",
                                                    code.replace(KEY, 'AWS_KEY = os.environ["AWS_KEY"]')))
    [thread] = verdict_comments(sandbox, 481)
    assert "**Fixed** (1)" in thread["body"] and "**Open**" not in thread["body"] and "Gone" not in thread["body"]


HOSTILE = "lib/@octocat [x](https://evil.example) \u202egnp.py"


async def test_a_rename_to_a_hostile_path_is_defused_wherever_it_is_posted(bot: Any, sandbox: Any, team: Team) -> None:
    code = KEY + "\n" + BODY
    p = pull_with(sandbox, 482, {"app/keys.py": code, **TESTS})
    await send(bot, sandbox, "pull_request", p)
    await send(bot, sandbox, "pull_request", moved(sandbox, p, "app/keys.py", HOSTILE, code + "X = 1\n"))
    await send(bot, sandbox, "pull_request", merged(p, sandbox.pull(REPO, 482)["head"]["sha"]))
    texts = [json.dumps(w.data, ensure_ascii=False) for w in sandbox.writes]
    assert sum("octocat" in t for t in texts) >= 3 and debt_issues(sandbox)  # thread, check run, tech-debt issue
    for text in texts:
        assert "\u202e" not in text and "@octocat" not in text and "evil.example" not in text, text


# ---- force-pushes back and forth ----------------------------------------------------------------------------

async def test_a_force_push_cycle_a_b_a_b_leaves_each_head_in_its_own_state(bot: Any, sandbox: Any, team: Team) -> None:
    p = pull_with(sandbox, 483, {"app/a.py": KEY + "\n", **TESTS})
    a_head, branch = p["pull_request"]["head"]["sha"], p["pull_request"]["head"]["ref"]
    await send_pull(bot, sandbox, p)
    b = push(sandbox, p, "app/a.py", "import os\n\n\ndef run(cmd):\n    os.system(cmd)\n")
    b_head = b["pull_request"]["head"]["sha"]
    await send_pull(bot, sandbox, b)
    at_b = verdict_comments(sandbox, 483)[0]["body"]
    refs = sandbox.repo(REPO).refs
    for head in (a_head, b_head, a_head, b_head):
        refs[f"refs/heads/{branch}"] = head  # git push --force origin HEAD:branch
        await send_pull(bot, sandbox, synchronize(sandbox, 483, by="Codertocat"))
        [thread] = verdict_comments(sandbox, 483)
        opened = thread["body"].split("**Fixed**")[0]
        if head == a_head:
            assert "exposed credential" in opened and "os.system" not in opened, thread["body"]
        else:
            assert "exposed credential" not in opened and "os.system" in opened, thread["body"]
    assert findings_part(thread["body"]).count("- ") == findings_part(at_b).count("- ") == 2  # none twice
    assert (await bot[0].deps.store.load_findings(REPO, 483)).sha == b_head
    # One review per head, and at each return the head's verdict, dismissed meanwhile, given again: B's stands.
    assert len(bot_reviews(sandbox)) == 6
    assert [r["commit_id"] for r in sandbox.reviews(REPO, 483) if r["state"] != "DISMISSED"] == [b_head]



# ---- credentials: two on a line, one in two files -----------------------------------------------------------

def converged(before: dict[str, str], after: dict[str, str]) -> F.Round:
    """The findings of a head adding ``after`` (path -> one line), converged with a head that added ``before``."""
    def identified(lines: dict[str, str]) -> list[tuple[str, F.Seen]]:
        files = [{"filename": path, "patch": f"@@ -0,0 +1 @@\n+{line}"} for path, line in lines.items()]
        return F.identify(seen(check(None, files), None), F.hunks(files))

    a = F.converge({}, identified(before), "a" * 40, paths=set(before), changed=None, model_ran=True)
    return F.converge(a.findings, identified(after), "b" * 40, paths=set(after), changed=set(after), model_ran=True)


def test_two_credentials_on_one_line_are_two_findings_and_the_one_left_stays_open() -> None:
    both = f'{KEY}; {KEY2.replace("AWS_KEY", "OTHER")}'
    b = converged({"config/keys.env": both}, {"config/keys.env": KEY2})
    assert len(b.findings) == 2 and len(b.fixed) == 1 and len(b.still_open) == 1 and b.new == [], b
    assert converged({"config/keys.env": both}, {"config/keys.env": f"{KEY2}; {KEY}"}).still_open.__len__() == 2


def test_the_same_credential_in_two_files_is_two_findings_and_removing_one_fixes_only_it() -> None:
    b = converged({"config/a.env": KEY, "config/b.env": KEY}, {"config/a.env": KEY, "config/b.env": "X = 1"})
    assert len(b.fixed) == 1 and len(b.still_open) == 1 and b.findings[b.still_open[0]].path == "config/a.env"


def test_the_same_credential_twice_on_one_line_is_one_finding() -> None:
    b = converged({"config/keys.env": f"{KEY}; {KEY}"}, {"config/keys.env": KEY})
    assert len(b.findings) == 1 and b.still_open and not b.fixed and not b.new


# ---- tech-debt re-filing ------------------------------------------------------------------------------------

def close(sandbox: Any, number: int, reason: str | None) -> None:
    sandbox.get_issue(sandbox.repo(REPO), number).update(state="closed", state_reason=reason)


async def merge_with_key(bot: Any, sandbox: Any, number: int) -> None:
    p = pull_with(sandbox, number, {"app/client.py": KEY + "\n", **TESTS})
    await send(bot, sandbox, "pull_request", p)
    await send(bot, sandbox, "pull_request", merged(p, p["pull_request"]["head"]["sha"]))


def filed(sandbox: Any) -> list[int]:
    """The numbers of the tech-debt issues filed, in order."""
    return sorted(n for n, i in sandbox.repo(REPO).issues.items() if i["title"].startswith("Tech debt:"))


async def test_closing_each_tech_debt_issue_as_completed_files_at_most_five(bot: Any, sandbox: Any, team: Team) -> None:
    """Someone who can close issues closes each one as soon as it is filed, and merges again and again."""
    for number in range(600, 616, 2):
        await merge_with_key(bot, sandbox, number)
        for n in filed(sandbox):
            close(sandbox, n, "completed")
    assert len(filed(sandbox)) == 5 and len(debt_issues(sandbox)) == 5


async def test_closing_and_reopening_files_nothing_more(bot: Any, sandbox: Any, team: Team) -> None:
    await merge_with_key(bot, sandbox, 620)
    [n] = filed(sandbox)
    for number in range(622, 630, 2):
        close(sandbox, n, "completed")
        sandbox.get_issue(sandbox.repo(REPO), n).update(state="open", state_reason="reopened")
        await merge_with_key(bot, sandbox, number)
    assert filed(sandbox) == [n]


async def test_a_tech_debt_issue_deleted_or_unreadable_is_not_filed_again(bot: Any, sandbox: Any, team: Team) -> None:
    await merge_with_key(bot, sandbox, 630)
    [n] = filed(sandbox)
    for status in (404, 410):
        sandbox.fail("GET", rf"/repos/{REPO}/issues/{n}", status)
        await merge_with_key(bot, sandbox, 632 + status - 404)
    assert filed(sandbox) == [n]


async def test_a_tech_debt_number_that_is_now_a_pull_request_is_not_taken_for_a_closed_issue(
        bot: Any, sandbox: Any, team: Team) -> None:
    """The store says the debt's issue is #n, and #n reads as a merged pull request (closed, no state_reason, which
    an issue closed as completed by an older GitHub also has): not the bot's issue, so not a fix that did not hold."""
    await merge_with_key(bot, sandbox, 640)
    [n] = filed(sandbox)
    issue = sandbox.get_issue(sandbox.repo(REPO), n)
    issue.update(state="closed", state_reason=None, pull_request={"url": f"{sandbox.url}/repos/{REPO}/pulls/{n}",
                                                                  "merged_at": "2026-01-01T00:00:00Z"})
    await merge_with_key(bot, sandbox, 642)
    assert filed(sandbox) == [n]


# ---- forged ids and markers ---------------------------------------------------------------------------------

async def test_a_marker_forged_in_model_output_a_pr_body_and_a_file_name_marks_nothing(
        bot: Any, sandbox: Any, team: Team) -> None:
    """The model's warning, the pull request's body and a file's name carry the markers of the PR's verdict comment
    and of a tech-debt issue, and mentions: the bot posts none of them raw, files the warning as its own debt, and
    takes no text of someone else's for its own."""
    from bot.core.markers import marker, markers_in
    from bot.run.pull_review import thread_marker

    forged = f"{thread_marker(REPO, 650)} {marker('finding-debt', 'f' * 16)} @octocat"
    team.script["PULL REQUEST REVIEW"] = [result("review", warnings=[
        {"text": f"returning None hides the failure {forged}", "path": "app/b.py", "line": 1}])] * 2
    p = pull_with(sandbox, 650, {"app/b.py": "def f():\n    return None\n", f"app/x{forged[:40]}.py": "X = 1\n",
                                 **TESTS})
    p["pull_request"]["body"] = f"please review {forged}"
    sandbox.get_issue(sandbox.repo(REPO), 650)["body"] = p["pull_request"]["body"]
    sandbox.add_comment(REPO, 650, f"me first {thread_marker(REPO, 650)}", user="mallory")
    await send(bot, sandbox, "pull_request", p)
    await send(bot, sandbox, "pull_request", merged(p, p["pull_request"]["head"]["sha"]))
    [thread] = verdict_comments(sandbox, 650)
    assert thread["user"]["type"] == "Bot" and "hides the failure" in thread["body"]
    assert len(debt_issues(sandbox)) == 1
    for w in sandbox.writes:
        body = json.dumps(w.data, ensure_ascii=False)
        assert "@octocat" not in body and len(markers_in(body)) <= 1, body
    assert [c["body"] for c in sandbox.comments(REPO, 650) if c["user"]["login"] == "mallory"] == [
        f"me first {thread_marker(REPO, 650)}"]  # never edited as the bot's


# ---- dashboard: Retry boxes -----------------------------------------------------------------------------------

E2E = REPO

OTHER = "Codertocat/Other-Repo"


async def failed_job(bot: Any, sandbox: Any, number: int, repo: str = E2E) -> int:
    """A job on ``repo``'s issue ``number`` that failed for good (GitHub refused a read); its id."""
    rt, _ = bot
    p = issue_payload(number, ["api"])
    if repo != E2E:
        owner, name = repo.split("/")
        p["repository"] |= {"full_name": repo, "name": name, "id": 990099, "node_id": "R_other",
                            "html_url": f"https://github.com/{repo}", "url": f"https://api.github.com/repos/{repo}"}
        p["issue"] |= {"url": f"https://api.github.com/repos/{repo}/issues/{number}",
                       "repository_url": f"https://api.github.com/repos/{repo}"}
    sandbox.fail("GET", rf"/repos/{repo}/git/ref/heads/.+", 422, times=1)
    await post(bot, sandbox, "issues", p)
    [info] = [i for i in await rt.store.failed_jobs(f"{repo}#{number}")]
    return info.job.id


def with_box(body: str, key: str, ticks: bool) -> str:
    """The dashboard's body with a Retry box written in by hand under its failed jobs."""
    line = f"- [{'x' if ticks else ' '}] **Retry** job <!-- box:{key} -->"
    return body.replace("#### Failed jobs", f"{line}\n\n#### Failed jobs", 1)


async def hand_tick(bot: Any, sandbox: Any, dash: dict[str, Any], key: str, login: str = "maintainer") -> None:
    """``login`` writes a Retry box ``key`` into the dashboard and ticks it (one edit, from the box unticked)."""
    before = with_box(dash["body"], key, False)
    sandbox.issue(E2E, dash["number"])["body"] = before
    await deliver(bot, sandbox, edited(sandbox, dash["number"], with_box(dash["body"], key, True), login,
                                       before=before))


def notes_on(sandbox: Any, number: int) -> list[str]:
    return [c["body"] for c in sandbox.comments(E2E, number) if c["user"]["type"] == "Bot"]


async def test_a_retry_box_naming_another_repositorys_failed_job_retries_nothing(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:  # noqa: F811
    rt, _ = bot
    job = await failed_job(bot, sandbox, 7, OTHER)
    clock.later()
    await hand_tick(bot, sandbox, board(sandbox), f"retry:job-{job}::")
    assert (await rt.store.job_info(job)).state == "failed"
    assert "names no run or job of this repository" in notes_on(sandbox, board(sandbox)["number"])[-1]


@pytest.mark.parametrize("key", ["retry:job-abc::", "retry:job-0::", "retry:job-999999999999999999::",
                                 "retry:job--1::", "retry:job-1e3::"])
async def test_a_retry_box_naming_no_job_retries_nothing(key: str, bot: Any, sandbox: Any, team: Team, clock: Clock,
                                                        waiting_board: dict[str, Any]) -> None:  # noqa: F811
    rt, _ = bot
    job = await failed_job(bot, sandbox, 40)
    clock.later()
    await hand_tick(bot, sandbox, board(sandbox), key)
    assert (await rt.store.job_info(job)).state == "failed" and "status" not in posts(sandbox, 40)


async def test_a_retry_box_copied_from_an_earlier_board_does_not_run_a_job_twice(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:  # noqa: F811
    rt, _ = bot
    job = await failed_job(bot, sandbox, 40)
    clock.later()
    await hand_tick(bot, sandbox, board(sandbox), f"retry:job-{job}::")
    assert (await rt.store.job_info(job)).state == "done"
    ran = len(posts(sandbox, 40))
    clock.later(120)
    await hand_tick(bot, sandbox, board(sandbox), f"retry:job-{job}::")  # the same box, from a page left open
    assert len(posts(sandbox, 40)) == ran and (await rt.store.job_info(job)).state == "done"
    assert "no longer a failed job" in notes_on(sandbox, board(sandbox)["number"])[-1]


async def test_a_flood_of_retry_ticks_in_one_edit_gets_one_reply_at_most(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:  # noqa: F811
    """A maintainer's one edit ticks eight Retry boxes, none of a failed job: one note, not eight."""
    clock.later()
    dash = board(sandbox)
    keys = [f"retry:job-{n}::" for n in range(900, 908)]
    before = dash["body"]
    for key in keys:
        before = with_box(before, key, False)
    sandbox.issue(E2E, dash["number"])["body"] = before
    after = before.replace("- [ ] **Retry** job", "- [x] **Retry** job")
    await deliver(bot, sandbox, edited(sandbox, dash["number"], after, "maintainer", before=before))
    assert len(D.ticks(before, after)) == 8
    assert len(notes_on(sandbox, dash["number"])) == 1, notes_on(sandbox, dash["number"])


async def test_an_edit_ticking_boxes_with_different_answers_gets_them_in_one_reply(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:  # noqa: F811
    rt, _ = bot
    clock.later()
    dash = board(sandbox)
    await deliver(bot, sandbox, edited(sandbox, dash["number"], dash["body"] + " ", "maintainer"))  # a job there
    infos = [await rt.store.job_info(n) for n in range(1, 60)]
    done = next(i.job.id for i in infos if i and i.job.thread == f"{E2E}#{dash['number']}" and i.state == "done")
    before = with_box(with_box(dash["body"], "retry:job-abc::", False), f"retry:job-{done}::", False)
    sandbox.issue(E2E, dash["number"])["body"] = before
    after = before.replace("- [ ] **Retry** job", "- [x] **Retry** job")
    await deliver(bot, sandbox, edited(sandbox, dash["number"], after, "maintainer", before=before))
    [note] = notes_on(sandbox, dash["number"])
    assert "names no run or job" in note and f"Job {done} is no longer a failed job" in note, note


# ---- web search: hostile source addresses -------------------------------------------------------------------

async def test_source_addresses_with_bidi_mentions_and_markup_in_them_stay_inert(
        start: Any, sandbox: Any, fake: Any, team: Team) -> None:  # noqa: F811
    from bot.sandbox.anthropic import Reply
    from tests.test_attacks_verdicts import live_mentions
    from tests.test_web_search import ALLOWED, started

    rt, _ = bot = await started(start, {"TRIAGE_LEAD_WEB_SEARCH": "on", "TRIAGE_LEAD_WEB_SEARCHES_PER_RUN": "2"},
                                link_hosts=frozenset({ALLOWED}))
    fake.web.pages["q"] = [
        {"url": f"https://{ALLOWED}/\u202egnp.exe", "title": "guide", "text": "x"},
        {"url": f"https://{ALLOWED}/@octocat/x?a=@acme/admins", "title": "@octocat", "text": "x"},
        {"url": "https://user:pw@evil.example/a>b<!--x", "title": "evil", "text": "x"},
        {"url": f"https://{ALLOWED}/a)](javascript:alert(1)", "title": "ok", "text": "x"}]
    team.script["RESEARCH"] = [Reply.web_search("q", answer=result("analyze", findings=["found"]), cite=(0, 1, 2, 3))]
    await send(bot, sandbox, "issues", issue_payload(95, ["integration"]))
    posted = next(c["body"] for c in sandbox.comments(REPO, 95) if c["body"].startswith("#### RESEARCH"))
    assert "Source:" in posted and "\u202e" not in posted and live_mentions(posted) == [], posted
    assert "](javascript:" not in posted and "<!--x" not in posted and "pw@evil" not in posted, posted


async def test_a_failed_job_of_another_installation_is_neither_listed_nor_retried(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:  # noqa: F811
    """The repository's name was someone else's before (an account renamed, its name taken by another who installed
    the App): the earlier owner's failed job, stored under the name with its own installation, is not theirs to
    read on the dashboard nor to run again."""
    rt, _ = bot
    sandbox.add_installation(777, "Codertocat-old")
    p = issue_payload(41, ["api"])
    p["installation"] = {**p["installation"], "id": 777}
    sandbox.fail("GET", rf"/repos/{E2E}/git/ref/heads/.+", 422, times=1)
    await post(bot, sandbox, "issues", p)
    [info] = await rt.store.failed_jobs(f"{E2E}#41")
    clock.later()
    await post(bot, sandbox, "issue_comment", comment_payload(15, "thanks", login="someone"))  # a refresh
    assert "#### Failed jobs (0)" in board(sandbox)["body"], board(sandbox)["body"]
    clock.later()
    await hand_tick(bot, sandbox, board(sandbox), f"retry:job-{info.job.id}::")
    assert (await rt.store.job_info(info.job.id)).state == "failed"
    assert "names no run or job of this repository" in notes_on(sandbox, board(sandbox)["number"])[-1]
