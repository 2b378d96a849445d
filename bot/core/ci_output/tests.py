"""Failing tests named in a log, per framework: each framework is a small record of line patterns and how each
pattern's match becomes the test's name as the framework prints it for a rerun (or as a person copies it).

One pass over the cleaned lines; each line names at most one test (the first framework whose rule accepts it).
Some rules only count inside a section (ctest's "The following tests FAILED:", PHPUnit's "There was 1 failure:"):
a ``Scope`` says which header opens the section. A test named twice in different forms (pytest's header and its
node id, Surefire's class and fully qualified names) is kept once, in its longer form. Untrusted text: lines are
clipped before matching, names are clipped and stripped of control characters, and the result is capped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.core.ci_output.errors import MAX_LINES
from bot.core.ci_output.frames import asserting_frame

MAX_TESTS = 50
MAX_NAME = 300  # characters of one name; longer is not a name people rerun but a hostile or garbled line
MAX_LINE = 4000  # characters of a line that patterns see: keeps matching linear on a megabyte-long line
_RAW_LIMIT = 4 * MAX_TESTS  # names gathered before pruning parents and suites; then the scan stops

Build = Callable[[re.Match[str], Sequence[str], int], str | None]
_ANY = re.compile("")


def _group(m: re.Match[str], lines: Sequence[str], i: int) -> str | None:
    """The default build: the pattern's ``name`` group."""
    return m["name"]


@dataclass(frozen=True, slots=True)
class Scope:
    """A rule's entries count only in a section: the last line matching ``header`` (and not the entry pattern)
    must match ``opens``. ``header`` matching every line means the entries must directly follow the opener (a
    list); ``before_any`` counts entries seen before any header (a log pasted from the middle of the section)."""

    header: re.Pattern[str]
    opens: re.Pattern[str]
    before_any: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    """One line pattern and how its match becomes a test name (``None``: not a failing test after all).

    ``suite``: the name is a file or class, dropped when the same framework names a test;
    ``alias``: a group holding another form of the same test, which this name replaces where it was named."""

    pattern: re.Pattern[str]
    build: Build = _group
    scope: Scope | None = None
    suite: bool = False
    alias: str = ""


@dataclass(frozen=True, slots=True)
class Framework:
    """A test framework's failure lines. ``nested``: the separator of nested tests (Go's ``TestX/sub``); a parent
    whose subtest failed fails only because of it, so only the subtest is named."""

    name: str
    rules: tuple[Rule, ...]
    nested: str = ""


def _c(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _next_lines(lines: Sequence[str], i: int, count: int) -> list[str]:
    """The next `count` non-blank lines after line `i`."""
    found: list[str] = []
    for line in lines[i + 1:i + 1 + 4 * count]:
        if line.strip():
            found.append(line[:MAX_LINE])
            if len(found) == count:
                break
    return found


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


# ---- builds that need more than the matched line ----------------------------------------------------------

_PY_FRAME = _c(r"^(?P<path>[^\s:]+\.py):\d+: in ")


def _pytest_import(m: re.Match[str], lines: Sequence[str], i: int) -> str | None:
    """pytest names an unimportable module by its absolute path; its traceback's first frame has the path
    relative to the rootdir, which is the form the rest of pytest's output (and a rerun) uses."""
    path = m["path"]
    for line in lines[i + 1:i + 6]:
        frame = _PY_FRAME.match(line.strip())
        if frame and path.endswith("/" + frame["path"]):
            return frame["path"]
    workspace = re.match(r"^/home/runner/work/[^/]+/[^/]+/(.+)$", path)  # GitHub Actions' checkout
    return workspace[1] if workspace else path


def _jest_bullet(m: re.Match[str], lines: Sequence[str], i: int) -> str | None:
    """``● describe › test``; a suite that failed to run is named by the ``FAIL file`` line above it; jest's
    configuration notices (``● Validation Warning:``) end with a colon and are not tests."""
    name = m["name"]
    if name == "Test suite failed to run":
        for line in reversed(lines[max(0, i - 30):i]):
            if fail := _JEST_FAIL.match(line[:MAX_LINE]):
                return fail["name"]
        return None
    return None if name.endswith(":") else name


def _jest_unbulleted(m: re.Match[str], lines: Sequence[str], i: int) -> str | None:
    """``describe › test`` whose bullet was cut off: jest indents the failure's message under it."""
    after = _next_lines(lines, i, 1)
    return m["name"] if after and _indent(after[0]) >= 4 and " › " in m["name"] else None


def _vitest(m: re.Match[str], lines: Sequence[str], i: int) -> str | None:
    """``FAIL file > describe > test`` or a suite that failed to load, ``FAIL file [ file ]``."""
    return m["name"] if " > " in m["name"] or m["suite"] else None


def _mocha(m: re.Match[str], lines: Sequence[str], i: int) -> str | None:
    """Mocha's failure list: ``N) full title:`` on one line, or (mocha ≥ 4) the title path over several lines,
    each indented deeper, the last ending with a colon. Joined with spaces, as ``fullTitle()`` is."""
    title = m["title"]
    if title.endswith(":"):
        return title[:-1]
    parts, depth = [title], _indent(m[0])
    for line in lines[i + 1:i + 9]:
        if not line.strip() or _indent(line) <= depth:
            return None
        depth = _indent(line)
        parts.append(line.strip()[:MAX_NAME])
        if line.endswith(":"):
            return " ".join(parts)[:-1]
    return None


_RSPEC_DETAIL = _c(r"^\s+(?:Failure/Error:|Got \d+ failures?\b|Expected pending\b)")


def _rspec(m: re.Match[str], lines: Sequence[str], i: int) -> str | None:
    """``N) description`` counts as RSpec's only when its ``Failure/Error:`` follows."""
    after = _next_lines(lines, i, 1)
    return m["name"] if after and _RSPEC_DETAIL.match(after[0]) else None


_MINITEST_NAME = _c(r"^(?P<name>\S[^#]*#\S.*?)(?: \[[^\]]*\])?:$")


def _minitest(m: re.Match[str], lines: Sequence[str], i: int) -> str | None:
    """``N) Failure:`` / ``N) Error:`` then ``Class#test_name [file:line]:`` on the next line."""
    after = _next_lines(lines, i, 1)
    named = _MINITEST_NAME.match(after[0].strip()) if after else None
    return named["name"] if named else None


def _method_of_class(name: str) -> str:
    """JUnit 4's ``method(pkg.Class)`` as ``pkg.Class.method``, the form Surefire's summary uses."""
    legacy = re.fullmatch(r"(\w+)\(([\w$.]+)\)", name)
    return f"{legacy[2]}.{legacy[1]}" if legacy else name


def _surefire(m: re.Match[str], lines: Sequence[str], i: int) -> str | None:
    return _method_of_class(m["name"])


def _xctest(m: re.Match[str], lines: Sequence[str], i: int) -> str | None:
    """XCTest on macOS prints ``-[Module.Class testX]``, on Linux ``Class.testX``: both as dotted names."""
    objc = re.fullmatch(r"-\[([\w.]+) (\w+)\]", m["name"])
    return f"{objc[1]}.{objc[2]}" if objc else m["name"]


def _scalatest(m: re.Match[str], lines: Sequence[str], i: int) -> str | None:
    """``- test *** FAILED ***`` under its spec's ``Spec:`` line, named ``Spec: test`` as ScalaTest lays it out."""
    for line in reversed(lines[max(0, i - 50):i]):
        if spec := _SCALATEST_SPEC.match(line[:MAX_LINE]):
            return f"{spec['spec']}: {m['name']}"
    return m["name"]


def _ctest(m: re.Match[str], lines: Sequence[str], i: int) -> str | None:
    """``Test #2: name ....***Failed  0.01 sec``: any status but passed, skipped or disabled is a failure
    (``***Timeout``, ``***Exception: SegFault``, ``Not Run``: ctest counts them all as failed)."""
    return None if re.search(r"Passed|Skipped|Disabled", m["status"]) else m["name"]


def _vstest(m: re.Match[str], lines: Sequence[str], i: int) -> str | None:
    """``Failed Name [12 ms]``; without the duration (older VSTest) only in VSTest's aligned column (``Failed   Name``)
    or when ``Error Message:`` follows, so that an English "Failed something" is not taken for a test."""
    after = _next_lines(lines, i, 1)
    aligned = m["gap"] != " "
    return m["name"] if m["duration"] or aligned or (after and after[0].strip() == "Error Message:") else None


# ---- the frameworks ----------------------------------------------------------------------------------------

# sbt lines: a bracketed timestamp (some wrappers), then level tags, several when one sbt runs another; a build of
# many projects (sbt's community build) tags each line with its project: `[17:48:27] [sbt-util] [info] `
_LEVEL = r"(?:\[[^\]]*\d[^\]]*\] )?(?:\[[\w.-]+\] )*"
_JEST_FAIL = _c(r"^\s*FAIL\s+(?P<name>\S+\.[cm]?[jt]sx?)(?:\s+\([\d.]+ m?s\))?$")
_SCALATEST_SPEC = _c(rf"^{_LEVEL}(?P<spec>[A-Z][\w$]*):$")
_DURATION = r"(?:< ?)?\d[\d.,]* ?(?:ms|s|m|h|sec)"

FRAMEWORKS: tuple[Framework, ...] = (
    Framework("pytest", (
        Rule(_c(r"^\s*(?:\[gw\d+\] (?:\[\s*\d+%\] )?)?(?:FAILED|FAIL|ERROR) "
                r"(?P<name>[^\s:]+\.py(?:::[^\s\[]+)*+(?:\[.*?\])?)(?: - .*)?$")),
        Rule(_c(r"^\s*(?P<name>[^\s:]+\.py::[^\s\[]+(?:\[.*?\])?) (?:FAILED|ERROR)(?:\s+\[\s*\d+%\])?$")),
        Rule(_c(r"^\s*_+ ERROR collecting (?P<name>\S+) _+$")),
        Rule(_c(r"^\s*ImportError while importing test module '(?P<path>[^']+)'"), _pytest_import),
        # a test's section header: a fallback, merged into the node id when the summary names it too
        Rule(_c(r"^\s*_{3,} (?:ERROR at (?:setup|teardown) of )?(?P<name>[\w.\[][^ ]*(?: [^_ ][^ ]*)*) _{3,}$")),
    )),
    Framework("unittest", (
        Rule(_c(r"^\s*(?:FAIL|ERROR): (?P<name>\w+ \([\w.]+\)(?: .*)?)$")),  # subtests add `[msg] (i=1)`
        Rule(_c(r"^\s*(?P<name>\w+ \([\w.]+\)) \.\.\. (?:FAIL|ERROR)$")),
    )),
    Framework("go test", (
        # a top-level name with GOMAXPROCS after it (`TestResolver-4`: old Go, or -cpu) is the test without it: a
        # Go identifier has no `-`
        Rule(_c(r"^\s*--- FAIL: (?P<name>\w+(?=-\d+(?:\s|$))|\S+)")),
        Rule(_c(r"^\s*=== FAIL: \S+ (?P<name>\S+)")),  # gotestsum
        # `panic: test timed out` lists the tests still running: the one that hung is among them
        Rule(_c(r"^\s+(?P<name>(?:Test|Example|Fuzz|Benchmark)\S*) \(\w+\)$"),
             scope=Scope(_ANY, _c(r"^\s*running tests:$"))),
    ), nested="/"),
    Framework("cargo test", (
        Rule(_c(r"^\s*test (?P<name>\S.*?) \.\.\. FAILED$")),
        Rule(_c(r"^\s*---- (?P<name>\S.*?) (?:stdout|output) ----$")),
        # libtest runs each test on a thread named after it; `main` is a binary's own thread
        Rule(_c(r"^\s*thread '(?P<name>(?!main')[A-Za-z_]\w*(?:::\w+)*)' (?:\(\d+\) )?panicked at")),
        Rule(_c(r"^ {4}(?P<name>[A-Za-z_]\w*(?:::\w+)*|\S+\.rs - .+)$"), scope=Scope(_ANY, _c(r"^failures:$"))),
        Rule(_c(rf"^\s*(?:FAIL|SIGSEGV|SIGABRT|TIMEOUT) \[\s*{_DURATION}\] (?:\S+ )?(?P<name>\S+)$")),  # nextest
    )),
    Framework("vitest", (
        Rule(_c(r"^\s*FAIL\s+(?:\|[^|]*\|\s+)?(?P<name>\S+\.\w+(?: > .+?)?)(?P<suite> \[ \S+ \])?$"), _vitest),
    )),
    Framework("jest", (
        Rule(_c(r"^\s*● (?P<name>\S.*)$"), _jest_bullet),
        Rule(_c(r"^(?P<name>[^\s●›][^●›]* › .+)$"), _jest_unbulleted),
        Rule(_JEST_FAIL, suite=True),
    )),
    Framework("exunit", (
        Rule(_c(r"^\s*\d+\) (?P<name>(?:test|doctest|property) .+ \([\w.]+\))$")),
        Rule(_c(r"^\s*\d+\) (?P<name>[\w.]+): failure on setup_all callback")),
    )),
    Framework("dotnet test", (
        Rule(_c(rf"^\s*Failed(?P<gap>\s+)(?P<name>[^\s(\[!:-][^\s(\[]*(?:\(.*\))?)(?:\s+\[(?P<duration>{_DURATION})\])?$"),
             _vstest),
        Rule(_c(rf"^\s*failed (?P<name>\S.*?) \((?:{_DURATION} ?)+\)$")),  # Microsoft.Testing.Platform
        Rule(_c(r"^\s*\[xUnit\.net [\d:.]+\]\s+(?P<name>\S.*?) \[FAIL\]$")),
        Rule(_c(r"^\s*\d+\) (?:Failed|Error) : (?P<name>\S+)$")),  # nunit3-console
    )),
    Framework("minitest", (
        Rule(_c(r"^\s*(?:\d+\) )?(?:Failure|Error):$"), _minitest),
    )),
    Framework("phpunit", (
        Rule(_c(r"^\s*\d+\) (?P<name>[\w\\]+::\w+(?: with data set (?:#\d+|\"[^\"]*\"))?)(?: \(.*\))?$"),
             scope=Scope(_c(r"^\s*There (?:was|were) \d+ "), _c(r".*\b(?:failures?|errors?):$"), before_any=True)),
    )),
    Framework("rspec", (
        Rule(_c(r"^\s*\d+\) (?P<name>\S.*)$"), _rspec),
        Rule(_c(r"^\s*rspec (?P<q>['\"]?)(?P<name>\S+?:[\d:\[\]]+)(?P=q) # (?P<desc>.+)$"), alias="desc"),
    )),
    Framework("mocha", (
        Rule(_c(r"^\s*\d+\) (?P<title>(?!(?:Failure|Error):$)\S.*)$"), _mocha),
    )),
    Framework("surefire", (
        Rule(_c(r"^\s*(?:\[ERROR\] )?(?P<name>[\w$.]+(?:\(.*?\))?(?:\[\d+\])?)\s+(?:-- )?Time elapsed:.*<<< "
                r"(?:FAILURE|ERROR)!$"), _surefire),
        Rule(_c(r"^(?:\[ERROR\])?\s+(?:Run \d+: )?(?P<name>[\w$.>]+\.[\w$]+(?:\(.*?\))?(?:\[\d+\])?|\w+\([\w$.]+\))"
                r"(?::|\s|$)"), _surefire,
             scope=Scope(_c(r"^(?:\[(?:ERROR|WARNING|INFO)\] (?![\w$.]+\.[\w$]+\s*$)\S|(?:Results|Tests run|Failed tests|"
                            r"Tests in error)\b)"),
                         _c(r"^(?:\[ERROR\] )?(?:(?:Failures|Errors):\s*$|Failed tests:|Tests in error:)"))),
        Rule(_c(r"^(?:Failed tests|Tests in error):\s+(?P<name>\w+\([\w$.]+\)|[\w$.]+\.[\w$]+)"), _surefire),
    )),
    Framework("gradle", (
        Rule(_c(r"^\s*Gradle suite > Gradle test > (?P<name>[\w$.]+) FAILED$")),  # TestNG's default suite names
        Rule(_c(r"^\s*(?P<name>[\w$.]+ > .+?) FAILED$")),
    )),
    Framework("ctest", (
        Rule(_c(r"^\s*\d+/\d+ Test\s+#\d+: (?P<name>\S+) \.*+\s*+(?P<status>\S.*?)\s+[\d.]+ sec$"), _ctest),
        Rule(_c(r"^\s*\d+ - (?P<name>\S+) \([^)]*\)"), scope=Scope(_ANY, _c(r"^The following tests FAILED:$"))),
    )),
    Framework("sbt", (
        Rule(_c(rf"^{_LEVEL}\[error\]\s+(?P<name>[\w$.]+)$"), suite=True,
             scope=Scope(_ANY, _c(rf"^{_LEVEL}\[error\] (?:Failed tests|Error during tests):$"))),
        Rule(_c(rf"^{_LEVEL}\s*- (?P<name>.+?) \*\*\* FAILED \*\*\*(?: \(\d+ \w+\))?$"), _scalatest),
        Rule(_c(rf"^{_LEVEL}Test (?P<name>[\w$.]+) failed: ")),  # JUnit tests under sbt (junit-interface)
        Rule(_c(rf"^{_LEVEL}==> X (?P<name>\S.*?) +{_DURATION}\b")),  # munit
    )),
    Framework("swift test", (
        Rule(_c(r"^\s*Test Case '(?P<name>[^']+)' failed \("), _xctest),
        Rule(_c(r"^.+?\.swift:\d+: error: (?P<name>-\[[\w.]+ \w+\]|[\w.]+) : "), _xctest),
        Rule(_c(r"^[✘✗] Test (?P<name>.+?) (?:failed after|recorded an issue)")),  # swift-testing
    )),
)


# ---- the scan ------------------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Hit:
    name: str
    framework: Framework
    rule: int
    suite: bool


_RULES: tuple[tuple[Framework, Rule], ...] = tuple((fw, rule) for fw in FRAMEWORKS for rule in fw.rules)
# what a runner around the test runner puts before each line: BuildKit's `#12 3.456 ` (tests run in a
# `docker build`), docker compose's `service-1  | `, a Nix build's `       > `, Fedora mock's `BUILDSTDERR: `
_WRAPPER = re.compile(r"^(?:#\d+ \d+\.\d+ |[\w.-]+\s+\| |\s*> |BUILDSTD(?:ERR|OUT): )")
_SEPARATORS = re.compile(r"::|[.#/\\]| [>›] ")


def _clean(name: str) -> str:
    """A name safe to show: no control or bidi characters, clipped."""
    kept = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf"))
    return kept.strip()[:MAX_NAME]


def _same_test(a: str, b: str) -> bool:
    """Whether `a` and `b` name one test in two forms: one is the other's tail at a separator
    (``TestDistribution.test_x`` and ``testing/acceptance_test.py::TestDistribution::test_x``)."""
    x, y = _SEPARATORS.sub("\x1f", a), _SEPARATORS.sub("\x1f", b)
    return x.endswith("\x1f" + y) or y.endswith("\x1f" + x)


def _add(hits: list[_Hit], hit: _Hit, alias: str) -> None:
    for old in hits:
        if alias and old.name == alias:
            old.name, old.rule = hit.name, hit.rule  # the rerun form replaces the description
            return
        if old.name == hit.name:
            old.suite = old.suite and hit.suite
            return
        if old.rule != hit.rule and _same_test(old.name, hit.name):
            old.name = max(old.name, hit.name, key=len)
            return
    hits.append(hit)


def _prune(hits: list[_Hit]) -> list[_Hit]:
    """Without suites of a framework that named tests, and without parents of failed subtests."""
    named = {h.framework.name for h in hits if not h.suite}
    kept = [h for h in hits if not (h.suite and h.framework.name in named)]
    return [h for h in kept if not (h.framework.nested and any(
        o.framework is h.framework and o.name.startswith(h.name + h.framework.nested) for o in kept))]


def failing_tests(lines: list[str]) -> list[str]:
    """Every failing test named in cleaned log `lines`, in order of first mention, deduplicated, at most
    ``MAX_TESTS``; ``[]`` when nothing failed as a test (a build, lint or infrastructure failure)."""
    opened: dict[int, bool] = {}
    hits: list[_Hit] = []
    # Only the end of a long log is read, as by the root-error scan: a hostile log of millions of lines costs
    # no more than MAX_LINES of them.
    view = [_WRAPPER.sub("", full[:MAX_LINE], count=1) for full in lines[-MAX_LINES:]]
    for i, line in enumerate(view):
        claimed = False
        for k, (framework, rule) in enumerate(_RULES):
            m = rule.pattern.match(line)
            if rule.scope is not None:
                if m is None:
                    if rule.scope.header.match(line):
                        opened[k] = rule.scope.opens.match(line) is not None
                    continue
                if not opened.get(k, rule.scope.before_any):
                    continue
            if m is None or claimed:
                continue
            name = rule.build(m, view, i)
            if name and (name := _clean(name)):
                claimed = True
                alias = _clean(m[rule.alias]) if rule.alias else ""
                _add(hits, _Hit(name, framework, k, rule.suite), alias)
        if len(hits) >= _RAW_LIMIT:
            break
    named = [h.name for h in _prune(hits)][:MAX_TESTS]
    return named or asserting_frame(view)
