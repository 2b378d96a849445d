"""A model finding reworded between pushes (issue 17, point 2: "model findings are matched to earlier ones by rule
and location"): at the same rule and place (its file and the normalised code of its line, wherever a push moved that
line) one earlier open finding and one found now are the same finding whatever the words; several at one place are
paired by their words; a place is only a place when its code is told apart from the file's other lines. A renamed
file takes the place along. The pure parts (bot/core/findings.py) as unit tests, the push through the webhook
against the sandbox.
"""

from __future__ import annotations

from typing import Any

from bot.core import findings as F
from bot.sandbox.team import Team, result
from tests.test_attacks_today import moved
from tests.test_converging_reviews import bot_reviews, verdict_comments
from tests.test_verdicts import pull_with, push
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401

SQL = "total = sum(row.amount for row in rows)"  # the flagged line (no deterministic check flags it)
FIRST = "summing float amounts loses cents; use Decimal for money"  # the model's words at head A
AGAIN = "currency arithmetic here is imprecise with binary floating point"  # at head B: not one word in common
LIMIT = "no row limit: a large table is read whole into memory"
TESTS = {"tests/test_db.py": "def test_find():\n    assert True\n"}


def warn(text: str, line: int | None, path: str | None = "app/db.py", rule: str = "model:warning") -> F.Seen:
    return F.Seen(F.MODEL, rule, "warning", text, path, line)


def first_round(*found: F.Seen, code: dict[str, dict[int, str]]) -> F.Round:
    return F.converge({}, F.identify(found, code), "a" * 40, paths={"app/db.py"}, changed=None, model_ran=True)


def again(rnd: F.Round, *found: F.Seen, code: dict[str, dict[int, str]],
          renamed: dict[str, str] | None = None) -> F.Round:
    paths = {"app/db.py"} if not renamed else set(renamed.values())
    return F.converge(rnd.findings, F.identify(found, code, renamed), "b" * 40, paths=paths, changed=paths,
                      model_ran=True, renamed=renamed)


def test_a_reworded_finding_on_the_same_code_is_the_same_finding_wherever_the_line_moved() -> None:
    a = first_round(warn(FIRST, 5), code={"app/db.py": {5: f"    {SQL}"}})
    assert F.alike(FIRST, AGAIN) < F.ALIKE  # by its words it would be another finding
    for line in (6, 40):  # a line down, and far down (past what a model's citing a line off could explain)
        b = again(a, warn(AGAIN, line), code={"app/db.py": {line: f"        {SQL}  "}})
        assert b.new == [] and b.fixed == [] and len(b.still_open) == 1, (line, b)
        [t] = b.open()
        assert (t.text, t.line, t.first_sha) == (AGAIN, line, "a" * 40)


def test_a_reworded_finding_on_other_code_or_without_a_line_is_a_new_one() -> None:
    """Another line's code is another place; a finding on a whole file has no place narrower than the file, where a
    model puts unrelated remarks: only its words (its id) find it again."""
    a = first_round(warn(FIRST, 5), code={"app/db.py": {5: SQL}})
    b = again(a, warn(AGAIN, 5), code={"app/db.py": {5: "rows = cur.fetchall()"}})
    assert len(b.new) == 1 and len(b.fixed) == 1
    whole = first_round(warn(FIRST, None), code={})
    b = again(whole, warn(AGAIN, None), code={})
    assert len(b.new) == 1 and len(b.fixed) == 1
    assert again(whole, warn(FIRST.upper() + ".", None), code={}).still_open  # its own words again: the same one


def test_two_earlier_findings_at_one_place_are_paired_by_their_words_never_guessed() -> None:
    """Exactly one earlier candidate: with two at the place and words that match neither, which one it is cannot
    be told, so it is new (and a reworded one matching one of them by words is that one)."""
    code = {"app/db.py": {5: SQL}}
    a = first_round(warn(FIRST, 5), warn(LIMIT, 5), code=code)
    b = again(a, warn(AGAIN, 9), code={"app/db.py": {9: SQL}})
    assert len(b.new) == 1 and b.still_open == [], b
    words = again(a, warn("the whole table is read into memory, with no limit", 9), code={"app/db.py": {9: SQL}})
    assert words.new == [] and [t.text for t in words.open()][0].startswith("the whole table")
    assert [t.id for t in words.findings.values() if t.state == F.FIXED] == [a.new[0]]  # FIRST: not found again
    # Two whose words are both LIMIT's: an earlier finding is taken once (the closest text), the other is new.
    two = again(a, warn("no row limit: the table is read whole", 9), warn("the large table is read whole", 9),
                code={"app/db.py": {9: SQL}})
    assert len(two.new) == 1 and two.fixed == [a.new[0]] and len(two.open()) == 2, two
    assert two.findings[two.new[0]].text == "the large table is read whole"


def test_two_new_findings_at_the_place_of_one_earlier_are_not_guessed_between() -> None:
    a = first_round(warn(FIRST, 5), code={"app/db.py": {5: SQL}})
    b = again(a, warn(AGAIN, 9), warn("the cursor is never closed on this path", 9), code={"app/db.py": {9: SQL}})
    assert len(b.new) == 2 and len(b.fixed) == 1, b


def test_code_repeated_in_the_file_or_without_a_word_is_no_place() -> None:
    """``return None`` on two lines, or a line holding only ``}``, does not tell one spot from another."""
    a = first_round(warn(FIRST, 5), code={"app/db.py": {5: "    return None"}})
    repeated = {"app/db.py": {20: "    return None", 40: "        return None"}}
    b = again(a, warn(AGAIN, 40), code=repeated)
    assert len(b.new) == 1 and len(b.fixed) == 1, b
    brace = first_round(warn(FIRST, 5), code={"app/db.py": {5: "  }"}})
    b = again(brace, warn(AGAIN, 30), code={"app/db.py": {30: "}"}})
    assert len(b.new) == 1 and len(b.fixed) == 1, b


def test_a_finding_closed_before_or_of_another_rule_is_not_taken_for_a_reworded_one() -> None:
    code = {"app/db.py": {5: SQL}}
    a = first_round(warn(FIRST, 5), code=code)
    fixed = again(a, code={"app/db.py": {5: "x = 1"}})
    assert fixed.fixed == a.new
    back = F.converge(fixed.findings, F.identify([warn(AGAIN, 5)], code), "c" * 40, paths={"app/db.py"},
                      changed={"app/db.py"}, model_ran=True)
    assert len(back.new) == 1 and back.reopened == [], back  # only an open finding is found by its place alone
    critical = again(a, warn(AGAIN, 5, rule="model:critical"), code=code)
    assert len(critical.new) == 1 and critical.fixed == a.new


def test_a_renamed_file_takes_the_place_along() -> None:
    """Point 2's rename with an edit: the file renamed, lines added above the finding, the model rewording it."""
    a = first_round(warn(FIRST, 5), code={"app/db.py": {5: SQL}})
    b = F.converge(a.findings, F.identify([warn(AGAIN, 25, path="lib/store.py")], {"lib/store.py": {25: SQL}},
                                          {"app/db.py": "lib/store.py"}),
                   "b" * 40, paths={"lib/store.py"}, changed={"app/db.py", "lib/store.py"}, model_ran=True,
                   renamed={"app/db.py": "lib/store.py"})
    assert b.new == [] and b.fixed == [] and b.gone == [], b
    [t] = b.open()
    assert (t.path, t.line, t.text) == ("lib/store.py", 25, AGAIN)


def test_a_finding_stored_before_places_were_kept_loads_and_is_matched_by_its_words() -> None:
    a = first_round(warn(FIRST, 5), code={"app/db.py": {5: SQL}})
    stored = {fid: {k: v for k, v in t.as_dict().items() if k != "place"} for fid, t in a.findings.items()}
    loaded = F.load(stored)
    assert list(loaded) == a.new and loaded[a.new[0]].place == ""
    b = F.converge(loaded, F.identify([warn(FIRST + " please", 6)], {"app/db.py": {6: SQL}}), "b" * 40,
                   paths={"app/db.py"}, changed={"app/db.py"}, model_ran=True)
    assert b.new == [] and len(b.still_open) == 1
    assert F.Tracked.from_dict({**a.findings[a.new[0]].as_dict(), "place": 7}) is None


# ---- through the webhook -----------------------------------------------------------------------------------

DB_A = f"import sqlite3\n\n\ndef total(rows):\n    {SQL}\n    return total\n"
DB_B = '"""Users."""\nimport logging\nimport sqlite3\n\nlog = logging.getLogger(__name__)\n' + DB_A[len("import sqlite3\n"):]


async def test_a_pushed_pull_request_whose_finding_the_model_rewords_shows_it_still_open_once(
        bot: Any, sandbox: Any, team: Team) -> None:
    assert DB_B.splitlines()[8] == DB_A.splitlines()[4]  # the flagged line moved from 5 to 9
    team.script["PULL REQUEST REVIEW"] = [
        result("review", warnings=[{"text": FIRST, "path": "app/db.py", "line": 5}]),
        result("review", warnings=[{"text": AGAIN, "path": "app/db.py", "line": 9}])]
    p = pull_with(sandbox, 530, {"app/db.py": DB_A, **TESTS})
    await send(bot, sandbox, "pull_request", p)
    await send(bot, sandbox, "pull_request", push(sandbox, p, "app/db.py", DB_B))
    last = bot_reviews(sandbox)[-1]
    assert "Findings at this head: 1 still open." in last["body"] and not last.get("comments"), last
    [thread] = verdict_comments(sandbox, 530)
    text = thread["body"].split("<details>")[0]
    assert "**Open** (1)" in text and "Fixed" not in text and "app/db.py:9" in text and AGAIN in text, text


async def test_a_renamed_file_with_an_edit_above_the_finding_and_new_words_keeps_it_open(
        bot: Any, sandbox: Any, team: Team) -> None:
    team.script["PULL REQUEST REVIEW"] = [
        result("review", warnings=[{"text": FIRST, "path": "app/db.py", "line": 5}]),
        result("review", warnings=[{"text": AGAIN, "path": "lib/users.py", "line": 9}])]
    p = pull_with(sandbox, 531, {"app/db.py": DB_A, **TESTS})
    await send(bot, sandbox, "pull_request", p)
    await send(bot, sandbox, "pull_request", moved(sandbox, p, "app/db.py", "lib/users.py", DB_B))
    last = bot_reviews(sandbox)[-1]
    assert "Findings at this head: 1 still open." in last["body"], last["body"]
    [thread] = verdict_comments(sandbox, 531)
    text = thread["body"].split("<details>")[0]
    assert "**Open** (1)" in text and "lib/users.py:9" in text and "Fixed" not in text and "Gone" not in text, text
