"""The command line as a person types it: validate, triage, replay."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import FIXTURES, ROOT


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_validate_accepts_the_shipped_files() -> None:
    done = run("validate")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid" in done.stdout


def test_validate_names_each_problem(tmp_path: Path) -> None:
    root = tmp_path / "workflows"
    shutil.copytree(ROOT / "workflows", root)
    wf = root / "security-fix.yml"
    wf.write_text(wf.read_text().replace("on_reject: implementation", "on_reject: implemention"))
    agent = root / "agents" / "search-specialist.md"
    agent.write_text(agent.read_text().replace("model: haiku", "model: gpt"))
    done = run("validate", "--root", str(root))
    assert done.returncode == 1
    assert "security-fix.yml" in done.stdout and "implemention" in done.stdout
    assert "search-specialist.md" in done.stdout and "gpt" in done.stdout


def test_triage_prints_the_decision_as_json() -> None:
    done = run("triage", str(FIXTURES / "issues.opened.json"))
    assert done.returncode == 0, done.stderr
    decision = json.loads(done.stdout)
    assert decision["workflow"] == "error-investigation" and decision["labels_used"] == ["bug"]
    assert set(decision) >= {"workflow", "reason", "confidence", "labels_used"}


def test_triage_of_an_unplaceable_pull_request_is_null() -> None:
    decision = json.loads(run("triage", str(FIXTURES / "pull_request.opened.json")).stdout)
    assert decision["workflow"] is None and decision["confidence"] < 0.5


def test_replay_prints_what_the_bot_posted() -> None:
    done = run("replay", str(FIXTURES / "check_run.completed.json"))
    assert done.returncode == 0, done.stderr
    assert "# Replay of" in done.stdout and "Webhook answered **202**" in done.stdout
    assert "## 1. comment on Codertocat/Hello-World#2" in done.stdout  # the run's status comment first
    assert "## 2. check_run on Codertocat/Hello-World" in done.stdout  # then the pull request judged, at its head
    assert "## 3. review on Codertocat/Hello-World#2" in done.stdout
    assert "error-investigation" in done.stdout and "Traceback" not in done.stderr
