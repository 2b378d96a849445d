"""The fake Messages API's token counting and prompt caching: a deterministic token estimate, the prompt as
the API caches it (tools, then system, then message blocks), and a cache that splits a request's input
tokens into read, created and uncached as the real API does.

The rules, each from Anthropic's prompt-caching and structured-outputs documentation:

* a prefix is cached only at a breakpoint (``cache_control`` on a block, or the top-level ``cache_control`` of
  automatic caching, which marks the last block), at most four per request, and only when the prefix up to it
  is at least the model's minimum cacheable length (``MIN_CACHEABLE_TOKENS``, the one table of them);
* an entry belongs to one API key (organisation) and one model, and matches only the exact prefix: a change to
  the tools changes everything after them; the structured-output format (``output_config.format``, which the
  API turns into an extra system prompt) and the system prompt change the system and messages; ``tool_choice``
  and ``thinking`` change the messages only (``SECTION_SETTINGS``);
* a breakpoint finds an earlier entry at most ``CACHE_LOOKBACK_BLOCKS`` block boundaries back, its own included;
* entries live 5 minutes or 1 hour (``ttl``) from their last use, and a request's 1-hour breakpoints must come
  before its 5-minute ones."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from typing import Any

from .validate import invalid

MAX_CACHE_BREAKPOINTS = 4
CACHE_LOOKBACK_BLOCKS = 20  # the real API also checks ~20 earlier block boundaries for hits
CACHE_TTLS = {"5m": 300.0, "1h": 3600.0}

# The minimum cacheable prefix per model (tokens up to the breakpoint); a model id matches its longest entry
# here, so dated ids (claude-haiku-4-5-20251001) find theirs. Sonnet 4.6 is documented at 1,024 in one place
# and 2,048 in another, and observed caching only from 2,048: the higher figure is taken, so the fake never
# caches what the API would not. A model not listed gets the strictest minimum for the same reason.
MIN_CACHEABLE_TOKENS: dict[str, int] = {
    "claude-opus-4-7": 2048,
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-opus-4-1": 1024,
    "claude-opus-4": 1024,
    "claude-sonnet-4-6": 2048,
    "claude-sonnet-4-5": 1024,
    "claude-sonnet-4": 1024,
    "claude-3-7-sonnet": 1024,
    "claude-haiku-4-5": 4096,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
}
STRICTEST_MIN_CACHEABLE = max(MIN_CACHEABLE_TOKENS.values())

# Request settings that are not blocks but part of the cached prefix: where each enters decides what a change to
# it invalidates ("system": the system prompt and the messages; "messages": the messages only).
SECTION_SETTINGS: dict[str, tuple[str, ...]] = {"system": ("output_format",), "messages": ("tool_choice", "thinking")}


def min_cacheable_tokens(model: str) -> int:
    """The model's minimum cacheable prefix, from ``MIN_CACHEABLE_TOKENS``."""
    keys = [k for k in MIN_CACHEABLE_TOKENS if model == k or model.startswith(k + "-")]
    return MIN_CACHEABLE_TOKENS[max(keys, key=len)] if keys else STRICTEST_MIN_CACHEABLE


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def estimate_tokens(obj: Any) -> int:
    """Deterministic stand-in for a tokenizer: ~4 characters per token."""
    return math.ceil(len(obj if isinstance(obj, str) else canonical(obj)) / 4)


def _strip_cc(block: dict[str, Any]) -> dict[str, Any]:
    # Markers are not content: moving a breakpoint must not change the cached prefix.
    return {k: v for k, v in block.items() if k != "cache_control"}


@dataclasses.dataclass
class Block:
    kind: str  # "tools" | "system" | "user" | "assistant" | "settings" (no content: a part of the prefix's key)
    body: dict[str, Any]
    cache_control: dict[str, Any] | None
    billed: bool = True  # False: hashed into the prefix but no tokens (tool_choice, thinking)


def _settings(body: dict[str, Any], section: str) -> list[Block]:
    """The settings that enter the prefix where ``section`` starts (see ``SECTION_SETTINGS``)."""
    fmt = (body.get("output_config") or {}).get("format") if isinstance(body.get("output_config"), dict) else None
    values = {"output_format": fmt, "tool_choice": body.get("tool_choice"), "thinking": body.get("thinking")}
    # The output format is billed: the API adds a system prompt describing it.
    return [Block("settings", {name: values[name]}, None, billed=name == "output_format")
            for name in SECTION_SETTINGS[section] if values[name] is not None]


def prompt_blocks(body: dict[str, Any]) -> list[Block]:
    """The prompt in the API's cache order: tools, then system, then message blocks."""
    blocks = [Block("tools", t, t.get("cache_control")) for t in body.get("tools") or []]
    blocks += _settings(body, "system")
    system = body.get("system")
    if isinstance(system, str) and system:
        blocks.append(Block("system", {"type": "text", "text": system}, None))
    elif isinstance(system, list):
        blocks += [Block("system", b, b.get("cache_control")) for b in system]
    blocks += _settings(body, "messages")
    for msg in body.get("messages") or []:
        content = msg["content"]
        if isinstance(content, str):
            blocks.append(Block(msg["role"], {"type": "text", "text": content}, None))
        else:
            blocks += [Block(msg["role"], b, b.get("cache_control")) for b in content]
    return blocks


def _tokens(block: Block) -> int:
    return estimate_tokens(_strip_cc(block.body)) if block.billed else 0


def input_tokens(blocks: list[Block]) -> int:
    """What ``count_tokens`` answers: every block's estimate, cache markers aside."""
    return sum(_tokens(b) for b in blocks)


def _ttl(cache_control: Any) -> str:
    return cache_control.get("ttl", "5m") if isinstance(cache_control, dict) else "5m"


def _breakpoints(body: dict[str, Any], blocks: list[Block]) -> dict[int, Any]:
    """Block index -> its cache_control; top-level ``cache_control`` (automatic caching) marks the last block."""
    breakpoints = {i: b.cache_control for i, b in enumerate(blocks) if b.cache_control}
    auto = body.get("cache_control")
    if auto and blocks and blocks[-1].kind in ("user", "assistant") and len(blocks) - 1 not in breakpoints:
        breakpoints[len(blocks) - 1] = auto  # automatic caching: marker on the last block
    if len(breakpoints) > MAX_CACHE_BREAKPOINTS:
        raise invalid(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(breakpoints)}."
        )
    ttls = [_ttl(breakpoints[i]) for i in sorted(breakpoints)]
    if "5m" in ttls and "1h" in ttls[ttls.index("5m"):]:
        raise invalid("cache_control: a ttl='1h' cache breakpoint cannot come after a ttl='5m' one; "
                      "put longer-lived entries first.")
    return breakpoints


def _prefixes(blocks: list[Block]) -> tuple[list[int], list[str]]:
    """For each block, the tokens and a hash of the prompt up to and including it."""
    cumulative, hashes = [], []
    total, h = 0, hashlib.sha256()
    for b in blocks:
        total += _tokens(b)
        h.update(canonical([b.kind, _strip_cc(b.body)]).encode())
        cumulative.append(total)
        hashes.append(h.copy().hexdigest())
    return cumulative, hashes


class PromptCache:
    """Cached prompt prefixes: (API key hash, model, prefix hash) -> (expiry, lifetime)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], tuple[float, float]] = {}

    def clear(self) -> None:
        self._entries.clear()

    def usage(self, api_key: str, body: dict[str, Any], blocks: list[Block], clock: Callable[[], float],
              min_cache_tokens: int | None) -> dict[str, Any]:
        """Split input tokens into read / created / uncached, updating the cache like the real API.

        ``min_cache_tokens`` None: the model's own minimum (``MIN_CACHEABLE_TOKENS``); a number overrides it.
        """
        breakpoints = _breakpoints(body, blocks)
        cumulative, hashes = _prefixes(blocks)
        total = cumulative[-1] if cumulative else 0
        read = created = created_1h = 0
        if breakpoints:
            key = hashlib.sha256(api_key.encode()).hexdigest()
            model, now = body["model"], clock()
            minimum = min_cacheable_tokens(model) if min_cache_tokens is None else min_cache_tokens

            def live(i: int) -> bool:
                return self._entries.get((key, model, hashes[i]), (-1.0, 0.0))[0] > now

            hit = max(
                (j for bp in breakpoints for j in range(bp, max(-1, bp - CACHE_LOOKBACK_BLOCKS), -1) if live(j)),
                default=-1,
            )
            read = cumulative[hit] if hit >= 0 else 0
            if hit >= 0:  # a hit refreshes the entry for its own lifetime
                lifetime = self._entries[(key, model, hashes[hit])][1]
                self._entries[(key, model, hashes[hit])] = (now + lifetime, lifetime)
            prev_end = read
            for bp in sorted(breakpoints):
                ttl = _ttl(breakpoints[bp])
                if cumulative[bp] < minimum:
                    continue  # below the model's minimum cacheable length: nothing is written
                if cumulative[bp] > prev_end:
                    segment = cumulative[bp] - prev_end
                    created += segment
                    created_1h += segment if ttl == "1h" else 0
                    prev_end = cumulative[bp]
                lifetime = CACHE_TTLS.get(ttl, 300.0)
                self._entries[(key, model, hashes[bp])] = (now + lifetime, lifetime)
        return {
            "input_tokens": total - read - created,
            "output_tokens": 0,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": created - created_1h,
                "ephemeral_1h_input_tokens": created_1h,
            },
        }
