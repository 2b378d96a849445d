"""Converging reviews that a maintainer can trust (issue 17, point 2, from a cold review of it): distinct model
findings on identical lines stay distinct, a force-push back to a judged head puts the findings back in that head's
state, a credential keeps its id whatever is edited around it on its line, a renamed file takes its findings along,
and a closed tech-debt issue is read the way the person who closed it meant.

Pure parts (bot/core/findings.py) get unit tests; the rest goes through the webhook against the sandbox.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from bot.agents.gate import check
from bot.core import findings as F
from bot.run.pull_review import seen
from bot.sandbox.team import Team, result
from tests.test_attacks_verdicts import KEY, send_pull, synchronize
from tests.test_converging_reviews import bot_reviews, debt_issues, merged, verdict_comments
from tests.test_verdicts import pull_with, push
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401

TESTS = {"tests/test_a.py": "def test_a():\n    assert 1\n"}
HIDES = "returning None here hides the lookup failure from the caller"
RAISE = "this branch should raise KeyError so a missing id is not taken for an empty one"


def model(text: str, line: int, path: str = "app/x.py", code: dict[str, dict[int, str]] | None = None) -> list[
        tuple[str, F.Seen]]:
    return F.identify([F.Seen(F.MODEL, "model:warning", "warning", text, path, line)], code or {})


# ---- 1. model findings on identical lines -------------------------------------------------------------------

def test_two_model_findings_on_identical_lines_stay_two_when_only_the_second_is_reported_again() -> None:
    code_a = {"app/x.py": {10: "    return None", 12: "    return None"}}
    first = F.identify([F.Seen(F.MODEL, "model:warning", "warning", HIDES, "app/x.py", 10),
                        F.Seen(F.MODEL, "model:warning", "warning", RAISE, "app/x.py", 12)], code_a)
    a = F.converge({}, first, "a" * 40, paths={"app/x.py"}, changed=None, model_ran=True)
    hides, raises = first[0][0], first[1][0]
    # The next head fixed the first (its line is gone); the model reports the second again, on the same code.
    again = model(RAISE, 11, code={"app/x.py": {11: "    return None"}})
    b = F.converge(a.findings, again, "b" * 40, paths={"app/x.py"}, changed={"app/x.py"}, model_ran=True)
    assert b.still_open == [raises] and b.fixed == [hides] and b.new == []
    assert b.findings[raises].text == RAISE and b.findings[hides].state == F.FIXED


def test_a_model_finding_reported_again_after_its_lines_moved_is_the_same_one_and_a_new_one_near_it_is_not() -> None:
    a = F.converge({}, model(HIDES, 10, code={"app/x.py": {10: "    return None"}}), "a" * 40, paths={"app/x.py"},
                   changed=None, model_ran=True)
    [fid] = a.new
    moved = F.converge(a.findings, model("app/x.py:13: " + HIDES.capitalize() + ".", 13,
                                         code={"app/x.py": {13: "        return None"}}),
                       "b" * 40, paths={"app/x.py"}, changed={"app/x.py"}, model_ran=True)
    assert moved.new == [] and len(moved.still_open) == 1 and moved.findings[moved.still_open[0]].line == 13
    other = F.converge(a.findings, model("the loop variable shadows the module-level logger", 11),
                       "b" * 40, paths={"app/x.py"}, changed={"app/x.py"}, model_ran=True)
    assert len(other.new) == 1 and other.fixed == [fid]  # a new finding next to it does not take its place


def test_the_closest_text_is_matched_first_when_two_earlier_findings_are_near() -> None:
    code = {"app/x.py": {10: "    return None", 12: "    return None"}}
    first = F.identify([F.Seen(F.MODEL, "model:warning", "warning", HIDES, "app/x.py", 10),
                        F.Seen(F.MODEL, "model:warning", "warning", RAISE, "app/x.py", 12)], code)
    a = F.converge({}, first, "a" * 40, paths={"app/x.py"}, changed=None, model_ran=True)
    reworded = model("a missing id should raise KeyError instead of being taken for an empty one", 10)
    b = F.converge(a.findings, reworded, "b" * 40, paths={"app/x.py"}, changed={"app/x.py"}, model_ran=True)
    assert b.fixed == [first[0][0]] and [b.findings[i].text for i in b.still_open] == [reworded[0][1].text]


# ---- 3. a credential's id comes from the credential ---------------------------------------------------------

def ids(patch: str, path: str = "app/keys.py") -> list[str]:
    files = [{"filename": path, "patch": patch}]
    return [fid for fid, _ in F.identify(seen(check(None, files), None), F.hunks(files))]


def test_a_credential_keeps_its_id_when_its_line_is_edited_around_it_and_two_keys_stay_two() -> None:
    before = ids(f"@@ -0,0 +1 @@\n+{KEY}")
    assert ids(f"@@ -0,0 +1 @@\n+{KEY}  # temp") == before
    assert ids(f'@@ -0,0 +1 @@\n+{KEY.replace("EXAMPLE", "EXAMPLF")}') != before  # another key: another finding
    assert ids(f"@@ -0,0 +1 @@\n+{KEY}", path="app/other.py") != before  # the same key in another file: too
    assert "AKIA" not in str(check(None, [{"filename": "app/keys.py", "patch": f"@@ -0,0 +1 @@\n+{KEY}"}]))


def test_a_credential_stored_under_an_id_made_from_its_line_is_still_the_same_finding() -> None:
    """A pull request reviewed before credentials' ids came from the credential: its stored finding (id from the
    normalised line) is found again, not fixed and reported anew."""
    rule = "credential:AWS access key id"
    old = hashlib.sha256("\x00".join([F.CHECK, rule, "config/keys.env", F.normalise(KEY), "1"]).encode()).hexdigest()[:16]
    stored = F.Tracked(old, F.CHECK, rule, "critical", "exposed credential", "app/keys.py", 1, F.OPEN, "a" * 40,
                       "a" * 40)
    files = [{"filename": "config/keys.env", "patch": f"@@ -0,0 +1 @@\n+{KEY}"}]  # not code: no missing-tests
    [(new, _)] = now = F.identify(seen(check(None, files), None), F.hunks(files))
    assert new != old
    b = F.converge({old: dataclasses.replace(stored, path="config/keys.env")}, now, "b" * 40,
                   paths={"config/keys.env"}, changed={"config/keys.env"}, model_ran=True)
    assert b.still_open == [new] and b.fixed == [] and b.new == [] and b.findings[new].first_sha == "a" * 40


async def test_an_edit_next_to_a_credential_shows_it_open_once_not_fixed_and_new(
        bot: Any, sandbox: Any, team: Team) -> None:
    p = pull_with(sandbox, 460, {"app/keys.py": KEY + "\n", **TESTS})
    await send(bot, sandbox, "pull_request", p)
    await send(bot, sandbox, "pull_request", push(sandbox, p, "app/keys.py", KEY + "  # temp, rotate later\n"))
    last = bot_reviews(sandbox)[-1]
    assert "1 still open" in last["body"] and "new" not in last["body"].split("Findings at this head:")[1][:30]
    [thread] = verdict_comments(sandbox, 460)
    assert "**Open** (1)" in thread["body"] and "Fixed" not in thread["body"]
    assert "AKIAIOSFODNN7EXAMPLE" not in str([w.data for w in sandbox.writes])


# ---- 2. a force-push back to a head judged before -----------------------------------------------------------

async def test_a_force_push_back_to_a_judged_head_puts_its_findings_back_in_its_state(
        bot: Any, sandbox: Any, team: Team) -> None:
    """A (a credential) → B (the credential gone, os.system added, a model warning on it) → A again: the credential
    is open, os.system and the model's warning fixed (A's code has neither); the thread comment must not keep saying
    the credential was fixed."""
    team.script["PULL REQUEST REVIEW"] = [
        result("review"), result("review", warnings=[{"text": "run() takes any command string from its caller",
                                                      "path": "app/a.py", "line": 4}])]
    p = pull_with(sandbox, 461, {"app/a.py": KEY + "\n", **TESTS})
    a_head, branch = p["pull_request"]["head"]["sha"], p["pull_request"]["head"]["ref"]
    await send_pull(bot, sandbox, p)
    b = push(sandbox, p, "app/a.py", "import os\n\n\ndef run(cmd):\n    os.system(cmd)\n")
    await send_pull(bot, sandbox, b)
    [thread] = verdict_comments(sandbox, 461)
    assert "**Fixed** (1)" in thread["body"] and "exposed credential" in thread["body"].split("**Fixed**")[1]
    sandbox.repo(REPO).refs[f"refs/heads/{branch}"] = a_head  # git push --force origin A:branch
    calls = sum(c.title == "PULL REQUEST REVIEW" for c in team.calls)
    await send_pull(bot, sandbox, synchronize(sandbox, 461, by="Codertocat"))
    # the head's verdict kept by its run is read again: no second model review of a head (a review costs budget)
    assert sum(c.title == "PULL REQUEST REVIEW" for c in team.calls) == calls
    assert sandbox.pull(REPO, 461)["head"]["sha"] == a_head
    [thread] = verdict_comments(sandbox, 461)
    opened, fixed = thread["body"].split("**Fixed**")
    assert "**Open** (1)" in opened and "exposed credential" in opened, thread["body"]
    assert "(2)" in fixed and "os.system" in fixed and "any command string" in fixed, thread["body"]
    assert a_head[:12] in thread["body"]  # the verdict folded in is the head's own
    # A's review cannot change, and B's review dismissed it: A's change request is given again, pointing to the thread
    assert [(r["event"], r["commit_id"]) for r in bot_reviews(sandbox)][2:] == [("REQUEST_CHANGES", a_head)]
    assert thread["html_url"] in bot_reviews(sandbox)[-1]["body"]
    stored = await bot[0].deps.store.load_findings(REPO, 461)
    assert stored.sha == a_head
    await send_pull(bot, sandbox, synchronize(sandbox, 461, by="Codertocat"))  # delivered again: nothing changes
    assert verdict_comments(sandbox, 461)[0]["body"] == thread["body"]


# ---- 4. a renamed file takes its findings along --------------------------------------------------------------

def seed(sandbox: Any, number: int, entries: list[dict[str, Any]]) -> None:
    """The PR's files as GitHub lists them (a rename: status renamed and previous_filename)."""
    repo = sandbox.repo(REPO)
    issue = sandbox.get_issue(repo, number, pull=True)
    issue["__pull"]["files"] = [sandbox._file_entry(repo, e["filename"], e.get("status", "modified"), e["patch"],
                                                    None, "changes") | e for e in entries]


async def test_a_finding_in_a_renamed_file_follows_it_to_its_new_name(bot: Any, sandbox: Any, team: Team) -> None:
    """A credential, a model warning and os.system in app/old.py; renamed to app/new.py with os.system taken out:
    two still open at their new place, one fixed (not gone: its file is still in the pull request)."""
    team.script["PULL REQUEST REVIEW"] = [
        result("review", warnings=[{"text": HIDES, "path": "app/old.py", "line": 2}]),
        result("review", warnings=[{"text": HIDES, "path": "app/new.py", "line": 2}])]
    test = {"filename": "tests/test_a.py", "status": "added", "patch": "@@ -0,0 +1 @@\n+def test_a(): pass"}
    p = pull_with(sandbox, 462, {"app/old.py": KEY + "\n", **TESTS})
    seed(sandbox, 462, [{"filename": "app/old.py", "patch": f"@@ -1 +1,3 @@\n+{KEY}\n     return None\n+os.system(c)"},
                        test])
    await send(bot, sandbox, "pull_request", p)
    renamed = push(sandbox, p, "app/new.py", KEY + "\n")
    seed(sandbox, 462, [{"filename": "app/new.py", "status": "renamed", "previous_filename": "app/old.py",
                         "patch": f"@@ -1 +1,2 @@\n+{KEY}\n     return None"}, test])
    await send(bot, sandbox, "pull_request", renamed)
    last = bot_reviews(sandbox)[-1]
    assert "2 still open, 1 fixed" in last["body"] and not last.get("comments"), last["body"]
    [thread] = verdict_comments(sandbox, 462)
    text = thread["body"]
    assert "**Open** (2)" in text and "**Fixed** (1)" in text and "Gone" not in text, text  # os.system: fixed
    assert "app/new.py:1" in text and "app/new.py:2" in text and "app/old.py" not in text.split("<details>")[0]


# ---- 5. a closed tech-debt issue ---------------------------------------------------------------------------

def close(sandbox: Any, number: int, reason: str) -> None:
    issue = sandbox.get_issue(sandbox.repo(REPO), number)
    issue.update(state="closed", state_reason=reason)


async def merge_with_key(bot: Any, sandbox: Any, number: int) -> None:
    p = pull_with(sandbox, number, {"app/client.py": KEY + "\n", **TESTS})
    await send(bot, sandbox, "pull_request", p)
    await send(bot, sandbox, "pull_request", merged(p, p["pull_request"]["head"]["sha"]))


async def test_tech_debt_closed_as_completed_is_filed_again_and_closed_as_not_planned_is_not(
        bot: Any, sandbox: Any, team: Team) -> None:
    await merge_with_key(bot, sandbox, 470)
    [first] = debt_issues(sandbox)
    number = next(n for n, i in sandbox.repo(REPO).issues.items() if i["title"] == first["title"])
    await merge_with_key(bot, sandbox, 472)  # still open: the same debt, not filed twice
    assert len(debt_issues(sandbox)) == 1
    close(sandbox, number, "completed")
    await merge_with_key(bot, sandbox, 474)  # the fix did not hold: filed again, linking the closed one
    [_, again] = debt_issues(sandbox)
    assert f"#{number} was closed as completed" in again["body"] and again["title"] == first["title"]
    [second] = [n for n, i in sandbox.repo(REPO).issues.items() if i["title"] == first["title"] and n != number]
    await merge_with_key(bot, sandbox, 476)  # the second is open: filed before
    assert len(debt_issues(sandbox)) == 2
    close(sandbox, second, "not_planned")
    await merge_with_key(bot, sandbox, 478)  # a maintainer accepted the debt: never filed again
    assert len(debt_issues(sandbox)) == 2
