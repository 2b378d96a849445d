"""``python -m bot replay`` prints the same thread for every fixture as it did when the golden files were
recorded (before the packages were reorganised): a refactor that changes what the bot posts fails here.

Only what differs from run to run is normalised: run ids (uuid4) and the sandbox's commit SHAs (they hash
a timestamp). To re-record after an intended change: ``python -m tests.test_replay_golden``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT

GOLDEN = Path(__file__).parent / "golden" / "replay"
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
SHA = re.compile(r"\b[0-9a-f]{10}(?:[0-9a-f]{30})?\b")


def normalised(text: str) -> str:
    return SHA.sub("<sha>", UUID.sub("<run>", text))


def replayed(fixture: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "bot", "replay", str(fixture.relative_to(ROOT))], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return normalised(done.stdout)


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_replay_prints_the_recorded_thread(fixture: Path) -> None:
    golden = GOLDEN / f"{fixture.stem}.md"
    assert golden.exists(), f"no golden file for {fixture.name}; record one with python -m tests.test_replay_golden"
    assert replayed(fixture) == golden.read_text()


def test_the_normaliser_keeps_what_is_not_an_id() -> None:
    text = "run 0e49e233-3207-4326-acb2-66d8c81bf83e at 1ae623c698; exit code 1; deadbeef"
    assert normalised(text) == "run <run> at <sha>; exit code 1; deadbeef"


if __name__ == "__main__":
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for path in sorted(FIXTURES.glob("*.json")):
        (GOLDEN / f"{path.stem}.md").write_text(replayed(path))
        print("recorded", path.stem)
