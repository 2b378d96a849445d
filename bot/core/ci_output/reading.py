"""One reading of a failed job, and its signature: the one reader the CI-failure issue and the error-detective share.

What GitHub structures comes first (failed cases of test reports, failure-level annotations), then the job log:
cleaned, its lines matching the same job's green runs marked as noise, scanned for failing tests, the root error
(never from a noise line) and an infrastructure failure. The signature names a failure across runs: the job
plus what failed, with what varies between runs (numbers, shas, ids, paths, durations) taken out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.ci_output.clean import clean_lines
from bot.core.ci_output.errors import root_error
from bot.core.ci_output.infra import recognise
from bot.core.ci_output.noise import noise_lines
from bot.core.ci_output.records import Annotation, Context, Evidence, FailedCase, Reading, RootError, Source
from bot.core.ci_output.tests import failing_tests

TAIL = 20  # last non-noise lines kept: what a person reads first when no error could be named
# The runner's closing line on every failed Actions job, and its problem-matcher twin: never the failure.
TRAILER = re.compile(r"^(?:##\[error\]|Error: )?Process completed with exit code \d+\.?$")
_NOISE = [
    (re.compile(r"(?:/tmp|/var/folders|/private/var|/home/runner/work/_temp|[A-Za-z]:\\Users\\[^\\\s]+\\AppData"
                r"\\Local\\Temp)[^\s'\"]*"), "<path>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<id>"),
    (re.compile(r"\b0x[0-9a-f]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{7,64}\b"), "<sha>"),  # a sha or hex id has a digit; "defaced" stays
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|µs|us|ns|s|sec|secs|seconds?|m|min|mins|minutes?|h)\b"), "<time>"),
    (re.compile(r":\d+(?::\d+)?\b"), ":<line>"),  # file:line:col
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
]
RUNNER_PATH = ".github"  # the path of the runner's own annotations: about the runner (infrastructure), not the code
TESTS_IN_SIGNATURE = 300  # characters of sorted test names before they are replaced by their count and digest


@dataclass(frozen=True, slots=True)
class FullReading(Reading):
    """A Reading with what the digest and the signature need besides it: the last non-noise lines of the log
    (for a failure nothing could be read from), and the annotations and report cases it was read from.
    (records.Reading does not carry them yet; once it does, this goes.)"""

    tail: tuple[str, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    cases: tuple[FailedCase, ...] = ()


def normalise(line: str) -> str:
    """`line` without what varies between runs of one failure: temp paths, uuids, hex ids, shas, durations,
    line:col and other numbers, runs of space; lower case, cut to 200 characters."""
    out = line.strip().lower()
    for pattern, repl in _NOISE:
        out = pattern.sub(repl, out)
    return out.strip()[:200]


def read(evidence: Evidence) -> FullReading:
    """What `evidence` says failed: report cases and failure-level annotations first, then the log."""
    lines = clean_lines(evidence.log)
    noise = noise_lines(lines, evidence.green_logs) if evidence.green_logs else frozenset[int]()
    tests = _merged([c.name for c in evidence.cases], failing_tests(lines))
    root = _annotation_root(evidence.annotations) or root_error(lines, noise) or _case_root(evidence.cases)
    sources: list[Source] = []
    sources += ["report"] if evidence.cases else []
    sources += ["annotation"] if evidence.annotations else []
    sources += ["log"] if any(line.strip() for line in lines) else []
    # The runner's own failure annotations ("lost communication with the server") name infrastructure too.
    infra = recognise(lines) or recognise([a.message for a in evidence.annotations if a.level == "failure"])
    return FullReading(job=evidence.job, tests=tuple(tests), root=root, infra=infra,
                       log_lines=len(lines), noise_lines=len(noise), log_url=evidence.log_url,
                       sources=tuple(sources), tail=_tail(lines, noise), annotations=evidence.annotations,
                       cases=evidence.cases)


def _merged(*names: list[str]) -> list[str]:
    """Test names in order of first mention, each once (a report and the log name the same tests)."""
    return list(dict.fromkeys(n.strip() for group in names for n in group if n.strip()))


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


def signature(reading: FullReading, unique: str = "") -> str:
    """The job plus the normalised root error, or its sorted failing tests, or its infrastructure kind; when
    nothing could be read, a digest of its normalised last lines, so two unreadable failures differ when their
    logs do. A log with no line at all is named by its job's page, else by `unique` (the check's id)."""
    if reading.root is not None and (root := normalise(reading.root.line)):
        return f"{reading.job}: {root}"
    if reading.tests:
        names = ", ".join(sorted(reading.tests))
        if len(names) > TESTS_IN_SIGNATURE:
            names = f"{len(reading.tests)} tests {_digest(names)}"
        return f"{reading.job}: tests: {names}"
    if reading.infra is not None:
        return f"{reading.job}: infrastructure: {reading.infra.kind}"
    if reading.tail:
        return f"{reading.job}: unread: {_digest(chr(10).join(normalise(line) for line in reading.tail))}"
    # An empty log (expired, never written, unreadable) tells nothing apart: grouping every such failure of the
    # job under one signature would answer a new failure with "seen again", so each counts as its own.
    return f"{reading.job}: empty log: {reading.log_url or unique or 'unknown'}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def also_failing(reading: FullReading, on_default: Sequence[FullReading]) -> tuple[str, ...]:
    """What of `reading` also fails on the default branch: its failing tests failing there too, else its root
    error when the same job's failure there has the same signature."""
    same_job = [r for r in on_default if r.job == reading.job] or on_default
    shared = tuple(t for t in reading.tests if any(t in r.tests for r in same_job))
    if shared:
        return shared
    if reading.root is not None:
        mine = signature(reading)
        if any(signature(r) == mine for r in same_job):
            return (reading.root.line,)
    return ()


def context_for(reading: FullReading, on_default: Sequence[FullReading], *, default_branch: str | None,
                green_sha: str | None, since_green: Sequence[tuple[str, str]]) -> Context:
    """The context people ask for, from what was gathered about this failure (flaky is learned later)."""
    return Context(also_on_default=also_failing(reading, on_default), default_branch=default_branch,
                   green_sha=green_sha, since_green=tuple(since_green))


def read_all(evidence: Sequence[Evidence], on_default: Sequence[Evidence], *, default_branch: str | None,
             green_sha: str | None, since_green: Sequence[tuple[str, str]]) -> tuple[list[FullReading], Context]:
    """Every failed job's reading (the first is the one people read first) and the failure's context."""
    readings = [read(e) for e in evidence]
    if not readings:
        return [], Context(default_branch=default_branch, green_sha=green_sha, since_green=tuple(since_green))
    return readings, context_for(readings[0], [read(e) for e in on_default], default_branch=default_branch,
                                 green_sha=green_sha, since_green=since_green)
