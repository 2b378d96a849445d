"""GitHub's REST description as a checker for what the bot sends and what the sandbox answers.

A test that passes against the sandbox GitHub proves little if the sandbox takes requests GitHub
would refuse (or silently ignore). This module indexes the description GitHub publishes (the npm
package ``@octokit/openapi``, file ``generated/api.github.com.json``) by (method, path template)
and checks one concrete request against its operation: path parameters' form, query parameter
names and simple types, and the JSON body against the ``requestBody`` schema with ``jsonschema``
(OpenAPI 3.0's ``nullable`` translated, ``$ref`` resolved into ``#/components/...``). Unknown body
fields are reported too: GitHub drops them without a word, so a misspelt field fails silently.
It also checks the top level of 2xx JSON responses, to keep the sandbox's answers honest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from jsonschema import Draft4Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

__all__ = ["GitHubOpenAPI", "Operation", "Match", "SPEC_IN_PACKAGE"]

#: Where the description lives inside an npm prefix that installed ``@octokit/openapi``.
SPEC_IN_PACKAGE = Path("node_modules/@octokit/openapi/generated/api.github.com.json")
BASE = "urn:github-rest-description"  # the document's URI in the jsonschema registry
METHODS = ("get", "put", "post", "patch", "delete", "head", "options")
_PARAM = re.compile(r"\{([^}]+)\}")
_SCALARS = {"integer": re.compile(r"-?\d+"), "number": re.compile(r"-?\d+(\.\d+)?"),
            "boolean": re.compile(r"true|false")}


def to_json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema tree as JSON Schema (draft 4): ``nullable`` becomes a null type, and
    local ``$ref``s become absolute so any subschema resolves on its own through the registry."""
    if isinstance(node, list):
        return [to_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if k not in ("example", "examples", "properties")}
    if isinstance(node.get("properties"), dict):  # names of fields, not keywords: keep every one
        out["properties"] = {k: to_json_schema(v) for k, v in node["properties"].items()}
    if isinstance(out.get("$ref"), str) and out["$ref"].startswith("#/"):
        out["$ref"] = BASE + out["$ref"]
    if out.get("nullable") is True:
        del out["nullable"]
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        elif any(k in out for k in ("oneOf", "anyOf", "allOf", "$ref")):
            out = {"anyOf": [{"type": "null"}, out]}
    return out


def strict(schema: Any) -> Any:
    """A request schema that refuses properties it does not name (``$ref``s and ``allOf`` parts are
    left as they are: closing those would refuse fields another part names)."""
    if isinstance(schema, list):
        return [strict(x) for x in schema]
    if not isinstance(schema, dict) or "$ref" in schema:
        return schema
    out = {k: (v if k == "allOf" else strict(v)) for k, v in schema.items()}
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and "allOf" not in schema:
            out["additionalProperties"] = False
    return out


@dataclass(frozen=True)
class Operation:
    """One operation of the description, with what a request to it may carry."""

    method: str
    template: str
    operation_id: str
    path_params: Mapping[str, dict]
    query_params: Mapping[str, tuple[dict, bool]]  # name -> (schema, required)
    body: dict | None  # JSON Schema of the application/json request body
    body_required: bool
    takes_body: bool  # any request body at all, in whatever media type
    responses: Mapping[str, dict | None] = field(repr=False)  # status -> JSON Schema of application/json

    def __str__(self) -> str:
        return f"{self.method} {self.template} ({self.operation_id})"


@dataclass(frozen=True)
class Match:
    operation: Operation
    params: dict[str, str]  # path parameters, percent-decoded


@dataclass(frozen=True)
class _Route:
    regex: re.Pattern[str]
    names: tuple[str, ...]
    operation: Operation


class GitHubOpenAPI:
    """The description indexed by (method, path template); ``check_request``/``check_response`` say
    what is wrong in GitHub's terms, as a list of one-line problems (empty: it conforms)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = {"components": to_json_schema(document.get("components", {})),
                         "paths": to_json_schema(document.get("paths", {}))}
        self.version = str(document.get("info", {}).get("version", ""))
        self.registry: Registry = Registry().with_resource(
            BASE, Resource.from_contents(self.document, default_specification=DRAFT4))
        self._routes: dict[str, list[_Route]] = {}
        self._validators: dict[tuple[str, str, str], Draft4Validator] = {}
        for template, item in self.document["paths"].items():
            for method in METHODS:
                if isinstance(item.get(method), dict):
                    self._add(method.upper(), template, item[method])
        for routes in self._routes.values():
            routes.sort(key=lambda r: _specificity(r.operation.template))

    @classmethod
    def from_file(cls, path: str | Path) -> GitHubOpenAPI:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def __len__(self) -> int:
        return sum(len(r) for r in self._routes.values())

    def operations(self) -> Iterable[Operation]:
        return (r.operation for routes in self._routes.values() for r in routes)

    # ---- the index -------------------------------------------------------------------
    def _pointer(self, ref: str) -> Any:
        node: Any = self.document
        for part in ref.split("#/", 1)[1].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _add(self, method: str, template: str, op: dict) -> None:
        path_params: dict[str, dict] = {}
        query_params: dict[str, tuple[dict, bool]] = {}
        greedy: set[str] = set()
        for p in op.get("parameters", []):
            p = self._resolve(p)
            if p.get("in") == "path":
                path_params[p["name"]] = p.get("schema", {})
                if p.get("x-multi-segment"):  # GitHub's mark for {path}, {ref}, {branch}... that span slashes
                    greedy.add(p["name"])
            elif p.get("in") == "query":
                query_params[p["name"]] = (p.get("schema", {}), bool(p.get("required")))
        body = self._resolve(op.get("requestBody")) if op.get("requestBody") else None
        body_schema = ((body or {}).get("content") or {}).get("application/json", {}).get("schema")
        responses = {}
        for status, resp in (op.get("responses") or {}).items():
            content = (self._resolve(resp).get("content") or {})
            responses[str(status)] = (content.get("application/json") or {}).get("schema")
        operation = Operation(method, template, op.get("operationId", "?"), path_params, query_params,
                              body_schema, bool(body and body.get("required")), body is not None, responses)
        names, parts = [], []
        segments = template.strip("/").split("/")
        for i, segment in enumerate(segments):
            pieces, last = [], 0
            for m in _PARAM.finditer(segment):
                # A trailing multi-segment parameter may be empty: ``contents/`` lists the root directory.
                wide = "(.*)" if i == len(segments) - 1 and m.end() == len(segment) else "(.+)"
                pieces += [re.escape(segment[last:m.start()]), wide if m[1] in greedy else "([^/]+)"]
                names.append(m[1])
                last = m.end()
            parts.append("".join(pieces) + re.escape(segment[last:]))
        regex = re.compile("/" + "/".join(parts) if parts != [""] else "/")
        self._routes.setdefault(method, []).append(_Route(regex, tuple(names), operation))

    def _resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            node = self._pointer(node["$ref"])
        return node

    def match(self, method: str, raw_path: str) -> Match | None:
        """The operation a request is for; ``raw_path`` as sent (percent-encoded, no query string)."""
        path = raw_path.split("?", 1)[0]
        for route in self._routes.get(method.upper(), []):
            if m := route.regex.fullmatch(path):
                return Match(route.operation, {n: unquote(v) for n, v in zip(route.names, m.groups(), strict=True)})
        return None

    def _validator(self, op: Operation, kind: str, schema: dict) -> Draft4Validator:
        key = (op.method, op.template, kind)
        if key not in self._validators:
            self._validators[key] = Draft4Validator(schema, registry=self.registry)
        return self._validators[key]

    # ---- requests ---------------------------------------------------------------------
    def check_request(self, method: str, raw_path: str, query: Mapping[str, str] | Iterable[tuple[str, str]],
                      body: Any = None, *, has_body: bool | None = None) -> list[str]:
        """Problems with one request, each naming the operation; ``query`` as a mapping or pairs
        (repeats allowed); ``has_body`` False means no body was sent (``body`` None is JSON null)."""
        has_body = body is not None if has_body is None else has_body
        match = self.match(method, raw_path)
        path = raw_path.split("?", 1)[0]
        if match is None:
            others = sorted(m for m, routes in self._routes.items()
                            if any(r.regex.fullmatch(path) for r in routes))
            hint = f" (that path takes {', '.join(others)})" if others else ""
            return [f"{method.upper()} {path}: no such operation in GitHub's REST description{hint}"]
        op, problems = match.operation, []
        for name, value in match.params.items():
            problems += _value_problems(f"path parameter {name}", value, op.path_params.get(name, {}))
        pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
        for name, value in pairs:
            if name not in op.query_params:
                takes = ", ".join(sorted(op.query_params)) or "none"
                problems.append(f"query parameter {name!r} is not one this operation takes (it takes: {takes})")
            else:
                problems += _value_problems(f"query parameter {name}", value, op.query_params[name][0])
        sent = {n for n, _ in pairs}
        problems += [f"query parameter {n!r} is required" for n, (_, req) in op.query_params.items()
                     if req and n not in sent]
        problems += self._body_problems(op, body, has_body)
        return [f"{op}: {p}" for p in problems]

    def _body_problems(self, op: Operation, body: Any, has_body: bool) -> list[str]:
        if not has_body:
            return ["a JSON body is required"] if op.body_required else []
        if op.body is None:
            return [] if op.takes_body or body in ({}, None) else ["sends a body, but the operation takes none"]
        validator = self._validator(op, "request", strict(op.body))
        errors = list(validator.iter_errors(body))
        if not errors:
            return []
        best = best_match(errors)
        ordered = [best] + [e for e in errors if e is not best][:2]
        return ["body" + "".join(f"[{p!r}]" for p in e.absolute_path) + f": {_clip(e.message)}" for e in ordered]

    # ---- responses --------------------------------------------------------------------
    def response_schema(self, op: Operation, status: int) -> dict | None:
        for key in (str(status), f"{str(status)[0]}XX", "default"):
            if key in op.responses:
                return op.responses[key]
        return None

    def check_response(self, method: str, raw_path: str, status: int, body: Any, *, deep: bool = False) -> list[str]:
        """Problems with a 2xx JSON answer: its top level (required fields present, each field's type),
        or with ``deep`` the whole document against the schema."""
        match = self.match(method, raw_path)
        if match is None or not 200 <= status < 300:
            return []
        op = match.operation
        if str(status) not in op.responses and not any(k.startswith("2") for k in op.responses):
            return [f"{op}: answered {status}, which the description does not list"]
        schema = self.response_schema(op, status)
        if schema is None:
            return []
        checked = schema if deep else self._shallow(schema)
        validator = self._validator(op, f"response{status}{'-deep' if deep else ''}", checked)
        errors = sorted(validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
        return [f"{op} → {status}: response{where}: {message}" for e in errors for where, message in _explain(e)]

    def _shallow(self, schema: Any, depth: int = 0) -> dict:
        """The top level of ``schema`` only: required fields and each field's type (one level down for
        list answers). ``oneOf`` becomes ``anyOf``: branches cut down to their top may overlap."""
        name = schema["$ref"].rsplit("/", 1)[-1] if isinstance(schema, dict) and "$ref" in schema else None
        schema = self._resolve(schema)
        if not isinstance(schema, dict):
            return {}
        if name is not None:
            return {"title": name} | self._shallow(schema, depth)
        if "allOf" in schema:
            parts = [self._shallow(s, depth) for s in schema["allOf"]]
            merged: dict[str, Any] = {"properties": {}, "required": []}
            for p in parts:
                merged["properties"] |= p.get("properties", {})
                merged["required"] += p.get("required", [])
                if "type" in p:
                    merged["type"] = p["type"]
            return merged
        for key in ("oneOf", "anyOf"):
            if key in schema:
                return {"anyOf": [self._shallow(s, depth) for s in schema[key]]}
        out: dict[str, Any] = {k: schema[k] for k in ("type", "required", "enum") if k in schema}
        if depth == 0 and schema.get("type") == "array" and "items" in schema:
            out["items"] = self._shallow(schema["items"], depth)
        if isinstance(schema.get("properties"), dict):
            out["properties"] = {k: _type_only(self._resolve(v)) for k, v in schema["properties"].items()}
        return out


def _explain(error: Any) -> list[tuple[str, str]]:
    """(where, what) for one validation error; for a failed ``anyOf``/``oneOf`` the errors of the branch
    that came closest, named by its schema, rather than the whole document printed back."""
    where = "".join(f"[{p!r}]" for p in error.absolute_path)
    if error.validator in ("anyOf", "oneOf") and error.context:
        by_branch: dict[int, list[Any]] = {}
        for sub in error.context:
            by_branch.setdefault(sub.schema_path[0], []).append(sub)
        # The closest branch: one whose type fits (a file is no directory), then the fewest errors.
        index, closest = min(by_branch.items(), key=lambda kv: (
            any(e.validator == "type" and not e.relative_path for e in kv[1]), len(kv[1])))
        title = error.validator_value[index].get("title", f"branch {index}")
        return [(w, f"(as {title}) {m}") for sub in closest for w, m in _explain(sub)]
    return [(where, _clip(error.message))]


def _type_only(schema: Any) -> dict:
    """A property's type (null allowed where the description allows it), without its inside."""
    if not isinstance(schema, dict):
        return {}
    if "type" in schema:
        return {"type": schema["type"]}
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and all(isinstance(b, dict) and "type" in b for b in branches):
            return {"type": sorted({t for b in branches for t in _types(b["type"])})}
    return {}


def _types(kind: Any) -> list[str]:
    return [kind] if isinstance(kind, str) else list(kind)


def _value_problems(what: str, value: str, schema: Mapping[str, Any]) -> list[str]:
    """A path or query value (always text on the wire) against its parameter's simple schema."""
    kinds = [k for k in _types(schema.get("type", [])) if k != "null"]
    if len(kinds) == 1 and kinds[0] in _SCALARS and not _SCALARS[kinds[0]].fullmatch(value):
        return [f"{what} must be {'an' if kinds[0] == 'integer' else 'a'} {kinds[0]}, got {_clip(value)!r}"]
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in [str(e).lower() if isinstance(e, bool) else str(e) for e in enum]:
        return [f"{what} must be one of {', '.join(map(str, enum))}; got {_clip(value)!r}"]
    return []


def _specificity(template: str) -> tuple:
    """Route order: more literal segments first, then fewer parameters, so ``issues/comments`` wins
    over ``issues/{issue_number}`` and ``branches/{branch}/protection`` over ``branches/{branch}``."""
    segments = template.strip("/").split("/")
    literal = sum(not _PARAM.search(s) for s in segments)
    return (-literal, len(segments) - literal, [1 if _PARAM.search(s) else 0 for s in segments], template)


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
