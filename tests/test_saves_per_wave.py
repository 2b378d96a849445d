"""One save for a wave of writes (issue 16: saves per run): the executor performs the writes the engine queued one
after another and saves the run once after them (with the status comment's edit, when it has one), not once per
write; a run the store holds as it is is not saved again; and when a write fails, what the writes before it posted
is stored before the job fails. On every backend (PostgreSQL skips where no server runs)."""

from __future__ import annotations

from http import HTTPStatus
from types import MethodType
from typing import Any

import pytest
from gidgethub import BadRequest

from bot.core import engine as E
from bot.core.catalog import load_catalog
from bot.core.markers import marker
from bot.run.executor import Executor
from bot.run.state import RunPosts, RunState
from bot.store import Posted
from tests.test_scale_saves import new_state
from tests.test_store import store  # noqa: F401  (the store fixture, on each backend)

CATALOG = load_catalog()


class Saves:
    """The store's run saves, counted (a wrapper on the store)."""

    def __init__(self, store: Any) -> None:  # noqa: F811
        self.count = 0
        for name in ("save_run", "save_run_fields"):
            inner = getattr(store, name)

            async def counted(*args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
                done = await _inner(*args, **kwargs)
                self.count += done is not False  # a partial save the store declines is followed by a whole one
                return done
            setattr(store, name, counted)


def executor(store: Any, fail_on: str | None = None, edits: bool = False) -> Executor:  # noqa: F811
    """An executor whose writes post a comment each (no GitHub): a PostStep posts its step's comment, a PostSkip
    writes nothing; ``fail_on``: the step whose write GitHub answers with a 502; ``edits``: the status comment is
    edited (and the run saved, as bot/run/writes.py's ``_status`` does)."""
    ex = Executor.__new__(Executor)
    ex.store, ex.catalog = store, CATALOG

    async def perform(self: Executor, state: RunState, action: E.Action) -> None:
        if isinstance(action, E.PostStep):
            if action.step == fail_on:
                raise BadRequest(HTTPStatus.BAD_GATEWAY)
            mark = marker("step", state.run.id, action.step, action.iteration)
            posted = Posted(marker=mark, repo="o/r", kind="comment", github_id=len(mark), number=1)
            assert state.posts is not None
            state.posts.by_mark[mark] = posted
            state.posts.unsaved.append(posted)

    async def status(self: Executor, state: RunState) -> None:
        if edits and state.data.status_body != f"edited {len(state.outbox)}":  # edited when what it says changed
            state.data.status_body = f"edited {len(state.outbox)}"
            await self._save(state)

    ex._perform = MethodType(perform, ex)  # type: ignore[method-assign]
    ex._status = MethodType(status, ex)  # type: ignore[method-assign]
    return ex


async def stored_state(store: Any, outbox: list[E.Action]) -> RunState:  # noqa: F811
    state = new_state("r9")
    state.posts = RunPosts()
    await store.save_run(state.record)
    state.stored()
    state.outbox.extend(outbox)
    return state


async def test_a_waves_writes_are_saved_once_with_what_they_posted(store: Any) -> None:  # noqa: F811
    state = await stored_state(store, [E.PostStep("analysis", 1), E.PostSkip("security"), E.PostStep("review", 1)])
    saves = Saves(store)
    await executor(store)._drain(state)
    assert saves.count == 1  # three writes, one save
    assert state.outbox == [] and (await store.load_run("r9")).data["outbox"] == []
    for step in ("analysis", "review"):
        assert await store.find_posted(marker("step", "r9", step, 1)) is not None
    await executor(store)._drain(state)  # nothing queued, nothing changed: nothing saved
    assert saves.count == 1


async def test_what_the_writes_before_a_failed_write_posted_is_stored_before_the_job_fails(
        store: Any) -> None:  # noqa: F811
    state = await stored_state(store, [E.PostStep("analysis", 1), E.PostStep("review", 1)])
    with pytest.raises(BadRequest):
        await executor(store, fail_on="review")._drain(state)
    assert await store.find_posted(marker("step", "r9", "analysis", 1)) is not None
    stored = (await store.load_run("r9")).data["outbox"]
    assert stored == [{"type": "PostStep", "step": "review", "iteration": 1}]  # the failed write is done again


async def test_a_status_edit_after_the_writes_saves_them_and_nothing_is_saved_after_it(store: Any) -> None:  # noqa: F811
    state = await stored_state(store, [E.PostStep("analysis", 1), E.AskApproval("approval")])
    saves = Saves(store)
    await executor(store, edits=True)._drain(state)
    assert saves.count == 1  # the status comment's save carries the writes
    loaded = (await store.load_run("r9")).data
    assert loaded["outbox"] == [] and loaded["status_body"] == "edited 0"
    assert await store.find_posted(marker("step", "r9", "analysis", 1)) is not None


def test_a_forked_run_is_what_dataclasses_replace_makes_and_shares_no_step_state() -> None:
    """The engine copies a run for every signal by hand (bot/core/engine.py ``fork``): that is only
    ``dataclasses.replace`` while neither record has ``__post_init__`` or ``__slots__``."""
    import dataclasses

    flow = CATALOG.workflows["backend-feature"]
    run, _ = E.advance(E.Run.new("r9", flow, head_sha="a" * 40), E.Start(), flow)
    for cls in (E.Run, E.StepState):
        assert not hasattr(cls, "__post_init__") and "__slots__" not in vars(cls)
        assert all(f.init for f in dataclasses.fields(cls))
    forked = E.fork(run)
    assert forked == dataclasses.replace(run) and type(forked) is E.Run
    assert all(forked.steps[s] is not run.steps[s] and forked.steps[s] == run.steps[s] for s in run.steps)
    assert forked.decisions is not run.decisions
