"""GitHub's compare read by one rule (bot/run/compare.py) for the pull request's review and a run's "what changed",
against the sandbox GitHub through gidgethub: a compare lists at most 300 files, so 300 means unknown; the review
asks the other way only when the head is not simply ahead; a 5xx reads as unknown; a branch name no branch can have
is never put in a request path."""
from __future__ import annotations

from typing import Any

from bot.run import runs
from bot.run.compare import MAX_FILES, changed_between, compare
from tests.test_sandbox_github import REPO, gh, keys, sandbox, session  # noqa: F401


def compares(sandbox: Any) -> int:
    return sum(1 for r in sandbox.requests if r.path.startswith(f"/repos/{REPO}/compare/"))


async def test_a_forward_push_is_compared_once_and_a_return_to_an_ancestor_both_ways(gh: Any, sandbox: Any) -> None:
    a = sandbox.set_file(REPO, "app/a.py", "x = 1\n")
    b = sandbox.set_file(REPO, "app/b.py", "y = 2\n")
    before = compares(sandbox)
    assert (await changed_between(gh, REPO, a, b))[0] == {"app/b.py"}
    assert compares(sandbox) == before + 1
    assert (await changed_between(gh, REPO, b, a))[0] == {"app/b.py"}  # a...b lists nothing back: b...a does
    assert compares(sandbox) == before + 3


async def test_a_compare_listing_githubs_cap_of_files_is_unknown(gh: Any, sandbox: Any) -> None:
    base = sandbox.set_file(REPO, "README.md", "# widgets\n")
    for i in range(MAX_FILES):
        head = sandbox.set_file(REPO, f"gen/f{i}.py", f"X = {i}\n")
    one = sandbox.set_file(REPO, "gen/last.py", "Y = 1\n")
    assert (await compare(gh, REPO, base, head)).files is None  # type: ignore[union-attr]
    assert await runs.changed_since(gh, REPO, base, head) is None
    assert (await changed_between(gh, REPO, base, head))[0] is None  # every file maybe changed, none unchanged
    assert await runs.changed_since(gh, REPO, head, one) == ("gen/last.py",)


async def test_changed_since_reads_github_failing_as_unknown(gh: Any, sandbox: Any) -> None:
    a = sandbox.set_file(REPO, "app/a.py", "x = 1\n")
    b = sandbox.set_file(REPO, "app/a.py", "x = 2\n")
    sandbox.fail("GET", rf"/repos/{REPO}/compare/.+", 502, times=-1)
    assert await runs.changed_since(gh, REPO, a, b) is None
    sandbox.clear_faults()
    assert await runs.changed_since(gh, REPO, a, b) == ("app/a.py",)


async def test_a_branch_name_no_branch_can_have_is_never_read(gh: Any, sandbox: Any) -> None:
    head = sandbox.set_file(REPO, "app/a.py", "x = 1\n")
    before = len(sandbox.requests)
    assert await runs._branch_head(gh, REPO, "../../../user") is None
    assert len(sandbox.requests) == before
    assert await runs._branch_head(gh, REPO, "main") == head
