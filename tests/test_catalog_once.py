"""The shipped catalog is read from disk once per process: offline triage, which classifies every event without a
model, used to read and validate every workflow and agent file again each time (~100 ms an event). An explicit
root is still read afresh, so `validate --root` and tests editing a copy see their edits."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from bot.agents import offline
from bot.agents.tools import RepoReader
from bot.core import catalog
from bot.core.catalog import DEFAULT_ROOT, load_catalog
from tests.test_agents_common import REPO, context, make_request


@pytest.fixture
def shipped_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every read of a file under the shipped workflows/ folder, from a cold start (the cache emptied)."""
    reads: list[Path] = []
    real = Path.read_text

    def counting(self: Path, *args: Any, **kwargs: Any) -> str:
        if self.resolve().is_relative_to(DEFAULT_ROOT.resolve()):
            reads.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting)
    catalog._shipped.cache_clear()
    return reads


async def test_two_offline_triages_read_the_catalog_files_once(shipped_reads: list[Path]) -> None:
    request = make_request("devops-pipeline", "triage", context(1, title="Deploy pipeline broken"))
    reader = RepoReader(None, REPO)  # type: ignore[arg-type]  # on an issue triage asks GitHub nothing

    first = await offline.triage(request, reader, ["ci/cd"])
    read_first = len(shipped_reads)
    second = await offline.triage(request, reader, ["ci/cd"])

    assert first.result is not None
    assert first.result == second.result and first.result["workflow"] == "devops-pipeline"
    assert read_first > 10  # every agent and workflow file, once
    assert len(shipped_reads) == read_first  # the second triage read nothing


def test_the_shipped_catalog_is_shared_and_an_explicit_root_is_read_afresh(tmp_path: Path) -> None:
    assert load_catalog() is load_catalog()
    copy = tmp_path / "workflows"
    shutil.copytree(DEFAULT_ROOT, copy)
    before = load_catalog(copy).workflows["backend-feature"].title
    path = copy / "backend-feature.yml"
    path.write_text(path.read_text().replace(f"title: {before}", "title: Edited"))
    assert load_catalog(copy).workflows["backend-feature"].title == "Edited"
    assert load_catalog().workflows["backend-feature"].title == before


def test_the_shared_catalogs_triage_data_cannot_be_written_into() -> None:
    """One repository's code path writing into the shared label map or a keyword list would reach every other
    repository's runs in the process: the shipped triage data is read-only all the way down."""
    shared = load_catalog()
    with pytest.raises(TypeError):
        shared.triage["labels"]["zzz"] = "security-fix"  # type: ignore[index]
    spec = next(iter(shared.triage["keywords"].values()))
    with pytest.raises(TypeError):
        spec["text"]["zzz"] = 9  # type: ignore[index]
    with pytest.raises(TypeError):
        shared.triage["priority"][0] = "zzz"  # type: ignore[index]
    assert "zzz" not in load_catalog().triage["labels"]


def test_a_copy_of_the_shared_triage_data_is_a_plain_one_its_holder_may_change() -> None:
    """A run holding a piece of triage data is deep-copied at every engine step: the copy must be writable and
    must not reach the shared catalog."""
    import copy

    mine = copy.deepcopy(dict(load_catalog().triage))
    mine["labels"]["zzz"] = "security-fix"
    mine["priority"].append("zzz")
    assert "zzz" not in load_catalog().triage["labels"] and "zzz" not in load_catalog().triage["priority"]
