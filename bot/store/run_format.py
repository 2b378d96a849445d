"""The stored format of a run's ``data`` column, by version, and the one conversion from older versions.

It lives in the store because the store's data migration converts every stored run with it, and the store
imports nothing else of bot. bot/run/state.py reads a run through :func:`upgrade` too, so a run stored in an
older format (restored from a backup taken before the migration, say) is converted on read the same way.

Version 1 (no ``version`` key) was a dict whose keys appeared as a run needed them; the run context of a CI
failure had no ``from_fork`` or ``base_sha``. Version 2 holds every key, always, with the same shapes (the
engine's run as ``Run.to_dict``, the outbox as ``{"type": <action>, **fields}``), so readers of ``data["run"]``
are unaffected. An unknown key or a value of the wrong type is an error naming the run and the field, never
dropped and never converted: a version-1 row that does not fit stays version 1 (the migration counts it).
Error messages name fields and types only, never a stored value (titles, bodies and outputs are people's text).
"""

from __future__ import annotations

import json
from typing import Any

VERSION = 2

# The type of every field this module knows, as "str", "int", "bool", "number" (int or float), "object" (a JSON
# object), "list of <type>", "map of <type>" (an object's values); "?" after it: null too. bool is never an int.
TOP: dict[str, str] = {
    "run": "object", "ctx": "object", "announce": "str?", "decision": "object?", "mention": "str",
    "outbox": "list of object", "applied": "list of str", "usage": "object", "created": "object",
    "dropped": "list of str", "stopped": "str?", "status_body": "str?", "links": "map of str", "replies": "int",
    "pull_reviews": "int", "pr_verdicts": "map of object", "debt": "list of str", "tasks": "list of str",
    "pull_url": "str?", "pushed": "str?"}
CONTEXT: dict[str, str] = {
    "repo": "str", "number": "int?", "is_pull_request": "bool", "head_sha": "str?", "head_ref": "str?",
    "head_repo": "str?", "from_fork": "bool", "base_sha": "str?", "default_branch": "str?", "title": "str",
    "body": "str", "ci": "object?"}
CI: dict[str, str] = {"source": "str", "id": "int", "name": "str", "head_sha": "str", "summary": "str"}
USAGE: dict[str, str] = {"input_tokens": "int", "output_tokens": "int", "cache_read_input_tokens": "int",
                         "cache_creation_input_tokens": "int", "calls": "int", "cost_usd": "number",
                         "web_searches": "int", "search_tokens": "int"}
COUNTED: dict[str, str] = {"comments": "int", "issues": "int"}
# Every key of a version-2 record, with the value a version-1 record that lacks it stands for.
DEFAULTS: dict[str, Any] = {
    "announce": None, "decision": None, "mention": "", "outbox": [], "applied": [], "created": {}, "dropped": [],
    "stopped": None, "status_body": None, "links": {}, "replies": 0, "pull_reviews": 0, "pr_verdicts": {},
    "debt": [], "tasks": [], "pull_url": None, "pushed": None, "usage": {}}
KEYS = frozenset({"version", *TOP})
PLAIN: dict[str, type | tuple[type, ...]] = {"str": str, "int": int, "bool": bool, "number": (int, float), "object": dict}


class StoredRunError(ValueError):
    """A run's stored data that cannot be read as a run. ``what`` names the field and what is wrong with it (types
    and names only, never a stored value), so the message can go to the operators' log and the thread as it is."""

    def __init__(self, run_id: str, what: str) -> None:
        super().__init__(run_id, what)  # both in args: the error survives a copy or a pickle
        self.run_id, self.what = run_id, what

    def __str__(self) -> str:
        return f"run {self.run_id}: {self.what}"


def upgrade(data: Any, run_id: str = "?") -> dict[str, Any]:
    """``data`` in the current format (a new dict; the argument is not changed). Raises StoredRunError for
    data from a newer version, data that is not a run, keys this version does not know or values of the wrong
    type. Data in the current format is returned as it is: bot/run/state.py's loader checks every field."""
    if not isinstance(data, dict):
        raise StoredRunError(run_id, f"stored data is {_kind(data)}, not an object")
    version = data.get("version", 1)
    if version == VERSION:
        return dict(data)
    if version != 1 or isinstance(version, bool):
        said = version if isinstance(version, int) and not isinstance(version, bool) else f"of type {_kind(version)}"
        raise StoredRunError(run_id, f"stored data has format version {said}; this code reads versions 1 to {VERSION}")
    _known(data, KEYS, "stored data", run_id)
    for key in ("run", "ctx"):
        if not isinstance(data.get(key), dict):
            raise StoredRunError(run_id, f"stored data has no {key!r} object")
    out: dict[str, Any] = {"version": VERSION, **DEFAULTS, **{k: v for k, v in data.items() if k != "version"}}
    out["ctx"] = _context(data["ctx"], run_id)
    out["usage"] = _counts(data.get("usage"), USAGE, "usage", run_id)
    out["usage"]["cost_usd"] = float(out["usage"]["cost_usd"])
    out["created"] = _counts(data.get("created"), COUNTED, "created", run_id)
    _typed(out, TOP, "", run_id)
    return out


def _context(ctx: dict[str, Any], run_id: str) -> dict[str, Any]:
    """A version-1 run context with every key. A pull request whose head repository is not this one (or is
    unknown, as for a deleted fork) is from a fork: the rule bot/run/state.py's builder applies."""
    _known(ctx, frozenset(CONTEXT), "ctx", run_id)
    out = {k: ctx.get(k) for k in CONTEXT}
    out["is_pull_request"] = ctx.get("is_pull_request", False)
    out["title"] = "" if ctx.get("title") is None else ctx["title"]
    out["body"] = "" if ctx.get("body") is None else ctx["body"]
    if "from_fork" not in ctx:
        out["from_fork"] = out["is_pull_request"] is True and ctx.get("head_repo") != ctx.get("repo")
    _typed(out, CONTEXT, "ctx.", run_id)
    if out["ci"] is not None:
        _known(out["ci"], frozenset(CI), "ctx.ci", run_id)
        _typed(out["ci"], CI, "ctx.ci.", run_id, every=True)
    return out


def _counts(values: Any, types: dict[str, str], name: str, run_id: str) -> dict[str, Any]:
    """Usage or counters, every key present (a version-1 record left out what was still 0)."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise StoredRunError(run_id, f"stored {name} is {_kind(values)}, not an object")
    _known(values, frozenset(types), name, run_id)
    out = {k: values.get(k, 0) for k in types}
    _typed(out, types, f"{name}.", run_id)
    return out


def _known(values: dict[str, Any], keys: frozenset[str], name: str, run_id: str) -> None:
    unknown = sorted(str(k)[:60] for k in set(values) - keys)
    if unknown:
        raise StoredRunError(run_id, f"{name} has keys this version does not know: {', '.join(unknown)}")


def _typed(values: dict[str, Any], types: dict[str, str], prefix: str, run_id: str, every: bool = False) -> None:
    """Each of ``values`` of its type (with ``every``, each of ``types`` present too)."""
    for key, spec in types.items():
        if key not in values:
            if every:
                raise StoredRunError(run_id, f"stored {prefix}{key} is missing")
            continue
        wrong = _misfit(values[key], spec)
        if wrong:
            raise StoredRunError(run_id, f"stored {prefix}{key} {wrong}, not {spec.replace('?', ' or null')}")


def _misfit(value: Any, spec: str) -> str:
    """What is wrong with ``value`` as ``spec`` ("is str", "holds null"), or "" when it fits."""
    if spec.endswith("?"):
        return "" if value is None else _misfit(value, spec[:-1])
    if spec.startswith(("list of ", "map of ")):
        kind, item = spec.split(" of ")
        if kind == "list" and isinstance(value, list):
            items = value
        elif kind == "map" and isinstance(value, dict):
            items = list(value.values())
        else:
            return f"is {_kind(value)}"
        bad = [v for v in items if _misfit(v, item)]
        return f"holds {_kind(bad[0])}" if bad else ""
    if isinstance(value, bool):
        return "" if spec == "bool" else "is bool"
    return "" if isinstance(value, PLAIN[spec]) else f"is {_kind(value)}"


def _kind(value: Any) -> str:
    """A stored value's JSON type, by name (never the value)."""
    return "null" if value is None else type(value).__name__


def patch_keys(fields: dict[str, str]) -> list[str]:
    """The top-level keys a partial save writes (each value the key's JSON text), checked: a partial save writes
    into a row of the current format only, and only keys of that format (a typo would leave a row no reader
    takes). Raises ValueError naming the key."""
    unknown = sorted(k for k in fields if k not in TOP)
    if unknown:
        raise ValueError(f"a run's data has no key {unknown[0][:60]!r}")
    return list(fields)


def upgrade_column(run_id: str, text: str) -> str | None:
    """The data migration's step for one ``runs`` row: its new ``data`` text, or None when it is current already.
    Raises ValueError (StoredRunError, or the JSON decoder's error) for a row it cannot convert: the migration
    leaves that row as it is and counts it (reading the run raises the same error)."""
    data = json.loads(text)
    if isinstance(data, dict) and data.get("version") == VERSION:
        return None
    return json.dumps(upgrade(data, run_id))
