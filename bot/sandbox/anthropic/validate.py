"""The fake Messages API's request checks: the 400s the real API answers for a malformed request, worded as it
words them, and the error type it uses for each status."""

from __future__ import annotations

from typing import Any

from . import web_search

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
FORCING_TOOL_CHOICES = {"any", "tool"}
THINKING_ON = {"enabled", "adaptive"}

# Top-level fields the real endpoint accepts; anything else is "Extra inputs are not permitted".
KNOWN_FIELDS = {
    "model", "messages", "max_tokens", "system", "tools", "tool_choice", "thinking", "stream",
    "temperature", "top_p", "top_k", "stop_sequences", "metadata", "cache_control", "output_config",
    "output_format", "service_tier", "container", "diagnostics", "inference_geo", "speed",
    "mcp_servers", "context_management", "betas",
}
try:  # follow the installed SDK's param list so new fields don't trip the check
    from anthropic.types import message_create_params as _mcp
    from anthropic.types.beta import message_create_params as _beta_mcp

    KNOWN_FIELDS |= set(_mcp.MessageCreateParamsBase.__annotations__)
    KNOWN_FIELDS |= set(_beta_mcp.MessageCreateParamsBase.__annotations__)
except Exception:  # pragma: no cover - older/newer SDK layout
    pass


class FakeAPIError(Exception):
    """A request the real API would reject; rendered as its error JSON."""

    def __init__(self, status: int, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type or ERROR_TYPES.get(status, ("api_error", ""))[0]
        self.message = message


def invalid(message: str) -> FakeAPIError:
    return FakeAPIError(400, message, "invalid_request_error")


def validate(body: dict[str, Any]) -> None:
    """A ``POST /v1/messages`` body as the real API checks it; raises the first 400 it would answer."""
    extra = sorted(set(body) - KNOWN_FIELDS)
    if extra:
        raise invalid(f"{extra[0]}: Extra inputs are not permitted")
    if body.get("stream"):
        raise invalid("stream: streaming not supported by the fake")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise invalid("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid("max_tokens: Input should be a positive integer")
    validate_messages(body)
    output_config = body.get("output_config")
    if output_config is not None and not isinstance(output_config, dict):
        raise invalid("output_config: Input should be an object")
    fmt = (output_config or {}).get("format")
    if fmt is not None and (
        not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict)
    ):
        raise invalid("output_config.format: expected {'type': 'json_schema', 'schema': {...}}")


def validate_messages(body: dict[str, Any]) -> None:
    """The prompt's parts (tools, system, messages, tool_choice, thinking), checked in the real API's order;
    ``count_tokens`` checks these too."""
    tools = body.get("tools")
    names = _tool_names(tools)
    _check_system(body.get("system"))
    if _check_messages(body.get("messages")) and not tools:
        raise invalid("Requests which include `tool_use` or `tool_result` blocks must define tools.")
    tool_choice = body.get("tool_choice")
    _check_tool_choice(tool_choice, names)
    _check_thinking(body.get("thinking"), body.get("max_tokens"), tool_choice)


def _tool_names(tools: Any) -> set[str]:
    """The names of the tools offered, each named, custom ones with an input schema, none twice."""
    names: set[str] = set()
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid("tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise invalid(f"tools.{i}.name: Field required")
            if tool.get("type", "custom") == "custom" and not isinstance(tool.get("input_schema"), dict):
                raise invalid(f"tools.{i}.custom.input_schema: Field required")
            if (problem := web_search.tool_problem(i, tool)) is not None:
                raise invalid(problem)
            if tool["name"] in names:
                raise invalid("tools: Tool names must be unique.")
            names.add(tool["name"])
    return names


def _check_system(system: Any) -> None:
    if system is not None and not isinstance(system, str):
        if not isinstance(system, list) or any(not isinstance(b, dict) or b.get("type") != "text" for b in system):
            raise invalid("system: Input should be a string or a list of text blocks")


def _check_messages(messages: Any) -> bool:
    """Alternating roles from "user", non-empty content (the last message aside); whether tools were used."""
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: at least one message is required")
    used_tools = False
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        expected = "user" if i % 2 == 0 else "assistant"
        if msg["role"] != expected:
            raise invalid(
                "messages: roles must alternate between \"user\" and \"assistant\", starting with \"user\""
            )
        content = msg.get("content")
        if isinstance(content, str):
            if not content and i != len(messages) - 1:
                raise invalid(f"messages.{i}: all messages must have non-empty content")
            _validate_tool_pairing(messages, i)
            continue
        if not isinstance(content, list) or (not content and i != len(messages) - 1):
            raise invalid(f"messages.{i}.content: Input should be a string or a non-empty list of blocks")
        used_tools = _check_blocks(i, msg["role"], content) or used_tools
        _validate_tool_pairing(messages, i)
    return used_tools


def _check_blocks(i: int, role: str, content: list) -> bool:
    """Message ``i``'s content blocks: typed, text non-empty, tool_use from the assistant (whole), tool_result
    from the user; whether any is a tool block."""
    used_tools = False
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise invalid(f"messages.{i}.content.{j}.type: Field required")
        kind = block["type"]
        if (problem := web_search.block_problem(i, role, j, block)) is not None:
            raise invalid(problem)
        if kind == "text" and (not isinstance(block.get("text"), str) or not block["text"]):
            raise invalid(f"messages.{i}.content.{j}.text: text content blocks must be non-empty")
        if kind == "tool_use":
            used_tools = True
            if role != "assistant":
                raise invalid(f"messages.{i}.content.{j}: tool_use may only appear in assistant messages")
            if not (
                isinstance(block.get("id"), str)
                and isinstance(block.get("name"), str)
                and isinstance(block.get("input"), dict)
            ):
                raise invalid(f"messages.{i}.content.{j}.tool_use: id, name and input are required")
        if kind == "tool_result":
            used_tools = True
            if role != "user":
                raise invalid(f"messages.{i}.content.{j}: tool_result blocks may only appear in user messages")
    return used_tools


def _check_tool_choice(tool_choice: Any, names: set[str]) -> None:
    if tool_choice is not None:
        kind = tool_choice.get("type") if isinstance(tool_choice, dict) else None
        if kind not in ("auto", "any", "tool", "none"):
            raise invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
        if kind == "tool" and tool_choice.get("name") not in names:
            raise invalid(f"tool_choice: Tool '{tool_choice.get('name')}' not found in tools")
        if kind in FORCING_TOOL_CHOICES and not names:
            raise invalid("tool_choice: tools must be provided when tool_choice forces tool use")


def _check_thinking(thinking: Any, max_tokens: Any, tool_choice: Any) -> None:
    """A thinking budget of at least 1024 below ``max_tokens``; never with a tool_choice that forces tool use."""
    if thinking is not None:
        if not isinstance(thinking, dict) or not isinstance(thinking.get("type"), str):
            raise invalid("thinking.type: Field required")
        if thinking["type"] == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                raise invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
            if isinstance(max_tokens, int) and budget >= max_tokens:
                raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`")
        forced = isinstance(tool_choice, dict) and tool_choice.get("type") in FORCING_TOOL_CHOICES
        if thinking["type"] in THINKING_ON and forced:
            raise invalid("Thinking may not be enabled when tool_choice forces tool use.")


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
            raise invalid(
                f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{b.get('tool_use_id')}. Each `tool_result` block must have a corresponding `tool_use` "
                "block in the previous message."
            )
    if results and msg["content"][: len(results)] != results:
        raise invalid(f"messages.{i}.content: tool_result blocks must come first in the user message content")
    if msg["role"] == "user" and prev_ids:
        missing = [x for x in prev_ids if x not in {b.get("tool_use_id") for b in results}]
        if missing:
            raise invalid(
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(map(str, missing))}. Each `tool_use` block must have a corresponding "
                "`tool_result` block in the next message."
            )
