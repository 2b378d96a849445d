"""The review gate's edges that mutation testing found untested (benchmarks/mutation.py gate).

Each test fails on a mutant of bot/agents/gate.py that the other tests let through: what each finding says
and which MUST PASS item it fails (both reach the review a person reads), how patch lines are numbered,
which comment lines are skipped, and how ``apply_gate`` merges into a review of any shape.
"""

from __future__ import annotations

import copy
from typing import cast

import pytest

from bot.agents.gate import INJECTION_CRITERION, SECRETS_CRITERION, TESTS_CRITERION, Finding, apply_gate, check, secrets_in

KEY = "AKIAABCDEFGHIJKLMNOP"
TEST_FILE = {"path": "tests/test_app.py", "content": "def test_ok():\n    assert True\n"}
SQL = ("SQL built by string formatting is passed to the database; use query parameters", INJECTION_CRITERION)
SHELL = ("a shell command (shell=True) is built from non-literal input; pass an argument list without shell=True",
         INJECTION_CRITERION)
OS_SYSTEM = ("os.system/os.popen runs a command built from non-literal input; use subprocess with an argument list",
             INJECTION_CRITERION)
EVAL = ("eval/exec on non-literal input can run attacker-supplied code", INJECTION_CRITERION)


def said(findings: list[Finding]) -> list[tuple[str, str, str, int | None, str]]:
    return [(f.severity, f.text, f.path or "", f.line, f.criterion) for f in findings]


def in_code(content: str, path: str = "app/main.py") -> list[Finding]:
    return check([{"path": path, "content": content}, TEST_FILE], None)


def in_patch(patch: str, path: str = "app/main.py") -> list[Finding]:
    return check(None, [{"filename": path, "patch": patch}, {"filename": "tests/test_main.py", "patch": "@@ -0,0 +1 @@\n+x"}])


# ---- what a finding says, and which MUST PASS item it fails -----------------------------------------------

@pytest.mark.parametrize("line, finding", [
    ('rows = db.execute(f"SELECT * FROM t WHERE id = {uid}")', SQL),
    ('subprocess.run(f"convert {path}", shell=True)', SHELL),
    ('os.popen("rm -rf " + path)', OS_SYSTEM),
    ("exec(payload)", EVAL),
])
def test_each_injection_finding_says_what_and_how_to_fix_it(line: str, finding: tuple[str, str]) -> None:
    assert said(in_code(line)) == [("critical", finding[0], "app/main.py", 1, finding[1])]


def test_secret_findings_say_what_and_fail_the_secrets_item() -> None:
    assert said(in_code('db_password = "hunter2hunter2"')) == [
        ("warning", "a hard-coded secret-like literal; read it from configuration instead", "app/main.py", 1,
         SECRETS_CRITERION)]
    assert said(in_code('KEY = "[redacted]"')) == [
        ("critical", "a credential was found in this change and redacted before review; the change must read it "
                     "from configuration", "app/main.py", 1, SECRETS_CRITERION)]


def test_a_redacted_marker_in_someone_elses_pull_request_is_only_text() -> None:
    # "[redacted]" in a proposed change means the model's output was redacted; in a person's PR it is just text.
    assert in_patch('@@ -0,0 +1 @@\n+NOTE = "[redacted]"') == []


# ---- patches: line numbers and what counts as added ---------------------------------------------------------

def test_context_lines_count_and_removed_lines_and_no_newline_notes_do_not() -> None:
    assert [f.where for f in in_patch("@@ -1,2 +1,3 @@\n a = 1\n+exec(payload)\n b = 2")] == ["app/main.py:2"]
    patch = "@@ -1 +1,2 @@\n-old = 1\n\\ No newline at end of file\n+exec(payload)"
    assert [f.where for f in in_patch(patch)] == ["app/main.py:1"]


def test_inside_a_hunk_a_line_starting_with_three_pluses_is_an_added_line() -> None:
    # Git's file headers (+++ b/x) come only before the first hunk; after it, "+++ x" adds the line "++ x".
    patch = ("diff --git a/notes.txt b/notes.txt\nindex 1a2b..3c4d 100644\n--- a/notes.txt\n+++ b/notes.txt\n"
             f"@@ -1 +1,2 @@\n intro\n+++ the old key {KEY} still works")
    assert [f.where for f in check(None, [{"filename": "notes.txt", "patch": patch}])] == ["notes.txt:2"]


def test_the_first_character_of_an_added_line_is_checked() -> None:
    assert [f.where for f in in_patch(f"@@ -3 +3 @@\n+{KEY} = 1")] == ["app/main.py:3"]


def test_an_added_line_before_any_hunk_header_is_checked_without_a_line_number() -> None:
    # A line number that is not known is not invented.
    assert [(f.where, f.item()) for f in in_patch("+exec(payload)")] == [
        ("app/main.py", {"text": f"app/main.py: {EVAL[0]}", "path": "app/main.py"})]


def test_a_whole_files_text_is_checked_for_credentials_only() -> None:
    # For a file GitHub sends without a diff: every line counts, and "[redacted]" is a person's text, not ours.
    assert secrets_in("config/app.yml", f"a: 1\nkey: {KEY}\nnote: [redacted]\nrun: exec(payload)\n") == [
        Finding("critical", "exposed credential: AWS access key id committed in the code", "config/app.yml", 2,
                SECRETS_CRITERION, rule="credential:AWS access key id")]


# ---- changes and patches without the usual fields ------------------------------------------------------------

def test_a_finding_in_a_change_without_a_path_names_no_path() -> None:
    [finding] = check([{"content": f'KEY = "{KEY}"'}], None)
    assert (finding.path, finding.where) == ("", "")
    assert finding.item() == {"text": "exposed credential: AWS access key id committed in the code", "line": 1}
    [finding] = check(None, [{"patch": f'@@ -0,0 +1 @@\n+KEY = "{KEY}"'}, {"filename": "x", "patch": None}])
    assert (finding.path, finding.where) == ("", "")


def test_a_file_without_added_lines_needs_no_test() -> None:
    assert check([{"path": "src/app.py"}], None) == []  # no content: nothing is added
    assert check(None, [{"filename": "src/app.py", "patch": None}]) == []  # GitHub omits a binary or huge patch
    # Entries of the wrong type on purpose: GitHub's list is untrusted JSON.
    junk = cast(list[dict], [None, "junk", {"filename": "src/app.py", "status": "removed", "patch": "@@ -1 +0,0 @@\n-x"}])
    assert check(None, junk) == []


def test_source_files_without_tests_are_listed_five_at_most() -> None:
    def missing(n: int) -> str:
        [finding] = check([{"path": f"src/m{i}.py", "content": "x = 1"} for i in range(n)], None)
        assert (finding.path, finding.line, finding.criterion) == ("src/m0.py", None, TESTS_CRITERION)
        return finding.text

    assert missing(5) == (f"{TESTS_CRITERION}: source files change (src/m0.py, src/m1.py, src/m2.py, src/m3.py, "
                          "src/m4.py) but no test file does")
    assert missing(6).endswith("src/m4.py and 1 more) but no test file does")
    assert missing(8).endswith("src/m4.py and 3 more) but no test file does")


# ---- what is code and what is a comment -----------------------------------------------------------------------

@pytest.mark.parametrize("line, path", [
    ("    # exec(payload) is what we used to do", "app/main.py"),
    ("// eval(userInput) was removed", "web/app.js"),
    (" * exec(cmd) is never called here", "web/app.js"),
    ("/* eval(userInput) */", "web/app.js"),
    ("-- cur.execute(f'SELECT {x} FROM t') in a note", "db/schema.sql"),
])
def test_comment_lines_are_not_code(line: str, path: str) -> None:
    assert in_code(line, path) == []


def test_a_comment_line_does_not_end_the_scan_of_its_file() -> None:
    assert [f.where for f in in_code("# run the user's expression\nexec(payload)")] == ["app/main.py:2"]


@pytest.mark.parametrize("line", [
    'cur.execute("VACUUM " + table)',  # any statement handed to execute() after formatting
    'rows = db.query(f"SELECT name FROM users WHERE id = {uid}")',  # SQL words, through another call
])
def test_formatted_sql_reaching_the_database(line: str) -> None:
    assert said(in_code(line)) == [("critical", *SQL[:1], "app/main.py", 1, SQL[1])]


# ---- apply_gate on reviews of every shape -----------------------------------------------------------------------

def findings() -> list[Finding]:
    return check([{"path": "app.py", "content": f'A = "{KEY}"\nexec(payload)\npassword = "hunter2hunter2"\n'},
                  TEST_FILE], None)


def test_a_review_without_lists_gets_them() -> None:
    out = apply_gate({"verdict": "REJECTED"}, findings())
    assert [i["text"] for i in out["critical"]] == [
        "app.py:1: exposed credential: AWS access key id committed in the code", f"app.py:2: {EVAL[0]}"]
    assert out["warnings"] == [{"text": "app.py:3: a hard-coded secret-like literal; read it from configuration "
                                        "instead", "path": "app.py", "line": 3}]
    assert out["criteria"] == [
        {"criterion": SECRETS_CRITERION, "met": False,
         "note": "app.py:1: exposed credential: AWS access key id committed in the code"},
        {"criterion": INJECTION_CRITERION, "met": False, "note": f"app.py:2: {EVAL[0]}"}]
    assert "summary" not in out  # only an approval that was overridden says so


def test_the_review_given_is_left_as_it_was() -> None:
    review = {"verdict": "APPROVED", "summary": "fine", "critical": [], "warnings": [{"text": "w"}],
              "criteria": [{"criterion": SECRETS_CRITERION, "met": True, "note": "none seen"}]}
    before = copy.deepcopy(review)
    apply_gate(review, findings())
    assert review == before


def test_the_override_is_appended_to_the_models_summary() -> None:
    out = apply_gate({"verdict": "APPROVED", "summary": "  Looks good.  \n"}, findings())
    assert out["summary"] == ("Looks good.\n\n**The deterministic review gate overrode the approval**: 2 MUST "
                              "PASS check(s) failed.")
    out = apply_gate({"verdict": "APPROVED"}, findings())
    assert out["summary"] == "**The deterministic review gate overrode the approval**: 2 MUST PASS check(s) failed."


def test_a_criterion_the_model_named_is_updated_in_place() -> None:
    review = {"verdict": "APPROVED", "criteria": [
        {"note": "an entry without a name is left alone"},
        {"criterion": SECRETS_CRITERION.upper(), "met": True, "note": "none seen."},
        {"criterion": INJECTION_CRITERION, "met": True}]}
    out = apply_gate(review, findings())
    assert out["criteria"] == [
        {"note": "an entry without a name is left alone"},
        {"criterion": SECRETS_CRITERION.upper(), "met": False,
         "note": "none seen. app.py:1: exposed credential: AWS access key id committed in the code"},
        {"criterion": INJECTION_CRITERION, "met": False, "note": f"app.py:2: {EVAL[0]}"}]


def test_a_criterions_note_joins_its_findings_and_is_cut_at_1000_characters() -> None:
    two = check([{"path": "a.py", "content": "exec(x)\neval(y)"}, TEST_FILE], None)
    [entry] = apply_gate({}, two)["criteria"]
    assert entry["note"] == f"a.py:1: {EVAL[0]}; a.py:2: {EVAL[0]}"
    many = check([{"path": "a.py", "content": "\n".join(f"exec(x{i})" for i in range(40))}, TEST_FILE], None)
    [entry] = apply_gate({}, many)["criteria"]
    assert len(entry["note"]) == 1000 and entry["note"].startswith(f"a.py:1: {EVAL[0]}; a.py:2: ")
