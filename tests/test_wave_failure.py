"""A wave of agent steps whose save fails stops its other steps (found by the outside attack of this stop): their
results could not be stored and the retried job runs them again, so left running they only spent tokens. On every
backend (PostgreSQL skips where no server runs)."""

from __future__ import annotations

import asyncio
from types import MethodType
from typing import Any

import pytest

from bot.agents import AgentOutcome, Usage
from bot.core import engine as E
from bot.run.executor import Executor
from bot.run.state import RunState
from bot.store import StoreUnavailable
from tests.test_saves_per_wave import executor, stored_state
from tests.test_store import store  # noqa: F401  (the store fixture, on each backend)


async def test_a_wave_whose_save_fails_cancels_its_other_steps(store: Any) -> None:  # noqa: F811
    state = await stored_state(store, [E.RunAgent("architecture", 1, "backend-architect"),
                                       E.RunAgent("research", 1, "search-specialist")])
    ex = executor(store)
    ex.metrics = None
    slow_started, slow_cancelled = asyncio.Event(), asyncio.Event()

    async def call(self: Executor, state: RunState, action: E.RunAgent) -> tuple[E.RunAgent, AgentOutcome]:
        if action.step == "research":  # a long model call still in flight when the other step's save fails
            slow_started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                slow_cancelled.set()
                raise
        await slow_started.wait()
        return action, AgentOutcome(result={"summary": "done"}, usage=Usage())
    ex._call_agent = MethodType(call, ex)  # type: ignore[method-assign]
    ex._step_record = MethodType(lambda self, state, action, outcome: None, ex)  # type: ignore[method-assign]

    async def save(self: Executor, state: RunState, step: Any = None, **_: Any) -> None:
        raise StoreUnavailable("the store went away")
    ex._save = MethodType(save, ex)  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(ex._run_wave(state, [a for a in state.outbox if isinstance(a, E.RunAgent)]), 10)
    assert slow_cancelled.is_set(), "the other step's model call was left running"
