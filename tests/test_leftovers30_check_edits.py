"""A deterministic check's finding whose flagged line was edited in place (a credential's value changed, a line
reworded and moved a few lines) and is still flagged is the same finding, carried over: not one fixed and one new.
Two occurrences of one rule in one file stay two, and one whose line is gone is fixed. Real gate findings, through
``bot.core.findings`` as a head's round makes them."""

from __future__ import annotations

import random
import string

from bot.agents.gate import check
from bot.core import findings as F
from bot.run.review_rounds import seen

PATH = "config/app.py"
_RNG = random.Random(30)


def aws_key() -> str:
    """A made-up access key id of the shape the gate flags (never a real one)."""
    return "AKIA" + "".join(_RNG.choice(string.ascii_uppercase + string.digits) for _ in range(16))


def password() -> str:
    return "".join(_RNG.choice(string.ascii_letters) for _ in range(14))


TEST = "tests/test_app.py"  # a test changes too: no missing-tests finding beside the ones looked at
PATHS = {PATH, TEST}


def identified(lines: list[str]) -> list[tuple[str, F.Seen]]:
    """This head's check findings: ``lines`` as the whole of a file the pull request adds (with a test)."""
    files = [{"filename": path, "patch": f"@@ -0,0 +1,{len(text)} @@\n" + "\n".join(f"+{t}" for t in text)}
             for path, text in ((PATH, lines), (TEST, ["def test_app():", "    assert True"]))]
    return F.identify(seen(check(None, files), None), F.hunks(files))


def first(lines: list[str]) -> F.Round:
    return F.converge({}, identified(lines), "a" * 40, paths=PATHS, changed=None, model_ran=True)


def then(rnd: F.Round, lines: list[str], sha: str = "b" * 40) -> F.Round:
    return F.converge(rnd.findings, identified(lines), sha, paths=PATHS, changed=PATHS, model_ran=True)


def carried(a: F.Round, b: F.Round) -> None:
    """``b`` reports ``a``'s one finding as still open (under the id it has now), nothing new, nothing fixed."""
    assert b.new == [] and b.fixed == [] and b.gone == [] and len(b.still_open) == 1, b
    [now] = b.open()
    assert now.first_sha == "a" * 40 and len(b.findings) == 1, b


PAD = ["import os", "", "", "def main():", "    return os.environ"]


def test_a_secret_under_a_quoted_key_whose_value_changed_is_the_same_finding() -> None:
    """JSON or a dict: the key's name is kept when the literals are masked, so the statement is still told apart
    (found by review: both strings were emptied, the line kept no letter and so no place)."""
    a = first([*PAD, f'CONFIG = {{"aws_access_key_id": "{aws_key()}"}}'])
    assert len(a.new) == 1
    carried(a, then(a, [*PAD, f'CONFIG = {{"aws_access_key_id": "{aws_key()}"}}']))
    other = then(a, [*PAD, f'CONFIG = {{"backup_key_id": "{aws_key()}"}}'])
    assert len(other.new) == 1 and len(other.fixed) == 1, other


def test_a_credential_whose_value_changed_on_its_line_is_the_same_finding() -> None:
    a = first([*PAD, f'AWS_KEY = "{aws_key()}"'])
    assert len(a.new) == 1
    carried(a, then(a, [*PAD, f'AWS_KEY = "{aws_key()}"']))
    b = first([*PAD, f'password = "{password()}"'])
    carried(b, then(b, [*PAD, f'password = "{password()}"  # rotated']))


def test_a_flagged_line_moved_a_few_lines_and_changed_is_the_same_finding() -> None:
    a = first([*PAD, f'AWS_KEY = "{aws_key()}"'])
    b = then(a, ['"""Settings."""', "", *PAD, f'AWS_KEY = "{aws_key()}"'])
    carried(a, b)
    assert b.open()[0].line == 8
    sql = first(["import sqlite3", "", "def find(cur, name):", '    cur.execute(f"SELECT * FROM t WHERE n = {name}")'])
    carried(sql, then(sql, ["import sqlite3", "", "", "def find(cur, who):",
                            '    cur.execute(f"SELECT id FROM t WHERE n = {who}")']))


def test_another_statement_at_the_spot_is_a_new_finding_and_the_old_one_fixed() -> None:
    """Only the literal (and a note beside it) may change: a reworded statement is another finding."""
    sql = first(["import sqlite3", "", "def find(cur, name):", '    cur.execute(f"SELECT * FROM t WHERE n = {name}")'])
    b = then(sql, ["import sqlite3", "", "def find(cur, name):", '    return cur.execute(f"SELECT 1 WHERE {name}")'])
    assert b.fixed == sql.new and len(b.new) == 1 and b.still_open == [], b


def test_a_key_removed_and_the_next_ones_value_changed_is_one_fixed_and_the_other_carried() -> None:
    """Keys A at line 1 and B at 3; the push deletes A and changes B's value (B now at line 2): A is fixed, B the
    same finding still open at its line (not A carried over and B reported fixed)."""
    a = first([f'A = "{aws_key()}"', "", f'B = "{aws_key()}"'])
    fid_a, fid_b = a.new
    assert (a.findings[fid_a].line, a.findings[fid_b].line) == (1, 3), a
    b = then(a, ["", f'B = "{aws_key()}"'])
    assert b.fixed == [fid_a] and b.new == [] and len(b.still_open) == 1, b
    [now] = b.open()
    assert now.line == 2 and b.findings[fid_a].state == F.FIXED and now.id != fid_a, b


def test_a_finding_stored_before_check_places_were_kept_is_fixed_and_new() -> None:
    """A record without a place (stored before) loads, and pairs with nothing when its line was edited."""
    a = first([*PAD, f'AWS_KEY = "{aws_key()}"'])
    old = F.load({fid: {k: v for k, v in t.as_dict().items() if k != "place"} for fid, t in a.findings.items()})
    assert len(old) == 1 and all(t.place == "" for t in old.values()), old
    b = F.converge(old, identified([*PAD, f'AWS_KEY = "{aws_key()}"']), "b" * 40, paths=PATHS, changed=PATHS,
                   model_ran=True)
    assert b.fixed == a.new and len(b.new) == 1, b


def test_two_occurrences_of_one_rule_in_a_file_stay_two() -> None:
    key1, key2 = aws_key(), aws_key()
    a = first([f'A = "{key1}"', *PAD, f'B = "{key2}"'])
    assert len(a.new) == 2
    b = then(a, [f'A = "{aws_key()}"', *PAD, f'B = "{key2}"'])  # the first edited, the second as it was
    assert b.new == [] and b.fixed == [] and len(b.still_open) == 2 and len(b.open()) == 2, b
    c = then(a, [f'A = "{aws_key()}"', f'C = "{aws_key()}"', *PAD, f'B = "{key2}"'])  # and a third one added
    assert len(c.new) == 1 and c.fixed == [] and len(c.still_open) == 2 and len(c.open()) == 3, c
    assert {t.line for t in c.open()} == {1, 2, 8} and c.findings[c.new[0]].line == 2, c


def test_a_finding_whose_line_was_removed_is_fixed_and_one_far_from_it_is_new() -> None:
    a = first([*PAD, f'AWS_KEY = "{aws_key()}"'])
    [fid] = a.new
    gone = then(a, PAD)
    assert gone.fixed == [fid] and gone.new == [] and gone.findings[fid].state == F.FIXED, gone
    far = then(a, [f'OTHER = "{aws_key()}"', *PAD[:-1], *[f"x{i} = {i}" for i in range(10)]])
    assert far.fixed == [fid] and len(far.new) == 1, far
    other_rule = then(a, [*PAD, f'password = "{password()}"'])
    assert other_rule.fixed == [fid] and len(other_rule.new) == 1, other_rule


def test_a_fixed_finding_is_not_taken_by_another_at_its_spot_later() -> None:
    a = first([*PAD, f'AWS_KEY = "{aws_key()}"'])
    [fid] = a.new
    b = then(a, PAD)
    c = then(b, [*PAD, f'AWS_KEY = "{aws_key()}"'], sha="c" * 40)
    assert len(c.new) == 1 and c.reopened == [] and c.findings[fid].state == F.FIXED, c


def test_a_head_judged_before_and_the_head_again_puts_the_edited_finding_back_open() -> None:
    """A → B (the credential's value changed) → A: the finding is open at A again, neither fixed nor new."""
    a = first([*PAD, f'AWS_KEY = "{aws_key()}"'])
    b = then(a, [*PAD, f'AWS_KEY = "{aws_key()}"'])
    now = F.lineage(b.findings, (t for t in a.findings.values() if t.state == F.OPEN))
    back = F.converge(b.findings, now, "a" * 40, paths=PATHS, changed=PATHS, model_ran=True)
    assert back.new == [] and back.fixed == [] and len(back.still_open) == 1 and len(back.findings) == 1, back
