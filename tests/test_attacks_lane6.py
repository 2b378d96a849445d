"""Attacks on issue 16's sixth pass, read cold: the SQLite lane (bot/store/lane.py), the quick schema check,
the overview text cache and Run.to_dict without asdict. The three holes it found (a failed thread start wedging
the lane, a StopIteration never answered, an idle lane keeping a cancelled call alive) were mended before it
landed; each test fails without its mend."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from bot.agents import prompts, schemas
from bot.agents.request import RepoOverview
from bot.agents.schemas import KINDS, _surely_valid, result_schema, validation_error
from bot.core.run_records import Run, StepState
from bot.store import StoreUnavailable
from bot.store.lane import Lane
from bot.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]


# ---- the lane -------------------------------------------------------------------------------------------------

async def test_a_thread_that_failed_to_start_does_not_wedge_the_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    lane = Lane("t")
    with monkeypatch.context() as m:
        m.setattr(threading.Thread, "start", lambda self: (_ for _ in ()).throw(RuntimeError("can't start new thread")))
        with pytest.raises(RuntimeError):
            lane.run(lambda: 1)
    try:
        assert await asyncio.wait_for(lane.run(lambda: 2), 3) == 2
    finally:
        if lane._thread is not None and lane._thread.is_alive():
            lane.shutdown()


def _stop() -> None:
    raise StopIteration


async def test_a_call_raising_stopiteration_is_answered() -> None:
    lane = Lane("t")
    try:
        with pytest.raises(Exception) as got:
            await asyncio.wait_for(lane.run(_stop), 3)
        assert not isinstance(got.value, TimeoutError)
    finally:
        lane.shutdown()


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, MemoryError, ValueError])
async def test_any_exception_reaches_its_caller_and_the_lane_lives_on(exc: type[BaseException]) -> None:
    lane = Lane("t")

    def boom() -> None:
        raise exc("x")
    try:
        fut = lane.run(boom)
        with pytest.raises(exc):
            await asyncio.wait_for(fut, 3)
        assert await asyncio.wait_for(lane.run(lambda: "alive"), 3) == "alive"
        assert lane._thread is not None and lane._thread.is_alive() and lane._thread.daemon
    finally:
        lane.shutdown()


async def test_cancellation_racing_the_start_never_loses_or_reorders_a_call() -> None:
    lane, ran, rng = Lane("t"), [], random.Random(6)

    def call(i: int) -> int:
        ran.append(i)
        time.sleep(0.0002 if i % 7 == 0 else 0)
        return i
    try:
        futs = [lane.run(functools.partial(call, i)) for i in range(600)]
        for i in rng.sample(range(600), 250):
            futs[i].cancel()
            if i % 5 == 0:
                await asyncio.sleep(0)
        kept = [i for i, f in enumerate(futs) if not f.cancelled()]
        assert await asyncio.wait_for(asyncio.gather(*(futs[i] for i in kept)), 10) == kept
        assert ran == sorted(ran) and set(kept) <= set(ran)  # in order; a cancelled one ran only if already started
        assert await asyncio.wait_for(lane.run(lambda: "alive"), 3) == "alive"
    finally:
        lane.shutdown()


async def test_shutdown_from_another_thread_racing_calls_leaves_none_unanswered() -> None:
    for _ in range(30):
        lane = Lane("t")
        futs: list[asyncio.Future[int]] = []
        closer = threading.Thread(target=lane.shutdown)
        refused = 0
        for i in range(200):
            if i == 50:
                closer.start()
            try:
                futs.append(lane.run(functools.partial(int, i)))
            except RuntimeError:
                refused += 1
        assert await asyncio.wait_for(asyncio.gather(*futs), 5) == list(range(len(futs)))
        closer.join(5)
        assert len(futs) + refused == 200
        with pytest.raises(RuntimeError):
            lane.run(lambda: 0)


async def test_a_store_call_from_inside_a_store_call_fails_fast_not_deadlocks(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    await store.open()
    try:
        def inner(db: Any) -> str:
            try:  # on the lane's own thread: no running loop, so no call can be queued behind itself
                store._pool.run(lambda: None)
            except RuntimeError as exc:
                return str(exc)
            return "queued behind itself"
        assert "no running event loop" in await asyncio.wait_for(store._run(inner), 5)
        def shut(db: Any) -> str:
            store._pool.shutdown()
            return "ok"
        done = await asyncio.wait_for(store._run(shut), 5)  # own thread: no join
        assert done == "ok"
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store._run(lambda db: 1), 5)
    finally:
        store._hook_pool.shutdown()


async def test_the_lane_keeps_no_finished_call_alive() -> None:
    lane = Lane("t")

    class Big:
        pass
    try:
        big = Big()
        ref = weakref.ref(big)

        def fail(b: Big = big) -> None:
            raise ValueError("with a traceback holding the frame")
        with pytest.raises(ValueError):
            await asyncio.wait_for(lane.run(fail), 3)
        del fail, big
        await asyncio.sleep(0.05)
        gc.collect()
        assert ref() is None
    finally:
        lane.shutdown()


def _child(tmp: Path, body: str) -> subprocess.Popen[str]:
    code = textwrap.dedent(f"""
        import asyncio, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from bot.store.base import Delivery
        from bot.store.sqlite import SQLiteStore
        async def main():
            store = SQLiteStore("sqlite:///{tmp / 'bot.sqlite3'}")
            await store.open()
        """) + textwrap.indent(textwrap.dedent(body), "    ") + "\nasyncio.run(main())\n"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)


def test_a_202_survives_sigkill_right_after(tmp_path: Path) -> None:
    """The lane answers only after the batch's fn returned, i.e. after COMMIT: kill -9 then cannot undo it."""
    child = _child(tmp_path, """
        for i in range(20):
            d = Delivery(id=f"d{i}", event="issues", action="opened", installation_id=1, repo="o/r",
                         thread=f"o/r#{i}", payload={"n": i})
            print(await store.accept_delivery(d), flush=True)
        time.sleep(60)
    """)
    try:
        lines = [child.stdout.readline().strip() for _ in range(20)]  # type: ignore[union-attr]
        assert lines == ["True"] * 20
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()

    async def check() -> list[Any]:
        store = SQLiteStore(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
        await store.open()
        try:
            return [await store.claim_job(f"o/r#{i}") for i in range(20)]
        finally:
            await store.close()
    jobs = asyncio.run(check())
    assert all(j is not None for j in jobs) and [j.delivery_id for j in jobs] == [f"d{i}" for i in range(20)]


def test_a_store_never_closed_with_a_call_running_does_not_hold_the_process_at_exit(tmp_path: Path) -> None:
    child = _child(tmp_path, """
        fut = asyncio.ensure_future(store._run(lambda db: time.sleep(30)))
        await asyncio.sleep(0.2)
        print("exiting", flush=True)
    """)
    started = time.monotonic()
    try:
        assert child.stdout.readline().strip() == "exiting"  # type: ignore[union-attr]
        child.wait(15)
    finally:
        if child.poll() is None:
            child.kill()
    assert time.monotonic() - started < 15


# ---- the quick schema check -----------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=4) | st.sampled_from(["a", "é", "e\u0301", "1"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["a", "b", "é", "e\u0301", "1", ""]),
                                                                inner, max_size=4),
    max_leaves=12)
TYPE = st.sampled_from(["string", "integer", "number", "boolean", "object", "array", "null"])
NUM = st.integers(-3, 3) | st.floats(-3, 3) | st.sampled_from([0.5, 1, 1.0, 10**20])


def _schemas() -> st.SearchStrategy[dict[str, Any]]:
    def node(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({}, optional={
            "type": TYPE | st.lists(TYPE, min_size=1, max_size=3, unique=True),
            "properties": st.dictionaries(st.sampled_from(["a", "b", "é", "1"]), inner, max_size=3),
            "required": st.lists(st.sampled_from(["a", "b", "é", "1"]), max_size=3, unique=True),
            "additionalProperties": st.booleans() | inner,
            "items": inner | st.booleans(),
            "anyOf": st.lists(inner, min_size=1, max_size=3),
            "enum": st.lists(st.none() | st.booleans() | st.integers(-2, 2) | st.floats(-2, 2)
                             | st.sampled_from(["a", "é", "1", ""]), max_size=4),
            "minimum": NUM, "maximum": NUM, "minItems": st.integers(0, 3), "description": st.text(max_size=3),
        })
    return st.recursive(node(st.just({})) | st.booleans(), node, max_leaves=8)  # type: ignore[arg-type,operator]


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(schema=_schemas(), value=JSON)
def test_the_quick_check_never_vouches_for_what_jsonschema_refuses(schema: Any, value: Any) -> None:
    if not isinstance(schema, dict):
        schema = {"items": schema}
    Draft202012Validator.check_schema(schema)
    if _surely_valid(value, schema):
        assert Draft202012Validator(schema).is_valid(value), (schema, value)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_results_for_the_real_schemas(kind: str, data: st.DataObject) -> None:
    schema = result_schema(kind, {"needs_security": "x", "ünï": "y"})
    hostile = st.sampled_from([10**400, -(10**400), math.nan, math.inf, -math.inf, True, False, 1, 0, 1.0, 0.5,
                               "true", "", "[]", [], {}, None, [None], {"extra": {"deep": 1}}, "é", ["é"]])
    doc = data.draw(st.dictionaries(st.sampled_from(sorted(schema["properties"]) + ["ünï", "Summary", "summary "]),
                                    hostile | JSON, max_size=len(schema["properties"]) + 2))
    full = Draft202012Validator(schema).is_valid(doc)
    assert (validation_error(doc, schema) is None) == (full and not any(schemas._non_finite(doc)))
    assert not (_surely_valid(doc, schema) and not full)


def test_the_workflow_schemas_go_to_jsonschema() -> None:
    import json
    for name in ("schema.json", "agent.schema.json", "triage.schema.json"):
        schema = json.loads((ROOT / "workflows" / name).read_text())
        assert not _surely_valid({}, schema) and not _surely_valid({"name": "x"}, schema)


# ---- the overview text cache ----------------------------------------------------------------------------------

def test_overview_texts_never_cross_repositories_commits_or_equal_looking_overviews() -> None:
    a = RepoOverview(commit="main", paths=("a.py",), readme=("README.md", "secret of repo A"))
    b = RepoOverview(commit="main", paths=("a.py",), readme=("README.md", "text of repo B"))  # same branch name
    assert "secret of repo A" in prompts.overview_text("o/a", a)
    assert "secret of repo A" not in prompts.overview_text("o/b", b)
    assert "Repository o/b" in prompts.overview_text("o/b", a)  # one overview, two repositories: two texts
    pushed = dataclasses.replace(a, readme=("README.md", "after the push"))
    assert "after the push" in prompts.overview_text("o/a", pushed)
    for i in range(prompts.MAX_OVERVIEW_TEXTS * 4):  # ids reused after the old overviews die: never a stale hit
        o = RepoOverview(commit=f"{i:040x}", paths=(f"f{i}.py",))
        assert f"f{i}.py" in prompts.overview_text(f"o/r{i}", o) and f"o/r{i} " in prompts.overview_text(f"o/r{i}", o)
        del o
    assert len(prompts._OVERVIEW_TEXTS) <= prompts.MAX_OVERVIEW_TEXTS


# ---- Run.to_dict ----------------------------------------------------------------------------------------------

def _as_asdict(run: Run) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(run).items() if v is not None or k not in Run.OPTIONAL_KEYS}


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(results=st.lists(JSON, max_size=4), extra=JSON)
def test_to_dict_matches_asdict_and_shares_nothing_mutable(results: list[Any], extra: Any) -> None:
    run = Run(id="r", workflow="w", steps={f"s{i}": StepState("done", 1, "a", {"v": r, "x": [extra]}, None,
                                                              {"f": r}) for i, r in enumerate(results)},
              escalation={"options": [{"title": "t", "x": extra}]}, decisions=[{"by": "o", "v": extra}])  # type: ignore[typeddict-item,arg-type]
    out = run.to_dict()
    assert repr(out) == repr(_as_asdict(run))  # repr: NaN != NaN

    def containers(v: Any) -> list[int]:
        if isinstance(v, dict):
            return [id(v)] + [i for x in v.values() for i in containers(x)]
        if isinstance(v, list):
            return [id(v)] + [i for x in v for i in containers(x)]
        return []
    mine = set(containers([[s.result, s.feedback] for s in run.steps.values()] + [run.escalation, run.decisions]))
    assert not mine & set(containers(out)), "a list or dict shared between the run and its plain form"


async def test_a_cancelled_call_is_not_kept_alive_by_an_idle_lane() -> None:
    lane = Lane("t")

    class Big:
        pass
    try:
        gate = threading.Event()
        first = lane.run(gate.wait)
        big = Big()
        ref = weakref.ref(big)
        skipped = lane.run(functools.partial(id, big))
        skipped.cancel()
        del big, skipped
        gate.set()
        await asyncio.wait_for(first, 3)
        for _ in range(20):
            await asyncio.sleep(0.01)
            gc.collect()
        assert ref() is None
    finally:
        lane.shutdown()
