"""A run's state as typed records, and the one serialiser between them and the store's JSON.

:class:`RunData` is what the executor keeps beside the engine's run: the context the run works in, the outbox
of actions still to do, what it spent and created, links, verdicts. :meth:`RunData.to_json` and
:meth:`RunData.from_json` are the only way in and out of ``RunRecord.data``: every record is read by the same
field-checked loader (:func:`_record`), so an unknown key or a value of the wrong type is a StoredRunError
naming it, never a silent loss. Data in an older stored format goes through the store's :func:`upgrade` first.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.agents import RepoContext
from bot.agents.models import Usage
from bot.core import engine as E
from bot.run.pull_review import Verdict
from bot.store import RunRecord
from bot.store.run_format import VERSION, StoredRunError, upgrade

__all__ = ["CiRef", "Counters", "RunContext", "RunData", "RunState", "RunUsage", "StoredRunError", "run_context"]

T = TypeVar("T")

ACTIONS: dict[str, type] = {cls.__name__: cls for cls in typing.get_args(E.Action)}


@dataclass(frozen=True)
class CiRef:
    """The CI failure a run investigates: where GitHub reported it (check_run, check_suite, workflow_run)."""

    source: str
    id: int
    name: str
    head_sha: str
    summary: str


@dataclass(frozen=True)
class RunContext:
    """What a run works on. ``title`` and ``body`` are untrusted (the agents' runtime re-reads them)."""

    repo: str
    number: int | None
    is_pull_request: bool
    head_sha: str | None
    head_ref: str | None
    head_repo: str | None
    from_fork: bool
    base_sha: str | None
    default_branch: str | None
    title: str
    body: str
    ci: CiRef | None

    @property
    def branch(self) -> str:
        """The default branch the repository's catalog and configuration are read from."""
        return self.default_branch or "main"

    def for_agents(self, head_sha: str | None) -> RepoContext:
        """The agents' view of this context at ``head_sha`` (the run's head, or the PR head being judged)."""
        return RepoContext(repo=self.repo, number=self.number, is_pull_request=self.is_pull_request,
                           head_sha=head_sha or self.head_sha, default_branch=self.branch, title=self.title,
                           body=self.body, ci=dataclasses.asdict(self.ci) if self.ci else None)

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for bot/github/changes.py's delivery (which reads a mapping)."""
        return _dump(self)


def run_context(repo: str, number: int | None, *, head_sha: str | None, default_branch: str | None, title: str,
                body: str, pull: bool = False, head_ref: str | None = None, head_repo: str | None = None,
                base_sha: str | None = None, ci: CiRef | None = None) -> RunContext:
    """The one builder of a run's context. A pull request whose head repository is not this one, or is unknown
    (a deleted fork), is from a fork: the bot never pushes to it."""
    return RunContext(repo=repo, number=number, is_pull_request=pull, head_sha=head_sha, head_ref=head_ref,
                      head_repo=head_repo, from_fork=pull and head_repo != repo, base_sha=base_sha,
                      default_branch=default_branch, title=title or "", body=body or "", ci=ci)


@dataclass
class RunUsage:
    """What a run's model calls spent so far (the status comment and the run's token budget read it)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    calls: int = 0
    cost_usd: float = 0.0

    def add(self, u: Usage) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(u, f.name))

    @property
    def tokens(self) -> int:
        return (self.input_tokens + self.output_tokens + self.cache_read_input_tokens
                + self.cache_creation_input_tokens)


@dataclass
class Counters:
    """Comments and issues a run created (edits do not count), against the per-run caps."""

    comments: int = 0
    issues: int = 0


@dataclass
class RunData:
    """Everything stored about a run besides the indexed columns."""

    run: E.Run
    ctx: RunContext
    announce: str | None = None  # the Lead's line on the status comment (None: the workflow's own)
    decision: dict[str, Any] | None = None  # triage's decision, as Decision.to_json (for people reading the row)
    mention: str = ""  # the team this repository asks to be told of an escalation
    outbox: list[E.Action] = field(default_factory=list)  # asked for by the engine, not yet done
    applied: list[str] = field(default_factory=list)  # the last deliveries applied, so none is applied twice
    usage: RunUsage = field(default_factory=RunUsage)
    created: Counters = field(default_factory=Counters)
    dropped: list[str] = field(default_factory=list)  # writes GitHub refused for good, as said on the status
    stopped: str | None = None  # why a run was stopped (a cap reached)
    status_body: str | None = None  # the status comment as last posted
    links: dict[str, str] = field(default_factory=dict)  # step id -> its comment's URL
    replies: int = 0  # replies posted (each reply's marker is numbered, never reused)
    pull_reviews: int = 0  # model reviews of the pull request itself
    pr_verdicts: dict[str, Verdict] = field(default_factory=dict)  # head SHA -> the verdict kept before posting
    debt: list[str] = field(default_factory=list)  # tech-debt issues filed, as "#N"
    tasks: list[str] = field(default_factory=list)  # task issues filed, as "#N"
    pull_url: str | None = None  # the draft PR an approved change was opened as
    pushed: str | None = None  # the commit an approved change was pushed as

    def to_json(self) -> dict[str, Any]:
        """The stored form (format VERSION of bot/store/run_format.py)."""
        out = {f.name: _dump(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out["run"] = self.run.to_dict()
        out["outbox"] = [dump_action(a) for a in self.outbox]
        return {"version": VERSION, **out}

    @classmethod
    def from_json(cls, data: Any, run_id: str = "?") -> RunData:
        """A stored run's data, from any stored format this code knows; StoredRunError saying what is wrong."""
        data = upgrade(data, run_id)
        data.pop("version")
        try:
            run = E.Run.from_dict(data.pop("run"))
        except (TypeError, AttributeError, KeyError) as exc:
            raise StoredRunError(f"run {run_id}: stored engine run is not readable: {exc}") from exc
        outbox = data.pop("outbox")
        if not isinstance(outbox, list):
            raise StoredRunError(f"run {run_id}: stored outbox is {type(outbox).__name__}, not a list")
        state = _record(cls, {**data, "run": None, "outbox": []}, f"run {run_id}")
        state.run, state.outbox = run, [load_action(a, run_id) for a in outbox]
        return state


def dump_action(action: E.Action) -> dict[str, Any]:
    return {"type": type(action).__name__, **dataclasses.asdict(action)}


def load_action(item: Any, run_id: str = "?") -> E.Action:
    kind = item.get("type") if isinstance(item, dict) else None
    if kind not in ACTIONS:
        raise StoredRunError(f"run {run_id}: stored outbox holds {item!r}, not an action")
    return typing.cast(E.Action, _record(ACTIONS[kind], {k: v for k, v in item.items() if k != "type"},
                                         f"run {run_id}: outbox {kind}"))


@dataclass
class RunState:
    """A run record opened for work: the stored record and its typed data."""

    record: RunRecord
    data: RunData

    @classmethod
    def open(cls, record: RunRecord) -> RunState:
        return cls(record=record, data=RunData.from_json(record.data, record.id))

    @property
    def run(self) -> E.Run:
        return self.data.run

    @run.setter
    def run(self, run: E.Run) -> None:
        self.data.run = run

    @property
    def outbox(self) -> list[E.Action]:
        return self.data.outbox


# ---- the serialiser ---------------------------------------------------------------------------

def _dump(value: Any) -> Any:
    """Records as plain JSON-able data (dicts, lists, strings, numbers, None)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    return value


def _record(cls: type[T], data: Any, where: str) -> T:
    """``cls`` from stored data: every key must be a field, every required field present, every value of its
    field's type (records nested in it are read the same way)."""
    if not isinstance(data, dict):
        raise StoredRunError(f"{where}: {cls.__name__} stored as {type(data).__name__}, not an object")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise StoredRunError(f"{where}: {cls.__name__} has unknown keys: {', '.join(unknown)}")
    values = {k: _value(hints[k], v, f"{where}: {cls.__name__}.{k}") for k, v in data.items()}
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        raise StoredRunError(f"{where}: {exc}") from exc


def _value(hint: Any, value: Any, where: str) -> Any:
    """``value`` checked against (and, for records, loaded as) ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None and (hint is type(None) or type(None) in args or hint is Any):
        return None
    if origin in (typing.Union, types.UnionType):
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or (hint is E.Run and value is None):  # the engine's run is read by its own from_dict
        return value
    if dataclasses.is_dataclass(hint):
        return _record(typing.cast(type, hint), value, where)
    if origin is list and isinstance(value, list):
        return [_value(args[0], v, where) for v in value] if args else value
    if origin is dict and isinstance(value, dict):
        return {k: _value(args[1], v, f"{where}[{k!r}]") for k, v in value.items()} if args else value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    plain = isinstance(hint, type) and origin is None
    if plain and isinstance(value, hint) and (hint is bool or not isinstance(value, bool)):  # True is no int here
        return value
    raise StoredRunError(f"{where}: {value!r} is not {getattr(hint, '__name__', hint)}")
