"""FakeAnthropic driven by the real anthropic SDK over HTTP."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import anthropic
import pydantic
import pytest
from anthropic.types import Message, TextBlock, ToolUseBlock

from bot.sandbox.anthropic import FakeAnthropic, Reply

KEY = "sk-test-123"
MODEL = "claude-sonnet-4-6"
TOOLS = [
    {
        "name": "get_file",
        "description": "Read a file from the repo",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    }
]
LONG_SYSTEM = "You are the triage lead. " * 200


@pytest.fixture
async def fake():
    server = FakeAnthropic(api_key=KEY)
    await server.start()
    yield server
    await server.close()


def make_client(fake: FakeAnthropic, max_retries: int = 0, api_key: str = KEY) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=fake.url, api_key=api_key, max_retries=max_retries)


@pytest.fixture
async def sdk(fake):
    c = make_client(fake)
    yield c
    await c.close()


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def test_text_reply_parses_into_message(fake, sdk):
    fake.script("hello there")
    msg = await sdk.messages.create(model=MODEL, max_tokens=100, messages=user("hi"))
    assert isinstance(msg, Message)
    assert msg.id.startswith("msg_") and msg.role == "assistant" and msg.model == MODEL
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert isinstance(msg.content[0], TextBlock) and msg.content[0].text == "hello there"
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    assert msg.usage.cache_read_input_tokens == 0 and msg.usage.cache_creation_input_tokens == 0
    assert len(fake.usage_log) == 1
    assert fake.usage_log[0]["input_tokens"] == msg.usage.input_tokens
    assert fake.usage_log[0]["output_tokens"] == msg.usage.output_tokens
    # Recorded body + headers, never the key.
    req = fake.requests[0]
    assert req["messages"] == user("hi") and req["_status"] == 200
    assert req["_headers"]["anthropic-version"]
    assert KEY not in json.dumps(fake.requests)
    # Empty script, no responder → "ok".
    msg = await sdk.messages.create(model=MODEL, max_tokens=100, messages=user("again"))
    assert msg.content[0].text == "ok"


async def test_responder_used_when_script_empty(fake, sdk):
    async def responder(body: dict) -> Reply | str:
        if "triage" in body.get("system", ""):
            return Reply.tool_use("get_file", {"path": "README.md"})
        return "plain"

    fake.responder = responder
    fake.script("scripted first")
    first = await sdk.messages.create(model=MODEL, max_tokens=50, messages=user("x"), system="triage", tools=TOOLS)
    second = await sdk.messages.create(model=MODEL, max_tokens=50, messages=user("x"), system="triage", tools=TOOLS)
    third = await sdk.messages.create(model=MODEL, max_tokens=50, messages=user("x"), system="other")
    assert first.content[0].text == "scripted first"
    assert second.stop_reason == "tool_use" and second.content[0].name == "get_file"
    assert third.content[0].text == "plain"
    assert fake.pending == 0


async def test_broken_responder_surfaces_without_retries(fake):
    def responder(body: dict) -> str:
        raise RuntimeError("script bug")

    fake.responder = responder
    async with make_client(fake, max_retries=2) as c:
        with pytest.raises(anthropic.InternalServerError, match="script bug") as exc:
            await c.messages.create(model=MODEL, max_tokens=10, messages=user("hi"))
    assert exc.value.response.headers["x-should-retry"] == "false"
    assert len(fake.requests) == 1  # the SDK obeyed x-should-retry: false


async def test_parallel_tool_calls_need_every_result(fake, sdk):
    fake.script(Reply.tool_uses(("get_file", {"path": "a"}), ("get_file", {"path": "b"})), "done")
    msg = await sdk.messages.create(model=MODEL, max_tokens=50, messages=user("read"), tools=TOOLS)
    ids = [b.id for b in msg.content]
    assert len(set(ids)) == 2
    history = user("read") + [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]}]
    partial = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": ids[0], "content": "A"}]}]
    with pytest.raises(anthropic.BadRequestError, match=ids[1]):
        await sdk.messages.create(model=MODEL, max_tokens=50, messages=history + partial, tools=TOOLS)
    full = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": i, "content": "x"} for i in ids]}]
    with pytest.raises(anthropic.BadRequestError, match="must define tools"):
        await sdk.messages.create(model=MODEL, max_tokens=50, messages=history + full)
    final = await sdk.messages.create(model=MODEL, max_tokens=50, messages=history + full, tools=TOOLS)
    assert final.content[0].text == "done"


async def test_tool_use_conversation(fake, sdk):
    fake.script(
        Reply.tool_use("get_file", {"path": "a.py"}, text="Let me look."),
        Reply.tool_use("get_file", {"path": "b.py"}),
        "Both files look fine.",
    )
    messages = user("Review a.py and b.py")
    for expected_path in ("a.py", "b.py"):
        msg = await sdk.messages.create(model=MODEL, max_tokens=200, messages=messages, tools=TOOLS)
        assert msg.stop_reason == "tool_use"
        call = [b for b in msg.content if isinstance(b, ToolUseBlock)][0]
        assert call.id.startswith("toolu_") and call.name == "get_file" and call.input == {"path": expected_path}
        messages += [
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "ok"}]},
        ]
    final = await sdk.messages.create(model=MODEL, max_tokens=200, messages=messages, tools=TOOLS)
    assert final.stop_reason == "end_turn" and final.content[0].text == "Both files look fine."
    assert first_text(fake.requests[0]) == "Review a.py and b.py"
    assert len(fake.requests[-1]["messages"]) == 5
    first_call = fake.requests[-1]["messages"][1]["content"]
    assert first_call[0] == {"type": "text", "text": "Let me look."}


def first_text(req: dict) -> str:
    return req["messages"][0]["content"]


async def test_tool_result_with_unknown_id_is_rejected(fake, sdk):
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_file", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_nope", "content": "x"}]},
    ]
    with pytest.raises(anthropic.BadRequestError) as exc:
        await sdk.messages.create(model=MODEL, max_tokens=10, messages=messages, tools=TOOLS)
    assert exc.value.status_code == 400 and exc.value.type == "invalid_request_error"
    assert "toolu_nope" in exc.value.api_message and exc.value.request_id
    # A tool_use left unanswered is rejected too.
    messages[2] = {"role": "user", "content": "never mind"}
    with pytest.raises(anthropic.BadRequestError, match="without `tool_result`"):
        await sdk.messages.create(model=MODEL, max_tokens=10, messages=messages, tools=TOOLS)
    assert [r["_status"] for r in fake.requests] == [400, 400]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"messages": [{"role": "assistant", "content": "hi"}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
        {"messages": []},
        {"max_tokens": 0},
        {"tools": [{"name": "x"}]},
        {"tools": TOOLS, "tool_choice": {"type": "tool", "name": "missing"}},
        {"extra_body": {"system_prompt": "typo"}},
        {"stream": True},
    ],
)
async def test_invalid_requests_get_400(sdk, kwargs):
    args = {"model": MODEL, "max_tokens": 10, "messages": user("hi"), **kwargs}
    with pytest.raises(anthropic.BadRequestError):
        await sdk.messages.create(**args)


async def test_structured_output_dict_reply(fake, sdk):
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string"}, "confidence": {"type": "number"}},
        "required": ["label", "confidence"],
        "additionalProperties": False,
    }
    result = {"label": "bug", "confidence": 0.9}
    fake.script(result)
    msg = await sdk.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=user("classify"),
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    assert len(msg.content) == 1 and json.loads(msg.content[0].text) == result
    assert fake.requests[0]["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


class Triage(pydantic.BaseModel):
    label: str
    priority: int


async def test_sdk_parse_helper_round_trips(fake, sdk):
    fake.script(Reply.json({"label": "ci-failure", "priority": 1}))
    msg = await sdk.messages.parse(model=MODEL, max_tokens=100, messages=user("triage"), output_format=Triage)
    assert msg.parsed_output == Triage(label="ci-failure", priority=1)
    fmt = fake.requests[0]["output_config"]["format"]
    assert fmt["type"] == "json_schema" and set(fmt["schema"]["properties"]) == {"label", "priority"}


async def test_wrong_key_is_authentication_error(fake):
    async with make_client(fake, max_retries=2, api_key="wrong") as bad:
        with pytest.raises(anthropic.AuthenticationError) as exc:
            await bad.messages.create(model=MODEL, max_tokens=10, messages=user("hi"))
    assert exc.value.status_code == 401 and exc.value.type == "authentication_error"
    assert len(fake.requests) == 1  # 4xx auth errors are not retried
    assert "wrong" not in json.dumps(fake.requests)


async def test_overloaded_retried_by_sdk(fake):
    fake.fail(529)
    async with make_client(fake, max_retries=2) as c:
        msg = await c.messages.create(model=MODEL, max_tokens=10, messages=user("hi"))
    assert msg.content[0].text == "ok"
    assert [r["_status"] for r in fake.requests] == [529, 200]
    assert [r["_headers"]["x-stainless-retry-count"] for r in fake.requests] == ["0", "1"]
    assert len(fake.usage_log) == 1


async def test_overloaded_without_retries_raises(fake, sdk):
    fake.fail(529)
    with pytest.raises(anthropic.InternalServerError) as exc:
        await sdk.messages.create(model=MODEL, max_tokens=10, messages=user("hi"))
    assert isinstance(exc.value, anthropic.OverloadedError)
    assert exc.value.status_code == 529 and exc.value.type == "overloaded_error"
    assert exc.value.api_message == "Overloaded" and exc.value.request_id.startswith("req_")
    # The fault was used up.
    assert (await sdk.messages.create(model=MODEL, max_tokens=10, messages=user("hi"))).content[0].text == "ok"


async def test_rate_limit_retry_after(fake, sdk):
    fake.fail(429, headers={"retry-after": "1"})
    with pytest.raises(anthropic.RateLimitError) as exc:
        await sdk.messages.create(model=MODEL, max_tokens=10, messages=user("hi"))
    assert exc.value.status_code == 429 and exc.value.response.headers["retry-after"] == "1"

    fake.fail(429, headers={"retry-after": "1"})
    async with make_client(fake, max_retries=2) as c:
        start = time.monotonic()
        msg = await c.messages.create(model=MODEL, max_tokens=10, messages=user("hi"))
        elapsed = time.monotonic() - start
    assert msg.type == "message"
    assert elapsed >= 0.95  # the SDK waited as long as retry-after said
    assert [r["_status"] for r in fake.requests] == [429, 429, 200]


async def test_persistent_fault_until_cleared(fake, sdk):
    fake.fail(500, times=-1, message="boom")
    for _ in range(3):
        with pytest.raises(anthropic.InternalServerError, match="boom"):
            await sdk.messages.create(model=MODEL, max_tokens=10, messages=user("hi"))
    fake.clear_faults()
    assert (await sdk.messages.create(model=MODEL, max_tokens=10, messages=user("hi"))).content[0].text == "ok"


async def test_prompt_caching_on_system_prompt(fake, sdk):
    async def call(system_text: str) -> anthropic.types.Usage:
        system = [{"type": "text", "text": system_text, "cache_control": {"type": "ephemeral"}}]
        msg = await sdk.messages.create(model=MODEL, max_tokens=10, system=system, messages=user("issue #1"))
        return msg.usage

    first = await call(LONG_SYSTEM)
    assert first.cache_creation_input_tokens > 0 and first.cache_read_input_tokens == 0
    assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
    second = await call(LONG_SYSTEM)
    assert second.cache_creation_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.input_tokens == first.input_tokens  # the uncached tail (the user message)
    third = await call(LONG_SYSTEM.replace("triage lead", "CI medic"))
    assert third.cache_creation_input_tokens > 0 and third.cache_read_input_tokens == 0
    # Total input is conserved.
    total = lambda u: u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens  # noqa: E731
    assert total(first) == total(second)
    # Expiry after the 5-minute TTL.
    fake.clock = lambda: time.monotonic() + 301
    assert (await call(LONG_SYSTEM)).cache_read_input_tokens == 0


async def test_cache_is_per_model_and_respects_min_tokens(fake, sdk):
    system = [{"type": "text", "text": "short", "cache_control": {"type": "ephemeral"}}]
    fake.min_cache_tokens = 1024
    msg = await sdk.messages.create(model=MODEL, max_tokens=10, system=system, messages=user("hi"))
    assert msg.usage.cache_creation_input_tokens == 0 and msg.usage.cache_read_input_tokens == 0

    system[0]["text"] = LONG_SYSTEM
    a = await sdk.messages.create(model=MODEL, max_tokens=10, system=system, messages=user("hi"))
    b = await sdk.messages.create(model="claude-haiku-4-5", max_tokens=10, system=system, messages=user("hi"))
    assert a.usage.cache_creation_input_tokens >= 1024 and b.usage.cache_creation_input_tokens >= 1024


async def test_cache_tools_and_moving_breakpoint(fake, sdk):
    tools = [dict(TOOLS[0], cache_control={"type": "ephemeral"})]
    system = [{"type": "text", "text": LONG_SYSTEM}]
    turn1 = [{"role": "user", "content": [{"type": "text", "text": "first question " * 20, "cache_control": {"type": "ephemeral"}}]}]
    u1 = (await sdk.messages.create(model=MODEL, max_tokens=10, tools=tools, system=system, messages=turn1)).usage
    assert u1.cache_creation_input_tokens > 0 and u1.input_tokens == 0

    # Next turn: the marker moves to the newest message; the earlier prefix is still found (lookback).
    turn2 = [
        {"role": "user", "content": [{"type": "text", "text": "first question " * 20}]},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": [{"type": "text", "text": "follow up", "cache_control": {"type": "ephemeral"}}]},
    ]
    u2 = (await sdk.messages.create(model=MODEL, max_tokens=10, tools=tools, system=system, messages=turn2)).usage
    assert u2.cache_read_input_tokens == u1.cache_creation_input_tokens
    assert 0 < u2.cache_creation_input_tokens < u1.cache_creation_input_tokens

    # Changing the system prompt keeps the tools prefix (cached by the tool breakpoint).
    u3 = (await sdk.messages.create(model=MODEL, max_tokens=10, tools=tools, system="different", messages=turn2)).usage
    assert 0 < u3.cache_read_input_tokens < u2.cache_read_input_tokens


async def test_automatic_top_level_cache_control(fake, sdk):
    kwargs = dict(model=MODEL, max_tokens=10, system=LONG_SYSTEM, messages=user("hi"), cache_control={"type": "ephemeral"})
    first = (await sdk.messages.create(**kwargs)).usage
    second = (await sdk.messages.create(**kwargs)).usage
    assert first.cache_creation_input_tokens > 0 and first.input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert fake.requests[0]["cache_control"] == {"type": "ephemeral"}


async def test_more_than_four_breakpoints_rejected(sdk):
    system = [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4"):
        await sdk.messages.create(model=MODEL, max_tokens=10, system=system, messages=user("hi"))


async def test_forced_tool_choice_with_thinking_rejected(sdk):
    thinkings = ({"type": "enabled", "budget_tokens": 2048}, {"type": "adaptive"})
    for choice in ({"type": "tool", "name": "get_file"}, {"type": "any"}):
        for thinking in thinkings:
            with pytest.raises(anthropic.BadRequestError, match="tool_choice forces tool use") as exc:
                await sdk.messages.create(
                    model=MODEL, max_tokens=4096, messages=user("hi"), tools=TOOLS, tool_choice=choice, thinking=thinking
                )
            assert exc.value.status_code == 400 and exc.value.type == "invalid_request_error"
    # auto is fine
    msg = await sdk.messages.create(
        model=MODEL, max_tokens=4096, messages=user("hi"), tools=TOOLS,
        tool_choice={"type": "auto"}, thinking={"type": "enabled", "budget_tokens": 2048},
    )
    assert msg.content[0].text == "ok"


async def test_concurrency_tracking(fake, sdk):
    fake.delay = 0.2
    start = time.monotonic()
    results = await asyncio.gather(
        *(sdk.messages.create(model=MODEL, max_tokens=10, messages=user(f"q{i}")) for i in range(5))
    )
    assert time.monotonic() - start < 0.8  # served in parallel
    assert len(results) == 5 and fake.max_in_flight == 5 and fake.in_flight == 0


async def test_in_flight_released_on_errors(fake, sdk):
    fake.delay = 0.05
    fake.fail(529, times=2)
    outcomes = await asyncio.gather(
        *(sdk.messages.create(model=MODEL, max_tokens=10, messages=user("q")) for _ in range(3)),
        return_exceptions=True,
    )
    assert sum(isinstance(o, anthropic.OverloadedError) for o in outcomes) == 2
    assert fake.in_flight == 0 and fake.max_in_flight == 3


async def test_count_tokens_and_unknown_route(fake, sdk):
    counted = await sdk.messages.count_tokens(model=MODEL, system=LONG_SYSTEM, messages=user("hi"))
    msg = await sdk.messages.create(model=MODEL, max_tokens=10, system=LONG_SYSTEM, messages=user("hi"))
    assert counted.input_tokens == msg.usage.input_tokens
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fake.url}/v1/nope") as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError, match="anthropic-version"):
        await sdk.messages.create(
            model=MODEL, max_tokens=10, messages=user("hi"), extra_headers={"anthropic-version": anthropic.Omit()}
        )


# ---- the server-side web search tool (issue 17, point 6) ----------------------------------------------------

WEB = {"type": "web_search_20250305", "name": "web_search"}


@pytest.mark.parametrize(("tool", "message"), [
    ({**WEB, "max_uses": 0}, "max_uses: Input should be greater than or equal to 1"),
    ({**WEB, "max_uses": True}, "max_uses: Input should be greater than or equal to 1"),
    ({**WEB, "name": "search"}, "name: Input should be 'web_search'"),
    ({**WEB, "allowed_domains": ["a.example"], "blocked_domains": ["b.example"]}, "cannot be used together"),
    ({**WEB, "allowed_domains": ["https://a.example"]}, "without a scheme"),
    ({**WEB, "max_results": 3}, "max_results: Extra inputs are not permitted"),
    ({**WEB, "type": "web_search_20240101"}, "does not match any of the expected tags"),
])
async def test_a_web_search_tool_is_checked_as_the_api_checks_it(fake, sdk, tool, message):
    with pytest.raises(anthropic.BadRequestError, match=message):
        await sdk.messages.create(model=MODEL, max_tokens=10, messages=user("hi"), tools=[tool])
    assert fake.web.served == []


async def test_searches_run_server_side_billed_and_cited_up_to_max_uses(fake, sdk):
    from anthropic.types import ServerToolUseBlock, WebSearchToolResultBlock

    fake.web.pages["pricing"] = [{"url": "https://a.example/p", "title": "Pricing", "text": "It costs $1."},
                                 {"url": "https://b.example/q", "title": "Blocked", "text": "b"}]
    fake.script(Reply.web_search("pricing", "limits", answer="It costs $1.", cite=(0,)))
    msg = await sdk.messages.create(model=MODEL, max_tokens=100, messages=user("price?"),
                                    tools=[{**WEB, "max_uses": 1, "blocked_domains": ["b.example"]}])
    use, found, second, refused, text = msg.content
    assert isinstance(use, ServerToolUseBlock) and use.id.startswith("srvtoolu_") and use.input == {"query": "pricing"}
    assert isinstance(found, WebSearchToolResultBlock) and found.tool_use_id == use.id
    assert [r.url for r in found.content] == ["https://a.example/p"]  # blocked_domains honoured
    assert isinstance(refused, WebSearchToolResultBlock) and refused.tool_use_id == second.id
    assert refused.content.error_code == "max_uses_exceeded"
    [cited] = text.citations
    assert (cited.type, cited.url, cited.title, cited.cited_text) == ("web_search_result_location",
                                                                     "https://a.example/p", "Pricing", "It costs $1.")
    assert msg.usage.server_tool_use.web_search_requests == 1 and fake.web.served == ["pricing"]


async def test_a_search_error_is_a_result_block_and_not_billed(fake, sdk):
    fake.script(Reply.web_search("x", error="too_many_requests", answer="Could not search."))
    msg = await sdk.messages.create(model=MODEL, max_tokens=100, messages=user("q"), tools=[WEB])
    assert msg.content[1].content.error_code == "too_many_requests"
    assert msg.usage.server_tool_use.web_search_requests == 0


async def test_a_search_the_request_did_not_offer_is_the_scripts_mistake(fake, sdk):
    fake.script(Reply.web_search("x", answer="searched anyway"))
    with pytest.raises(anthropic.InternalServerError, match="offers no web_search tool"):
        await sdk.messages.create(model=MODEL, max_tokens=100, messages=user("q"), tools=TOOLS)


async def test_a_paused_turn_is_sent_back_and_continued(fake, sdk):
    fake.script(Reply.web_search("a", stop_reason="pause_turn"), "Done.")
    first = await sdk.messages.create(model=MODEL, max_tokens=100, messages=user("q"), tools=[WEB])
    assert first.stop_reason == "pause_turn"
    history = [*user("q"), {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]}]
    done = await sdk.messages.create(model=MODEL, max_tokens=100, messages=history, tools=[WEB])
    assert done.content[0].text == "Done." and fake.requests[1]["messages"][1]["content"][0]["type"] == "server_tool_use"
    misplaced = [{"role": "user", "content": [first.content[1].model_dump(exclude_none=True)]}]
    with pytest.raises(anthropic.BadRequestError, match="may only appear in assistant messages"):
        await sdk.messages.create(model=MODEL, max_tokens=100, messages=misplaced, tools=[WEB])
