"""The fake Messages API's HTTP side: an aiohttp app serving ``/v1/messages``, ``/v1/messages/count_tokens``
and ``/v1/models`` with the real API's auth and error bodies, plus the scripting a test drives it with
(queued replies or a responder, injected faults, latency, in-flight counts)."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import inspect
import itertools
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .cache import PromptCache, estimate_tokens, input_tokens, prompt_blocks
from .replies import Reply, ReplyLike, Responder, as_reply
from .validate import ERROR_TYPES, FakeAPIError, invalid, validate, validate_messages
from .web_search import WebSearch, offered

_HIDDEN_HEADERS = {"authorization", "x-api-key", "cookie"}


@dataclasses.dataclass
class _Fault:
    status: int
    remaining: int  # -1: until clear_faults()
    error_type: str
    message: str
    headers: dict[str, str]


class FakeAnthropic:
    """In-process Messages API: scripted replies, injectable faults, latency, prompt caching.

    ``min_cache_tokens``: None applies each model's real minimum cacheable length (``MIN_CACHEABLE_TOKENS``), as
    the cost benchmark does; a number replaces it for every model (0, the default, caches a prefix of any length,
    so a test of the bot's breakpoints can use small prompts). Every other caching rule applies either way.
    """

    def __init__(self, *, api_key: str = "test-key", delay: float = 0.0, min_cache_tokens: int | None = 0) -> None:
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
        self._cache = PromptCache()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.web = WebSearch()  # the server-side web search tool: ``web.pages[query]`` scripts results

    # -- reply helpers (also on Reply) ---------------------------------------------------------
    text = staticmethod(Reply.text)
    json = staticmethod(Reply.json)
    tool_use = staticmethod(Reply.tool_use)
    tool_uses = staticmethod(Reply.tool_uses)
    web_search = staticmethod(Reply.web_search)

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
                raise invalid("model: Field required")
            validate_messages(body)
            blocks = prompt_blocks(body)
        except FakeAPIError as e:
            return self._error(e.status, e.error_type, e.message)
        return web.json_response({"input_tokens": input_tokens(blocks)})

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
        if (fault := self._take_fault()) is not None:
            return self._error(fault.status, fault.error_type, fault.message, fault.headers)
        try:
            self._check_auth(request)
            if parse_error is not None:
                raise parse_error
            validate(body)
            blocks = prompt_blocks(body)
            usage = self._cache.usage(self._presented_key(request) or "", body, blocks, self.clock,
                                      self.min_cache_tokens)
            reply = await self._next_reply(body)
            content, searches = self.web.serve(body, reply.content)
        except FakeAPIError as e:
            return self._error(e.status, e.error_type, e.message)
        except Exception as e:  # a broken responder: surface it, don't let the SDK retry it away
            return self._error(500, "api_error", f"fake responder raised {e!r}", {"x-should-retry": "false"})
        if searches or offered(body) is not None:
            usage["server_tool_use"] = {"web_search_requests": searches, "web_fetch_requests": 0}
            # The model reads what the searches found: their results are billed as input, in this same response.
            usage["input_tokens"] += sum(estimate_tokens(b) for b in content if b["type"] == "web_search_tool_result")
        return self._message(body, dataclasses.replace(reply, content=content), usage)

    def _take_fault(self) -> _Fault | None:
        """The fault this request meets, if any (counted down; one with times -1 stays until cleared)."""
        if not self._faults:
            return None
        fault = self._faults[0]
        if fault.remaining > 0:
            fault.remaining -= 1
            if fault.remaining == 0:
                self._faults.popleft()
        return fault

    def _message(self, body: dict[str, Any], reply: Reply, usage: dict[str, Any]) -> web.Response:
        """The reply as a Messages API answer: tool_use blocks get ids, usage gets the output tokens (logged)."""
        content = []
        for block in reply.content:
            block = dict(block)
            if block.get("type") == "tool_use" and not block.get("id"):
                block["id"] = f"toolu_fake{next(self._ids):014d}"
            content.append(block)
        written = [b for b in content if b.get("type") != "web_search_tool_result"]  # results are the API's
        usage["output_tokens"] = reply.output_tokens if reply.output_tokens is not None else max(
            1, estimate_tokens(written))
        usage |= reply.usage or {}
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
            raise invalid(f"Request body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise invalid("Request body must be a JSON object")
        return body

    def _check_auth(self, request: web.Request) -> None:
        if self._presented_key(request) != self.api_key:
            raise FakeAPIError(401, "invalid x-api-key", "authentication_error")
        if not request.headers.get("anthropic-version"):
            raise invalid("anthropic-version: header is required")

    async def _next_reply(self, body: dict[str, Any]) -> Reply:
        if self._script:
            raw: Any = self._script.popleft()
        elif self.responder is not None:
            raw = self.responder(body)
            if inspect.isawaitable(raw):
                raw = await raw
        else:
            raw = "ok"
        return as_reply(raw)

    @staticmethod
    def _presented_key(request: web.Request) -> str | None:
        # SDK 2.x sends `Authorization: Bearer <api_key>`; older clients send `x-api-key`.
        key = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if key is None and auth[:7].lower() == "bearer ":
            key = auth[7:].strip()
        return key
