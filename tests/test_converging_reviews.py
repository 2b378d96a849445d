"""Issue 17, point 2: reviews that converge on pull requests, through the webhook against the sandbox.

A pull request is reviewed, pushed to twice and reviewed again each time: every finding keeps its id across the
pushes (code that moved is the same finding; a model finding cited a line away is the same finding), each push's
review reports only what is new (inline where the diff shows the line, in the body otherwise), and the one
verdict comment on the thread is edited in place with each finding open, fixed or gone. Merged with one finding
open, the pull request leaves one tech-debt issue, filed once.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from bot.core.markers import markers_in, trailing
from bot.run.pull_review import thread_marker
from bot.sandbox.team import Team, result
from tests.test_verdicts import pull_with, push
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401

NUMBER = 70
DB_A = ("import sqlite3\n\n\ndef find(cur, name):\n"
        "    cur.execute(f\"SELECT * FROM users WHERE name = {name}\")\n    return cur.fetchall()\n")
DB_B = ("import sqlite3\n\nLIMIT = 100\n\n\ndef find(cur, name):\n"
        "    cur.execute(\"SELECT * FROM users WHERE name = ?\", (name,))\n    return cur.fetchall()\n")
RUN_A = "import os\n\n\ndef run(cmd):\n    os.system(cmd)\n"
RUN_B = '"""Runs commands."""\n' + RUN_A  # the same call, a line further down
RUN_C = '"""Runs commands."""\nimport subprocess\n\n\ndef run(cmd):\n    subprocess.run([cmd], check=True)\n'
CALC_B = "def calc(data):\n    return eval(data)\n"
CALC_C = "import ast\n\n\ndef calc(data):\n    return ast.literal_eval(data)\n"
FETCHALL = "fetchall() loads every row into memory; page through them"


def model_warns(*items: tuple[str, str, int]) -> dict[str, Any]:
    return result("review", warnings=[{"text": text, "path": path, "line": line} for text, path, line in items])


def bot_reviews(sandbox: Any) -> list[dict[str, Any]]:
    return [w.data for w in sandbox.writes if w.kind == "review"]


def spots(review: dict[str, Any]) -> set[tuple[str, int]]:
    return {(c["path"], c["line"]) for c in review.get("comments") or []}


def verdict_comments(sandbox: Any, number: int = NUMBER) -> list[dict[str, Any]]:
    key = markers_in(thread_marker(REPO, number))[0]
    return [c for c in sandbox.comments(REPO, number) if trailing(c["body"]) == key and c["user"]["type"] == "Bot"]


def merged(p: dict[str, Any], sha: str, *, merge: bool = True) -> dict[str, Any]:
    closed = copy.deepcopy(p) | {"action": "closed"}
    closed["pull_request"] |= {"state": "closed", "merged": merge, "head": {**p["pull_request"]["head"], "sha": sha},
                               "merge_commit_sha": "9" * 40 if merge else None}
    return closed


def debt_issues(sandbox: Any) -> list[dict[str, Any]]:
    return [w.data for w in sandbox.writes if w.kind == "issue" and "tech-debt" in w.data.get("labels", [])]


async def test_a_pull_request_reviewed_pushed_to_twice_and_merged_with_one_finding_open(
        bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_file(REPO, "app/api.py", "def handler(request):\n    return find(request.args['name'])\n")
    p = pull_with(sandbox, NUMBER, {"app/db.py": DB_A, "app/run.py": RUN_A,
                                    "tests/test_db.py": "def test_find():\n    assert True\n"})
    # Someone else's comment carrying the verdict comment's marker: never the bot's to edit.
    planted = sandbox.add_comment(REPO, NUMBER, f"Looks fine.\n\n{thread_marker(REPO, NUMBER)}\n", user="mallory")
    team.script["PULL REQUEST REVIEW"] = [
        model_warns((FETCHALL, "app/db.py", 6), ("the caller passes raw input to find()", "app/api.py", 2)),
        model_warns((FETCHALL, "app/db.py", 7)),  # a line off after the push: the same finding, by rule and place
    ]  # the third head's model review reports nothing: app/db.py did not change, so its finding stays open
    await send(bot, sandbox, "pull_request", p)

    [first] = bot_reviews(sandbox)
    assert first["event"] == "REQUEST_CHANGES"
    # New findings on lines of the diff are inline; the one on a file the PR does not change is in the body.
    assert spots(first) == {("app/db.py", 5), ("app/run.py", 5), ("app/db.py", 6)}
    assert "app/api.py:2" in first["body"] and "app/db.py:5" not in first["body"]
    [thread] = verdict_comments(sandbox)
    assert thread["user"]["login"] == "triage-lead[bot]"
    assert sandbox.repo(REPO).comments[planted["id"]]["body"].startswith("Looks fine.")  # left alone
    assert thread["html_url"] in first["body"] and "**Open** (4)" in thread["body"]

    push(sandbox, p, "app/db.py", DB_B)  # the injection fixed; fetchall() moves down a line
    push(sandbox, p, "app/calc.py", CALC_B)  # a new finding
    second_push = push(sandbox, p, "app/run.py", RUN_B)  # os.system moved, not fixed
    b = second_push["pull_request"]["head"]["sha"]
    await send(bot, sandbox, "pull_request", second_push)

    second = bot_reviews(sandbox)[-1]
    assert second["commit_id"] == b and second["event"] == "REQUEST_CHANGES"
    assert spots(second) == {("app/calc.py", 2)}  # os.system and fetchall() were reported already: not again
    assert "1 new, 2 still open, 1 fixed, 1 gone" in second["body"]
    [again] = verdict_comments(sandbox)
    assert again["id"] == thread["id"]  # edited in place
    text = again["body"]
    assert "**Open** (3)" in text and "**Fixed** (1)" in text and "Gone" in text and "app/api.py:2" in text
    assert "app/run.py:6" in text and "app/db.py:7" in text  # the carried findings, at their new lines

    third_push = push(sandbox, second_push, "app/calc.py", CALC_C)
    third_push = push(sandbox, third_push, "app/run.py", RUN_C)
    c = third_push["pull_request"]["head"]["sha"]
    await send(bot, sandbox, "pull_request", third_push)
    third = bot_reviews(sandbox)[-1]
    assert third["commit_id"] == c and third["event"] == "APPROVE" and spots(third) == set()
    assert "1 still open, 2 fixed" in third["body"]
    [last] = verdict_comments(sandbox)
    assert "**Open** (1)" in last["body"] and "**Fixed** (3)" in last["body"] and FETCHALL in last["body"]

    await send(bot, sandbox, "pull_request", merged(third_push, c))
    [debt] = debt_issues(sandbox)
    assert FETCHALL[:40] in debt["title"] and "app/db.py:7" in debt["body"] and f"#{NUMBER}" in debt["body"]
    kept = await bot[0].store.load_findings(REPO, NUMBER)  # filed: let go (the merge is noted as a close)
    assert kept is None or kept.findings == {}
    await send(bot, sandbox, "pull_request", merged(third_push, c))  # delivered again (a redelivery): filed once
    assert len(debt_issues(sandbox)) == 1


async def test_a_pull_request_closed_without_a_merge_files_nothing(bot: Any, sandbox: Any, team: Team,
                                                                  caplog: Any) -> None:
    p = pull_with(sandbox, 71, {"app/run.py": RUN_A, "tests/test_run.py": "def test_run():\n    assert True\n"})
    await send(bot, sandbox, "pull_request", p)
    assert "**Open** (1)" in verdict_comments(sandbox, 71)[0]["body"]
    head = p["pull_request"]["head"]["sha"]
    rt, client = bot
    before = len(sandbox.writes)
    from tests.conftest import post_webhook

    resp = await post_webhook(client, "pull_request", merged(p, head, merge=False))
    await rt.jobs.drained(30)
    # acted on (202): the close is noted for retention (tests/test_closed_unmerged.py), and nothing is written
    assert debt_issues(sandbox) == [] and len(sandbox.writes) == before and resp.status == 202
    await send(bot, sandbox, "pull_request", merged(p, head))
    assert len(debt_issues(sandbox)) == 1
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # merged at the head reviewed: nothing to say


async def test_a_merge_files_at_most_ten_findings_and_says_so(bot: Any, sandbox: Any, team: Team, caplog: Any) -> None:
    """A runaway review cannot flood the tracker: ten issues per merge, and an ERROR says how many were left."""
    from bot.core.findings import OPEN, Tracked
    from bot.store import PullFindings

    p = pull_with(sandbox, 72, {"README.md": "words\n"})
    rt, _ = bot
    kept = {f"id{n:02}": Tracked(f"id{n:02}", "model", "model:warning", "warning", f"finding {n}", "app/x.py", n,
                                 OPEN, "a" * 40, "a" * 40).as_dict() for n in range(12)}
    await rt.store.save_findings(PullFindings(repo=REPO, number=72, sha="a" * 40, findings=kept))
    await send(bot, sandbox, "pull_request", merged(p, p["pull_request"]["head"]["sha"]))
    assert len(debt_issues(sandbox)) == 10
    assert any("12 findings open; only 10 were filed" in r.getMessage() for r in caplog.records)
    # their head is not the merged one: the later pushes were never reviewed, which operators are told
    stale = [r for r in caplog.records if r.levelname == "ERROR" and "its findings are those of head" in r.getMessage()]
    assert len(stale) == 1 and "a" * 12 in stale[0].getMessage()


async def test_a_merge_of_another_head_than_the_findings_says_so_even_with_none_open(
        bot: Any, sandbox: Any, team: Team, caplog: Any) -> None:
    """Back at A after B fixed A's finding, with A's verdict no longer kept: the findings stay as B left them (fixed),
    so a merge at A files nothing. Operators are told (a cold review: it was an INFO "nothing to file")."""
    from bot.core.findings import FIXED, Tracked
    from bot.store import PullFindings

    p = pull_with(sandbox, 73, {"README.md": "words\n"})
    rt, _ = bot
    kept = {"id1": Tracked("id1", "model", "model:critical", "critical", "a finding", "app/x.py", 3, FIXED,
                           "b" * 40, "b" * 40).as_dict()}
    await rt.store.save_findings(PullFindings(repo=REPO, number=73, sha="b" * 40, findings=kept))
    await send(bot, sandbox, "pull_request", merged(p, p["pull_request"]["head"]["sha"]))
    assert debt_issues(sandbox) == []
    stale = [r for r in caplog.records if r.levelname == "ERROR" and "its findings are those of head" in r.getMessage()]
    assert len(stale) == 1 and "b" * 12 in stale[0].getMessage()


# ---- the pure parts (bot/core/findings.py) --------------------------------------------------------------

def test_a_findings_id_follows_its_code_not_its_line_and_closes_as_fixed_or_gone() -> None:
    from bot.core import findings as F

    sql = F.Seen(F.CHECK, "sql-injection", "critical", "SQL built by formatting", "app/db.py", 5)
    at_a = F.identify([sql], {"app/db.py": {5: '  cur.execute(f"{q}")'}})
    at_b = F.identify([F.Seen(F.CHECK, "sql-injection", "critical", "SQL built by formatting", "app/db.py", 9)],
                      {"app/db.py": {9: 'cur.execute(f"{q}")  '}})  # moved down and re-indented: the same finding
    assert at_a[0][0] == at_b[0][0]
    twice = F.identify([sql, sql], {"app/db.py": {5: "x"}})
    assert twice[0][0] != twice[1][0]  # the same code twice in a file: two findings
    first = F.converge({}, at_a, "a" * 40, paths={"app/db.py"}, changed=None, model_ran=True)
    assert first.new == [at_a[0][0]]
    model = F.Tracked("m1", F.MODEL, "model:warning", "warning", "slow", "app/old.py", 3, F.OPEN, "a", "a")
    gone = F.converge({**first.findings, "m1": model}, [], "b" * 40, paths={"app/db.py"}, changed={"app/db.py"},
                      model_ran=True)
    assert gone.fixed == [at_a[0][0]] and gone.gone == ["m1"]
    untouched = dataclasses.replace(model, path="app/db.py")
    kept = F.converge({"m1": untouched}, [], "c" * 40, paths={"app/db.py"}, changed={"README.md"}, model_ran=True)
    assert kept.still_open == ["m1"] and kept.findings["m1"].state == F.OPEN  # a model's silence is no fix


def test_hunk_lines_are_the_new_side_of_each_hunk() -> None:
    from bot.core.findings import hunks

    patch = "@@ -1,3 +1,4 @@\n ctx\n-old\n+new\n++hits;\n same\n\\ No newline at end of file\n@@ -20 +21 @@\n+far"
    assert hunks([{"filename": "a.js", "patch": patch}]) == {"a.js": {1: "ctx", 2: "new", 3: "+hits;", 4: "same",
                                                                      21: "far"}}


def test_a_pull_request_keeps_every_open_finding_and_the_latest_closed_ones() -> None:
    from bot.core import findings as F

    def one(n: int, state: str) -> F.Tracked:
        return F.Tracked(f"f{n}", F.CHECK, "eval", "critical", "eval", "a.py", n, state, "a", "a")

    found = {t.id: t for t in [one(1, F.FIXED), one(2, F.OPEN), one(3, F.GONE), one(4, F.FIXED), one(5, F.OPEN),
                               one(6, F.FIXED)]}
    assert list(F.kept(found, most=4)) == ["f2", "f4", "f5", "f6"]
    assert list(F.kept(found, most=1)) == ["f2", "f5"]


def test_a_finding_in_a_file_nobody_looked_at_is_never_fixed_or_gone() -> None:
    """A credential found at one head, in a file the checks could not read at the next (no diff, too large to
    read whole) or that GitHub did not list (more files than it lists), stays open: not found is not fixed."""
    from bot.core import findings as F

    key = F.Seen(F.CHECK, "credential:AWS access key id", "critical", "exposed credential", "config/app.yml", 2)
    first = F.converge({}, F.identify([key], {"config/app.yml": {2: "key: AKIA..."}}), "a" * 40,
                       paths={"config/app.yml"}, changed=None, model_ran=True)
    [fid] = first.new
    unread = F.converge(first.findings, [], "b" * 40, paths={"config/app.yml"}, changed=None, model_ran=True,
                        unread=frozenset({"config/app.yml"}))
    assert unread.still_open == [fid] and unread.findings[fid].state == F.OPEN
    unlisted = F.converge(first.findings, [], "b" * 40, paths={"other.py"}, changed=None, model_ran=True,
                          listed_all=False)
    assert unlisted.still_open == [fid] and unlisted.findings[fid].state == F.OPEN
    read = F.converge(first.findings, [], "b" * 40, paths={"config/app.yml"}, changed=None, model_ran=True)
    assert read.fixed == [fid]  # read, and no longer there: fixed
