"""Mutated answers: what GitHub may send for a read, not only what the sandbox happens to send.

The sandbox answers every read with the same well-filled JSON. GitHub's REST description allows far
more: optional fields absent, nullable ones null, fields the description does not name yet (GitHub adds
fields without a version bump), an empty page, and for the contents API a directory, a symbolic link, a
submodule, a file over 1 MB (``encoding: "none"``, empty ``content``) or content that does not decode.
A bot that only ever met the sandbox's answers breaks on those in production.

The functions here are pure, over (schema, data, rng) → (data, what was done): the schema is JSON Schema
as :mod:`bot.sandbox.openapi` translates the description (``nullable`` as a null type), with OpenAPI's
own ``nullable: true`` understood too. A field the schema marks required is never dropped, and a field
is set to null only where the schema allows null, so every answer stays one GitHub could send.
:class:`Mutator` holds the seed, the probability and the record, and looks each operation's response
schema up in the description (``$ref``s inlined once per operation).
"""

from __future__ import annotations

import base64
import copy
import random
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .github_state import b64_lines

if TYPE_CHECKING:
    from .openapi import GitHubOpenAPI, Operation

__all__ = ["KINDS", "CONTENT_SHAPES", "CONTENTS", "Mutator", "allows_null", "content_shape", "empty_page",
           "inline", "mutate", "mutate_answer", "page_key", "view_of"]

Schema = Mapping[str, Any]
KINDS = ("drop", "null", "extra")
#: The contents API's edge shapes (GitHub's description and docs), for a path the sandbox has as a file.
CONTENT_SHAPES = ("directory", "symlink", "submodule", "too-large", "bad-base64", "not-utf8")
CONTENTS = "/repos/{owner}/{repo}/contents/{path}"
# Names GitHub has added to answers over time, and plainly unknown ones: neither is in the schema.
EXTRA_NAMES = ("sub_issues_summary", "issue_dependencies_summary", "pinned_comment", "performed_via_github_app",
               "sandbox_unknown_field")
EXTRA_VALUES: tuple[Any, ...] = ("text", 0, 1.5, True, None, [], {}, {"nested": {"deeper": [1, "two"]}})
_PYTYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "array": (list,), "string": (str,),
                                         "integer": (int,), "number": (int, float), "boolean": (bool,),
                                         "null": (type(None),)}


# ---- reading a schema --------------------------------------------------------------------------

def inline(schema: Any, lookup: Callable[[str], Any], memo: dict[str, Any] | None = None,
           stack: tuple[str, ...] = ()) -> Any:
    """``schema`` with every ``$ref`` replaced by what it points to (``lookup(ref)``), so the walk below
    needs no resolver. Subtrees are shared through ``memo`` (the result is a DAG, never copied); a ref met
    again inside itself becomes ``{}`` (anything: nothing below it is mutated)."""
    memo = {} if memo is None else memo
    if isinstance(schema, list):
        return [inline(x, lookup, memo, stack) for x in schema]
    if not isinstance(schema, Mapping):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if ref in stack:
            return {}
        if ref not in memo:
            memo[ref] = inline(lookup(ref), lookup, memo, (*stack, ref))
        return memo[ref]
    out = {k: inline(v, lookup, memo, stack) for k, v in schema.items() if k != "properties"}
    if isinstance(schema.get("properties"), Mapping):  # names of fields, not keywords
        out["properties"] = {k: inline(v, lookup, memo, stack) for k, v in schema["properties"].items()}
    return out


def _types(schema: Schema) -> list[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    kinds = [kind] if isinstance(kind, str) else list(kind)
    return kinds + ["null"] if schema.get("nullable") is True else kinds


def allows_null(schema: Any) -> bool:
    """Whether the schema admits null: OpenAPI 3.0 ``nullable``, a type list with "null", or an
    ``anyOf``/``oneOf`` branch that does (an ``enum`` must list null too)."""
    if not isinstance(schema, Mapping):
        return False
    if isinstance(schema.get("enum"), list) and None not in schema["enum"] and schema.get("nullable") is not True:
        return False
    if "null" in (_types(schema) or []):
        return True
    if any(allows_null(b) for key in ("anyOf", "oneOf") for b in schema.get(key) or []):
        return True
    return bool(schema.get("allOf")) and all(allows_null(p) for p in schema["allOf"])


def _type_ok(schema: Schema, data: Any) -> bool:
    kinds = _types(schema)
    if kinds is None:
        return True
    if isinstance(data, bool):  # a bool is an int to Python, never to JSON Schema
        return "boolean" in kinds
    return any(isinstance(data, _PYTYPES.get(k, ())) for k in kinds)


def _shallow_ok(schema: Any, data: Any) -> bool:
    """``data``'s own type and enum against ``schema`` (its inside is not looked at)."""
    if not isinstance(schema, Mapping):
        return True
    if not _type_ok(schema, data) or (isinstance(schema.get("enum"), list) and data not in schema["enum"]
                                      and not (data is None and allows_null(schema))):
        return False
    if any(not _shallow_ok(p, data) for p in schema.get("allOf") or []):
        return False
    return all(any(_shallow_ok(b, data) for b in schema[k]) for k in ("anyOf", "oneOf") if schema.get(k))


def _merge(base: dict[str, Any], part: Schema) -> dict[str, Any]:
    """Two views of one instance as one: properties and required fields joined; closed if either is."""
    out = base | {k: v for k, v in part.items() if k not in ("properties", "required", "additionalProperties")}
    out["properties"] = {**base.get("properties", {}), **part.get("properties", {})}
    out["required"] = [*base.get("required", []), *part.get("required", [])]
    if base.get("additionalProperties") is False or part.get("additionalProperties") is False:
        out["additionalProperties"] = False
    elif "additionalProperties" in part:
        out["additionalProperties"] = part["additionalProperties"]
    return out


def _fit(schema: Any, data: Any) -> int | None:
    """How well ``data`` fits a branch: None when it cannot be an instance of it, else how many of its
    fields the branch names (the branch naming most of them is the one the data is)."""
    view = view_of(schema, data)
    if view is None or not _shallow_ok(view, data):
        return None
    if not isinstance(data, dict):
        return 0
    props = view.get("properties", {})
    if any(name not in data for name in view.get("required", [])):
        return None
    if any(not _shallow_ok(props[k], v) for k, v in data.items() if k in props):
        return None
    if view.get("additionalProperties") is False and any(k not in props for k in data):
        return None
    return sum(k in props for k in data)


def view_of(schema: Any, data: Any) -> dict[str, Any] | None:
    """The one flat schema ``data`` is an instance of: ``allOf`` parts merged, the best-fitting ``anyOf``/
    ``oneOf`` branch taken. None when no branch fits (the data is then left alone)."""
    if not isinstance(schema, Mapping):
        return {}
    view = {k: v for k, v in schema.items() if k not in ("allOf", "anyOf", "oneOf")}
    for part in schema.get("allOf") or []:
        if (sub := view_of(part, data)) is None:
            return None
        view = _merge(view, sub)
    for key in ("anyOf", "oneOf"):
        if not schema.get(key):
            continue
        scored = [(score, -i, b) for i, b in enumerate(schema[key]) if (score := _fit(b, data)) is not None]
        if not scored:
            return None
        if (sub := view_of(max(scored, key=lambda s: s[:2])[2], data)) is None:
            return None
        view = _merge(view, sub)
    return view


# ---- the mutations -------------------------------------------------------------------------------

def mutate(schema: Any, data: Any, rng: random.Random, *, rate: float = 0.25,
           kinds: Iterable[str] = KINDS) -> tuple[Any, list[str]]:
    """A mutated copy of ``data`` and what was done ("drop .user.email", "null .body", "extra .x"): each
    optional field dropped, each nullable field nulled, each open object given an unknown field, each
    with probability ``rate``, at any depth."""
    changes: list[str] = []
    out = _walk(schema, copy.deepcopy(data), rng, rate, frozenset(kinds), "", changes)
    return out, changes


def _walk(schema: Any, data: Any, rng: random.Random, rate: float, kinds: frozenset[str], at: str,
          changes: list[str]) -> Any:
    view = view_of(schema, data)
    if view is None:
        return data
    if isinstance(data, list) and isinstance(view.get("items"), Mapping):
        return [_walk(view["items"], x, rng, rate, kinds, f"{at}[{i}]", changes) for i, x in enumerate(data)]
    if isinstance(data, dict):
        _mutate_object(view, data, rng, rate, kinds, at, changes)
    return data


def _mutate_object(view: Schema, data: dict[str, Any], rng: random.Random, rate: float, kinds: frozenset[str],
                   at: str, changes: list[str]) -> None:
    props: Mapping[str, Any] = view.get("properties") or {}
    required = set(view.get("required") or [])
    for name in list(data):
        sub = props.get(name)
        if sub is None:  # a field the description does not name: nothing to go by
            continue
        if "drop" in kinds and name not in required and rng.random() < rate:
            del data[name]
            changes.append(f"drop {at}.{name}")
        elif "null" in kinds and data[name] is not None and allows_null(sub) and rng.random() < rate:
            data[name] = None
            changes.append(f"null {at}.{name}")
        else:
            data[name] = _walk(sub, data[name], rng, rate, kinds, f"{at}.{name}", changes)
    if "extra" in kinds and _open(view) and rng.random() < rate:
        name = _extra_name(rng, set(props) | set(data))
        data[name] = copy.deepcopy(rng.choice(EXTRA_VALUES))
        changes.append(f"extra {at}.{name}={data[name]!r}")


def _open(view: Schema) -> bool:
    """Whether an object takes fields the schema does not name (a schema for them must say nothing)."""
    extra = view.get("additionalProperties", True)
    return extra is True or extra == {}


def _extra_name(rng: random.Random, taken: set[str]) -> str:
    name = rng.choice(EXTRA_NAMES)
    while name in taken:
        name = f"{name}_{rng.randrange(1000)}"
    return name


def page_key(data: Any) -> str | None:
    """Where a list answer's items are: "" for a JSON list, the list's field for GitHub's wrapped pages
    (``{"total_count": n, "check_runs": [...]}``), None for anything else."""
    if isinstance(data, list):
        return ""
    if isinstance(data, dict) and "total_count" in data:
        lists = [k for k, v in data.items() if isinstance(v, list)]
        return lists[0] if len(lists) == 1 else None
    return None


def empty_page(data: Any) -> tuple[Any, list[str]] | None:
    """The answer as an empty page (GitHub's answer past the last page, or for a list with nothing in it
    yet); None when ``data`` is no list answer. ``total_count`` is left: search and Actions keep counting."""
    key = page_key(data)
    if key is None:
        return None
    if key == "":
        return [], ["empty page"]
    return {**data, key: []}, [f"empty page .{key}"]


def content_shape(data: Mapping[str, Any], kind: str, rng: random.Random) -> tuple[Any, list[str]]:
    """A contents-API file answer in one of GitHub's edge shapes (``CONTENT_SHAPES``)."""
    return _SHAPES[kind](dict(data), rng), [f"contents {kind}"]


def _directory(f: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    """The path is a directory after all: its listing (maybe empty), as GitHub lists directories."""
    entries = []
    for name in rng.sample(["config.yml", "README.md", "nested"], rng.randrange(3)):
        kind = "dir" if name == "nested" else "file"
        path, url = f"{f.get('path', '')}/{name}", f"{str(f.get('url', '')).split('?')[0]}/{name}"
        entries.append({"type": kind, "size": 0 if kind == "dir" else 42, "name": name, "path": path,
                        "sha": f.get("sha", "0" * 40), "url": url, "git_url": f.get("git_url"),
                        "html_url": f.get("html_url"), "download_url": None if kind == "dir" else f.get("download_url"),
                        "_links": {"self": url, "git": f.get("git_url"), "html": f.get("html_url")}})
    return entries


def _symlink(f: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """GitHub describes a link itself when its target is no regular file in the repository."""
    target = rng.choice(["../shared/triage-lead.yml", "/etc/passwd", "agents"])
    return _without_content(f) | {"type": "symlink", "target": target, "size": len(target), "download_url": None}


def _submodule(f: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    git_url = f"https://github.com/{rng.choice(['octo-org', 'Codertocat'])}/vendored.git"
    return _without_content(f) | {"type": "submodule", "submodule_git_url": git_url, "size": 0,
                                  "download_url": None}


def _without_content(f: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in f.items() if k not in ("content", "encoding")}


def _too_large(f: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A file between 1 and 100 MB: GitHub sends no content (the blob API has it)."""
    return f | {"encoding": "none", "content": "", "size": 1024 * 1024 + 1 + rng.randrange(10**6)}


def _bad_base64(f: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Content no base64 decoder takes, strict or lenient (characters outside the alphabet, bad padding)."""
    return f | {"content": rng.choice(["!!! this is not base64 !!!\n", "not base64: ~~~\n"])}


def _not_utf8(f: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Valid base64 of bytes that are not UTF-8: the file as a Windows editor may save it (UTF-16 with its
    byte-order mark), or Latin-1."""
    try:
        text = base64.b64decode(str(f.get("content", ""))).decode("utf-8")
    except ValueError:
        text = "name: x"
    raw = (b"\xff\xfe" + text.encode("utf-16-le") if rng.random() < 0.5
           else ("# caf\u00e9 \u00e9t\u00e9\n" + text).encode("latin-1", "replace"))
    return f | {"encoding": "base64", "content": b64_lines(raw), "size": len(raw)}


_SHAPES: dict[str, Callable[[dict[str, Any], random.Random], Any]] = {
    "directory": _directory, "symlink": _symlink, "submodule": _submodule, "too-large": _too_large,
    "bad-base64": _bad_base64, "not-utf8": _not_utf8}


def mutate_answer(schema: Any, data: Any, rng: random.Random, *, contents: bool = False,
                  rate: float = 0.25) -> tuple[Any, list[str]]:
    """One answer mutated in one way chosen by ``rng``: a contents edge shape (``contents``: the answer
    is the contents API's, for a file), an empty page (a list answer), or field mutations within ``schema``."""
    if contents and isinstance(data, dict) and data.get("type") == "file":
        kind = rng.choice([*CONTENT_SHAPES, "fields"])
        if kind != "fields":
            return content_shape(data, kind, rng)
    if page_key(data) is not None and rng.random() < 1 / 3:
        return empty_page(data) or (data, [])
    return mutate(schema, data, rng, rate=rate)


# ---- the sandbox's mutator ---------------------------------------------------------------------------

_RESOLVED: weakref.WeakKeyDictionary[GitHubOpenAPI, tuple[dict[tuple[str, str, int], Any], dict[str, Any]]] = \
    weakref.WeakKeyDictionary()


class Mutator:
    """Mutates the sandbox's answers to reads: each with probability ``probability``, decided by a
    ``random.Random`` seeded from ``seed`` and the request (method, path and query, how many times it was
    asked before), so a run mutates the same way every time even when jobs interleave their requests.
    ``records`` says which request got which mutation, one line each."""

    def __init__(self, api: GitHubOpenAPI, seed: int, probability: float = 0.5, rate: float = 0.25) -> None:
        self.api, self.seed, self.probability, self.rate = api, seed, probability, rate
        self.records: list[str] = []
        self._asked: dict[str, int] = {}
        # Shared by every mutator of one description (a test run makes hundreds):
        # (method, template, status) -> inlined schema, and $ref -> inlined subtree.
        self._schemas, self._memo = _RESOLVED.setdefault(api, ({}, {}))

    def answer(self, method: str, raw_path: str, status: int, data: Any) -> tuple[Any, list[str]] | None:
        """The mutated answer and what was done, or None to send it as it is."""
        key = f"{method} {raw_path}"
        n = self._asked[key] = self._asked.get(key, 0) + 1
        rng = random.Random(f"{self.seed}|{key}|{n}")
        if rng.random() >= self.probability or (match := self.api.match(method, raw_path)) is None:
            return None
        schema = self.schema(match.operation, status)
        if schema is None:
            return None
        out, changes = mutate_answer(schema, data, rng, contents=match.operation.template == CONTENTS,
                                     rate=self.rate)
        self.records += [f"{key}: {c}" for c in changes]
        return (out, changes) if changes else None

    def schema(self, op: Operation, status: int) -> Any:
        """The operation's response schema for ``status``, ``$ref``s inlined; looked up once."""
        key = (op.method, op.template, status)
        if key not in self._schemas:
            raw = self.api.response_schema(op, status)
            resolver = self.api.registry.resolver()
            self._schemas[key] = None if raw is None else inline(
                raw, lambda ref: resolver.lookup(ref).contents, self._memo)
        return self._schemas[key]
