"""The typed run state (bot/run/state.py) and its stored format (bot/store/run_format.py).

The fixtures in tests/fixtures/runs/ are ``runs`` rows stored by the code before the typed state (format
version 1, recorded by tests/fixtures/runs/record.py): a store at the schema version before the data
migration holds them, the migration converts them, and a run waiting for ``/approve`` completes through the
webhook. Stored data the code cannot read is an error naming what is wrong, never dropped in silence.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.run.runtime import Runtime
from bot.run.state import CiRef, RunData, RunState, StoredRunError, dump_action, run_context
from bot.sandbox.anthropic import FakeAnthropic
from bot.store import RunRecord, SQLiteStore, migrations
from bot.store.run_format import VERSION, upgrade, upgrade_column
from tests.conftest import load_fixture, post_webhook
from tests.test_workflows_e2e import REPO, Team, comment_payload, posts

RUNS = Path(__file__).parent / "fixtures" / "runs"
NAMES = sorted(p.stem for p in RUNS.glob("*.json"))
COLUMNS = ("id", "thread", "repo", "number", "installation_id", "workflow", "state", "data")


def fixture(name: str) -> dict[str, Any]:
    return json.loads((RUNS / f"{name}.json").read_text())


def old_data(name: str) -> dict[str, Any]:
    return json.loads(fixture(name)["data"])


def insert_sql(param: str) -> str:
    return (f"INSERT INTO runs ({', '.join(COLUMNS)}, created_at, updated_at)"
            f" VALUES ({', '.join([param] * (len(COLUMNS) + 2))})")


# The schema version just before the run-data migration (later ones may follow it).
BEFORE = next(i for i, m in enumerate(migrations.MIGRATIONS) if isinstance(m, migrations.RowMigration))


async def sqlite_before_migration(url: str, rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A SQLite store created at the schema version before the run-data migration, holding ``rows`` raw."""
    with monkeypatch.context() as m:
        m.setattr("bot.store.sqlite.MIGRATIONS", migrations.MIGRATIONS[:BEFORE])
        store = SQLiteStore(url)
        await store.open()
        assert await store.schema_version() == BEFORE
        await store.close()
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        db.executemany(insert_sql("?"), [tuple(r[c] for c in COLUMNS) + (1.0, 1.0) for r in rows])


# ---- the migration, and a migrated run resuming --------------------------------------------------

async def test_the_migration_converts_every_stored_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    await sqlite_before_migration(url, [fixture(n) for n in NAMES], monkeypatch)
    store = SQLiteStore(url)
    await store.open()  # migrates
    try:
        assert await store.schema_version() == len(migrations.MIGRATIONS)
        for name in NAMES:
            row = fixture(name)
            record = await store.load_run(row["id"])
            assert record is not None and record.data["version"] == VERSION
            assert set(record.data["ctx"]) >= {"from_fork", "base_sha"}
            # The stored data reads as the old data converted on read: one conversion, wherever it runs.
            assert RunData.from_json(record.data) == RunData.from_json(old_data(name))
            assert record.data == RunData.from_json(record.data).to_json()  # nothing left to convert
            assert (record.state, record.workflow) == (row["state"], row["workflow"])
    finally:
        await store.close()


async def test_a_run_stored_before_the_change_completes_on_approve(
        settings: Any, sandbox: Any, aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    sandbox.set_permission(REPO, "maintainer", "write")
    row = fixture("issue-waiting-approval")
    data = json.loads(row["data"])
    assert "version" not in data and data["outbox"] == [] and data["run"]["state"] == "waiting"
    # The recorded run was pinned to a commit of the recording's sandbox: pin it to this one's.
    data["run"]["head_sha"] = sandbox.repo(REPO).refs["refs/heads/master"]
    await sqlite_before_migration(settings.database_url, [{**row, "data": json.dumps(data)}], monkeypatch)
    fake = FakeAnthropic(api_key="sk-ant-test-key")
    await fake.start()
    Team(fake)
    s = settings.with_overrides(anthropic_api_key="sk-ant-test-key", anthropic_base_url=fake.url)
    rt = await Runtime(s, github_backoff=0.01, agent_options={"retry_base": 0.01}).start()  # migrates
    try:
        client = await aiohttp_client(rt.web_app())
        assert (await rt.store.load_run(row["id"])).data["version"] == VERSION  # type: ignore[union-attr]
        approve = comment_payload(60, "/approve")
        sandbox.seed_from_payload(approve)
        assert (await post_webhook(client, "issue_comment", approve)).status == 202
        await rt.jobs.drained(30)
        assert await rt.store.job_states() == {"done": 1}
        # The thread's earlier comments are not in this sandbox: the status comment is posted anew, after "done".
        assert posts(sandbox, 60) == ["done", "status"]
        assert await rt.store.run_states() == {"done": 1}
        [pull] = [w for w in sandbox.writes if w.kind == "pull"]
        assert pull.data["body"].startswith("Closes #60")
        record = await rt.store.load_run(row["id"])
        assert record is not None and record.data["pull_url"] and record.data["applied"][0] == data["applied"][0]
        assert record.data["usage"]["calls"] == data["usage"]["calls"]  # nothing spent again
    finally:
        await rt.close()
        await fake.close()


# ---- the serialiser ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_round_trip(name: str) -> None:
    state = RunData.from_json(old_data(name), name)
    stored = json.loads(json.dumps(state.to_json()))
    assert RunData.from_json(stored) == state
    assert stored["run"] == old_data(name)["run"]  # the engine's run keeps its shape (tests and tools read it)
    assert stored["outbox"] == old_data(name)["outbox"]


def test_every_stored_key_is_a_field() -> None:
    """The store's list of keys (what its migration accepts) and the typed record (what reading accepts) agree."""
    from bot.store.run_format import KEYS

    data = RunData.from_json(old_data("issue-waiting-approval")).to_json()
    assert set(data) == KEYS


def test_typed_values_after_reading() -> None:
    state = RunData.from_json(old_data("issue-outbox-queued"))
    assert [dump_action(a) for a in state.outbox] == old_data("issue-outbox-queued")["outbox"]
    assert state.created.comments == 3 and state.created.issues == 0
    assert state.usage.calls == 2 and isinstance(state.usage.cost_usd, float)
    ci = RunData.from_json(old_data("ci-issue")).ctx
    assert ci.ci == CiRef(**old_data("ci-issue")["ctx"]["ci"]) and ci.from_fork is False  # v1 had no from_fork
    pull = RunData.from_json(old_data("pull-waiting-approval"))
    [verdict] = pull.pr_verdicts.values()
    assert verdict.event == "APPROVE"


def test_run_state_opens_a_record_in_either_format() -> None:
    """A run restored from a backup taken before the migration is converted on read."""
    row = fixture("issue-outbox-queued")
    fields = {c: row[c] for c in COLUMNS}
    old = RunState.open(RunRecord(**{**fields, "data": json.loads(row["data"])}))
    new = RunState.open(RunRecord(**{**fields, "data": old.data.to_json()}))
    assert old.data == new.data and old.run.id == row["id"]


def test_the_context_builder_knows_forks() -> None:
    def ctx(head_repo: str | None, pull: bool = True) -> bool:
        return run_context("o/r", 1, pull=pull, head_sha="a", head_repo=head_repo, default_branch=None, title="t",
                           body="").from_fork
    assert ctx("o/r") is False and ctx("fork/r") is True and ctx(None) is True and ctx(None, pull=False) is False
    made = run_context("o/r", 1, head_sha=None, default_branch=None, title="t", body="b",
                       ci=CiRef("check_run", 1, "lint", "abc", ""))
    assert made.branch == "main" and made.for_agents("h").ci == {"source": "check_run", "id": 1, "name": "lint",
                                                                 "head_sha": "abc", "summary": ""}
    assert made.for_agents("h").head_sha == "h" and made.for_agents(None).head_sha is None


# ---- what cannot be read is said, never dropped ----------------------------------------------------

def _changed(change: Any, version: int | None = None) -> dict[str, Any]:
    data = old_data("pull-waiting-approval")
    if version:
        data = RunData.from_json(data).to_json()
    change(data)
    return data


GARBAGE = {
    "unknown key": (lambda d: d.update(surprise=1), "surprise"),
    "context key": (lambda d: d["ctx"].update(colour="red"), "colour"),
    "usage type": (lambda d: d["usage"].update(calls="many"), "calls"),
    "action": (lambda d: d["outbox"].append({"type": "Explode"}), "Explode"),
    "action field": (lambda d: d["outbox"].append({"type": "PostStep", "step": "x", "iteration": 1, "n": 2}), "n"),
    "verdict": (lambda d: d["pr_verdicts"].update(abc={"sha": "abc"}), "event"),
    "engine run": (lambda d: d["run"].update(colour=1), "colour"),
    "no context": (lambda d: d.pop("ctx"), "ctx"),
    "newer": (lambda d: d.update(version=VERSION + 1), "version"),
    "links": (lambda d: d.update(links=["a"]), "links"),
    # v1: the conversion checks the types of what it knows; v2: the loader does.
    "number as text": (lambda d: d["ctx"].update(number="20"), "ctx.number"),
    "pull request flag": (lambda d: d["ctx"].update(is_pull_request="yes"), "ctx.is_pull_request"),
    "ci field": (lambda d: d["ctx"].update(ci={"source": "check_run", "id": "7", "name": "lint", "head_sha": "a",
                                               "summary": ""}), "ctx.ci.id"),
    "applied item": (lambda d: d.update(applied=[1]), "applied"),
    "counter type": (lambda d: d.update(replies="2"), "replies"),
    # Unknown keys inside usage and created are refused like any other, never dropped.
    "usage key": (lambda d: d["usage"].update(colour=1), "colour"),
    "created key": (lambda d: d.update(created={"comments": 1, "colour": 1}), "colour"),
}


@pytest.mark.parametrize("version", [None, VERSION])
@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_unreadable_stored_data_is_a_clear_error(case: str, version: int | None) -> None:
    change, named = GARBAGE[case]
    with pytest.raises(StoredRunError, match=named):
        RunData.from_json(_changed(change, version), "r-1")


PAYLOAD = "Fix login; token ghp_0123456789abcdefghijABCDEFGHIJ012345 leaked"
# A stored value where another type belongs: the error names the field and the types, never the value (a title,
# a body, a model's output could be anything, a credential too).
MISPLACED = {
    "title": lambda d: d["ctx"].update(title=[PAYLOAD]),
    "number": lambda d: d["ctx"].update(number=PAYLOAD),
    "body": lambda d: d["ctx"].update(body={"text": PAYLOAD}),
    "ci": lambda d: d["ctx"].update(ci={"source": "s", "id": 1, "name": [PAYLOAD], "head_sha": "a", "summary": ""}),
    "status": lambda d: d.update(status_body=[PAYLOAD]),
    "links": lambda d: d.update(links={"s": [PAYLOAD]}),
    "usage": lambda d: d["usage"].update(calls=PAYLOAD),
    "applied": lambda d: d.update(applied=[{"d": PAYLOAD}]),
    "dropped": lambda d: d.update(dropped=PAYLOAD),
    "decision": lambda d: d.update(decision=[PAYLOAD]),
    "version": lambda d: d.update(version=PAYLOAD),
    "outbox": lambda d: d["outbox"].append({"type": "PostStep", "step": [PAYLOAD], "iteration": 1}),
    "outbox item": lambda d: d["outbox"].append([PAYLOAD]),
    "verdict": lambda d: d["pr_verdicts"].update(abc={"sha": "abc", "event": "APPROVE", "conclusion": "success",
                                                      "title": "t", "body": [PAYLOAD]}),
}


@pytest.mark.parametrize("version", [None, VERSION])
@pytest.mark.parametrize("case", sorted(MISPLACED))
def test_an_error_never_quotes_a_stored_value(case: str, version: int | None) -> None:
    with pytest.raises(StoredRunError) as caught:
        RunData.from_json(_changed(MISPLACED[case], version), "r-3")
    said = str(caught.value)
    assert said.startswith("run r-3: ") and caught.value.run_id == "r-3"
    assert not any(word in said for word in ("ghp_", "login", "leaked")), said


def test_a_current_record_without_its_outbox_is_a_clear_error() -> None:
    data = RunData.from_json(old_data("issue-outbox-queued")).to_json()
    for key in ("outbox", "run"):
        with pytest.raises(StoredRunError, match=f"r-4: stored data has no '{key}'"):
            RunData.from_json({k: v for k, v in data.items() if k != key}, "r-4")


def test_a_union_of_several_types_is_the_codes_mistake() -> None:
    """The loader reads ``X | None``; a field that could be one of several types would be read as the first
    that fits, silently: it is refused until it has a reader of its own."""
    from bot.run import state

    @dataclasses.dataclass
    class Either:
        value: int | str

    with pytest.raises(TypeError, match="several types"):
        state._record(Either, {"value": 1}, "r-5", "")


def test_raw_fields_are_read_from_a_run_that_does_not_load() -> None:
    """A push compares heads and ``/retry`` reads what was applied without loading the whole run."""
    from bot.run.state import stored_applied, stored_head, unreadable

    row = fixture("pull-waiting-approval")
    data = {**json.loads(row["data"]), "version": VERSION + 1}
    record = RunRecord(**{**{c: row[c] for c in COLUMNS}, "data": data})
    assert isinstance(unreadable(record), StoredRunError)
    assert stored_head(record) == data["run"]["head_sha"] and stored_applied(record) == tuple(data["applied"])
    odd = dataclasses.replace(record, data={"run": [], "applied": "x"})
    assert stored_head(odd) is None and stored_applied(odd) == ()
    assert unreadable(dataclasses.replace(record, data=json.loads(row["data"]))) is None


def test_not_an_object_is_a_clear_error() -> None:
    with pytest.raises(StoredRunError, match="r-2: stored data is list"):
        upgrade([], "r-2")


async def test_the_migration_leaves_an_unreadable_run_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'odd.sqlite3'}"
    good = fixture("ci-issue")
    odd = {**fixture("issue-waiting-approval"), "id": "odd-run", "thread": f"{REPO}#99"}
    odd["data"] = json.dumps({**json.loads(odd["data"]), "surprise": {"kept": True}})
    await sqlite_before_migration(url, [good, odd], monkeypatch)
    store = SQLiteStore(url)
    with caplog.at_level(logging.WARNING, logger="bot.store.run_format"):
        await store.open()
    try:
        assert "odd-run" in caplog.text and "surprise" in caplog.text
        kept = await store.load_run("odd-run")
        assert kept is not None and kept.data == json.loads(odd["data"])  # untouched, nothing lost
        with pytest.raises(StoredRunError, match="odd-run.*surprise"):
            RunState.open(kept)
        assert (await store.load_run(good["id"])).data["version"] == VERSION  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_the_migration_leaves_a_wrongly_typed_run_and_counts_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'typed.sqlite3'}"
    good = fixture("ci-issue")
    odd = []
    for n, change in enumerate([lambda d: d["ctx"].update(number="20"), lambda d: d.update(replies=None)]):
        row = {**fixture("issue-waiting-approval"), "id": f"odd-{n}", "thread": f"{REPO}#{90 + n}"}
        data = json.loads(row["data"])
        change(data)
        odd.append({**row, "data": json.dumps(data)})
    await sqlite_before_migration(url, [good, *odd], monkeypatch)
    store = SQLiteStore(url)
    with caplog.at_level(logging.WARNING):
        await store.open()
    try:
        for row in odd:  # left as they were, in format version 1
            kept = await store.load_run(row["id"])
            assert kept is not None and kept.data == json.loads(row["data"]) and "version" not in kept.data
        assert (await store.load_run(good["id"])).data["version"] == VERSION  # type: ignore[union-attr]
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("odd-0" in w and "ctx.number" in w for w in warned)
        assert any("odd-1" in w and "replies" in w for w in warned)
        [summary] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert "runs.data: 2 row(s) left unconverted" in summary and "odd-0, odd-1" in summary
        with pytest.raises(StoredRunError, match="odd-0: stored ctx.number is str"):
            RunState.open(await store.load_run("odd-0"))  # type: ignore[arg-type]
    finally:
        await store.close()


def test_the_migration_names_the_first_rows_left(caplog: pytest.LogCaptureFixture) -> None:
    def refuse(key: str, text: str) -> str | None:
        raise ValueError(f"{key} does not convert")

    tally = migrations.RowPass(migrations.RowMigration(table="runs", key="id", column="data", convert=refuse))
    for n in range(25):
        assert tally.convert(f"r{n:02}", "{}") is None
    with caplog.at_level(logging.ERROR):
        tally.finish()
    [summary] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "25 row(s) left unconverted" in summary and "r19 and 5 more" in summary and "r20" not in summary


def test_upgrade_column_is_idempotent() -> None:
    text = fixture("ci-issue")["data"]
    once = upgrade_column("r", text)
    assert once is not None and upgrade_column("r", once) is None
    assert upgrade(copy.deepcopy(json.loads(once))) == json.loads(once)


# ---- PostgreSQL -------------------------------------------------------------------------------

@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    from tests.test_postgres_store import fresh_schema

    async with fresh_schema() as url:
        yield url


async def test_the_migration_on_postgres(pg_url: str, monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    import psycopg

    from bot.store.postgres import PostgresStore

    with monkeypatch.context() as m:
        m.setattr("bot.store.postgres.MIGRATIONS", migrations.MIGRATIONS[:BEFORE])
        store = PostgresStore(pg_url)
        await store.open()
        await store.close()
    odd = {**fixture("ci-issue"), "id": "odd-pg", "thread": f"{REPO}#98"}
    odd["data"] = json.dumps({**json.loads(odd["data"]), "replies": "2"})
    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        for row in [*(fixture(name) for name in NAMES), odd]:
            await conn.execute(insert_sql("%s"), tuple(row[c] for c in COLUMNS) + (1.0, 1.0))
    store = PostgresStore(pg_url)
    with caplog.at_level(logging.WARNING):
        await store.open()
    try:
        assert await store.schema_version() == len(migrations.MIGRATIONS)
        for name in NAMES:
            record = await store.load_run(fixture(name)["id"])
            assert record is not None and record.data["version"] == VERSION
            assert RunData.from_json(record.data) == RunData.from_json(old_data(name))
        assert (await store.load_run("odd-pg")).data == json.loads(odd["data"])  # type: ignore[union-attr]
        [summary] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert "1 row(s) left unconverted" in summary and "odd-pg" in summary
    finally:
        await store.close()


async def test_a_row_that_is_not_json_is_a_stored_run_error(tmp_path: Path) -> None:
    """Not JSON is as unreadable as a wrong field: StoredRunError (final, never retried), naming the run only."""
    path = tmp_path / "garbled.sqlite3"
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    try:
        row = {**fixture("issue-waiting-approval"), "id": "garbled", "data": '{"run": ghp_secret'}
        with sqlite3.connect(path) as db:
            db.execute(f"INSERT INTO runs ({', '.join(COLUMNS)}, created_at, updated_at)"
                       f" VALUES ({', '.join('?' * len(COLUMNS))}, 0, 0)", [row[c] for c in COLUMNS])
        with pytest.raises(StoredRunError, match="^run garbled: stored data is not JSON") as caught:
            await store.load_run("garbled")
        assert "ghp_" not in str(caught.value)
    finally:
        await store.close()
