"""Scripted specialists for the local Messages API server: the tests' and benchmarks' one shared team.

Every agent request names its step ("## Step TITLE (kind) of run ID, attempt N"); the team answers it
from a script (by title, or by (run id, title)), else with a valid default result for the step's kind,
after an optional delay and optional tool calls, and records each call with its timing.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
from dataclasses import dataclass, field
from typing import Any

from bot.sandbox.anthropic import FakeAnthropic, Reply

STEP = re.compile(r"## Step (.+?) \((\w+)\) of run (\S+), attempt (\d+)")


def result(kind: str, flags: dict[str, bool] | None = None, **extra: Any) -> dict[str, Any]:
    """A valid result for a step kind (the agent runtime validates it against the kind's schema)."""
    base: dict[str, Any] = {"summary": f"{kind} done", "passed": True, "criteria": [], "flags": flags or {},
                            "escalate": None}
    by_kind: dict[str, dict[str, Any]] = {
        "triage": {"workflow": None, "subclass": None, "reason": "scripted", "confidence": 0.9},
        "analyze": {"findings": ["scripted finding at app.py:1"]},
        "validate": {"findings": ["validated"]},
        "implement": {"changes": [{"path": "app/fix.py", "content": "def fix():\n    return 1\n", "reason": "the fix"},
                                  {"path": "tests/test_fix.py", "content": "def test_fix():\n    assert True\n",
                                   "reason": "a test"}], "notes": ""},
        "review": {"verdict": "APPROVED", "critical": [], "warnings": [], "suggestions": [], "tech_debt": []},
        "approval": {"deployment_plan": None},
        "context": {"context": {"goals": ["g"], "constraints": [], "decisions": [], "progress": []}, "tasks": []},
    }
    base |= by_kind[kind]
    return base | extra


def rejected() -> dict[str, Any]:
    """A review that sends the work back with one critical finding."""
    return result("review", verdict="REJECTED", passed=False,
                  critical=[{"text": "No input validation", "path": "app/fix.py", "line": 1}])


@dataclass(frozen=True)
class Call:
    title: str
    attempt: int
    start: float
    end: float
    run: str = ""

    def __iter__(self) -> Any:  # unpacks as (title, attempt, start, end)
        return iter((self.title, self.attempt, self.start, self.end))


@dataclass
class Team:
    """Answers every agent step; ``script[title]`` or ``script[(run, title)]`` queues results, ``flags[title]``
    sets the step's flags in a default answer, ``delay[title]`` holds the answer back, and ``tool_turns``
    makes each step read the repository first (as real agents do) so the prompt cache is exercised."""

    fake: FakeAnthropic
    tool_turns: int = 0
    script: dict[Any, list[Any]] = field(default_factory=dict)  # a result dict, a Reply, or raw text to serve
    flags: dict[str, dict[str, bool]] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.fake.responder = self.respond

    async def respond(self, request: dict[str, Any]) -> Any:
        first = request["messages"][0]["content"]
        text = first if isinstance(first, str) else "\n".join(b.get("text", "") for b in first if isinstance(b, dict))
        m = STEP.search(text)
        if m is None:
            raise AssertionError("an agent request that does not name its step")
        title, kind, run, attempt = m.group(1), m.group(2), m.group(3), int(m.group(4))
        start = time.monotonic()
        await asyncio.sleep(self.delay.get(title, 0.0))
        self.calls.append(Call(title, attempt, start, time.monotonic(), run))
        tools = {t.get("name") for t in request.get("tools") or []}
        turn = (len(request["messages"]) - 1) // 2  # tool round trips so far in this step
        if turn < self.tool_turns and request.get("tool_choice", {}).get("type") != "none":
            if "list_directory" in tools:
                return Reply.tool_use("list_directory", {"path": ""}, text="Looking at the layout first.")
        for key in ((run, title), title):
            queue = self.script.get(key)
            if queue:
                return copy.deepcopy(queue.pop(0))
        wanted = (re.findall(r"^- (\w+): ", text.split("Flags to set in `flags`:")[1], re.M)
                  if "Flags to set in `flags`:" in text else [])
        return result(kind, {name: self.flags.get(title, {}).get(name, False) for name in wanted})
