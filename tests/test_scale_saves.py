"""Saving a run in parts (issue 16): each save writes the top-level keys of the run's data that changed since the
last one, and a load after partial saves gives the run a whole save gives. On every backend (PostgreSQL skips
where no server runs)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.agents.models import Usage
from bot.core import engine as E
from bot.core.catalog import load_catalog
from bot.run.executor import Executor
from bot.run.state import RunData, RunState, run_context
from bot.store import RunRecord
from bot.store.run_format import KEYS, VERSION
from tests.test_store import store  # noqa: F401  (the store fixture, on each backend)

FLOW = load_catalog().workflows["backend-feature"]
RUNS = Path(__file__).parent / "fixtures" / "runs"


def new_state(run_id: str = "r1") -> RunState:
    run = E.Run.new(run_id, FLOW, head_sha="a" * 40)
    ctx = run_context("o/r", 1, head_sha="a" * 40, default_branch="main", title="t", body="b")
    data = RunData(run=run, ctx=ctx, status_body="posted once")
    record = RunRecord(id=run_id, thread="o/r#1", repo="o/r", number=1, installation_id=1, workflow=FLOW.name,
                       state=run.state, data=data.to_json())
    return RunState(record=record, data=data)


async def save(store: Any, state: RunState) -> None:  # noqa: F811
    """The executor's save, as every step makes it."""
    await Executor._save(SimpleNamespace(store=store), state)  # type: ignore[arg-type]


async def test_a_partial_save_then_a_load_gives_the_run_a_whole_save_gives(store: Any) -> None:  # noqa: F811
    state = new_state()
    await store.save_run(state.record)
    state.stored()
    assert state.changes() == {}
    state.run, actions = E.advance(state.run, E.Start(), FLOW)
    state.outbox.extend(actions)
    state.data.applied.append("delivery-1")
    state.data.status_body = None  # a null is written as a null, never dropped as a merge patch would
    state.data.links["analysis"] = "https://github.com/o/r/issues/1#issuecomment-1"
    state.data.created.comments += 1
    state.data.usage += Usage(input_tokens=5, calls=1, cost_usd=0.25)
    changed = state.changes()
    assert changed is not None
    assert set(changed) == {"run", "outbox", "applied", "status_body", "links", "created", "usage"}
    await save(store, state)
    loaded = await store.load_run("r1")
    assert loaded.state == E.RUNNING and loaded.data == state.data.to_json()  # every key, as a whole save has it
    assert RunData.from_json(loaded.data, "r1") == state.data
    # A change made in place (the executor stops a run that way) is seen, and nothing else is written.
    state.run.state = E.CANCELLED
    assert set(state.changes() or {}) == {"run"}
    await save(store, state)
    assert (await store.load_run("r1")).data == state.data.to_json()


async def test_a_run_the_store_does_not_hold_is_saved_whole(store: Any) -> None:  # noqa: F811
    state = new_state("r2")
    state.stored()  # believed stored, but the row is gone (or never was)
    state.data.replies = 1
    assert await store.save_run_fields(state.record, state.changes()) is False
    assert await store.load_run("r2") is None
    await save(store, state)
    assert (await store.load_run("r2")).data == state.data.to_json()


async def test_a_partial_save_refuses_a_key_the_format_does_not_have(store: Any) -> None:  # noqa: F811
    state = new_state("r3")
    await store.save_run(state.record)
    with pytest.raises(ValueError, match="no key 'replys'"):
        await store.save_run_fields(state.record, {"replys": "1"})
    assert (await store.load_run("r3")).data == state.record.data


async def test_a_run_stored_in_an_older_format_is_saved_whole_the_first_time(store: Any) -> None:  # noqa: F811
    row = json.loads((RUNS / "issue-waiting-approval.json").read_text())
    old = RunRecord(**{k: row[k] for k in ("id", "thread", "repo", "number", "installation_id", "workflow", "state")},
                    data=json.loads(row["data"]))
    assert "version" not in old.data
    await store.save_run(old)
    state = RunState.open(old)
    assert state.changes() is None
    state.data.replies += 1
    await save(store, state)
    stored = (await store.load_run(old.id)).data
    assert stored["version"] == VERSION and set(stored) == KEYS
    assert RunData.from_json(stored, old.id) == state.data
    # From then on, saves are partial.
    assert state.changes() == {}
    state.data = dataclasses.replace(state.data, mention="@o/team")
    assert set(state.changes() or {}) == {"mention"}


async def test_text_no_merge_can_hold_and_the_order_of_steps_survive_every_save(store: Any) -> None:  # noqa: F811
    """A NUL in issue text (jsonb refuses U+0000) and a NaN (SQLite's json() refuses it) are saved, and the steps
    come back in the workflow's order (jsonb would reorder every object's keys): each backend either merges
    faithfully or says it cannot, and the run is then saved whole."""
    state = new_state("r5")
    await store.save_run(state.record)
    state.stored()
    state.run, actions = E.advance(state.run, E.Start(), FLOW)
    state.data.status_body = "a title with \x00 inside"
    state.data.usage += Usage(cost_usd=float("nan"))
    await save(store, state)
    loaded = await store.load_run("r5")
    assert loaded is not None and json.dumps(loaded.data) == json.dumps(state.data.to_json())  # NaN != NaN
    again = RunData.from_json(loaded.data, "r5")
    assert again.status_body == "a title with \x00 inside"
    assert list(again.run.steps) == list(state.run.steps) == [s.id for s in FLOW.steps]


async def test_a_runs_push_time_is_saved_by_a_partial_save_and_left_out_while_unknown(store: Any) -> None:  # noqa: F811
    """The engine's run leaves head_since out while it is None (the shape of every run stored before), whichever
    serialiser writes it: a whole save (to_dict) or a partial one (the changed keys' JSON)."""
    state = new_state()
    await store.save_run(state.record)
    state.stored()
    state.run, _ = E.advance(state.run, E.Start(), FLOW)
    await save(store, state)
    assert "head_since" not in (await store.load_run("r1")).data["run"]
    state.run = dataclasses.replace(state.run, head_since=1_800_000_000.0)
    await save(store, state)
    assert (await store.load_run("r1")).data["run"]["head_since"] == 1_800_000_000.0
