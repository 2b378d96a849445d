"""One reading of a failed job, and its signature: the one reader the CI-failure issue and the error-detective share.

What GitHub structures comes first (failed cases of test reports, failure-level annotations), then the job log:
cleaned, its lines matching the same job's green runs marked as noise, scanned for failing tests, the root error
(never from a noise line) and an infrastructure failure. The signature names a failure across runs: the job
plus what failed, with what varies between runs (numbers, shas, ids, paths, durations) taken out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence

from bot.core.ci_output.clean import clean_lines
from bot.core.ci_output.errors import MAX_LINES, root_error
from bot.core.ci_output.infra import recognise
from bot.core.ci_output.noise import noise_lines
from bot.core.ci_output.records import TRAILER, Annotation, Context, Evidence, FailedCase, Infra, Reading, RootError
from bot.core.ci_output.tests import failing_tests

__all__ = ["TRAILER", "Reading", "also_failing", "context_for", "normalise", "read", "read_all", "signature"]

TAIL = 20  # last non-noise lines kept: what a person reads first when no error could be named
_NOISE = [
    (re.compile(r"(?:/tmp|/var/folders|/private/var|/home/runner/work/_temp|[A-Za-z]:\\Users\\[^\\\s]+\\AppData"
                r"\\Local\\Temp)[^\s'\"]*"), "<path>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<id>"),
    (re.compile(r"\b0x[0-9a-f]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{7,64}\b"), "<sha>"),  # a sha or hex id has a digit; "defaced" stays
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|µs|us|ns|s|sec|secs|seconds?|m|min|mins|minutes?|h)\b"), "<time>"),
    (re.compile(r":\d+(?::\d+)?\b"), ":<line>"),  # file:line:col
    # A number, not a digit inside a name: `oauth1` and `oauth2` are two modules, `test_2` and `test_3` two tests.
    (re.compile(r"(?<![a-z_])\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
]
RUNNER_PATH = ".github"  # the path of the runner's own annotations: about the runner (infrastructure), not the code
RUNNER_ERROR = "##[error]"  # how the runner (not a test's output) flags its own errors in a job log
RUNNER_WARNING = "##[warning]"  # the runner's warnings: a deprecation, a retried download; never the failure
TESTS_IN_SIGNATURE = 300  # characters of sorted test names before they are replaced by their count and digest


def normalise(line: str) -> str:
    """`line` without what varies between runs of one failure: temp paths, uuids, hex ids, shas, durations,
    line:col and other numbers (not digits inside names), runs of space; lower case, cut to 200 characters."""
    out = line.strip().lower()
    for pattern, repl in _NOISE:
        out = pattern.sub(repl, out)
    return out.strip()[:200]


def _last_lines(log: str, n: int) -> tuple[str, int]:
    """The last `n` lines of `log` and how many lines came before them: a job fails at its end, and a hostile
    log of millions of lines is not scanned whole (errors.MAX_LINES: the error scan's own bound)."""
    pos = len(log) - 1 if log.endswith("\n") else len(log)
    for _ in range(n):
        pos = log.rfind("\n", 0, pos)
        if pos < 0:
            return log, 0
    return log[pos + 1:], log.count("\n", 0, pos + 1)


def read(evidence: Evidence) -> Reading:
    """What `evidence` says failed: report cases and failure-level annotations first, then the log."""
    text, skipped = _last_lines(evidence.log, MAX_LINES) if isinstance(evidence.log, str) else ("", 0)
    lines = clean_lines(text)
    noise = noise_lines(lines, evidence.green_logs) if evidence.green_logs else frozenset[int]()
    tests = _merged([c.name for c in evidence.cases], failing_tests(lines))
    # The runner's trailer is never the root error, whatever its exit code (Windows' are negative).
    trailers = frozenset(i for i, line in enumerate(lines) if TRAILER.match(line.strip()))
    root = _annotation_root(evidence.annotations) or _shifted(root_error(lines, noise | trailers), skipped) \
        or _case_root(evidence.cases)
    return Reading(job=evidence.job, tests=tuple(tests), root=root,
                   infra=_infra(lines, noise, evidence.annotations, named=bool(tests)),
                   log_lines=skipped + len(lines), noise_lines=len(noise), log_url=evidence.log_url,
                   check_id=evidence.check_id, tail=_tail(lines, noise), annotations=evidence.annotations,
                   cases=evidence.cases)


def _shifted(root: RootError | None, skipped: int) -> RootError | None:
    """`root` with its line number in the whole log (only its end was scanned)."""
    if root is None or not skipped or root.line_number is None:
        return root
    return dataclasses.replace(root, line_number=root.line_number + skipped)


def _infra(lines: list[str], noise: frozenset[int], annotations: tuple[Annotation, ...], *, named: bool) -> Infra | None:
    """The infrastructure failure the job shows. A line green runs print too is never one, nor a runner's
    warning. Once a failing test is named, only the runner's own words count (its ``##[error]`` lines and its
    failure annotations): what a test prints ("API rate limit exceeded", a shutdown message it echoes) is the
    change's failure, not the runner's."""
    runner_notes = [a.message for a in annotations if a.level == "failure" and a.path == RUNNER_PATH]
    if named:
        own = [line for i, line in enumerate(lines) if i not in noise and line.lstrip().startswith(RUNNER_ERROR)]
        return recognise(own + runner_notes)
    kept = [line for i, line in enumerate(lines) if i not in noise and not line.lstrip().startswith(RUNNER_WARNING)]
    # The runner's own failure annotations ("lost communication with the server") name infrastructure too.
    return recognise(kept) or recognise([a.message for a in annotations if a.level == "failure"])


def _test_key(name: str) -> str:
    """One test however it is named: a JUnit report's ``tests.test_x.test_y`` and the log's
    ``tests/test_x.py::test_y`` are the same test."""
    return re.sub(r"\.py(?=::|$)", "", name.strip()).replace("::", ".").replace("/", ".")


def _merged(*names: list[str]) -> list[str]:
    """Test names in order of first mention, each once (a report and the log name the same tests)."""
    out: dict[str, str] = {}
    for name in (n.strip() for group in names for n in group if n.strip()):
        out.setdefault(_test_key(name), name)
    return list(out.values())


def _annotation_root(annotations: tuple[Annotation, ...]) -> RootError | None:
    """The first failure-level annotation of a problem matcher or test reporter (an error with its place)."""
    for a in annotations:
        text = " ".join(f"{a.title}: {a.message}".split()) if a.title and a.title not in a.message else \
            " ".join(a.message.split())
        if a.level == "failure" and a.path != RUNNER_PATH and text and not TRAILER.match(text):
            where = f"{a.path}:{a.start_line}" if a.path and a.start_line else a.path
            return RootError(line=f"{where}: {text}" if where else text, context=tuple(a.message.splitlines()[:12]),
                             line_number=None, source="annotation")
    return None


def _case_root(cases: tuple[FailedCase, ...]) -> RootError | None:
    """A report's first failure message, when neither the annotations nor the log named an error."""
    for c in cases:
        if c.message.strip():
            first = c.message.strip().splitlines()[0]
            return RootError(line=f"{c.name}: {first}", context=tuple(c.message.strip().splitlines()[:12]),
                             source="report")
    return None


def _tail(lines: list[str], noise: frozenset[int]) -> tuple[str, ...]:
    """The last non-blank lines green runs do not also print, without the exit-code trailer."""
    kept = [line for i, line in enumerate(lines) if i not in noise and line.strip() and not TRAILER.match(line.strip())]
    return tuple(kept[-TAIL:])


def signature(reading: Reading, unique: str = "") -> str:
    """The job plus its sorted failing tests, or (no test named) its normalised root error, or its
    infrastructure kind; when nothing could be read, a digest of its normalised last lines, so two unreadable
    failures differ when their logs do. Tests come before the error: two different tests failing on one
    generic line (``E  assert 1 == 2``, ``expect(received).toBe(expected)``) are two failures. A log with no
    line at all is named by its job's check run, else by `unique` (the delivery's check)."""
    if reading.tests:
        names = ", ".join(sorted(reading.tests))
        if len(names) > TESTS_IN_SIGNATURE:
            names = f"{len(reading.tests)} tests {_digest(names)}"
        return f"{reading.job}: tests: {names}"
    if reading.root is not None and (root := normalise(reading.root.line)):
        return f"{reading.job}: {root}"
    if reading.infra is not None:
        return f"{reading.job}: infrastructure: {reading.infra.kind}"
    if reading.tail:
        return f"{reading.job}: unread: {_digest(chr(10).join(normalise(line) for line in reading.tail))}"
    # An empty log (expired, never written, unreadable) tells nothing apart: grouping every such failure of the
    # job under one signature would answer a new failure with "seen again", so each counts as its own. The
    # check run's id is the same whichever delivery (check run, suite, workflow run) read it; its page's URL
    # is not (a job's page for one, the check's for another).
    ident = f"check {reading.check_id}" if reading.check_id is not None else unique or "unknown"
    return f"{reading.job}: empty log: {ident}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def also_failing(reading: Reading, on_default: Sequence[Reading]) -> tuple[str, ...]:
    """What of `reading` also fails on the default branch. When it names failing tests, only those failing
    there too (another test failing there says nothing of this change); only when neither side names a test,
    its root error, when the same job's failure there has the same signature."""
    same_job = [r for r in on_default if r.job == reading.job] or on_default
    if reading.tests:
        there = {_test_key(t) for r in same_job for t in r.tests}
        return tuple(t for t in reading.tests if _test_key(t) in there)
    if reading.root is not None:
        mine = signature(reading)
        if any(not r.tests and signature(r) == mine for r in same_job):
            return (reading.root.line,)
    return ()


def context_for(reading: Reading, on_default: Sequence[Reading], *, default_branch: str | None,
                green_sha: str | None, since_green: Sequence[tuple[str, str]]) -> Context:
    """The context people ask for, from what was gathered about this failure (flaky is learned later)."""
    return Context(also_on_default=also_failing(reading, on_default), default_branch=default_branch,
                   green_sha=green_sha, since_green=tuple(since_green))


def read_all(evidence: Sequence[Evidence], on_default: Sequence[Evidence], *, default_branch: str | None,
             green_sha: str | None, since_green: Sequence[tuple[str, str]]) -> tuple[list[Reading], Context]:
    """Every failed job's reading (the first is the one people read first) and the failure's context."""
    readings = [read(e) for e in evidence]
    if not readings:
        return [], Context(default_branch=default_branch, green_sha=green_sha, since_green=tuple(since_green))
    return readings, context_for(readings[0], [read(e) for e in on_default], default_branch=default_branch,
                                 green_sha=green_sha, since_green=since_green)
