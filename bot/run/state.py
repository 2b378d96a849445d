"""A run's state as typed records, and the one serialiser between them and the store's JSON.

:class:`RunData` is what the executor keeps beside the engine's run: the context the run works in, the outbox
of actions still to do, what it spent and created, links, verdicts. :meth:`RunData.to_json` and
:meth:`RunData.from_json` are the only way in and out of ``RunRecord.data``: every record is read by the same
field-checked loader (:func:`_record`), so an unknown key or a value of the wrong type is a StoredRunError
naming it, never a silent loss. Data in an older stored format goes through the store's :func:`upgrade` first.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.agents import RepoContext
from bot.agents.models import Usage
from bot.core import engine as E
from bot.run.pull_review import Verdict
from bot.store import Posted, RunRecord, Store
from bot.store.run_format import VERSION, StoredRunError, upgrade

__all__ = ["CiRef", "Counters", "RunContext", "RunData", "RunState", "StoredRunError", "run_context",
           "stored_applied", "stored_head", "unreadable"]

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
    usage: Usage = field(default_factory=Usage)  # what its model calls spent so far (status comment, run budget)
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
        out = {name: _dump(getattr(self, name)) for name in FIELDS if name not in ("run", "outbox")}
        out["run"] = self.run.to_dict()
        out["outbox"] = [dump_action(a) for a in self.outbox]
        return {"version": VERSION, **out}

    def encoded(self, name: str) -> str:
        """One top-level key's stored form, as JSON text (what a partial save writes): the same value
        :meth:`to_json` holds under ``name``, encoded in one pass of the C encoder."""
        value = getattr(self, name)
        return json.dumps([dump_action(a) for a in value] if name == "outbox" else value, default=_fields)

    @classmethod
    def from_json(cls, data: Any, run_id: str = "?") -> RunData:
        """A stored run's data, from any stored format this code knows; StoredRunError saying what is wrong.
        The engine's run and the outbox are read first (each by its own reader) and handed to the record."""
        data = upgrade(data, run_id)
        data.pop("version")
        run, outbox = _take(data, "run", run_id), _take(data, "outbox", run_id)
        try:
            engine_run = E.Run.from_dict(run)
        except (TypeError, AttributeError, KeyError) as exc:  # their messages name fields and types, not values
            raise StoredRunError(run_id, f"stored engine run is not readable: {type(exc).__name__}: {exc}") from exc
        if not isinstance(outbox, list):
            raise StoredRunError(run_id, f"stored outbox is {_kind(outbox)}, not a list")
        actions = [load_action(a, run_id) for a in outbox]
        return _record(cls, data, run_id, "", given={"run": engine_run, "outbox": actions})


FIELDS = tuple(f.name for f in dataclasses.fields(RunData))


def _take(data: dict[str, Any], key: str, run_id: str) -> Any:
    if key not in data:
        raise StoredRunError(run_id, f"stored data has no {key!r}")
    return data.pop(key)


def dump_action(action: E.Action) -> dict[str, Any]:
    """An action as stored: its type's name and its fields. Every action's fields are plain strings and numbers,
    so they are read as they are; ``dataclasses.asdict`` deep-copied each (issue 16: every save encodes the
    outbox)."""
    kind = type(action)
    names = _ACTION_NAMES.get(kind)
    if names is None:
        names = _ACTION_NAMES[kind] = tuple(f.name for f in dataclasses.fields(action))
    return {"type": kind.__name__, **{name: getattr(action, name) for name in names}}


_ACTION_NAMES: dict[type, tuple[str, ...]] = {}


def load_action(item: Any, run_id: str = "?") -> E.Action:
    kind = item.get("type") if isinstance(item, dict) else None
    if not isinstance(kind, str) or kind not in ACTIONS:
        said = f"type {kind[:60]!r}" if isinstance(kind, str) else f"{_kind(item)} without a type"
        raise StoredRunError(run_id, f"stored outbox holds {said}, not an action")
    return typing.cast(E.Action, _record(ACTIONS[kind], {k: v for k, v in item.items() if k != "type"}, run_id,
                                         "outbox"))


def unreadable(record: RunRecord) -> StoredRunError | None:
    """Why a stored run cannot be opened, or None when it can."""
    try:
        RunData.from_json(record.data, record.id)
    except StoredRunError as exc:
        return exc
    return None


def stored_head(record: RunRecord) -> str | None:
    """The head commit a stored run last read, from the raw record (any format, however broken the rest):
    a push compares it with GitHub's before it needs the whole run."""
    run = record.data.get("run") if isinstance(record.data, dict) else None
    head = run.get("head_sha") if isinstance(run, dict) else None
    return head if isinstance(head, str) else None


def stored_applied(record: RunRecord) -> tuple[str, ...]:
    """The deliveries a stored run applied, from the raw record (any format, however broken the rest)."""
    applied = record.data.get("applied") if isinstance(record.data, dict) else None
    return tuple(a for a in applied if isinstance(a, str)) if isinstance(applied, list) else ()


@dataclass
class RunPosts:
    """Every comment the bot posted under a run's markers, known in memory: only for a run this job started.

    Such a run's id is the new delivery's, so its markers are new too: whatever carries one was posted by this
    job, through the executor (bot/run/writes.py), which notes it here. Its comments are then found here rather
    than by asking the store before every comment and listing the thread before every new one. ``on_thread``:
    the bot's own marked comments the thread held when first needed (read once), for a store restored from a
    backup that lost an earlier attempt's records of this run. Never stored: a run opened from the store (after
    a restart, or by a later delivery) has none, and asks the store and the thread as before. A new comment's
    record goes to the store with the save that follows it (``unsaved``), in one transaction with the run."""

    by_mark: dict[str, Posted] = field(default_factory=dict)
    on_thread: dict[str, dict[str, Any]] | None = None
    unsaved: list[Posted] = field(default_factory=list)  # posted, recorded in the store with the run's next save


@dataclass
class RunState:
    """A run record opened for work: the stored record and its typed data.

    ``record`` holds the indexed columns as last saved; its ``data`` is the data as loaded (or first saved) and
    goes stale as the run moves: the live data is ``data``. ``saved`` holds each top-level field of ``data`` as
    the store last got it, so a save writes only the fields that changed (:meth:`changes`)."""

    record: RunRecord
    data: RunData
    saved: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    posts: RunPosts | None = field(default=None, repr=False, compare=False)  # see RunPosts; None: ask the store

    @classmethod
    def open(cls, record: RunRecord) -> RunState:
        state = cls(record=record, data=RunData.from_json(record.data, record.id))
        if record.data.get("version") == VERSION:  # an older row is converted in memory: its first save is whole
            state.stored()
        return state

    def stored(self, changed: Iterable[str] | None = None) -> None:
        """Note that the store now holds ``data`` as it is; ``changed``: only these fields were written (the others
        were equal to what it held), so only they are copied again."""
        if self.saved is None or changed is None:
            self.saved = {name: _snapshot(getattr(self.data, name)) for name in FIELDS}
        else:
            self.saved |= {name: _snapshot(getattr(self.data, name)) for name in changed}

    def changes(self) -> dict[str, str] | None:
        """The top-level fields of ``data`` changed since the last save, each as its stored JSON text; None when
        the next save must write the whole run (nothing is known of what the store holds)."""
        if self.saved is None:
            return None
        saved, data = self.saved, self.data
        # ``is`` first: a field not replaced since the save (a frozen context, the usage) is not compared whole.
        return {name: data.encoded(name) for name in FIELDS
                if (value := getattr(data, name)) is not saved[name] and value != saved[name]}

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

IMMUTABLE = (str, int, float, type(None))


def _snapshot(value: Any) -> Any:
    """A copy of a field's value that later changes to the value do not reach, for comparing with it. Shallow:
    what the fields hold is replaced, never changed in place (the engine's run is rebuilt by every signal and
    shares its steps' results), except the engine run's step states and decisions, which are copied too."""
    if isinstance(value, E.Run):
        return E.fork(value)  # the run and its step states copied, as the engine copies them for a signal
    params = getattr(type(value), "__dataclass_params__", None)  # a frozen record (a context, usage) never changes
    if isinstance(value, IMMUTABLE) or (params is not None and params.frozen):
        return value
    return copy.copy(value)


def _fields(value: Any) -> Any:
    """``json.dumps``' hook for records: a dataclass as the mapping of its fields (nested ones come back here)."""
    names = _NAMES.get(type(value))
    if names is None:
        if not dataclasses.is_dataclass(value) or isinstance(value, type):
            raise TypeError(f"{type(value).__name__} is not stored data")
        optional = getattr(value, "OPTIONAL_KEYS", ())  # left out while None (see E.Run), as to_dict leaves them
        names = _NAMES[type(value)] = tuple((f.name, f.name in optional) for f in dataclasses.fields(value))
    return {name: v for name, optional in names if (v := getattr(value, name)) is not None or not optional}


# Per record type, its fields' names and whether each is left out while None: ``dataclasses.fields`` walks the
# class on every call, and a save encodes every step state of the run (issue 16: CPU per run).
_NAMES: dict[type, tuple[tuple[str, bool], ...]] = {}


def _dump(value: Any) -> Any:
    """Records as plain JSON-able data (dicts, lists, strings, numbers, None)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # A record's OPTIONAL_KEYS are left out while empty: as in every record stored before they were kept.
        optional = getattr(value, "OPTIONAL_KEYS", ())
        return {f.name: _dump(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.name not in optional or getattr(value, f.name)}
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    return value


def _record(cls: type[T], data: Any, run_id: str, where: str, given: dict[str, Any] | None = None) -> T:
    """``cls`` from stored data at ``where`` (a path such as ``ctx.ci``; "" for the top): every key must be a
    field, every required field present, every value of its field's type (records nested in it are read the
    same way). ``given``: fields read already, by their own readers (the engine's run, the outbox)."""
    if not isinstance(data, dict):
        raise StoredRunError(run_id, f"stored {where or 'data'} is {_kind(data)}, not an object ({cls.__name__})")
    hints = typing.get_type_hints(cls)
    given = given or {}
    names = {f.name for f in dataclasses.fields(cls)} - set(given)  # type: ignore[arg-type]
    unknown = sorted(str(k)[:60] for k in set(data) - names)
    if unknown:
        raise StoredRunError(run_id, f"stored {where or 'data'} ({cls.__name__}) has unknown keys: "
                                     f"{', '.join(unknown)}")
    values = {k: _value(hints[k], v, run_id, f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**values, **given)
    except TypeError as exc:  # a required field is missing (the message names it)
        raise StoredRunError(run_id, f"stored {where or 'data'}: {exc}") from exc


def _value(hint: Any, value: Any, run_id: str, where: str) -> Any:
    """``value`` checked against (and, for records, loaded as) ``hint``. A union is read only as ``X | None``:
    with several types a stored value could be read as the wrong one, so such a field is a TypeError (the
    code's mistake, not the data's) until it gets its own reader."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) != 1:
            raise TypeError(f"{where}: {hint} has several types; the loader reads X | None only")
        if value is None:
            return None
        hint = members[0]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return _record(typing.cast(type, hint), value, run_id, where)
    if origin is list and isinstance(value, list):
        return [_value(args[0], v, run_id, f"{where}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is dict and isinstance(value, dict):
        return {k: _value(args[1], v, run_id, f"{where}[{str(k)[:60]!r}]") for k, v in value.items()} \
            if args else value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    plain = isinstance(hint, type) and origin is None
    if plain and isinstance(value, hint) and (hint is bool or not isinstance(value, bool)):  # True is no int here
        return value
    raise StoredRunError(run_id, f"stored {where} is {_kind(value)}, not {getattr(hint, '__name__', hint)}")


def _kind(value: Any) -> str:
    """A stored value's type, by name: never the value, which may be a title, a body, a model's output."""
    return "null" if value is None else type(value).__name__


async def provenance(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Each recorded step attempt of a run with its provenance (steps recorded before it was kept show none)."""
    return [{**(s.provenance or {}), "step": f"{s.step_id} #{s.iteration}", "tokens": s.tokens, "cost": s.cost_usd}
            for s in await store.steps_of(run_id)]
