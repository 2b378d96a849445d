"""The fake Messages API's server-side web search tool, as Anthropic documents it.

A request offers it as ``{"type": "web_search_20250305", "name": "web_search", "max_uses": N}`` (optionally
``allowed_domains`` or ``blocked_domains``, never both, and ``user_location``). The API runs the searches itself
within the one response: each ``server_tool_use`` block (``name`` web_search, ``input.query``) is followed by a
``web_search_tool_result`` block holding the results (``web_search_result``: url, title, encrypted_content,
page_age) or an error (``web_search_tool_result_error`` with an ``error_code``: max_uses_exceeded past
``max_uses``, too_many_requests, unavailable, invalid_tool_input, query_too_long), with HTTP 200 either way. Text
citing a result carries ``citations`` of type ``web_search_result_location`` (url, title, cited_text,
encrypted_index), and ``usage.server_tool_use.web_search_requests`` counts the searches billed ($10 per 1,000);
one that failed is not billed. A long turn of server tools may end with ``stop_reason: "pause_turn"``: the
client sends the response back as the last assistant message and the API continues it.

A scripted reply names searches as ``server_tool_use`` blocks (``Reply.web_search``); this module fills in their
results, deterministic (``pages`` a test sets per query, else made up from the query), and resolves a text
block's ``"cite": [i, ...]`` (indices into the results served so far in this reply) into citations. A search
fails as the API's would: a missing or empty query with invalid_tool_input, one past ``QUERY_CHARS`` with
query_too_long, every search with ``outage``'s code while a test sets it, or a scripted ``_error``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

TOOL_TYPES = ("web_search_20250305", "web_search_20260209")
NAME = "web_search"
TOOL_KEYS = {"type", "name", "max_uses", "allowed_domains", "blocked_domains", "user_location", "cache_control",
             "allowed_callers", "defer_loading", "strict"}
ERROR_CODES = ("invalid_tool_input", "unavailable", "max_uses_exceeded", "too_many_requests", "query_too_long",
               "request_too_large")
RESULTS_PER_SEARCH = 3
QUERY_CHARS = 400  # the fake's longest query: past it, query_too_long (the API's own limit is not documented)


class ScriptError(Exception):
    """A scripted reply the real API could never send (a search the request did not offer, a bad citation)."""


def tool_problem(i: int, tool: dict[str, Any]) -> str | None:
    """What the real API's 400 says of a web search tool definition, or None (for other tools too)."""
    kind = tool.get("type")
    if not (isinstance(kind, str) and kind.startswith("web_search_")):
        return None
    if kind not in TOOL_TYPES:
        return f"tools.{i}.type: Input tag '{kind}' found using 'type' does not match any of the expected tags"
    if tool.get("name") != NAME:
        return f"tools.{i}.{kind}.name: Input should be '{NAME}'"
    if extra := sorted(set(tool) - TOOL_KEYS):
        return f"tools.{i}.{kind}.{extra[0]}: Extra inputs are not permitted"
    uses = tool.get("max_uses")
    if uses is not None and (not isinstance(uses, int) or isinstance(uses, bool) or uses < 1):
        return f"tools.{i}.{kind}.max_uses: Input should be greater than or equal to 1"
    if tool.get("allowed_domains") is not None and tool.get("blocked_domains") is not None:
        return f"tools.{i}.{kind}: allowed_domains and blocked_domains cannot be used together"
    for key in ("allowed_domains", "blocked_domains"):
        domains = tool.get(key)
        if domains is not None and (not isinstance(domains, list)
                                    or not all(isinstance(d, str) and d and "://" not in d for d in domains)):
            return f"tools.{i}.{kind}.{key}: a list of domains without a scheme (example.com/path)"
    return None


def offered(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The request's web search tool, if it offers one."""
    return next((t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") in TOOL_TYPES), None)


def made_up(query: str) -> list[dict[str, str]]:
    """Results for a query no test set: the same pages for the same query."""
    slug = re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-")[:40] or "query"
    return [{"url": f"https://docs.example.com/{slug}/{n}", "title": f"{query[:60]} — result {n}",
             "text": f"What page {n} says about {query[:60]}."} for n in range(1, RESULTS_PER_SEARCH + 1)]


def _domain_ok(url: str, tool: Mapping[str, Any]) -> bool:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:  # a page's address no parser reads (a test's hostile one): no domain rule matches it
        host = ""

    def matches(domain: str) -> bool:
        d = domain.lower().split("/")[0]
        return host == d or host.endswith("." + d)
    if tool.get("allowed_domains") is not None:
        return any(matches(d) for d in tool["allowed_domains"])
    return not any(matches(d) for d in tool.get("blocked_domains") or [])


def _sealed(text: str) -> str:
    """What stands for the API's encrypted content: opaque, deterministic, to be sent back as it came."""
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


class WebSearch:
    """The fake's search engine: ``pages[query]`` (a test's) or made-up results, and the queries served."""

    def __init__(self) -> None:
        self.pages: dict[str, list[dict[str, str]]] = {}
        self.served: list[str] = []  # every query searched (billed), in order
        # An outage a test sets: every search fails with this code (too_many_requests, unavailable) while it is set.
        self.outage: str | None = None
        self._ids = itertools.count(1)

    def serve(self, body: Mapping[str, Any], content: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        """A scripted reply's blocks with each search's results filled in and citations resolved, and the
        searches billed. Raises ScriptError for a reply the real API could not have sent."""
        tool = offered(body)
        out: list[dict[str, Any]] = []
        found: list[dict[str, str]] = []
        billed = tried = 0
        for block in content:
            block = dict(block)
            if block.get("type") == "server_tool_use" and block.get("name") == NAME:
                if tool is None:
                    raise ScriptError("the reply searches the web but the request offers no web_search tool")
                block.setdefault("id", f"srvtoolu_fake{next(self._ids):014d}")
                error = block.pop("_error", None) or self.outage or _query_problem(block.get("input"))
                tried += 1
                if error is None and tool.get("max_uses") is not None and tried > tool["max_uses"]:
                    error = "max_uses_exceeded"
                out.append(block)
                out.append(self._result(block, tool, error, found))
                billed += error is None
                continue
            if block.get("type") == "text" and "cite" in block:
                block["citations"] = [_citation(found, i) for i in block.pop("cite")]
            out.append(block)
        return out, billed

    def _result(self, use: dict[str, Any], tool: Mapping[str, Any], error: str | None,
                found: list[dict[str, str]]) -> dict[str, Any]:
        if error is not None:
            if error not in ERROR_CODES:
                raise ScriptError(f"unknown web search error code {error!r}")
            content: Any = {"type": "web_search_tool_result_error", "error_code": error}
        else:
            query = str((use.get("input") or {}).get("query") or "")
            self.served.append(query)
            pages = [p for p in self.pages.get(query) or made_up(query) if _domain_ok(p["url"], tool)]
            found.extend(pages)
            content = [{"type": "web_search_result", "url": p["url"], "title": p["title"],
                        "encrypted_content": _sealed(p["url"] + p.get("text", "")), "page_age": "April 1, 2026"}
                       for p in pages]
        return {"type": "web_search_tool_result", "tool_use_id": use["id"], "content": content}


def _query_problem(value: Any) -> str | None:
    """The error code the API answers a search whose input it cannot use (a missing or empty query, or one too
    long), or None."""
    query = value.get("query") if isinstance(value, dict) else None
    if not isinstance(query, str) or not query.strip():
        return "invalid_tool_input"
    return "query_too_long" if len(query) > QUERY_CHARS else None


def _citation(found: list[dict[str, str]], i: Any) -> dict[str, Any]:
    if not isinstance(i, int) or not 0 <= i < len(found):
        raise ScriptError(f"the reply cites result {i!r} but {len(found)} were found")
    page = found[i]
    return {"type": "web_search_result_location", "url": page["url"], "title": page["title"],
            "cited_text": page.get("text", "")[:150], "encrypted_index": _sealed(f"{i}:{page['url']}")}


def block_problem(i: int, role: str, j: int, block: Mapping[str, Any]) -> str | None:
    """What the real API's 400 says of a server tool block sent back in the history (the assistant's, whole)."""
    kind = block.get("type")
    if kind not in ("server_tool_use", "web_search_tool_result"):
        return None
    if role != "assistant":
        return f"messages.{i}.content.{j}: {kind} blocks may only appear in assistant messages"
    if kind == "server_tool_use" and not (isinstance(block.get("id"), str) and isinstance(block.get("input"), dict)
                                          and isinstance(block.get("name"), str)):
        return f"messages.{i}.content.{j}.server_tool_use: id, name and input are required"
    if kind == "web_search_tool_result" and not isinstance(block.get("tool_use_id"), str):
        return f"messages.{i}.content.{j}.web_search_tool_result.tool_use_id: Field required"
    return None
