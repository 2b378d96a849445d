"""What the store keeps, independent of the database behind it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.store.run_format import StoredRunError


class StoreUnavailable(Exception):
    """The database cannot be reached or written; the webhook answers 503 so GitHub records a failure."""


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str  # X-GitHub-Delivery
    event: str
    action: str
    installation_id: int | None
    repo: str
    thread: str  # events of one thread are processed one at a time, in order
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    delivery_id: str
    thread: str
    event: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job as operators and the acknowledger see it: where it stands, and why if it failed."""

    job: Job
    state: str  # queued, running, done, failed, dismissed (failed, and let go)
    error: str | None
    run_after: float  # unix time before which a retried job is not taken
    created_at: float


def job_info(row: Any) -> JobInfo:
    """A jobs-and-deliveries row (either database's) as a :class:`JobInfo`."""
    job = Job(id=row["id"], delivery_id=row["delivery_id"], thread=row["thread"], event=row["event"],
              payload=json.loads(row["payload"]) if row["payload"] else {}, attempts=row["attempts"])
    return JobInfo(job=job, state=row["state"], error=row["error"], run_after=row["run_after"],
                   created_at=row["created_at"])


@dataclass(frozen=True, slots=True)
class Posted:
    """Something the bot created on GitHub, found again by its hidden marker."""

    marker: str
    repo: str
    kind: str  # "comment", "issue", ...
    github_id: int
    number: int | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class PullFindings:
    """A pull request's findings as last reviewed (issue 17's converging reviews): the head they were judged at
    and each finding by its stable id, as bot/core/findings.py writes it."""

    repo: str
    number: int
    sha: str
    findings: dict[str, dict[str, Any]]

    @classmethod
    def from_row(cls, repo: str, number: int, row: Any) -> PullFindings | None:
        """A ``pull_findings`` row (either database's); None for no row, or findings that are not an object."""
        found = _json_object(row["findings"]) if row is not None else None
        if row is None or found is None:
            return None
        return cls(repo=repo, number=number, sha=row["sha"],
                   findings={str(k): v for k, v in found.items() if isinstance(v, dict)})


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A workflow run as stored: indexed columns plus the engine's own serialised state."""

    id: str
    thread: str
    repo: str
    number: int | None
    installation_id: int | None
    workflow: str | None
    state: str
    data: dict[str, Any]

    @classmethod
    def from_row(cls, row: Any) -> RunRecord | None:
        """A ``runs`` row (either database's) as a record; None for no row."""
        if row is None:
            return None
        try:
            data = json.loads(row["data"])
        except (TypeError, ValueError) as exc:  # not JSON: as unreadable as a wrong field, and as final (no retry)
            raise StoredRunError(str(row["id"]), f"stored data is not JSON ({type(exc).__name__})") from None
        return cls(id=row["id"], thread=row["thread"], repo=row["repo"], number=row["number"],
                   installation_id=row["installation_id"], workflow=row["workflow"], state=row["state"], data=data)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One attempt (iteration) of one step of a run: its result and what the model spent."""

    run_id: str
    step_id: str
    iteration: int
    status: str
    output: dict[str, Any] | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    # Who did this step and on what (issue 17's provenance): agent, tier, model, prompt and rules hashes, head.
    provenance: dict[str, Any] | None = None

    @property
    def tokens(self) -> int:
        """Every token the step's model calls processed (what a day's usage counts)."""
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens

    @classmethod
    def from_row(cls, r: Any) -> StepRecord:
        """A ``steps`` row (either database's) as a record."""
        return cls(run_id=r["run_id"], step_id=r["step_id"], iteration=r["iteration"], status=r["status"],
                   output=None if r["output"] is None else json.loads(r["output"]),
                   input_tokens=r["input_tokens"], output_tokens=r["output_tokens"],
                   cache_read_tokens=r["cache_read_tokens"], cache_write_tokens=r["cache_write_tokens"],
                   cost_usd=r["cost_usd"], provenance=_json_object(r["provenance"]))


def _json_object(text: str | None) -> dict[str, Any] | None:
    """A column of JSON that holds an object, or None (NULL, or anything else: a record is never lost to it)."""
    try:
        value = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class Along:
    """What a run's save writes in its transaction besides the run (issue 16: one round trip per write or step of
    a run, not two or three): the records of what the run just posted, as ``remember_posted`` writes them, and a
    finished step's record, as ``save_step`` writes it (with ``usage_day``, its tokens added to that day's)."""

    posted: Sequence[Posted] = ()
    step: StepRecord | None = None
    usage_day: tuple[int, str] | None = None


NOTHING = Along()


# Run states that no longer take signals; any other state is "active" on its thread.
FINAL_STATES = frozenset({"done", "cancelled"})

# Pull requests' findings are kept this long after their last save (a pull request quiet for longer is reviewed
# afresh on its next push: its findings are reported as new once more), and for good while one is still open: the
# merge files those as tech debt, and a merge months later must not find them gone. Those of a pull request closed
# unmerged go this long after the close, open ones too (reopened, it is kept again).
FINDINGS_KEEP_SECONDS = 90 * 86_400


def none_open(findings: str) -> bool:
    """A stored ``pull_findings.findings`` text with no finding still open (bot/core/findings.py's states): one
    retention may forget. Text it cannot read is kept."""
    try:
        found = json.loads(findings)
    except ValueError:
        return False
    return isinstance(found, dict) and not any(isinstance(f, dict) and f.get("state") == "open"
                                               for f in found.values())



# Both stores' SQL for the methods above (SQLite's placeholders; PostgreSQL's store swaps in its own).
CLOSE_FINDINGS = (
    "INSERT INTO pull_findings (repo, number, sha, findings, saved_at, closed_at, state_at) VALUES (?, ?, ?, '{}', ?, ?,"
    " ?) ON CONFLICT (repo, number) DO UPDATE SET closed_at = excluded.closed_at, state_at = COALESCE("
    "excluded.state_at, pull_findings.state_at) WHERE pull_findings.state_at IS NULL OR excluded.state_at >"
    " pull_findings.state_at OR (excluded.closed_at IS NULL AND (excluded.state_at IS NULL OR excluded.state_at >="
    " pull_findings.state_at))")  # a tie goes to the reopen: the findings are kept, never lost
# A filing's claim is stamped and judged by one clock, ``{now}``: SQLite's is the one host's (a parameter);
# PostgreSQL's is the database's, never a worker's own (a worker whose clock runs a lease ahead would take a live
# claim over at once). Renewed only while held (0: let go), so a late renewal never takes a claim back.
CLAIM_FILING = ("INSERT INTO debt_filings (filed, public, claimed_at) VALUES (?, ?, {now}) ON CONFLICT (filed) DO"
                " UPDATE SET claimed_at = excluded.claimed_at WHERE debt_filings.claimed_at <= excluded.claimed_at - ?"
                " RETURNING public")
RENEW_FILING = "UPDATE debt_filings SET claimed_at = {now} WHERE filed = ? AND claimed_at > 0"
FINDINGS_PAGE = ("SELECT repo, number, sha, findings FROM pull_findings WHERE (repo, number) > (?, ?)"
                 " ORDER BY repo, number LIMIT ?")


def findings_of(rows: Iterable[Any]) -> list[PullFindings]:
    """``FINDINGS_PAGE``'s rows: one whose findings cannot be read counts as having none (a page is never cut
    short by it, and the walk goes on past it)."""
    return [PullFindings.from_row(r["repo"], r["number"], r) or PullFindings(r["repo"], r["number"], r["sha"], {})
            for r in rows]


class Store(Protocol):
    """What the rest of the bot needs from a database. SQLite and PostgreSQL both provide it."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def schema_version(self) -> int: ...
    async def accept_delivery(self, d: Delivery) -> bool: ...
    async def claim_job(self, thread: str) -> Job | None: ...
    async def finish_job(self, job_id: int, *, error: str | None = None) -> None: ...
    async def retry_job(self, job_id: int, *, after: float, error: str) -> None: ...
    async def recover(self) -> list[str]: ...
    async def job_states(self) -> dict[str, int]: ...
    async def jobs_for(self, delivery_id: str) -> list[dict[str, Any]]: ...
    async def remember_posted(self, p: Posted) -> None: ...
    async def find_posted(self, marker: str) -> Posted | None: ...
    # With ``github_id``: only while the record still holds that id (a later remember_posted of the same marker is
    # kept). True if a record was deleted.
    async def forget_posted(self, marker: str, github_id: int | None = None) -> bool: ...
    # ``along``: what is written in the same transaction (see Along).
    async def save_run(self, run: RunRecord, along: Along = NOTHING) -> None: ...
    # A partial save: `run`'s columns (workflow, state) and the given top-level keys of its stored data, each
    # value the key's JSON text (run_format.patch_keys checks them); the rest of the data stays as stored. False
    # (and nothing written, ``along`` neither) when there is no such row: save it whole with save_run.
    async def save_run_fields(self, run: RunRecord, fields: dict[str, str], along: Along = NOTHING) -> bool: ...
    async def load_run(self, run_id: str) -> RunRecord | None: ...
    async def active_run(self, thread: str) -> RunRecord | None: ...
    # A repository's active runs of one installation, newest first (its dashboard): a repository's name can change
    # hands (an account renamed, its name taken by another), and the earlier owner's runs stay stored under it.
    async def active_runs(self, repo: str, installation_id: int, limit: int = 100) -> list[RunRecord]: ...
    async def run_states(self) -> dict[str, int]: ...
    # With ``usage_day`` (installation id, UTC day): the step's tokens and cost are also added to that day's usage
    # (add_usage), in the same transaction (one round trip per finished step, issue 16).
    async def save_step(self, step: StepRecord, usage_day: tuple[int, str] | None = None) -> None: ...
    async def steps_of(self, run_id: str) -> list[StepRecord]: ...
    async def add_usage(self, installation_id: int, day: str, tokens: int, cost_usd: float) -> None: ...
    async def usage_on(self, installation_id: int, day: str) -> int: ...
    async def unnoted_jobs(self, older_than: float, limit: int = 50) -> list[JobInfo]: ...
    async def mark_noted(self, job_id: int) -> bool: ...
    async def job_info(self, job_id: int) -> JobInfo | None: ...
    # Failed jobs, newest first: of one thread, or of one repository's threads (its issues, PRs and itself).
    async def failed_jobs(self, thread: str | None = None, limit: int = 100, *, repo: str | None = None) -> list[JobInfo]: ...  # noqa: E501
    async def requeue_failed(self, job_id: int) -> bool: ...
    async def dismiss_failed(self, job_id: int) -> bool: ...
    async def queued_threads(self) -> list[str]: ...
    async def posted_since(self, repo: str, number: int, since: float) -> bool: ...
    async def claim_redelivery(self, guid: str, delivery_id: int) -> bool: ...
    async def release_redelivery(self, guid: str) -> None: ...
    async def save_config(self, repo: str, source: str, text: str) -> None: ...
    async def last_config(self, repo: str) -> tuple[str, str] | None: ...
    # Dashboard refreshes put off (bot/run/dashboard.py), kept across restarts. mark_due records one for ``repo`` (of
    # that installation) and returns how many marks it has now; clear_due forgets it, with ``marks`` only if no mark
    # was added since (True if it was forgotten); due_dashboards lists (repo, installation id), oldest first.
    async def mark_due(self, repo: str, installation_id: int, at: float) -> int: ...
    async def clear_due(self, repo: str, marks: int | None = None) -> bool: ...
    async def due_dashboards(self, limit: int = 100) -> list[tuple[str, int]]: ...
    # A pull request's findings (bot/core/findings.py), replaced whole; None when it has none recorded.
    async def save_findings(self, found: PullFindings) -> None: ...
    async def load_findings(self, repo: str, number: int) -> PullFindings | None: ...
    # After its merge has filed what was open: a merged pull request's findings are of no further use.
    async def forget_findings(self, repo: str, number: int) -> None: ...
    # A pull request closed unmerged (``closed_at``, unix time) or reopened (None), ``at`` GitHub's updated_at of
    # it: applied unless a close or reopen GitHub made later was applied already (a late redelivery or retry never
    # undoes it; with no ``at``, a reopen is applied and a close only where none was). With no findings recorded a
    # row with none is made (``sha``: the head), so a review that saves later keeps the close. True if applied.
    async def close_findings(self, repo: str, number: int, closed_at: float | None, *, at: float | None = None,
                             sha: str = "") -> bool: ...
    # Every pull request's findings, a page at a time in (repo, number) order after ``after`` (unreadable ones
    # with no findings, so a page is never cut short by them).
    async def findings_page(self, after: tuple[str, int] = ("", 0), limit: int = 100) -> list[PullFindings]: ...
    # A tech-debt issue about to be filed (bot/run/merged.py), under the finding's private marker ``filed``: the
    # claim of one job, taken if none is held (or the one held is ``lease`` seconds old: its job died); the public
    # marker noted (``public`` if none was), or None while another job holds the claim. ``note_filing`` changes
    # the marker noted (before filing under it); ``renew_filing`` stamps a claim held anew (its job is alive, and
    # may wait long for its write); ``release_filing`` lets the claim go.
    async def claim_filing(self, filed: str, public: str, lease: float) -> str | None: ...
    async def note_filing(self, filed: str, public: str) -> None: ...
    async def renew_filing(self, filed: str) -> None: ...
    async def release_filing(self, filed: str) -> None: ...
    # A one-off pass done for this install (``store_notes``): recorded, and asked for.
    async def note_done(self, name: str) -> None: ...
    async def is_done(self, name: str) -> bool: ...
    # Shared limits (all workers, one database). A window counter: take_slots records one event under every
    # (key, limit, window_seconds) at `now` and returns 0.0 if each key had fewer than `limit` events in the
    # last `window_seconds`; otherwise records nothing and returns the seconds until all would fit.
    async def take_slots(self, limits: Sequence[tuple[str, int, float]], now: float | None = None) -> float: ...
    # Token reservations: before a model call, reserve `amount` under every (key, cap) if each key's settled
    # spending plus open reservations plus `amount` stays within its cap (all or nothing; True if taken);
    # settle(reservation, actual) replaces the reserved amount by what the call really used (0 if it failed).
    async def reserve(self, reservation: str, amount: int, caps: Sequence[tuple[str, int]],
                      now: float | None = None) -> bool: ...
    async def settle(self, reservation: str, actual: int) -> None: ...
    async def spent(self, key: str) -> int: ...  # settled + reserved under a key
    # Write a small row (a few KB), commit, delete it; StoreUnavailable saying why if the store cannot.
    async def probe_write(self) -> None: ...
    # Retention (bot/run/retention.py): payloads of done deliveries received before now - older_than_seconds
    # become '{}' (rows stay), plus finished queue jobs on PostgreSQL; counts of what was pruned.
    async def prune(self, older_than_seconds: float, now: float | None = None) -> dict[str, int]: ...
