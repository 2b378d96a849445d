"""The stored format of a run's ``data`` column, by version, and the one conversion from older versions.

It lives in the store because the store's data migration converts every stored run with it, and the store
imports nothing else of bot. bot/run/state.py reads a run through :func:`upgrade` too, so a run stored in an
older format (restored from a backup taken before the migration, say) is converted on read the same way.

Version 1 (no ``version`` key) was a dict whose keys appeared as a run needed them; the run context of a CI
failure had no ``from_fork`` or ``base_sha``. Version 2 holds every key, always, with the same shapes (the
engine's run as ``Run.to_dict``, the outbox as ``{"type": <action>, **fields}``), so readers of ``data["run"]``
are unaffected. An unknown key or a value of the wrong shape is an error naming the run, never dropped.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)

VERSION = 2

CONTEXT_KEYS = ("repo", "number", "is_pull_request", "head_sha", "head_ref", "head_repo", "from_fork", "base_sha",
                "default_branch", "title", "body", "ci")
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "calls",
              "cost_usd")
COUNTED = ("comments", "issues")
# Every key of a version-2 record, with the value a version-1 record that lacks it stands for.
DEFAULTS: dict[str, Any] = {
    "announce": None, "decision": None, "mention": "", "outbox": [], "applied": [], "created": {}, "dropped": [],
    "stopped": None, "status_body": None, "links": {}, "replies": 0, "pull_reviews": 0, "pr_verdicts": {},
    "debt": [], "tasks": [], "pull_url": None, "pushed": None, "usage": {}}
KEYS = frozenset({"version", "run", "ctx", *DEFAULTS})


class StoredRunError(ValueError):
    """A run's stored data that cannot be read as a run: its message names what is wrong."""


def upgrade(data: Any, run_id: str = "?") -> dict[str, Any]:
    """``data`` in the current format (a new dict; the argument is not changed). Raises StoredRunError for
    data from a newer version, data that is not a run, or keys this version does not know."""
    if not isinstance(data, dict):
        raise StoredRunError(f"run {run_id}: stored data is {type(data).__name__}, not an object")
    version = data.get("version", 1)
    if version == VERSION:
        return dict(data)
    if version != 1:
        raise StoredRunError(f"run {run_id}: stored data has format version {version!r}; this code reads "
                             f"versions 1 to {VERSION}")
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise StoredRunError(f"run {run_id}: stored data has keys this version does not know: {', '.join(unknown)}")
    for key in ("run", "ctx"):
        if not isinstance(data.get(key), dict):
            raise StoredRunError(f"run {run_id}: stored data has no {key!r} object")
    out: dict[str, Any] = {"version": VERSION, **DEFAULTS, **data}
    out["ctx"] = _context(data["ctx"], run_id)
    out["usage"] = {k: _number(data.get("usage") or {}, k, run_id) for k in USAGE_KEYS}
    out["usage"]["cost_usd"] = float(out["usage"]["cost_usd"])
    out["created"] = {k: _number(data.get("created") or {}, k, run_id) for k in COUNTED}
    return out


def _context(ctx: dict[str, Any], run_id: str) -> dict[str, Any]:
    """A version-1 run context with every key. A pull request whose head repository is not this one (or is
    unknown, as for a deleted fork) is from a fork: the rule bot/run/state.py's builder applies."""
    unknown = sorted(set(ctx) - set(CONTEXT_KEYS))
    if unknown or not isinstance(ctx.get("repo"), str):
        raise StoredRunError(f"run {run_id}: stored run context has unknown keys {unknown} or no repo")
    out = {k: ctx.get(k) for k in CONTEXT_KEYS}
    out["is_pull_request"] = bool(ctx.get("is_pull_request"))
    out["title"], out["body"] = ctx.get("title") or "", ctx.get("body") or ""
    if "from_fork" not in ctx:
        out["from_fork"] = out["is_pull_request"] and ctx.get("head_repo") != ctx["repo"]
    return out


def _number(values: Any, key: str, run_id: str) -> Any:
    if not isinstance(values, dict):
        raise StoredRunError(f"run {run_id}: stored counts are {type(values).__name__}, not an object")
    value = values.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StoredRunError(f"run {run_id}: stored {key} is {value!r}, not a number")
    return value


def upgrade_column(run_id: str, text: str) -> str | None:
    """The data migration's step for one ``runs`` row: its new ``data`` text, or None to leave the row as it
    is (current already, or unreadable: then it is logged, and reading the run raises the same error)."""
    try:
        data = json.loads(text)
        if isinstance(data, dict) and data.get("version") == VERSION:
            return None
        return json.dumps(upgrade(data, run_id))
    except (ValueError, TypeError) as exc:  # StoredRunError and JSONDecodeError are ValueErrors
        log.warning("run %s left in its stored format: %s", run_id, exc)
        return None
