"""What GitHub says about a failed check, read once for every path that reads CI failures (stub).

The helper owning this module fills it in: annotations, test-report artifacts, the job log, the same job's
green runs (for noise templates and the commits since green) and the same job on the default branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.agents.tools import RepoReader
from bot.core.ci_output.records import Evidence


@dataclass(frozen=True)
class CiTarget:
    """The failed check as a run or handler knows it (``source``: check_run, check_suite or workflow_run)."""

    source: str
    id: int
    name: str
    head_sha: str
    summary: str = ""


@dataclass
class Gathered:
    """Evidence per failed job, the same jobs' latest failed run on the default branch (empty when it is green
    or unknown), the last green commit and the commits since it (newest first), and GitHub reads made."""

    evidence: list[Evidence] = field(default_factory=list)
    on_default: list[Evidence] = field(default_factory=list)
    green_sha: str | None = None
    since_green: list[tuple[str, str]] = field(default_factory=list)
    reads: int = 0


async def gather(reader: RepoReader, target: CiTarget, *, default_branch: str, base_ref: str | None = None) -> Gathered:
    """Everything worth reading about `target`, in a bounded number of reads."""
    text = target.summary
    return Gathered(evidence=[Evidence(job=target.name, log=text)])
