"""The verbs that read the operator's settings and open the store (``jobs``, ``runs show``, ``serve``), through one
helper (bot/cli/common.py): settings that cannot be read, or a store that cannot be reached, are one line on stderr
and exit status 2, never a traceback, and never the credentials of the database's URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

VERBS = [("jobs",), ("runs", "show", "r-1"), ("serve",)]


def run(env_file: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIAGE_LEAD_", "DATABASE_URL"))}
    return subprocess.run([sys.executable, "-m", "bot", "--env-file", str(env_file), *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env={**env, "DATABASE_URL": url})


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v[0])
def test_a_database_url_no_parser_reads_is_one_line_without_its_password(verb: tuple[str, ...],
                                                                         tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("")
    done = run(tmp_path / ".env", "postgresql://bot:hunter2@[db.internal/triage", *verb)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "hunter2" not in done.stderr
    assert done.stderr.startswith("triage-lead: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("verb", VERBS[:2], ids=lambda v: v[0])
def test_a_store_that_cannot_be_reached_is_one_line(verb: tuple[str, ...], tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("")
    done = run(tmp_path / ".env", "postgresql://bot:hunter2@127.0.0.1:1/triage", *verb)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("triage-lead: could not read the ") and "hunter2" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
