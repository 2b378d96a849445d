"""A force-push back to an earlier head (issue 17, point 2), through the webhook against the sandbox: the findings
and the thread comment take the state that head's code gives them, whether the head was judged before or not,
whether a later head renamed a file, and whatever the checks could not read at it. GitHub's compare is three-dot
(from the merge base); the sandbox's is too, so a return to an ancestor lists nothing one way."""
from __future__ import annotations

import copy
from typing import Any

from bot.run.pull_review import judged_marker
from bot.sandbox.team import Team, result
from tests.test_attacks_today import BODY, moved
from tests.test_attacks_verdicts import KEY, send_pull, synchronize
from tests.test_converging_reviews import RUN_A, verdict_comments
from tests.test_verdicts import pull_with, push
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401

TESTS = {"tests/test_a.py": "def test_a():\n    assert 1\n"}
WARN = "run() passes any command string from its caller to eval"


def force_push(sandbox: Any, number: int, head: str) -> dict[str, Any]:
    """``git push --force`` of ``head`` to the pull request's branch; the synchronize GitHub sends."""
    branch = sandbox.pull(REPO, number)["head"]["ref"]
    sandbox.repo(REPO).refs[f"refs/heads/{branch}"] = head
    return synchronize(sandbox, number, by="Codertocat")


def seed_without_patch(sandbox: Any, number: int, path: str) -> None:
    """GitHub lists the pull request's files as they are now, but leaves ``path``'s patch out (too large to show)."""
    issue = sandbox.get_issue(sandbox.repo(REPO), number, pull=True)
    issue["__pull"]["files"] = None
    files = copy.deepcopy(sandbox.pull_files(sandbox.repo(REPO), issue))
    next(f for f in files if f["filename"] == path).pop("patch")
    issue["__pull"]["files"] = files


def real_files(sandbox: Any, number: int) -> None:
    sandbox.get_issue(sandbox.repo(REPO), number, pull=True)["__pull"]["files"] = None


async def test_back_to_an_ancestor_never_judged_fixes_the_model_finding_only_the_dropped_commit_had(
        bot: Any, sandbox: Any, team: Team) -> None:
    """A0 judged, A1 pushed but never judged (its job saw a newer head), A2 judged with a model warning on the code
    A2 added; reset to A1. Compare A2...A1 lists nothing (A1 is A2's ancestor): only the way back shows app/a.py."""
    team.script["PULL REQUEST REVIEW"] = [
        result("review"), result("review", warnings=[{"text": WARN, "path": "app/a.py", "line": 4}]), result("review")]
    p = pull_with(sandbox, 481, {"app/a.py": "x = 1\n", **TESTS})
    await send_pull(bot, sandbox, p)
    a1 = push(sandbox, p, "app/a.py", "x = 1\ny = 2\n")["pull_request"]["head"]["sha"]
    await send_pull(bot, sandbox, push(sandbox, p, "app/a.py", "x = 1\ny = 2\n\ndef run(cmd):\n    eval(cmd)\n"))
    [thread] = verdict_comments(sandbox, 481)
    assert "**Open** (2)" in thread["body"], thread["body"]
    await send_pull(bot, sandbox, force_push(sandbox, 481, a1))
    [thread] = verdict_comments(sandbox, 481)
    assert (await bot[0].deps.store.load_findings(REPO, 481)).sha == a1
    assert "**Open**" not in thread["body"] and "**Fixed** (2)" in thread["body"], thread["body"]


async def test_back_before_a_rename_shows_the_credential_once_open_at_its_old_path(
        bot: Any, sandbox: Any, team: Team) -> None:
    """A: a key in app/keys.py; B renames it to lib/creds.py; back to A: one credential, open where A has it, not
    open at app/keys.py and gone at lib/creds.py."""
    p = pull_with(sandbox, 482, {"app/keys.py": KEY + "\n" + BODY, **TESTS})
    a_head = p["pull_request"]["head"]["sha"]
    await send_pull(bot, sandbox, p)
    await send(bot, sandbox, "pull_request", moved(sandbox, p, "app/keys.py", "lib/creds.py"))
    [thread] = verdict_comments(sandbox, 482)
    assert "**Open** (1)" in thread["body"] and "lib/creds.py" in thread["body"], thread["body"]
    await send_pull(bot, sandbox, force_push(sandbox, 482, a_head))
    [thread] = verdict_comments(sandbox, 482)
    assert "**Open** (1)" in thread["body"] and "app/keys.py:1" in thread["body"], thread["body"]
    assert "Gone" not in thread["body"] and "Fixed" not in thread["body"] and "lib/creds.py" not in thread["body"], (
        thread["body"])


async def test_back_to_a_head_whose_file_was_not_read_leaves_that_files_finding_open(
        bot: Any, sandbox: Any, team: Team) -> None:
    """A: app/gen.py's diff too large to show (checked for credentials only: not read); B: os.system in it, open;
    back to A: the checks did not read app/gen.py at A, so nobody knows it is fixed: open, not fixed."""
    p = pull_with(sandbox, 483, {"app/gen.py": "X = 1\n", **TESTS})
    a_head = p["pull_request"]["head"]["sha"]
    seed_without_patch(sandbox, 483, "app/gen.py")
    await send_pull(bot, sandbox, p)
    real_files(sandbox, 483)
    await send_pull(bot, sandbox, push(sandbox, p, "app/gen.py", RUN_A))
    [thread] = verdict_comments(sandbox, 483)
    assert "**Open** (1)" in thread["body"] and "os.system" in thread["body"], thread["body"]
    sync = force_push(sandbox, 483, a_head)
    seed_without_patch(sandbox, 483, "app/gen.py")
    await send_pull(bot, sandbox, sync)
    [thread] = verdict_comments(sandbox, 483)
    assert (await bot[0].deps.store.load_findings(REPO, 483)).sha == a_head
    assert "**Open** (1)" in thread["body"] and "Fixed" not in thread["body"], thread["body"]


async def test_back_to_a_head_judged_before_reads_were_recorded_fixes_nothing(
        bot: Any, sandbox: Any, team: Team) -> None:
    """As above, but A's verdict was stored before the bot recorded what its checks read (no ``read_known``, no
    ``unread``): which files were read at A is unknown, so the os.system finding B found stays open, not fixed."""
    p = pull_with(sandbox, 484, {"app/gen.py": "X = 1\n", **TESTS})
    a_head = p["pull_request"]["head"]["sha"]
    seed_without_patch(sandbox, 484, "app/gen.py")
    await send_pull(bot, sandbox, p)
    real_files(sandbox, 484)
    await send_pull(bot, sandbox, push(sandbox, p, "app/gen.py", RUN_A))
    store = bot[0].deps.store
    record = await store.load_run((await store.find_posted(judged_marker(REPO, 484))).url)
    old = record.data["pr_verdicts"][a_head]
    assert old.pop("read_known") is True and old.pop("unread") == ["app/gen.py"], old
    await store.save_run(record)
    sync = force_push(sandbox, 484, a_head)
    seed_without_patch(sandbox, 484, "app/gen.py")
    await send_pull(bot, sandbox, sync)
    [thread] = verdict_comments(sandbox, 484)
    assert (await store.load_findings(REPO, 484)).sha == a_head
    assert "**Open** (1)" in thread["body"] and "Fixed" not in thread["body"], thread["body"]
