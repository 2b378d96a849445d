"""One step's web search, turn by turn (issue 17, point 6): what its calls offer and what its result says of it.

The prompt cache reads a prefix (tools, then system, then messages): a tool definition that changed between two
turns makes every later turn write the whole prefix again. So a step offers one web search tool whose bytes change
only when they must. ``max_uses`` is what the run has left (reserved in the budget's ledger for the turn, so steps
in parallel share the cap), never more: the operator's cap is hard, since the API enforces ``max_uses``, and a turn
with nothing reserved has no tool at all. A turn without a search leaves the tool as it was; after a turn that
searched, the next offers fewer (that turn writes the prefix again) and the model is told, in the next turn's user
content, how many searches are left. Beside that:

- the budget has room for fewer searches than are left beside the call: that turn offers as many as fit, and none
  when none fit (the step then runs without it, and its result says so);
- the run's other steps made or hold every search it had left when this step began (steps of one wave run at
  once): the turn has no tool, and the result says that this is why;
- a reply that made more searches than were reserved (the API's cap failed): they are counted all the same (they
  were made and billed) and the tool is no longer offered in this step.

Searches that failed (``web_search_tool_result_error``) are not billed; the result names them, so a person reading
the research knows it could not look everything up.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bot.agents.prompts import WEB_SEARCH

# What each error code of the API's web search means, for people: the code itself is never posted.
FAILURES = {"too_many_requests": "the search service was rate-limited",
            "unavailable": "the search service was unavailable",
            "invalid_tool_input": "the query was not valid",
            "invalid_input": "the query was not valid",
            "query_too_long": "the query was too long",
            "max_uses_exceeded": "past the step's allowance",
            "request_too_large": "the request was too large"}
# Why a step that could search never had the tool (``WebSearchTurns.starved``).
STARVED = {"budget": "Web search was not used: the budget had no room left for a search.",
           "searches": "Web search was not used: the run's other steps had made or were holding every search it "
                       "had left."}


@dataclass
class WebSearchTurns:
    """The web search of one step: ``allowance`` searches a turn (0: none), as the step began."""

    allowance: int
    withdrawn: bool = False  # the model searched past what was left: no longer offered in this step
    searched: int = 0  # searches the API billed in this step
    fresh: bool = False  # the last turn searched: the next turn's user content says what is left
    offered_any: bool = False
    # Why the last turn that wanted the tool had none: "budget" (no room for one search's tokens) or "searches"
    # (the run's other steps made or hold every search it has left); None when every turn had it.
    starved: str | None = None
    failed: Counter[str] = field(default_factory=Counter)

    def offer(self) -> int:
        """The searches the next turn should offer, budget allowing."""
        return 0 if self.withdrawn else self.allowance

    def offered(self, n: int, *, reserved: int) -> None:
        """A turn offers `n` searches, of the `reserved` it holds of what the run has left."""
        self.offered_any |= n > 0
        if n == 0:
            self.starved = "searches" if reserved == 0 else "budget"

    def made(self, content: list[dict[str, Any]], billed: int, reserved: int) -> None:
        """After a turn: `billed` searches made of the `reserved` the run had left (and the failed ones)."""
        self.searched += billed
        self.fresh = billed > 0
        self.withdrawn |= billed > reserved
        self.failed.update(failures(content))

    def notes(self) -> list[str]:
        """What the step's result says of its web search, beyond the pages it cited."""
        lines = []
        if self.allowance and self.starved and not self.offered_any:
            lines.append(STARVED[self.starved])
        for code, n in sorted(self.failed.items()):
            lines.append(f"Web search: {n} search{'es' if n > 1 else ''} failed ({FAILURES.get(code, 'an error')}).")
        return lines


def failures(content: list[dict[str, Any]]) -> list[str]:
    """The error codes of a reply's failed searches (an unknown code: "other")."""
    out = []
    for block in content:
        result = block.get("content") if block.get("type") == "web_search_tool_result" else None
        if isinstance(result, dict) and result.get("type") == "web_search_tool_result_error":
            code = result.get("error_code")
            out.append(code if isinstance(code, str) and code in FAILURES else "other")
    return out


def billed(content: list[dict[str, Any]], usage: dict[str, Any]) -> dict[str, Any]:
    """``usage`` with its web search count as the reply's own blocks bound it: at least the searches whose results
    came back (a count the API left null must not let them go uncounted, else the run's cap is passed), at most the
    searches the reply made (a count past them, up to one no ledger column holds, is no search of this reply's)."""
    made = sum(b.get("type") == "server_tool_use" and b.get("name") == WEB_SEARCH for b in content)
    served = sum(b.get("type") == "web_search_tool_result" and isinstance(b.get("content"), list) for b in content)
    server = usage.get("server_tool_use")
    said = server.get("web_search_requests") if isinstance(server, dict) else None
    count = said if isinstance(said, int) and not isinstance(said, bool) and said > 0 else 0
    bounded = min(max(count, served), made)
    if bounded == count:
        return usage
    return {**usage, "server_tool_use": {**(server if isinstance(server, dict) else {}),
                                         "web_search_requests": bounded}}


def with_notes(result: dict[str, Any], lines: list[str]) -> dict[str, Any]:
    """`result` with `lines` added where its step's output shows them: its findings, else its summary."""
    if not lines:
        return result
    if isinstance(result.get("findings"), list):
        return {**result, "findings": [*result["findings"], *lines]}
    return {**result, "summary": "\n".join([str(result.get("summary") or ""), "", *lines])}
