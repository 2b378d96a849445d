"""Provenance (issue 17, point 4): for each step, the agent, its tier and model id, hashes of its prompt and of
the team's rules, its tokens and cost, and the head it read; and the head a person approved. Recorded with the
step, shown folded in the final summary, printed by ``python -m bot runs show RUN_ID``.

The real bot through its webhook, against the sandbox GitHub and the local Messages API.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from bot.agents import prompts
from bot.agents.models import ModelMap
from bot.cli.runs import _show
from bot.core.catalog import load_catalog
from bot.sandbox.team import Team
from bot.store import StepRecord
from bot.store.base import RunRecord
from tests.test_store import store  # noqa: F401  (the store fixture, on each backend)
from tests.test_workflows_e2e import REPO, bot, comment_payload, fake, issue_payload, posts, send, team  # noqa: F401


def short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


async def test_a_steps_provenance_is_kept_and_an_old_step_reads_without_one(store: Any) -> None:  # noqa: F811
    await store.save_run(RunRecord(id="r1", thread="o/r#1", repo="o/r", number=1, installation_id=1,
                                   workflow="security-fix", state="running", data={}))
    made = {"agent": "security-specialist", "tier": "opus", "model": "claude-opus-4-6", "prompt": "a" * 12,
            "rules": "b" * 12, "head": "c" * 40}
    with_it = StepRecord(run_id="r1", step_id="assess", iteration=1, status="done", output={}, provenance=made)
    without = StepRecord(run_id="r1", step_id="fix", iteration=1, status="done", output={})
    await store.save_step(with_it)
    await store.save_step(without)
    assert {s.step_id: s.provenance for s in await store.steps_of("r1")} == {"assess": made, "fix": None}


async def test_the_final_summary_and_the_cli_name_who_did_each_step_on_what(
        bot: Any, sandbox: Any, team: Team, capsys: pytest.CaptureFixture[str]) -> None:
    rt, _ = bot
    sandbox.set_permission(REPO, "maintainer", "write")
    await send(bot, sandbox, "issues", issue_payload(90, ["api"], title="Add an endpoint"))
    run_id = (await rt.store.active_run(f"{REPO}#90")).id
    await send(bot, sandbox, "issue_comment", comment_payload(90, "/approve", comment_id=9090))
    assert posts(sandbox, 90)[-1] == "done"
    done = sandbox.comments(REPO, 90)[-1]["body"]
    catalog = load_catalog()
    architect = catalog.agents["backend-architect"]
    model = ModelMap(dict(rt.deps.settings.model_overrides)).model_for(architect.model)
    assert "<details><summary>Provenance</summary>" in done
    assert f"`{short(architect.prompt)}`" in done and f"`{short(prompts.TEAM + prompts.RULES)}`" in done
    assert "Approved at head" in done and "maintainer" in done
    steps = await rt.store.steps_of(run_id)
    assert steps and all(s.provenance and s.provenance["model"] and s.provenance["rules"] for s in steps)
    assert {s.provenance["model"] for s in steps if s.provenance["agent"] == "backend-architect"} == {model}
    assert f"`{model}`" in done

    assert await _show(rt.store, run_id) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"run {run_id}: backend-feature")
    assert out[1].split("\t") == ["step", "agent", "tier", "model", "prompt", "rules", "head", "tokens", "cost"]
    rows = [line.split("\t") for line in out[2:2 + len(steps)]]
    assert {r[1] for r in rows} >= {"backend-architect"} and all(r[4] and r[5] for r in rows)
    assert out[-1].startswith("approved by maintainer at head ")


async def test_the_cli_says_when_the_store_holds_no_such_run(bot: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rt, _ = bot
    assert await _show(rt.store, "no-such-run") == 1
    assert "no run 'no-such-run' in the store" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["[1, 2]", "not json", '"a string"'])
def test_a_provenance_that_is_not_an_object_reads_as_none_and_the_step_is_kept(text: str) -> None:
    row = {"run_id": "r", "step_id": "s", "iteration": 1, "status": "done", "output": None, "input_tokens": 1,
           "output_tokens": 2, "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.5, "provenance": text}
    step = StepRecord.from_row(row)
    assert step.provenance is None and step.tokens == 3


def test_a_model_id_with_a_pipe_stays_in_its_cell() -> None:
    """A repository's config names the model ids: a ``|`` would end a table cell even inside a code span."""
    from bot.core import render

    row = {"step": "triage #1", "agent": "a", "model": "x|@octocat [go](https://evil.example)|y", "prompt": "p",
           "rules": "r", "head": "c" * 40, "tokens": 3, "cost": 0.1}
    line = next(ln for ln in render.provenance_table([row], None).splitlines() if ln.startswith("| `triage"))
    assert line.replace("\\|", "").count("|") == 9  # eight cells


async def test_a_pull_requests_check_run_carries_the_runs_provenance_at_its_end(bot: Any, sandbox: Any,
                                                                               team: Team) -> None:
    """Branch protection sends people to the check run: at the run's end its text holds the same table as the
    final summary, and its verdict (conclusion, title, summary) stays as it was."""
    from tests.test_attacks_verdicts import send_pull
    from tests.test_verdicts import pull_with

    sandbox.set_permission(REPO, "maintainer", "write")
    p = pull_with(sandbox, 91, {"README.md": "words\n"})
    head = p["pull_request"]["head"]["sha"]
    await send_pull(bot, sandbox, p)
    [before] = [r for r in sandbox.repo(REPO).check_runs.values() if r["head_sha"] == head]
    verdict = (before["conclusion"], before["output"]["title"], before["output"]["summary"])
    await send(bot, sandbox, "issue_comment", comment_payload(91, "/approve", pull=True, comment_id=9191))
    assert posts(sandbox, 91)[-1] == "done"
    [after] = [r for r in sandbox.repo(REPO).check_runs.values() if r["head_sha"] == head]
    assert "<details><summary>Provenance</summary>" in (after["output"].get("text") or "")
    assert (after["conclusion"], after["output"]["title"], after["output"]["summary"]) == verdict


def test_runs_show_never_prints_a_database_urls_credentials(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A driver's message may quote the URL it could not reach: its user and password are cut out."""
    import argparse

    from bot.cli import runs

    async def unreachable(store: Any, run_id: str) -> int:
        raise OSError("could not connect to postgresql://triage:s3cr3t-pw@db.internal:5432/bot")
    monkeypatch.setattr(runs, "_show", unreachable)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///:memory:")
    code = runs.cmd_runs(argparse.Namespace(run_id="r1", log_level=None, env_file="/nonexistent/.env"))
    err = capsys.readouterr().err
    assert code != 0 and "could not connect to postgresql://db.internal:5432/bot" in err and "s3cr3t" not in err
