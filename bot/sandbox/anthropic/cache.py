"""The fake Messages API's token counting and prompt caching: a deterministic token estimate, the prompt as
the API caches it (tools, then system, then message blocks), and a cache that splits a request's input
tokens into read, created and uncached as the real API does (breakpoints, ~20-block lookback, 5m/1h TTLs,
a minimum cacheable length, entries per API key and model)."""

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
    kind: str  # "tools" | "system" | "user" | "assistant"
    body: dict[str, Any]
    cache_control: dict[str, Any] | None


def prompt_blocks(body: dict[str, Any]) -> list[Block]:
    """The prompt in the API's cache order: tools, then system, then message blocks."""
    blocks = [Block("tools", t, t.get("cache_control")) for t in body.get("tools") or []]
    system = body.get("system")
    if isinstance(system, str) and system:
        blocks.append(Block("system", {"type": "text", "text": system}, None))
    elif isinstance(system, list):
        blocks += [Block("system", b, b.get("cache_control")) for b in system]
    for msg in body.get("messages") or []:
        content = msg["content"]
        if isinstance(content, str):
            blocks.append(Block(msg["role"], {"type": "text", "text": content}, None))
        else:
            blocks += [Block(msg["role"], b, b.get("cache_control")) for b in content]
    return blocks


def input_tokens(blocks: list[Block]) -> int:
    """What ``count_tokens`` answers: every block's estimate, cache markers aside."""
    return sum(estimate_tokens(_strip_cc(b.body)) for b in blocks)


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
    return breakpoints


def _prefixes(blocks: list[Block]) -> tuple[list[int], list[str]]:
    """For each block, the tokens and a hash of the prompt up to and including it."""
    cumulative, hashes = [], []
    total, h = 0, hashlib.sha256()
    for b in blocks:
        total += estimate_tokens(_strip_cc(b.body))
        h.update(canonical([b.kind, _strip_cc(b.body)]).encode())
        cumulative.append(total)
        hashes.append(h.copy().hexdigest())
    return cumulative, hashes


class PromptCache:
    """Cached prompt prefixes: (API key hash, model, prefix hash) -> expiry."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], float] = {}

    def clear(self) -> None:
        self._entries.clear()

    def usage(self, api_key: str, body: dict[str, Any], blocks: list[Block], clock: Callable[[], float],
              min_cache_tokens: int) -> dict[str, Any]:
        """Split input tokens into read / created / uncached, updating the cache like the real API."""
        breakpoints = _breakpoints(body, blocks)
        cumulative, hashes = _prefixes(blocks)
        total = cumulative[-1] if cumulative else 0
        read = created = created_1h = 0
        if breakpoints:
            key = hashlib.sha256(api_key.encode()).hexdigest()
            model, now = body["model"], clock()

            def live(i: int) -> bool:
                return self._entries.get((key, model, hashes[i]), -1.0) > now

            hit = max(
                (j for bp in breakpoints for j in range(bp, max(-1, bp - CACHE_LOOKBACK_BLOCKS), -1) if live(j)),
                default=-1,
            )
            read = cumulative[hit] if hit >= 0 else 0
            prev_end = read
            for bp in sorted(breakpoints):
                ttl = breakpoints[bp].get("ttl", "5m") if isinstance(breakpoints[bp], dict) else "5m"
                if cumulative[bp] < min_cache_tokens:
                    continue  # below the model's minimum cacheable length
                if cumulative[bp] > prev_end:
                    segment = cumulative[bp] - prev_end
                    created += segment
                    created_1h += segment if ttl == "1h" else 0
                    prev_end = cumulative[bp]
                self._entries[(key, model, hashes[bp])] = now + CACHE_TTLS.get(ttl, 300.0)
            if hit >= 0:  # a hit refreshes the entry's lifetime
                self._entries[(key, model, hashes[hit])] = max(self._entries[(key, model, hashes[hit])], now + 300.0)
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
