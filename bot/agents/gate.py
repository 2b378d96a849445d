"""The deterministic review gate: checks every review runs, model or no model.

A model reviewer can be talked into approving; these checks cannot. They cover the MUST PASS items a
pattern can decide (exposed credentials, obvious injection, missing tests) and cite path:line, and
``apply_gate`` makes a critical finding reject the change whatever the model said.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from bot.core.findings import diff_lines, fingerprint, present
from bot.core.secrets import REDACTED, TOKEN_PATTERNS, may_hold_token

_GENERIC_SECRET = re.compile(
    r"""(?i)\b\w*(?:password|passwd|pwd|secret|token|api_?key)\w*["']?\s*[:=]\s*["']([^"'\s]{8,})["']""")
_PLACEHOLDER = re.compile(r"[{}$<>]|^(?:x+|\*+|changeme|example\w*|placeholder|dummy\w*|your[-_].*)$", re.I)

_FORMATTED = re.compile(r"""\bf["'][^"']*\{|["']\s*%\s*[\w(]|["']\s*\+|\+\s*["']|\.format\(""")
_SQL_CALL = re.compile(r"\b(?:execute|executemany|executescript|raw|query)\(")
_SQL_WORDS = re.compile(r"(?i)\b(?:select\b.+\bfrom|insert\s+into|update\b.+\bset|delete\s+from|drop\s+table)\b")
_SQL_ASSIGN = re.compile(r"^\s*(\w+)\s*[+]?=\s*(.*)$")
_SHELL = re.compile(r"\b(?:subprocess\.)?(?:run|call|check_call|check_output|Popen|getoutput|getstatusoutput)"
                    r"\(\s*(.*)shell\s*=\s*True")
_OS_SYSTEM = re.compile(r"\bos\.(?:system|popen)\(\s*(.*)")
_EVAL = re.compile(r"(?<![\w.])(?:eval|exec)\(\s*(.*)")
_LITERAL_ARG = re.compile(r"""^(?:[rbu]?"[^"{}]*"|[rbu]?'[^'{}]*')\s*[,)]""")

CODE_SUFFIXES = frozenset({".py", ".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs", ".go", ".rb", ".java", ".kt", ".rs",
                           ".php", ".cs", ".swift", ".scala", ".c", ".cc", ".cpp", ".h", ".hpp", ".m", ".ex", ".exs",
                           ".clj", ".dart", ".lua", ".pl", ".sql", ".sh"})
_TEST_PATH = re.compile(r"(?i)(?:^|/)(?:tests?|__tests__|spec|specs|testing)/|(?:^|/)test_[^/]+$|"
                        r"_test\.[a-z]+$|\.(?:test|spec)\.[a-z]+$|_spec\.rb$|Tests?\.(?:java|kt|cs|swift)$|"
                        r"(?:^|/)conftest\.py$")
TESTS_CRITERION = "Tests exist for new functionality"
SECRETS_CRITERION = "No exposed secrets or credentials"
INJECTION_CRITERION = "No SQL injection, XSS, or OWASP Top 10 vulnerabilities"


@dataclass(frozen=True)
class Finding:
    """One gate finding; critical ones fail a MUST PASS item (`criterion`)."""

    severity: str  # "critical" | "warning"
    text: str
    path: str | None = None
    line: int | None = None
    criterion: str = ""
    rule: str = ""  # which check found it: part of its stable id across pushes (bot/core/findings.py)
    # A credential's fingerprint: its stable id comes from the credential, not from the line around it (an edit
    # next to it on its line is the same credential). Not compared: the finding is the same wherever it points.
    anchor: str = field(default="", compare=False)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.path and self.line else self.path or ""

    def item(self) -> dict[str, Any]:
        """The review result's item shape: {text, path?, line?}."""
        out: dict[str, Any] = {"text": f"{self.where}: {self.text}" if self.where else self.text}
        if self.path:
            out["path"] = self.path
        if self.line:
            out["line"] = self.line
        return out


ChangedFile = tuple[str, list[tuple[int, str]], bool]  # (path, numbered added lines, written by the model)


def _files(changes: Iterable[dict] | None, patches: Iterable[dict] | None) -> list[ChangedFile]:
    """Every changed file with the lines it adds."""
    out = [(str(c.get("path", "")), list(enumerate(str(c.get("content", "")).splitlines(), 1)), True)
           for c in changes or () if isinstance(c, dict)]
    out += [(str(p.get("filename", "")), [(n, text) for n, text, new in diff_lines(str(p.get("patch") or "")) if new], False)
            for p in patches or () if isinstance(p, dict) and present(p)]
    return out


def _secrets(path: str, lines: list[tuple[int, str]], model_written: bool) -> Iterator[Finding]:
    for n, text in lines:
        hinted = may_hold_token(text)  # most lines hold no literal any credential pattern needs: searched once
        for name, pattern in TOKEN_PATTERNS if hinted else ():
            # Each distinct credential on the line is its own finding: with only the first, a second one would
            # surface as new (and the first as fixed) the day the first is taken out.
            for key in dict.fromkeys(m[0] for m in pattern.finditer(text)):
                yield Finding("critical", f"exposed credential: {name} committed in the code",
                              path, n, SECRETS_CRITERION, rule=f"credential:{name}", anchor=fingerprint(key))
        m = _GENERIC_SECRET.search(text)
        if m and not _PLACEHOLDER.search(m[1]) and not (hinted and any(p.search(text) for _, p in TOKEN_PATTERNS)):
            yield Finding("warning", "a hard-coded secret-like literal; read it from configuration instead",
                          path, n, SECRETS_CRITERION, rule="secret-literal", anchor=fingerprint(m[1]))
        if model_written and REDACTED in text:
            yield Finding("critical", "a credential was found in this change and redacted before review; "
                          "the change must read it from configuration", path, n, SECRETS_CRITERION,
                          rule="redacted-credential")


def secrets_in(path: str, text: str) -> list[Finding]:
    """The credential checks on a whole file's text: for a file GitHub sends without a diff (a binary file, or
    a diff too large to show), where the added lines cannot be told apart."""
    return list(dict.fromkeys(_secrets(path, list(enumerate(text.splitlines(), 1)), False)))


def _is_comment(text: str) -> bool:
    return text.lstrip().startswith(("#", "//", "*", "/*", "--"))


def _sql_injection(text: str, formatted: bool, sql_vars: set[str]) -> bool:
    """A database call given SQL built by formatting, inline or through a variable assigned so earlier."""
    call = _SQL_CALL.search(text)
    if call is None:
        return False
    if formatted and ("execute" in call[0] or _SQL_WORDS.search(text)):
        return True
    arg = re.match(r"\s*(\w+)\s*[,)]", text[call.end():])
    return arg is not None and arg[1] in sql_vars


def _injection(path: str, lines: list[tuple[int, str]]) -> Iterator[Finding]:
    sql_vars: set[str] = set()
    for n, text in lines:
        if _is_comment(text):
            continue
        formatted = _FORMATTED.search(text) is not None
        if (m := _SQL_ASSIGN.match(text)) and formatted and _SQL_WORDS.search(m[2]):
            sql_vars.add(m[1])
        if _sql_injection(text, formatted, sql_vars):
            yield Finding("critical", "SQL built by string formatting is passed to the database; "
                          "use query parameters", path, n, INJECTION_CRITERION, rule="sql-injection")
        if (m := _SHELL.search(text)) and not _LITERAL_ARG.match(m[1]):
            yield Finding("critical", "a shell command (shell=True) is built from non-literal input; "
                          "pass an argument list without shell=True", path, n, INJECTION_CRITERION,
                          rule="shell-injection")
        if (m := _OS_SYSTEM.search(text)) and not _LITERAL_ARG.match(m[1]):
            yield Finding("critical", "os.system/os.popen runs a command built from non-literal input; "
                          "use subprocess with an argument list", path, n, INJECTION_CRITERION,
                          rule="os-command")
        if (m := _EVAL.search(text)) and not _LITERAL_ARG.match(m[1]):
            yield Finding("critical", "eval/exec on non-literal input can run attacker-supplied code",
                          path, n, INJECTION_CRITERION, rule="eval")


def is_test_path(path: str) -> bool:
    return bool(_TEST_PATH.search(path))


def is_code_path(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in CODE_SUFFIXES


def _tests(files: list[ChangedFile]) -> Iterator[Finding]:
    touched = [p for p, lines, _ in files if lines]
    code = [p for p in touched if is_code_path(p) and not is_test_path(p)]
    if code and not any(is_test_path(p) for p in touched):
        # A file name is the PR author's: its control and format characters out (a right-to-left override
        # would show it as another name), in this text that is posted as prose and filed as an issue title.
        shown = ", ".join("".join(c for c in p if c.isprintable()) for p in code[:5]) + (
            f" and {len(code) - 5} more" if len(code) > 5 else "")
        yield Finding("critical", f"{TESTS_CRITERION}: source files change ({shown}) but no test file does",
                      code[0], None, TESTS_CRITERION, rule="missing-tests")


def check(changes: list[dict] | None, patches: list[dict] | None) -> list[Finding]:
    """Findings for proposed `changes` ([{path, content}]) and/or a PR's `patches` ([{filename, patch}]).

    Only added lines of patches are checked: code the change removes is not its fault.
    """
    files = _files(changes, patches)
    found: list[Finding] = []
    for path, lines, model_written in files:
        found += _secrets(path, lines, model_written)
        if is_code_path(path):
            found += _injection(path, lines)
    found += _tests(files)
    return list({(f, f.anchor): f for f in found}.values())  # two credentials on one line stay two


def apply_gate(review: dict[str, Any], findings: Iterable[Finding]) -> dict[str, Any]:
    """`review` with the gate's findings merged in; any critical finding forces REJECTED.

    The model cannot approve past the gate: its verdict, `passed` and the failed MUST PASS criteria
    are overwritten, and the summary says the gate overrode it.
    """
    out = copy.deepcopy(review)
    findings = list(findings)
    for key, severity in (("critical", "critical"), ("warnings", "warning")):
        items = out.setdefault(key, [])
        seen = {i.get("text") for i in items if isinstance(i, dict)}
        items += [f.item() for f in findings if f.severity == severity and f.item()["text"] not in seen]
    critical = [f for f in findings if f.severity == "critical"]
    if not critical:
        return out
    if out.get("verdict") == "APPROVED":
        out["summary"] = (f"{out.get('summary', '').rstrip()}\n\n**The deterministic review gate overrode the "
                          f"approval**: {len(critical)} MUST PASS check(s) failed.").lstrip()
    out["verdict"], out["passed"] = "REJECTED", False
    criteria = out.setdefault("criteria", [])
    for name in dict.fromkeys(f.criterion for f in critical if f.criterion):
        note = "; ".join(f.item()["text"] for f in critical if f.criterion == name)[:1000]
        entry = next((c for c in criteria if c.get("criterion", "").lower() == name.lower()), None)
        if entry is None:
            criteria.append({"criterion": name, "met": False, "note": note})
        else:
            entry.update(met=False, note=f"{entry.get('note', '')} {note}".strip())
    return out
