"""A local HTTP server that speaks Anthropic's Messages API.

Tests and benchmarks point the real ``anthropic.AsyncAnthropic(base_url=fake.url)`` at it, so the
SDK's own request building, response parsing, error classes and retries are exercised, while the
replies, faults, latency and prompt-cache accounting stay scripted and deterministic.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import inspect
import itertools
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

__all__ = ["FakeAnthropic", "Reply", "FakeAPIError"]

# Error type the real API uses for each status (body shape: {"type": "error", "error": {...}}).
ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
MAX_CACHE_BREAKPOINTS = 4
CACHE_LOOKBACK_BLOCKS = 20  # the real API also checks ~20 earlier block boundaries for hits
CACHE_TTLS = {"5m": 300.0, "1h": 3600.0}
FORCING_TOOL_CHOICES = {"any", "tool"}
THINKING_ON = {"enabled", "adaptive"}

# Top-level fields the real endpoint accepts; anything else is "Extra inputs are not permitted".
_KNOWN_FIELDS = {
    "model", "messages", "max_tokens", "system", "tools", "tool_choice", "thinking", "stream",
    "temperature", "top_p", "top_k", "stop_sequences", "metadata", "cache_control", "output_config",
    "output_format", "service_tier", "container", "diagnostics", "inference_geo", "speed",
    "mcp_servers", "context_management", "betas",
}
try:  # follow the installed SDK's param list so new fields don't trip the check
    from anthropic.types import message_create_params as _mcp
    from anthropic.types.beta import message_create_params as _beta_mcp

    _KNOWN_FIELDS |= set(_mcp.MessageCreateParamsBase.__annotations__)
    _KNOWN_FIELDS |= set(_beta_mcp.MessageCreateParamsBase.__annotations__)
except Exception:  # pragma: no cover - older/newer SDK layout
    pass

_HIDDEN_HEADERS = {"authorization", "x-api-key", "cookie"}


class FakeAPIError(Exception):
    """A request the real API would reject; rendered as its error JSON."""

    def __init__(self, status: int, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type or ERROR_TYPES.get(status, ("api_error", ""))[0]
        self.message = message


def _invalid(message: str) -> FakeAPIError:
    return FakeAPIError(400, message, "invalid_request_error")


@dataclasses.dataclass
class Reply:
    """One scripted assistant turn: content blocks as the API returns them, plus stop_reason.

    ``tool_use`` blocks without an ``id`` get a fresh ``toolu_...`` id when served.
    ``output_tokens`` overrides the length-based estimate.
    """

    content: list[dict[str, Any]]
    stop_reason: str = "end_turn"
    output_tokens: int | None = None

    @classmethod
    def text(cls, s: str) -> Reply:
        return cls([{"type": "text", "text": s}])

    @classmethod
    def json(cls, obj: Any) -> Reply:
        """What a structured-output call returns: a single text block holding the JSON."""
        return cls([{"type": "text", "text": json.dumps(obj)}])

    @classmethod
    def tool_use(cls, name: str, input: dict[str, Any], id: str | None = None, *, text: str | None = None) -> Reply:
        """A tool call, optionally preceded by text (as models often do)."""
        block: dict[str, Any] = {"type": "tool_use", "name": name, "input": input}
        if id is not None:
            block["id"] = id
        return cls(([{"type": "text", "text": text}] if text else []) + [block], stop_reason="tool_use")

    @classmethod
    def tool_uses(cls, *calls: tuple[str, dict[str, Any]], text: str | None = None) -> Reply:
        """Several parallel tool calls in one turn."""
        blocks = [{"type": "tool_use", "name": n, "input": i} for n, i in calls]
        return cls(([{"type": "text", "text": text}] if text else []) + blocks, stop_reason="tool_use")


ReplyLike = Reply | dict | str
Responder = Callable[[dict[str, Any]], ReplyLike | Awaitable[ReplyLike]]


@dataclasses.dataclass
class _Fault:
    status: int
    remaining: int  # -1: until clear_faults()
    error_type: str
    message: str
    headers: dict[str, str]


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _tokens(obj: Any) -> int:
    """Deterministic stand-in for a tokenizer: ~4 characters per token."""
    return math.ceil(len(obj if isinstance(obj, str) else _canonical(obj)) / 4)


def _strip_cc(block: dict[str, Any]) -> dict[str, Any]:
    # Markers are not content: moving a breakpoint must not change the cached prefix.
    return {k: v for k, v in block.items() if k != "cache_control"}


@dataclasses.dataclass
class _Block:
    kind: str  # "tools" | "system" | "user" | "assistant"
    body: dict[str, Any]
    cache_control: dict[str, Any] | None


class FakeAnthropic:
    """In-process Messages API: scripted replies, injectable faults, latency, prompt caching."""

    def __init__(self, *, api_key: str = "test-key", delay: float = 0.0, min_cache_tokens: int = 0) -> None:
        self.api_key = api_key
        self.delay = delay
        self.min_cache_tokens = min_cache_tokens
        self.responder: Responder | None = None
        self.requests: list[dict[str, Any]] = []
        self.usage_log: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.clock: Callable[[], float] = time.monotonic  # swap to simulate cache expiry
        self.url = ""
        self._script: collections.deque[ReplyLike] = collections.deque()
        self._faults: collections.deque[_Fault] = collections.deque()
        self._cache: dict[tuple[str, str, str], float] = {}  # (key hash, model, prefix hash) -> expiry
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    # -- reply helpers (also on Reply) ---------------------------------------------------------
    text = staticmethod(Reply.text)
    json = staticmethod(Reply.json)
    tool_use = staticmethod(Reply.tool_use)
    tool_uses = staticmethod(Reply.tool_uses)

    # -- lifecycle ------------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        """The aiohttp app, for callers that run it themselves (e.g. the ``aiohttp_server`` fixture)."""
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._handle_messages)
        app.router.add_post("/v1/messages/count_tokens", self._handle_count_tokens)
        app.router.add_get("/v1/models", self._handle_models)
        app.router.add_route("*", "/{tail:.*}", self._handle_not_found)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 = any free port); returns the base URL for ``AsyncAnthropic(base_url=...)``."""
        self._runner = web.AppRunner(self.build_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound_port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeAnthropic:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- scripting --------------------------------------------------------------------------------
    def script(self, *replies: ReplyLike) -> None:
        """Queue replies FIFO: str → text, dict → structured JSON result, Reply → as given."""
        self._script.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not yet served (tests assert the agent consumed the whole script)."""
        return len(self._script)

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        error_type: str | None = None,
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Make the next ``times`` requests fail with ``status`` (-1: until ``clear_faults()``)."""
        if times == 0:
            return
        fallback = ("api_error" if status >= 500 else "invalid_request_error", f"Error {status}")
        default_type, default_msg = ERROR_TYPES.get(status, fallback)
        fault = _Fault(status, times, error_type or default_type, message or default_msg, dict(headers or {}))
        self._faults.append(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    def clear_cache(self) -> None:
        self._cache.clear()

    # -- HTTP handlers ----------------------------------------------------------------------------
    def _error(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
        request_id = self._request_id()
        body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}
        return web.json_response(body, status=status, headers={"request-id": request_id, **(headers or {})})

    def _request_id(self) -> str:
        return f"req_{uuid.uuid4().hex[:24]}"

    async def _handle_not_found(self, request: web.Request) -> web.Response:
        return self._error(404, "not_found_error", f"Not found: {request.method} {request.path}")

    async def _handle_models(self, request: web.Request) -> web.Response:
        models = ["claude-opus-4-7", "claude-sonnet-4-6", "claude-haiku-4-5"]
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z", "lifecycle": "active"}
            for m in models
        ]
        return web.json_response({"data": data, "has_more": False, "first_id": models[0], "last_id": models[-1]})

    async def _handle_count_tokens(self, request: web.Request) -> web.Response:
        try:
            self._check_auth(request)
            body = await self._read_json(request)
            if not isinstance(body.get("model"), str) or not body["model"]:
                raise _invalid("model: Field required")
            self._validate_messages(body)
            blocks = self._blocks(body)
        except FakeAPIError as e:
            return self._error(e.status, e.error_type, e.message)
        return web.json_response({"input_tokens": sum(_tokens(_strip_cc(b.body)) for b in blocks)})

    async def _handle_messages(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            err: FakeAPIError | None
            try:
                body = await self._read_json(request)
            except FakeAPIError as e:
                body, err = {"_raw": (await request.text())[:1000]}, e
            else:
                err = None
            entry = {
                **body,
                "_headers": {k.lower(): v for k, v in request.headers.items() if k.lower() not in _HIDDEN_HEADERS},
            }
            self.requests.append(entry)
            if self.delay > 0:
                await asyncio.sleep(self.delay)
            response = await self._respond(request, body, err)
            entry["_status"] = response.status
            return response
        finally:
            self.in_flight -= 1

    async def _respond(
        self, request: web.Request, body: dict[str, Any], parse_error: FakeAPIError | None
    ) -> web.Response:
        if self._faults:
            fault = self._faults[0]
            if fault.remaining > 0:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.popleft()
            return self._error(fault.status, fault.error_type, fault.message, fault.headers)
        try:
            self._check_auth(request)
            if parse_error is not None:
                raise parse_error
            self._validate(body)
            blocks = self._blocks(body)
            usage = self._cache_usage(request, body, blocks)
            reply = await self._next_reply(body)
        except FakeAPIError as e:
            return self._error(e.status, e.error_type, e.message)
        except Exception as e:  # a broken responder: surface it, don't let the SDK retry it away
            return self._error(500, "api_error", f"fake responder raised {e!r}", {"x-should-retry": "false"})

        content = []
        for block in reply.content:
            block = dict(block)
            if block.get("type") == "tool_use" and not block.get("id"):
                block["id"] = f"toolu_fake{next(self._ids):014d}"
            content.append(block)
        usage["output_tokens"] = reply.output_tokens if reply.output_tokens is not None else max(1, _tokens(content))
        self.usage_log.append(usage)
        request_id = self._request_id()
        message = {
            "id": f"msg_fake{uuid.uuid4().hex[:20]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        return web.json_response(message, headers={"request-id": request_id})

    async def _read_json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.text())
        except ValueError as e:
            raise _invalid(f"Request body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise _invalid("Request body must be a JSON object")
        return body

    def _check_auth(self, request: web.Request) -> None:
        if self._presented_key(request) != self.api_key:
            raise FakeAPIError(401, "invalid x-api-key", "authentication_error")
        if not request.headers.get("anthropic-version"):
            raise _invalid("anthropic-version: header is required")

    async def _next_reply(self, body: dict[str, Any]) -> Reply:
        if self._script:
            raw: Any = self._script.popleft()
        elif self.responder is not None:
            raw = self.responder(body)
            if inspect.isawaitable(raw):
                raw = await raw
        else:
            raw = "ok"
        if isinstance(raw, Reply):
            return raw
        if isinstance(raw, dict):
            return Reply.json(raw)
        if isinstance(raw, str):
            return Reply.text(raw)
        raise TypeError(f"scripted reply must be Reply | dict | str, got {type(raw).__name__}")

    # -- validation (mirrors the real API's 400s) --------------------------------------------------
    def _validate(self, body: dict[str, Any]) -> None:
        extra = sorted(set(body) - _KNOWN_FIELDS)
        if extra:
            raise _invalid(f"{extra[0]}: Extra inputs are not permitted")
        if body.get("stream"):
            raise _invalid("stream: streaming not supported by the fake")
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise _invalid("model: Field required")
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _invalid("max_tokens: Input should be a positive integer")
        self._validate_messages(body)
        output_config = body.get("output_config")
        if output_config is not None and not isinstance(output_config, dict):
            raise _invalid("output_config: Input should be an object")
        fmt = (output_config or {}).get("format")
        if fmt is not None and (
            not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict)
        ):
            raise _invalid("output_config.format: expected {'type': 'json_schema', 'schema': {...}}")

    def _validate_messages(self, body: dict[str, Any]) -> None:
        tools = body.get("tools")
        names: set[str] = set()
        if tools is not None:
            if not isinstance(tools, list):
                raise _invalid("tools: Input should be a valid list")
            for i, tool in enumerate(tools):
                if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                    raise _invalid(f"tools.{i}.name: Field required")
                if tool.get("type", "custom") == "custom" and not isinstance(tool.get("input_schema"), dict):
                    raise _invalid(f"tools.{i}.custom.input_schema: Field required")
                if tool["name"] in names:
                    raise _invalid("tools: Tool names must be unique.")
                names.add(tool["name"])

        system = body.get("system")
        if system is not None and not isinstance(system, str):
            if not isinstance(system, list) or any(not isinstance(b, dict) or b.get("type") != "text" for b in system):
                raise _invalid("system: Input should be a string or a list of text blocks")

        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _invalid("messages: at least one message is required")
        used_tools = False
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
                raise _invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
            expected = "user" if i % 2 == 0 else "assistant"
            if msg["role"] != expected:
                raise _invalid(
                    "messages: roles must alternate between \"user\" and \"assistant\", starting with \"user\""
                )
            content = msg.get("content")
            if isinstance(content, str):
                if not content and i != len(messages) - 1:
                    raise _invalid(f"messages.{i}: all messages must have non-empty content")
                self._validate_tool_pairing(messages, i)
                continue
            if not isinstance(content, list) or (not content and i != len(messages) - 1):
                raise _invalid(f"messages.{i}.content: Input should be a string or a non-empty list of blocks")
            for j, block in enumerate(content):
                if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                    raise _invalid(f"messages.{i}.content.{j}.type: Field required")
                kind = block["type"]
                if kind == "text" and (not isinstance(block.get("text"), str) or not block["text"]):
                    raise _invalid(f"messages.{i}.content.{j}.text: text content blocks must be non-empty")
                if kind == "tool_use":
                    used_tools = True
                    if msg["role"] != "assistant":
                        raise _invalid(f"messages.{i}.content.{j}: tool_use may only appear in assistant messages")
                    if not (
                        isinstance(block.get("id"), str)
                        and isinstance(block.get("name"), str)
                        and isinstance(block.get("input"), dict)
                    ):
                        raise _invalid(f"messages.{i}.content.{j}.tool_use: id, name and input are required")
                if kind == "tool_result":
                    used_tools = True
                    if msg["role"] != "user":
                        raise _invalid(f"messages.{i}.content.{j}: tool_result blocks may only appear in user messages")
            self._validate_tool_pairing(messages, i)
        if used_tools and not tools:
            raise _invalid("Requests which include `tool_use` or `tool_result` blocks must define tools.")

        tool_choice = body.get("tool_choice")
        if tool_choice is not None:
            kind = tool_choice.get("type") if isinstance(tool_choice, dict) else None
            if kind not in ("auto", "any", "tool", "none"):
                raise _invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
            if kind == "tool" and tool_choice.get("name") not in names:
                raise _invalid(f"tool_choice: Tool '{tool_choice.get('name')}' not found in tools")
            if kind in FORCING_TOOL_CHOICES and not names:
                raise _invalid("tool_choice: tools must be provided when tool_choice forces tool use")
        thinking = body.get("thinking")
        if thinking is not None:
            if not isinstance(thinking, dict) or not isinstance(thinking.get("type"), str):
                raise _invalid("thinking.type: Field required")
            if thinking["type"] == "enabled":
                budget = thinking.get("budget_tokens")
                max_tokens = body.get("max_tokens")
                if not isinstance(budget, int) or budget < 1024:
                    raise _invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
                if isinstance(max_tokens, int) and budget >= max_tokens:
                    raise _invalid("`max_tokens` must be greater than `thinking.budget_tokens`")
            forced = isinstance(tool_choice, dict) and tool_choice.get("type") in FORCING_TOOL_CHOICES
            if thinking["type"] in THINKING_ON and forced:
                raise _invalid("Thinking may not be enabled when tool_choice forces tool use.")

    @staticmethod
    def _validate_tool_pairing(messages: list[dict[str, Any]], i: int) -> None:
        """tool_result ids must answer the previous assistant turn's tool_use ids, and all of them."""
        msg = messages[i]
        if msg["role"] != "user" or not isinstance(msg["content"], list):
            results = []
        else:
            results = [b for b in msg["content"] if b.get("type") == "tool_result"]
        prev = messages[i - 1] if i > 0 else None
        prev_ids = [
            b.get("id") for b in (prev["content"] if prev and isinstance(prev["content"], list) else [])
            if isinstance(b, dict) and b.get("type") == "tool_use"
        ]
        for b in results:
            if b.get("tool_use_id") not in prev_ids:
                raise _invalid(
                    f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{b.get('tool_use_id')}. Each `tool_result` block must have a corresponding `tool_use` "
                    "block in the previous message."
                )
        if results and msg["content"][: len(results)] != results:
            raise _invalid(f"messages.{i}.content: tool_result blocks must come first in the user message content")
        if msg["role"] == "user" and prev_ids:
            missing = [x for x in prev_ids if x not in {b.get("tool_use_id") for b in results}]
            if missing:
                raise _invalid(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(map(str, missing))}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message."
                )

    # -- prompt caching ------------------------------------------------------------------------------
    @staticmethod
    def _blocks(body: dict[str, Any]) -> list[_Block]:
        """The prompt in the API's cache order: tools, then system, then message blocks."""
        blocks = [_Block("tools", t, t.get("cache_control")) for t in body.get("tools") or []]
        system = body.get("system")
        if isinstance(system, str) and system:
            blocks.append(_Block("system", {"type": "text", "text": system}, None))
        elif isinstance(system, list):
            blocks += [_Block("system", b, b.get("cache_control")) for b in system]
        for msg in body.get("messages") or []:
            content = msg["content"]
            if isinstance(content, str):
                blocks.append(_Block(msg["role"], {"type": "text", "text": content}, None))
            else:
                blocks += [_Block(msg["role"], b, b.get("cache_control")) for b in content]
        return blocks

    def _cache_usage(self, request: web.Request, body: dict[str, Any], blocks: list[_Block]) -> dict[str, Any]:
        """Split input tokens into read / created / uncached, updating the cache like the real API."""
        breakpoints = {i: b.cache_control for i, b in enumerate(blocks) if b.cache_control}
        auto = body.get("cache_control")
        if auto and blocks and blocks[-1].kind in ("user", "assistant") and len(blocks) - 1 not in breakpoints:
            breakpoints[len(blocks) - 1] = auto  # automatic caching: marker on the last block
        if len(breakpoints) > MAX_CACHE_BREAKPOINTS:
            raise _invalid(
                f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
                f"Found {len(breakpoints)}."
            )
        cumulative, hashes = [], []
        total, h = 0, hashlib.sha256()
        for b in blocks:
            total += _tokens(_strip_cc(b.body))
            h.update(_canonical([b.kind, _strip_cc(b.body)]).encode())
            cumulative.append(total)
            hashes.append(h.copy().hexdigest())

        read = created = created_1h = 0
        if breakpoints:
            key = hashlib.sha256((self._presented_key(request) or "").encode()).hexdigest()
            model, now = body["model"], self.clock()

            def live(i: int) -> bool:
                return self._cache.get((key, model, hashes[i]), -1.0) > now

            hit = max(
                (j for bp in breakpoints for j in range(bp, max(-1, bp - CACHE_LOOKBACK_BLOCKS), -1) if live(j)),
                default=-1,
            )
            read = cumulative[hit] if hit >= 0 else 0
            prev_end = read
            for bp in sorted(breakpoints):
                ttl = breakpoints[bp].get("ttl", "5m") if isinstance(breakpoints[bp], dict) else "5m"
                if cumulative[bp] < self.min_cache_tokens:
                    continue  # below the model's minimum cacheable length
                if cumulative[bp] > prev_end:
                    segment = cumulative[bp] - prev_end
                    created += segment
                    created_1h += segment if ttl == "1h" else 0
                    prev_end = cumulative[bp]
                self._cache[(key, model, hashes[bp])] = now + CACHE_TTLS.get(ttl, 300.0)
            if hit >= 0:  # a hit refreshes the entry's lifetime
                self._cache[(key, model, hashes[hit])] = max(self._cache[(key, model, hashes[hit])], now + 300.0)
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

    @staticmethod
    def _presented_key(request: web.Request) -> str | None:
        # SDK 2.x sends `Authorization: Bearer <api_key>`; older clients send `x-api-key`.
        key = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if key is None and auth[:7].lower() == "bearer ":
            key = auth[7:].strip()
        return key
