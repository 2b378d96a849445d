"""Optional reads never stop a run: every answer GitHub's description allows for the config and agent files.

The sandbox answers the contents API with the shapes GitHub really sends (a directory where a file was
expected, a symbolic link, a submodule, a file over 1 MB with ``encoding: "none"``, content that is not
base64 or not UTF-8, nulls), and the bot goes on, says what it could not read, and never loosens: an
unreadable config keeps the repository's last good one, or, with none, puts the bot in dry-run.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from bot.core import config
from tests.test_workflows_e2e import REPO, Team, body_of, bot, fake, issue_payload, posts, send, team  # noqa: F401

CONFIG_URL = rf"/repos/{REPO}/contents/\.github/triage-lead\.yml"
GOOD = "labels: {needs-fix: backend-feature}\n"


def entry(path: str, **fields: Any) -> dict[str, Any]:
    """A contents-API answer for ``path`` with ``fields`` over a plain file's."""
    name = path.rsplit("/", 1)[-1]
    base = {"type": "file", "name": name, "path": path, "sha": "0" * 40, "size": 10, "encoding": "base64",
            "content": base64.b64encode(b"x: 1\n").decode(), "url": f"https://api.github.com/repos/{REPO}/contents/{path}",
            "git_url": None, "html_url": None, "download_url": None,
            "_links": {"self": f"https://api.github.com/repos/{REPO}/contents/{path}", "git": None, "html": None}}
    return base | fields


SHAPES: dict[str, Any] = {  # the contents API's answer: one entry, or a directory's list of them
    "a directory": [entry(".github/triage-lead.yml/a.yml")],
    "a symbolic link": entry(config.PATH, type="symlink", target="../../etc/passwd", content=None, encoding=None),
    "a submodule": entry(config.PATH, type="submodule", submodule_git_url="https://example.com/x.git",
                         content=None, encoding=None),
    "bad base64": entry(config.PATH, content="ZHJ5X3J1bjogdHJ1ZQ="),
    "not UTF-8": entry(config.PATH, content=base64.b64encode(b"dry_run: \xff\xfe\n").decode()),
    "null content, no blob": entry(config.PATH, content=None, encoding=None, sha=None, size=None),
    "an unknown encoding": entry(config.PATH, encoding="utf-16", content="eA=="),
    "too large": entry(config.PATH, size=5 * 1024 * 1024, encoding="none", content=""),
}
SAID = {"a directory": "directory", "a symbolic link": "symbolic link", "a submodule": "submodule",
        "bad base64": "not valid base64", "not UTF-8": "not UTF-8", "null content, no blob": "no blob",
        "an unknown encoding": "encoding", "too large": "larger than"}


def config_issue(sandbox: Any) -> dict[str, Any]:
    issues = [w for w in sandbox.writes if w.kind == "issue"]
    assert len(issues) == 1, [i.data["title"] for i in issues]
    return issues[0].data


@pytest.mark.parametrize("shape", sorted(SHAPES))
async def test_an_odd_config_answer_with_no_good_config_before_means_dry_run(
        shape: str, bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_file(REPO, config.PATH, GOOD)  # on "GitHub" a config exists; its answer is what is odd
    sandbox.fail("GET", CONFIG_URL, 200, body=SHAPES[shape], times=-1)
    await send(bot, sandbox, "issues", issue_payload(50, ["api"]))
    assert posts(sandbox, 50) == ["status"]  # dry-run: seen on the thread, nothing else done
    assert "backend-feature" in body_of(sandbox, 50, "status")
    issue = config_issue(sandbox)
    assert SAID[shape] in issue["body"] and "dry-run" in issue["body"], issue["body"]
    await send(bot, sandbox, "issues", issue_payload(51, ["api"]))
    assert len([w for w in sandbox.writes if w.kind == "issue"]) == 1  # said once


async def test_an_unreadable_config_after_a_good_one_keeps_the_good_one(bot: Any, sandbox: Any, team: Team) -> None:
    rt, _ = bot
    sandbox.set_file(REPO, config.PATH, GOOD)
    await send(bot, sandbox, "issues", issue_payload(52, ["needs-fix"]))  # a label only the config maps
    assert "backend-feature" in body_of(sandbox, 52, "status") and "step:triage:1" in posts(sandbox, 52)
    rt.deps.views._cache.clear()  # five minutes later
    sandbox.fail("GET", CONFIG_URL, 200, body=SHAPES["bad base64"], times=-1)
    await send(bot, sandbox, "issues", issue_payload(53, ["needs-fix"]))
    assert "backend-feature" in body_of(sandbox, 53, "status") and "step:triage:1" in posts(sandbox, 53)
    issue = config_issue(sandbox)
    assert "not valid base64" in issue["body"] and "last configuration" in issue["body"]


async def test_an_invalid_config_after_a_good_one_keeps_the_good_one(bot: Any, sandbox: Any, team: Team) -> None:
    rt, _ = bot
    sandbox.set_file(REPO, config.PATH, "dry_run: true\n")
    await send(bot, sandbox, "issues", issue_payload(54, ["api"]))
    rt.deps.views._cache.clear()
    sandbox.set_file(REPO, config.PATH, "dry_run: true\ncolour: blue\n")  # a typo must not lift dry_run
    await send(bot, sandbox, "issues", issue_payload(55, ["api"]))
    assert posts(sandbox, 55) == ["status"]
    assert "colour" in config_issue(sandbox)["body"]


async def test_a_config_over_one_megabyte_is_read_from_its_blob(bot: Any, sandbox: Any, team: Team) -> None:
    text = GOOD + "# padding\n" * 120_000  # about 1.2 MB: the contents API sends no content for it
    sandbox.set_file(REPO, config.PATH, text)
    blob_sha = _blob_sha(sandbox, config.PATH)
    sandbox.fail("GET", CONFIG_URL, 200, times=-1,
                 body=entry(config.PATH, encoding="none", content="", size=len(text), sha=blob_sha))
    await send(bot, sandbox, "issues", issue_payload(56, ["needs-fix"]))
    assert "backend-feature" in body_of(sandbox, 56, "status")  # the config applied
    assert any(r.path.endswith(f"/git/blobs/{blob_sha}") for r in sandbox.requests)
    assert not [w for w in sandbox.writes if w.kind == "issue"]


async def test_a_server_error_on_the_config_is_retried_not_taken_as_no_config(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_file(REPO, config.PATH, "dry_run: true\n")
    sandbox.fail("GET", CONFIG_URL, 502, times=7)  # more than the client's own attempts: the job is retried
    await send(bot, sandbox, "issues", issue_payload(57, ["api"]))
    assert posts(sandbox, 57) == ["status"]  # dry_run was honoured, not dropped for "no config"
    assert [r.status for r in sandbox.requests if r.path.endswith("triage-lead.yml")][-1] == 200


def _blob_sha(sandbox: Any, path: str) -> str:
    repo = sandbox.repo(REPO)
    tree = sandbox.commit_tree(sandbox.resolve(repo, repo.data["default_branch"]))
    found = sandbox.lookup(tree, path)
    assert found is not None
    return str(found["sha"])


AGENTS_URL = rf"/repos/{REPO}/contents/\.claude/agents"
AGENT = "---\nname: code-reviewer\ndescription: reviews\nmodel: haiku\n---\nYou review code.\n"


@pytest.mark.parametrize(("listing", "said"), [
    (entry(".claude/agents"), "not a directory"),
    ([{"name": None, "path": None, "type": "file"}, {"type": "file"}, "junk"], None),
    ([entry(".claude/agents/x.md", type="dir")], None),
])
async def test_an_odd_agents_listing_never_stops_the_run(listing: Any, said: str | None, bot: Any, sandbox: Any,
                                                         team: Team) -> None:
    sandbox.fail("GET", AGENTS_URL, 200, body=listing, times=-1)
    await send(bot, sandbox, "issues", issue_payload(58, ["api"]))
    assert "step:triage:1" in posts(sandbox, 58)  # the shipped agents did the work
    issues = [w.data for w in sandbox.writes if w.kind == "issue"]
    if said is None:
        assert issues == []
    else:
        assert len(issues) == 1 and said in issues[0]["body"] and "part of its set-up" in issues[0]["title"]


@pytest.mark.parametrize("shape", ["bad base64", "not UTF-8", "a symbolic link"])
async def test_an_unreadable_agent_file_is_skipped_and_named(shape: str, bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_file(REPO, ".claude/agents/code-reviewer.md", AGENT)
    sandbox.set_file(REPO, ".claude/agents/broken.md", AGENT.replace("code-reviewer", "broken"))
    sandbox.fail("GET", rf"/repos/{REPO}/contents/\.claude/agents/broken\.md", 200, times=-1,
                 body=SHAPES[shape] | {"path": ".claude/agents/broken.md", "name": "broken.md"})
    await send(bot, sandbox, "issues", issue_payload(59, ["api"]))
    assert "step:triage:1" in posts(sandbox, 59)
    issue = config_issue(sandbox)
    assert ".claude/agents/broken.md" in issue["body"] and SAID[shape] in issue["body"]
    assert "code-reviewer.md" not in issue["body"]  # the readable one was used


async def test_an_agents_folder_of_many_files_is_read_up_to_the_cap(bot: Any, sandbox: Any, team: Team) -> None:
    from bot.run.repo_view import MAX_AGENT_FILES

    listing = [entry(f".claude/agents/a{i}.md") for i in range(MAX_AGENT_FILES + 5)]  # none of them readable
    sandbox.fail("GET", AGENTS_URL, 200, body=listing, times=-1)
    await send(bot, sandbox, "issues", issue_payload(63, ["api"]))
    reads = [r for r in sandbox.requests if r.path.startswith(f"/repos/{REPO}/contents/.claude/agents/")]
    assert len(reads) == MAX_AGENT_FILES  # unreadable ones count: a huge folder costs a bounded number of reads
    assert "more than" in config_issue(sandbox)["body"] and "step:triage:1" in posts(sandbox, 63)


async def test_an_organisation_config_repository_the_app_cannot_see_means_no_org_config(
        bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.add_repo("Codertocat/.github")
    sandbox.fail("GET", r"/repos/Codertocat/\.github/contents/\.github/triage-lead\.yml", 403, times=-1,
                 body={"message": "Resource not accessible by integration"})
    await send(bot, sandbox, "issues", issue_payload(64, ["api"]))  # `send` asserts no job failed
    assert "step:triage:1" in posts(sandbox, 64)
