"""The root error of a failed job's log: the first line that explains the failure, as an engineer finds it.

Each line is read without its decoration (``##[error]``, Maven's ``[ERROR]``, sbt's ``[error]``, a BuildKit
step number and elapsed time, ``npm ERR!``) and put in one of four classes:

* a *cascade*: a line that only reports that something earlier failed (the runner's exit-code trailer,
  ``make: *** [...] Error 1``, ``could not compile``, tox's ``InvocationError``, Gradle's ``There were failing
  tests``, test-count summaries); never chosen;
* an *explaining* line: what a framework or compiler prints to say what went wrong (``error[E0425]:``,
  ``file.ts(3,5): error TS2322:``, ``thread 'x' panicked at``, pytest's ``E   ...``, ``AssertionError: ...``,
  ``Failed asserting that ...``, ``expect(received).toBe(expected)``, a qualified Java exception);
* a *header*: a line that opens one test's failure (``--- FAIL:``, ``1) Failure:``, ``● suite › test``,
  ``Failed   Class.Test``, ``Class > test FAILED``, ninja's ``FAILED:``); some frameworks print the message
  on the next line (minitest, PHPUnit, dotnet, ctest's list), so the header's message is the answer when no
  explaining line is in its block;
* a *generic* error line (``error: ...``, ``Error: ...``, ``FATAL``, ``fatal:``, a line the runner marked
  ``##[error]``, Gradle's ``> Process '…' finished with non-zero exit value 1``), the answer when nothing more
  specific comes first or right after it.

A line reporting an infrastructure failure (``infra.kind_of``: no space left, the runner's shutdown) explains
too. The first explaining line, header message or generic line wins, else the first header; lines green runs
also print (``noise``) are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from bot.core.ci_output.infra import kind_of
from bot.core.ci_output.records import RootError

MAX_LINES = 100_000  # read of a log, from its end: a few seconds at most for a hostile one
SCAN_CHARS = 1000  # of each line, matched against the patterns: enough for any prefix; hostile lines stay cheap
BLOCK = 40  # lines after a header that can hold its failure's message
NEAR = 3  # lines after a generic error line in which a more specific one is preferred
CONTEXT_CHARS = 500


class Kind(Enum):
    CASCADE = "cascade"
    EXPLAINING = "explaining"
    HEADER = "header"  # its message, if any, follows: see _MESSAGE_HEADER
    GENERIC = "generic"
    BANNER = "banner"  # ends a header's block (pytest's ``=== FAILURES ===``)
    OTHER = "other"


# Decoration a log puts before a message; the flag says the decoration itself marks an error.
_DECORATION = re.compile(
    r"^(?:\s+|##\[(?P<gha>error|warning|notice|debug)\]|\[\d\d-\d\d \d\d:\d\d:\d\d\.\d+\]|\d\d:\d\d:\d\d(?=\s)"
    r"|\[(?P<bracket>ERROR|error|FATAL|fatal|INFO|info|WARN(?:ING)?|warn(?:ing)?|DEBUG|debug)\]"
    r"|#\d+(?=\s)|\d+\.\d+(?=\s)|(?P<npm>npm ERR!)|\u2502|BUILDSTD(?:ERR|OUT): ?)")


class _Rule:
    """Patterns of one class of line: most are anchored at the start of the line (tried once, with
    ``match``); the few that can sit anywhere are searched, kept apart so the anchored ones stay cheap."""

    def __init__(self, anchored: str, anywhere: str = "") -> None:
        self._anchored = re.compile(anchored)
        self._anywhere = re.compile(anywhere) if anywhere else None

    def hit(self, body: str) -> bool:
        return bool(self._anchored.match(body) or (self._anywhere and self._anywhere.search(body)))


_CASCADE = _Rule(
    r"The operation was canceled|(?:g?make|mingw32-make)(?:\[\d+\])?: \*\*\* \[[^\]]*\].*\s\d+\s*$"
    r"|ninja: build stopped|error: (?:could not compile|failed to compile|aborting due to|test failed, to rerun)"
    r"|(?:warning|error): build failed|ERROR: +\S+: commands failed"
    r"|Execution failed for task|\**FAILURE: Build failed|BUILD FAILED|BUILD FAILURE"
    r"|\* What went wrong:|code ELIFECYCLE|(?:code|errno) \S+$|Exit status \d+|Failed at the \S+ script"
    r"|A complete log of this run|(?:Error: )?The process '.*' failed with exit code \d+"
    r"|(?:error )?Command failed with (?:exit code|status)"
    r"|FAILED \((?:failures|errors)=\d+|Tests? failed\.?$|Errors while running CTest"
    r"|(?:FAIL|ok)\s+\S+\s+[\d.]+s$|FAIL$|Tests run: \d+, Failures: \d+|Found \d+ errors? in \d+ files?"
    r"|Failed to execute goal .*There (?:are|were) test failures|-> \[Help \d+\]|\[Help \d+\]"
    r"|(?:To see the full stack trace|Re-run Maven|For more information about the errors)"
    r"|rake aborted!|Tasks: TOP => |\d+ tests? completed, \d+ failed|\d+ (?:failing|failed)$"
    r"|Error: Process completed|\d+% tests passed|Interrupted: \d+ errors? during"
    r"|Please refer to .* for the individual test results|After correcting the problems, you can resume",
    r"Process completed with exit code -?\d+|InvocationError\b|There were failing tests|ELIFECYCLE"
    r"|ERR_PNPM_RECURSIVE_(?:RUN|EXEC)_FIRST_FAIL"
    r"|did not complete successfully: exit code")

_EXPLAINING = _Rule(
    # compilers and type checkers: file:line[:col]: error ..., file(line,col): error ..., rustc's codes
    r"\S+?(?::\d+(?::\d+)?:|\(\d+(?:,\d+)?\):) ?(?:fatal )?error\b|error\[E\d+\]|error TS\d+:"
    r"|\S+?:\d+:\d+ - error\b|/\S+\.java:\[\d+,\d+\]|e: (?:file://)?\S+:\d+:\d+ |e: \S+: \(\d+, \d+\): "
    r"|\.{0,2}/?[\w./-]+\.go:\d+:\d+: \S"
    # a test's own message: go test's t.Errorf, testify, panics, ctest
    r"|[\w./-]+_test\.go:\d+: \S|Error:\s{2,}\S|Error:\t|panic: |fatal error: |panicked at \S+:\d+:\d+:?$"
    r"|\d+/\d+ Test +#\d+: .*\*{3}(?:Failed|Exception|Timeout)"
    # exceptions: pytest's E lines, Python/JS/Ruby/.NET exceptions, qualified Java ones
    r"|E {2,}\S|(?:[A-Za-z_]\w*\.)+[A-Z]\w*(?:Error|Exception|Failure)\b|Exception in thread "
    r"|[A-Z]\w+(?:Error|Exception)(?: \[\w+\])?(?::\s.*)?$|Unhandled exception\. |\*\* \(\w+(?:\.\w+)*\) "
    # assertion messages
    r"|Failed asserting that |(?:Failed tests|Tests in error): +\S|Assert\.\w+\(\) Failure|Assertion with \S+ failed"
    r"|Failure/Error: "
    r"|expect\(.*\)\.(?:not\.)?(?:resolves\.|rejects\.)?to\w*\("
    # eslint: line:col  error  message  rule
    r"|(?:Error:\s+)?\d+:\d+\s+(?:error|Error:)\s+\S|failed to solve: |Segmentation fault"
    # pnpm's own error codes (its cascade, ERR_PNPM_RECURSIVE_RUN_FIRST_FAIL, is read first above)
    r"|ERR_PNPM_[A-Z0-9_]+ ",
    r"thread '.*?' (?:\(\d+\) )?panicked at|XCTAssert\w* failed|\((?:[A-Z]\w*::)*[A-Z]\w*(?:Error|Exception)\)$"
    r"|: line \d+: .*: command not found$|Aborted \(core dumped\)")

_HEADER = _Rule(
    r"--- FAIL: |_{3,} .+ _{3,}$|(?:FAIL|ERROR): \w+ \([\w.]+\)$|Traceback \(most recent call last\):"
    r"|\S+ > .+ FAILED$|> Task \S+ FAILED$|Task \S+ FAILED$|FAILED: |(?:=> )?ERROR \[[^\]]+\]"
    r"|\S+::\S+ FAILED\b|FAIL +\S|\[gw\d+\] (?:\[\s*\d+%\] )?(?:FAILED|ERROR) \S+::\S")
_MESSAGE_HEADER = _Rule(
    r"\d+\) (?:Failure|Error):$|\d+\) [\w\\]+::\w+|\d+\) test .+ \([\w.]+\)$"
    r"|\d+\) (?:Failed|Error) : |\u25cf .+|[Ff]ailed +[\w.]+(?:\(.*\))?(?: \[[^\]]*\]| \(\d+m?s\))?$"
    r"|The following tests FAILED:|(?:Failures|Errors):$",
    r"<<< (?:FAILURE|ERROR)!$|\*\*\* FAILED \*\*\*$")
_BANNER = re.compile(r"^={3,}|^\u23af{3,}|^-{3,} .+ -{3,}$")
# Gradle's cause under ``* What went wrong:`` when a process it ran died (a test JVM, an Exec task's command)
_GENERIC = re.compile(r"^(?:error|Error|ERROR|fatal|Fatal|FATAL)\b(?! ?(?:Message|Trace|Output)s?:)[:\s]"
                      r"|^\S+: fatal error: |^E: \S|^Error response from daemon: |^FAILED \S+ - \S"
                      r"|^> Process '.+' finished with non-zero exit value \d+")
# npm's own lines inside its ERR! block: the environment it prints first (npm 2-4) says nothing of the failure;
# a ``network`` line that is not its advice names the network error the block is about
_NPM_PREAMBLE = re.compile(r"^(?:Linux|Darwin|Windows_NT|argv|node|npm|syscall|path|cwd|command)\b")
_NPM_NETWORK = re.compile(r"^network (?!This is|In most cases|If you are behind|'proxy' config|and is related)\S")
NPM_BLOCK = 20  # lines of one npm ERR! block in which its explaining line is looked for
# go test indents a test's t.Log/t.Error lines (``file.go:12: message``) under its ``--- FAIL:``
_GO_MESSAGE = re.compile(r"^[\w./-]+\.go:\d+: \S")
# infrastructure that ends the job whatever ran before: it explains the failure better than a generic error
_HARD_INFRA = ("runner-lost", "disk-full", "oom", "killed", "timeout")
_EXPECTED = re.compile(r"^Expected\b")
_RECEIVED = re.compile(r"^(?:Received|Actual|but was|got)\b")
# what sits between a header and its message: a location (``Error:`` before it when copied from a job's page, where
# GitHub shows a problem matcher's annotation), a label, a stack frame, a rerun hint; an exception's
# name alone on its line (``java.lang.AssertionError:``, its message below) is the message, not a label
_NOT_MESSAGE = re.compile(
    r"^(?:(?:Error:\s+)?\S+:\d+(?::\d+)?|\S.* \[\S+:\d+\]:|(?![\w.]*(?:Error|Exception|Failure):$)[\w#.-]+:"
    r"|Error Message:|Stack Trace:|from \S.*|at .+"
    r"|File \".+|# .+|\d+\) .+|\S+\.(?:rb|exs?|py|php|java|cs|js|ts):\d+.*|\u276f .+)$")
_LONG_AFTER = re.compile(r"thread '|panic: |Exception in thread |fatal error: |(?:[A-Za-z_]\w*\.)+[A-Z]\w*Exception")
_EXCEPTION = re.compile(r"[A-Z]\w+(?:Error|Exception)\b")
_STATUS = re.compile(r"(?:Passed|Skipped|Failed|Running|Starting|PASS|SKIP|FAIL|ok)\b")
_PYTHON_FRAME = re.compile(r"^(?:\s|Traceback|During handling|The above exception)")


@dataclass(frozen=True, slots=True)
class _Line:
    """One line as the classifier reads it: its text without decoration, and whether that decoration
    marked an error."""

    body: str
    marked: bool
    npm: bool = False  # the decoration was npm's ``npm ERR!``


def _read(line: str) -> _Line:
    body, marked, npm, previous = line[:SCAN_CHARS], False, False, None
    while previous != body:
        previous = body
        if m := _DECORATION.match(body):
            npm = npm or bool(m["npm"])
            marked = marked or npm or m["gha"] == "error" or (m["bracket"] or "").lower() in ("error", "fatal")
            body = body[m.end():]
    return _Line(body.rstrip(), marked, npm)


def classify(line: str) -> Kind:
    """What kind of line `line` (cleaned) is for finding the root error."""
    return _classify(_read(line))


def _classify(read: _Line) -> Kind:
    body = read.body
    if not body:
        return Kind.OTHER
    if read.npm and _NPM_PREAMBLE.match(body):
        return Kind.OTHER
    if read.npm and _NPM_NETWORK.match(body):
        return Kind.EXPLAINING
    if _CASCADE.hit(body):
        return Kind.CASCADE
    if _MESSAGE_HEADER.hit(body) or _HEADER.hit(body):
        return Kind.HEADER
    if _EXPLAINING.hit(body):
        return Kind.EXPLAINING
    if (infra := kind_of(body)) not in (None, "cancelled"):
        # ``Error: … ECONNRESET`` names the error code; the message under it says what failed
        return Kind.GENERIC if infra == "network" and _GENERIC.match(body) else Kind.EXPLAINING
    if _BANNER.match(body):
        return Kind.BANNER
    if _GENERIC.match(body) or read.marked:
        return Kind.GENERIC
    return Kind.OTHER


class _Scan:
    """The lines of one log with their reading and kind, computed once each and only when asked."""

    def __init__(self, lines: list[str], noise: frozenset[int]) -> None:
        self.lines, self.noise = lines, noise
        self._read: dict[int, _Line] = {}
        self._kinds: dict[int, Kind] = {}

    def body(self, i: int) -> str:
        return self.read(i).body

    def read(self, i: int) -> _Line:
        if i not in self._read:
            self._read[i] = _read(self.lines[i])
        return self._read[i]

    def kind(self, i: int) -> Kind:
        if i in self.noise:
            return Kind.OTHER
        if i not in self._kinds:
            self.body(i)
            self._kinds[i] = _classify(self._read[i])
        return self._kinds[i]

    def explaining(self, i: int) -> bool:
        kind = self.kind(i)
        if kind is Kind.EXPLAINING:
            return True
        # an assertion's "Expected: …" with "Received: …" right below explains on its own
        return kind is Kind.OTHER and bool(_EXPECTED.match(self.body(i))) and any(
            _RECEIVED.match(self.body(j)) for j in range(i + 1, min(len(self.lines), i + 4)))

    def block(self, header: int) -> range:
        """The lines after `header` up to the next header or banner (at most BLOCK)."""
        end = min(len(self.lines), header + 1 + BLOCK)
        for j in range(header + 1, end):
            if self.kind(j) in (Kind.HEADER, Kind.BANNER):
                return range(header + 1, j)
        return range(header + 1, end)

    def message(self, header: int) -> int | None:
        """The line after a message header that says what failed: the first that is not a location,
        label or stack frame."""
        if self.body(header).startswith("--- FAIL: "):
            return next((j for j in self.block(header) if j not in self.noise and _GO_MESSAGE.match(self.body(j))),
                        None)
        if self.body(header).startswith("Traceback"):
            # a Python traceback's message is its first line back at the margin: the exception
            return next((j for j in self.block(header) if self.lines[j].strip() and j not in self.noise
                         and not _PYTHON_FRAME.match(self.lines[j])), None)
        if not _MESSAGE_HEADER.hit(self.body(header)):
            return None
        for j in self.block(header):
            body = self.body(j)
            if j in self.noise or not body or _NOT_MESSAGE.match(body):
                continue
            if _STATUS.match(body):  # the next test's status line: this failure printed no message
                return None
            return j if self.kind(j) in (Kind.OTHER, Kind.GENERIC, Kind.EXPLAINING) else None
        return None


def _first(scan: _Scan) -> int | None:
    """Index of the root error line: the first explaining line, header message or generic line; else the
    first header (``Failed  Class.Test`` with no message printed still says what failed)."""
    first_header = None
    for i in range(max(0, len(scan.lines) - MAX_LINES), len(scan.lines)):
        kind = scan.kind(i)
        if scan.explaining(i):
            return i
        if kind is Kind.HEADER:
            # the framework's own message first (minitest prints it above its Expected/Actual), then the
            # first explaining line of the header's block
            found = scan.message(i)
            if found is None:
                found = next((j for j in scan.block(i) if scan.explaining(j)), None)
            if found is not None:
                return found
            first_header = i if first_header is None else first_header
        elif kind is Kind.GENERIC:
            return _after_generic(scan, i)
    return first_header


def _after_generic(scan: _Scan, i: int) -> int:
    """The root error when generic line `i` comes first: a more specific line right after it (in an npm ERR!
    block, anywhere in the block: npm prints its summary first), else a later line saying the infrastructure
    ended the job, else `i` itself."""
    end = i + 1 + NEAR
    if scan.read(i).npm:
        end = next((j for j in range(i + 1, min(len(scan.lines), i + 1 + NPM_BLOCK)) if not scan.read(j).npm),
                   i + 1 + NPM_BLOCK)
    found = next((j for j in range(i + 1, min(len(scan.lines), end)) if scan.explaining(j)), None)
    if found is None:
        found = next((j for j in range(i + 1, len(scan.lines))
                      if j not in scan.noise and kind_of(scan.body(j)) in _HARD_INFRA), i)
    return found


def _span(scan: _Scan, i: int) -> tuple[int, int]:
    """Lines of context before and after the root error: more after a panic or an uncaught exception (its
    stack and assertion values), more before a Python exception (the traceback that led to it)."""
    body = scan.body(i)
    if _LONG_AFTER.match(body):
        return 2, 12
    after_frames = any(scan.lines[j].startswith((" ", "\t")) for j in range(max(0, i - 3), i))
    if body.startswith("E ") or (after_frames and _EXCEPTION.match(body)):
        return 8, 6
    return 2, 6


def root_error(lines: list[str], noise: frozenset[int] = frozenset()) -> RootError | None:
    """The first error in cleaned `lines` that explains the failure (never the exit-code trailer or a
    downstream cascade); `noise` holds indexes of lines that match green runs' templates. The line is the
    cleaned log line exactly (indentation kept); the context is the lines around it, that line included (the
    same string), in log order. Only the last MAX_LINES lines are read:
    a job fails at its end."""
    scan = _Scan(lines, noise)
    i = _first(scan)
    if i is None:
        return None
    before, after = _span(scan, i)
    # the root line in full (it is quoted exactly), the lines around it cut
    context = tuple(line if j == i else line[:CONTEXT_CHARS]
                    for j, line in enumerate(lines[max(0, i - before):i + after + 1], start=max(0, i - before)))
    return RootError(line=lines[i], context=context, line_number=i + 1, source="log")
