"""The records the CI-output reader passes around; no logic beyond what each record says about itself."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

InfraKind = Literal["runner-lost", "oom", "killed", "timeout", "network", "rate-limit", "disk-full", "cancelled"]
Source = Literal["annotation", "report", "log", "output"]
# The runner's closing line on every failed Actions job (a log line, its problem-matcher twin, or the runner's
# annotation's message): it says the step failed, never why. Windows' crash codes are negative (-1073741819).
# The one pattern for it: every reader of CI output drops it with this.
TRAILER = re.compile(r"^(?:##\[error\]|Error: )?Process completed with exit code -?\d+\.?$")


@dataclass(frozen=True, slots=True)
class Annotation:
    """One check-run annotation as GitHub returns it (``annotation_level``: notice, warning or failure)."""

    path: str
    start_line: int | None
    level: str
    title: str
    message: str


@dataclass(frozen=True, slots=True)
class FailedCase:
    """A failed or errored test case from a test report (JUnit/xUnit XML)."""

    name: str  # as a person would rerun it: ``classname.name`` or the framework's own id
    message: str = ""
    file: str | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Evidence:
    """What GitHub gave for one failed job. ``log`` is the raw job log (or a check run's output text);
    ``green_logs`` the same job's logs from its last few successful runs, for noise templates."""

    job: str
    log: str = ""
    annotations: tuple[Annotation, ...] = ()
    cases: tuple[FailedCase, ...] = ()
    green_logs: tuple[str, ...] = ()
    log_url: str | None = None
    check_id: int | None = None  # the job's check run: the same whichever delivery (run, suite, check) read it


@dataclass(frozen=True, slots=True)
class RootError:
    """The first error that explains the failure, with a few lines around it (all cleaned log text)."""

    line: str
    context: tuple[str, ...] = ()
    line_number: int | None = None  # 1-based, in the cleaned log; for a link to the log line
    source: Source = "log"


@dataclass(frozen=True, slots=True)
class Infra:
    """An infrastructure failure: the runner, not the change, failed."""

    kind: InfraKind
    line: str


@dataclass(frozen=True, slots=True)
class Context:
    """What people ask about a failure besides the failure itself (point 7 of issue 15)."""

    also_on_default: tuple[str, ...] = ()  # failing tests (or the root error) also failing on the default branch
    default_branch: str | None = None
    flaky: bool = False
    green_sha: str | None = None
    since_green: tuple[tuple[str, str], ...] = ()  # (sha, first line of message), newest first


@dataclass(frozen=True, slots=True)
class Reading:
    """What one failed job says: failing tests, root error, infrastructure kind, and how much was noise; with
    the last non-noise lines of the log (for a failure nothing could be read from) and the annotations and
    report cases it was read from (the digest lists them)."""

    job: str
    tests: tuple[str, ...] = ()
    root: RootError | None = None
    infra: Infra | None = None
    log_lines: int = 0
    noise_lines: int = 0
    log_url: str | None = None
    check_id: int | None = None
    tail: tuple[str, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    cases: tuple[FailedCase, ...] = ()
