"""The sandbox GitHub lists a moved file as GitHub does (``status: renamed`` with ``previous_filename``, a patch only
when the content changed), in a pull request's files and in a compare, checked against GitHub's description."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import load_github_openapi
from tests.test_sandbox_github import REPO, app_gh, gh, keys, sandbox, session  # noqa: F401

BODY = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(12))


def described(method: str, path: str, body: Any) -> None:
    """``body`` conforms to GitHub's description of ``method path``'s answer, all the way down."""
    spec, why = load_github_openapi()
    if spec is None:
        pytest.skip(why)
    assert spec.check_response(method, path, 200, body, deep=True) == []


async def moved_pull(sandbox: Any, content: str | None) -> tuple[str, str]:
    """A pull request whose branch moves app/old.py to lib/new.py (with ``content`` if given); (base, head) shas."""
    base = sandbox.set_file(REPO, "app/old.py", BODY)
    sandbox.set_file(REPO, "README.md", "# widgets\n")
    sandbox.set_file(REPO, "app/keep.py", "x = 1\n", ref="move")
    head = sandbox.move_file(REPO, "app/old.py", "lib/new.py", content, ref="move")
    return base, head


async def files_of(gh: Any, sandbox: Any) -> tuple[dict[str, dict], dict[str, dict]]:
    pr = await gh.post(f"/repos/{REPO}/pulls", data={"title": "Move", "head": "move", "base": "main"})
    listed = [f async for f in gh.getiter(f"/repos/{REPO}/pulls/{pr['number']}/files")]
    described("GET", f"/repos/{REPO}/pulls/{pr['number']}/files", listed)
    compared = await gh.getitem(f"/repos/{REPO}/compare/main...move")
    described("GET", f"/repos/{REPO}/compare/main...move", compared)
    return {f["filename"]: f for f in listed}, {f["filename"]: f for f in compared["files"]}


async def test_a_file_moved_unchanged_is_listed_renamed_without_a_patch(sandbox: Any, gh: Any) -> None:
    _, head = await moved_pull(sandbox, None)
    commit = await gh.getitem(f"/repos/{REPO}/commits/{head}")  # the move's own commit lists it the same way
    described("GET", f"/repos/{REPO}/commits/{head}", commit)
    assert [(f["filename"], f["status"], f.get("previous_filename")) for f in commit["files"]] == [
        ("lib/new.py", "renamed", "app/old.py")]
    for files in await files_of(gh, sandbox):
        assert set(files) == {"lib/new.py", "app/keep.py"}, files  # no "removed" app/old.py, no "added" lib/new.py
        new = files["lib/new.py"]
        assert (new["status"], new["previous_filename"], new["changes"]) == ("renamed", "app/old.py", 0)
        assert "patch" not in new and files["app/keep.py"]["status"] == "added"


async def test_a_file_moved_and_edited_is_renamed_with_the_edit_as_its_patch(sandbox: Any, gh: Any) -> None:
    await moved_pull(sandbox, BODY.replace("return x + 3", "return x - 3"))
    for files in await files_of(gh, sandbox):
        new = files["lib/new.py"]
        assert (new["status"], new["previous_filename"], new["additions"], new["deletions"]) == (
            "renamed", "app/old.py", 1, 1)
        assert "-    return x + 3\n+    return x - 3" in new["patch"] and "app/old.py" not in files


async def test_a_file_moved_and_rewritten_is_a_removal_and_an_addition(sandbox: Any, gh: Any) -> None:
    """Less than half kept: git (and GitHub) no longer call it a rename."""
    await moved_pull(sandbox, "print('something else entirely')\n")
    for files in await files_of(gh, sandbox):
        assert (files["lib/new.py"]["status"], files["app/old.py"]["status"]) == ("added", "removed")
        assert "previous_filename" not in files["lib/new.py"]
