"""The fake Messages API's prompt cache follows the real API's rules, one test per rule: the model's minimum
cacheable length, entries per model, what a change before a breakpoint invalidates (tools, system, the
structured-output format, tool_choice), the 20-block lookback and the 5-minute and 1-hour lifetimes."""

from __future__ import annotations

from typing import Any

import pytest

from bot.sandbox.anthropic.cache import PromptCache, min_cacheable_tokens, prompt_blocks
from bot.sandbox.anthropic.validate import FakeAPIError

KEY = "sk-test-cache"
EPH = {"type": "ephemeral"}
TOOLS = [
    {
        "name": "read_file",
        "description": "Read a file. " + "x" * 4000,
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    }
]
SCHEMA_A = {"type": "object", "properties": {"findings": {"type": "array", "items": {"type": "string"}}}}
SCHEMA_B = {"type": "object", "properties": {"verdict": {"enum": ["APPROVED", "REJECTED"]}}}


def text(tokens: int, tag: str = "", cache: dict | None = None) -> dict[str, Any]:
    """A text block of about ``tokens`` tokens (the fake counts four characters a token)."""
    return {
        "type": "text",
        "text": (tag + " " + "word " * tokens)[: tokens * 4],
        **({"cache_control": cache} if cache else {}),
    }


def body(
    model: str = "claude-sonnet-4-6", *, system: list | None = None, content: list | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 10,
        "system": system or [],
        "messages": [{"role": "user", "content": content or [text(10, "question")]}],
        **extra,
    }


def use(cache: PromptCache, request: dict[str, Any], now: float = 0.0, minimum: int | None = None) -> dict:
    return cache.usage(KEY, request, prompt_blocks(request), lambda: now, minimum)


def cached(cache: PromptCache, request: dict[str, Any], now: float = 0.0) -> int:
    """Tokens the request reads from the cache (after being written once at time 0)."""
    use(cache, request)
    return int(use(cache, request, now)["cache_read_input_tokens"])


@pytest.mark.parametrize(
    ("model", "minimum"),
    [
        ("claude-opus-4-6", 4096),
        ("claude-opus-4-5-20251101", 4096),
        ("claude-haiku-4-5-20251001", 4096),
        ("claude-sonnet-4-6", 2048),
        ("claude-sonnet-4-5", 1024),
        ("claude-unknown-9", 4096),
    ],
)
def test_each_model_caches_only_prefixes_of_its_minimum_length(model: str, minimum: int) -> None:
    assert min_cacheable_tokens(model) == minimum
    short = body(model, system=[text(minimum - 40, "rules", EPH)])
    assert use(PromptCache(), short)["cache_creation_input_tokens"] == 0
    assert cached(PromptCache(), short) == 0
    long = body(model, system=[text(minimum + 40, "rules", EPH)])
    assert cached(PromptCache(), long) >= minimum


def test_a_cache_entry_belongs_to_one_model() -> None:
    cache = PromptCache()
    system = [text(5000, "rules", EPH)]
    assert use(cache, body("claude-opus-4-6", system=system))["cache_creation_input_tokens"] > 0
    other = use(cache, body("claude-sonnet-4-6", system=system))
    assert other["cache_read_input_tokens"] == 0 and other["cache_creation_input_tokens"] > 0
    assert use(cache, body("claude-opus-4-6", system=system))["cache_read_input_tokens"] > 0


def layered(**extra: Any) -> dict[str, Any]:
    """Tools, system and message each behind their own breakpoint, each long enough to be cached alone."""
    tools = [dict(TOOLS[0], cache_control=EPH)]
    return body(
        "claude-sonnet-4-5",
        system=[text(1500, "rules", EPH)],
        content=[text(1500, "repo", EPH), text(20, "task")],
        tools=tools,
        **extra,
    )


def reads_after(change: dict[str, Any]) -> tuple[int, int, int]:
    """What a request reads after one changed part, and where the tools, system and messages end."""
    cache = PromptCache()
    first = layered(output_config={"format": {"type": "json_schema", "schema": SCHEMA_A}}, tool_choice={"type": "auto"})
    use(cache, first)
    blocks = prompt_blocks(first)
    ends = [sum(estimate(b) for b in blocks[: i + 1]) for i, b in enumerate(blocks)]
    tools_end, system_end = ends[0], ends[[b.kind for b in blocks].index("system")]
    return int(use(cache, {**first, **change})["cache_read_input_tokens"]), tools_end, system_end


def estimate(block: Any) -> int:
    from bot.sandbox.anthropic.cache import _tokens

    return _tokens(block)


def test_a_change_to_the_tools_invalidates_everything_after_them() -> None:
    tools = [dict(TOOLS[0], description="Read one file. " + "y" * 4000, cache_control=EPH)]
    assert reads_after({"tools": tools})[0] == 0


def test_a_changed_system_prompt_keeps_only_the_tools() -> None:
    read, tools_end, _ = reads_after({"system": [text(1500, "other rules", EPH)]})
    assert read == tools_end


def test_a_changed_output_format_invalidates_the_system_and_messages_but_not_the_tools() -> None:
    read, tools_end, _ = reads_after({"output_config": {"format": {"type": "json_schema", "schema": SCHEMA_B}}})
    assert read == tools_end


def test_a_changed_tool_choice_invalidates_the_messages_only() -> None:
    read, _, system_end = reads_after({"tool_choice": {"type": "none"}})
    assert read == system_end


def test_the_output_format_is_billed_as_input() -> None:
    plain = use(PromptCache(), body())
    formatted = use(PromptCache(), body(output_config={"format": {"type": "json_schema", "schema": SCHEMA_A}}))
    assert formatted["input_tokens"] > plain["input_tokens"]


@pytest.mark.parametrize(("later", "hit"), [(19, True), (20, False)])
def test_a_breakpoint_looks_back_at_most_twenty_blocks(later: int, hit: bool) -> None:
    cache = PromptCache()
    blocks = [text(1100 if i == 0 else 20, f"part {i}") for i in range(30)]
    first = [dict(blocks[0], cache_control=EPH), *blocks[1:]]
    use(cache, body("claude-sonnet-4-5", content=first))
    moved = [*blocks[:later], dict(blocks[later], cache_control=EPH), *blocks[later + 1 :]]
    read = use(cache, body("claude-sonnet-4-5", content=moved))["cache_read_input_tokens"]
    assert (read > 0) is hit


def test_five_minute_and_one_hour_lifetimes_from_the_last_use() -> None:
    five = body(system=[text(3000, "rules", EPH)])
    hour = body(system=[text(3000, "rules", {"type": "ephemeral", "ttl": "1h"})])
    assert cached(PromptCache(), five, now=299) > 0 and cached(PromptCache(), five, now=301) == 0
    written = use(cache := PromptCache(), hour)
    assert written["cache_creation"] == {
        "ephemeral_5m_input_tokens": 0,
        "ephemeral_1h_input_tokens": written["cache_creation_input_tokens"],
    }
    assert use(cache, hour, now=3000)["cache_read_input_tokens"] > 0  # read: an hour more from now
    assert use(cache, hour, now=6500)["cache_read_input_tokens"] > 0
    assert use(cache, hour, now=10_200)["cache_read_input_tokens"] == 0


def test_one_hour_breakpoints_come_before_five_minute_ones() -> None:
    system = [text(3000, "rules", EPH), text(100, "more", {"type": "ephemeral", "ttl": "1h"})]
    with pytest.raises(FakeAPIError, match="cannot come after"):
        use(PromptCache(), body(system=system))
    use(PromptCache(), body(system=list(reversed(system))))


def test_a_hit_found_by_lookback_refreshes_the_entry_for_its_own_lifetime() -> None:
    cache, hour = PromptCache(), {"type": "ephemeral", "ttl": "1h"}
    use(cache, body(system=[text(3000, "rules", hour), text(50, "more")]))
    later = use(cache, body(system=[text(3000, "rules"), text(50, "more", EPH)]), now=3000)
    assert later["cache_read_input_tokens"] > 0 and later["cache_creation_input_tokens"] > 0
    assert use(cache, body(system=[text(3000, "rules", hour)]), now=6000)["cache_read_input_tokens"] > 0
