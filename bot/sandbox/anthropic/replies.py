"""The scripted side of the fake Messages API: one assistant turn (``Reply``) and what a test may queue or
answer with (``ReplyLike``, ``Responder``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any


@dataclasses.dataclass
class Reply:
    """One scripted assistant turn: content blocks as the API returns them, plus stop_reason.

    ``tool_use`` blocks without an ``id`` get a fresh ``toolu_...`` id when served.
    ``output_tokens`` overrides the length-based estimate; ``usage`` replaces members of the answer's ``usage`` as
    a broken or later API might send them (``{"server_tool_use": {"web_search_requests": None}}``).
    """

    content: list[dict[str, Any]]
    stop_reason: str = "end_turn"
    output_tokens: int | None = None
    usage: dict[str, Any] | None = None

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


    @classmethod
    def web_search(cls, *queries: str, answer: Any = None, cite: tuple[int, ...] = (), error: str | None = None,
                   stop_reason: str = "end_turn") -> Reply:
        """Server-side web searches (the fake fills in each one's results, or the `error` code's block), then the
        `answer` (a dict: the JSON result; a str: text) citing the results numbered in `cite` (in the order
        served, from 0). ``stop_reason="pause_turn"``: the API paused the turn; the client sends it back."""
        blocks: list[dict[str, Any]] = [{"type": "server_tool_use", "name": "web_search", "input": {"query": q},
                                         **({"_error": error} if error else {})} for q in queries]
        if answer is not None:
            text = answer if isinstance(answer, str) else json.dumps(answer)
            blocks.append({"type": "text", "text": text, **({"cite": list(cite)} if cite else {})})
        return cls(blocks, stop_reason=stop_reason)


ReplyLike = Reply | dict | str
Responder = Callable[[dict[str, Any]], ReplyLike | Awaitable[ReplyLike]]


def as_reply(raw: Any) -> Reply:
    """A queued or responder answer as a ``Reply``: str → text, dict → structured JSON result."""
    if isinstance(raw, Reply):
        return raw
    if isinstance(raw, dict):
        return Reply.json(raw)
    if isinstance(raw, str):
        return Reply.text(raw)
    raise TypeError(f"scripted reply must be Reply | dict | str, got {type(raw).__name__}")
