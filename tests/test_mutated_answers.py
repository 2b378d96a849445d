"""Mutated answers: the bot against what GitHub's REST description allows it to be sent, not only what the
sandbox happens to send.

1. The pure mutations of ``bot/sandbox/mutate.py`` on small hand-written schemas.
2. Mutated answers of real operations still validate against the description (the whole document).
3. The real bot, end to end over HTTP, for every event kind it acts on and the seven workflows, with the
   sandbox mutating its answers to reads (seeded): no job fails, a person sees something on the thread,
   nothing is posted twice. A failing case names its seed and the mutations it saw.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import pytest

from bot.core.catalog import Catalog, load_catalog
from bot.run.runtime import Runtime
from bot.sandbox.anthropic import FakeAnthropic
from bot.sandbox.mutate import CONTENT_SHAPES, Mutator, allows_null, content_shape, empty_page, inline, mutate, mutate_answer
from bot.settings import Settings
from tests.conftest import APP_ID, INSTALLATION, load_fixture, load_github_openapi
from tests.test_faults import assert_nothing_posted_twice, comment_on, deliver
from tests.test_workflows_e2e import EXPECTED, REPO, Team, fake, issue_payload, posts, pr_payload, team  # noqa: F401

# ---- 1. the pure mutations ------------------------------------------------------------------------

USER = {"type": "object", "required": ["login", "id"],
        "properties": {"login": {"type": "string"}, "id": {"type": "integer"}, "email": {"type": ["string", "null"]},
                       "name": {"type": "string"}}}
ISSUE: dict[str, Any] = {
    "type": "object", "required": ["number", "title", "user", "body"],
    "properties": {"number": {"type": "integer"}, "title": {"type": "string"},
                   "body": {"type": "string", "nullable": True},  # OpenAPI 3.0's own spelling
                   "user": {"anyOf": [{"type": "null"}, USER]},
                   "milestone": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {
                       "title": {"type": "string"}}}]},
                   "state": {"type": "string", "enum": ["open", "closed"]},
                   "labels": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
                       "name": {"type": "string"}, "color": {"type": "string"}}}},
                   "closed": {"type": "object", "additionalProperties": False,
                              "properties": {"at": {"type": "string"}}}}}
DATA: dict[str, Any] = {
    "number": 1, "title": "Crash", "body": "It broke", "state": "open", "milestone": {"title": "v1"},
    "user": {"login": "octocat", "id": 1, "email": "o@example.com", "name": "Octo"},
    "labels": [{"name": "bug", "color": "f00"}, {"name": "api", "color": "0f0"}], "closed": {"at": "now"}}


def test_optional_fields_are_dropped_at_any_depth_and_required_ones_kept() -> None:
    out, changes = mutate(ISSUE, DATA, random.Random(1), rate=1.0, kinds=["drop"])
    assert out == {"number": 1, "title": "Crash", "body": "It broke", "user": {"login": "octocat", "id": 1}}
    assert "drop .user.email" in changes and "drop .labels" in changes
    nested, _ = mutate(ISSUE, DATA | {"state": "open"}, random.Random(1), rate=1.0, kinds=["drop"])
    assert "name" not in nested["user"]  # inside a required object, behind a nullable anyOf
    items, _ = mutate(ISSUE["properties"]["labels"], DATA["labels"], random.Random(1), rate=1.0, kinds=["drop"])
    assert items == [{"name": "bug"}, {"name": "api"}]  # inside list items too
    assert DATA["user"]["email"] == "o@example.com"  # the input is never changed


def test_every_spelling_of_nullable_is_nulled_and_nothing_else() -> None:
    out, changes = mutate(ISSUE, DATA, random.Random(2), rate=1.0, kinds=["null"])
    assert out["body"] is None and out["user"] is None and out["milestone"] is None
    assert out["title"] == "Crash" and out["state"] == "open" and out["number"] == 1
    assert sorted(changes) == ["null .body", "null .milestone", "null .user"]
    user, _ = mutate(USER, DATA["user"], random.Random(2), rate=1.0, kinds=["null"])
    assert user["email"] is None and user["login"] == "octocat"  # a type list with "null"
    assert allows_null({"type": "string", "nullable": True}) and allows_null({"type": ["integer", "null"]})
    assert allows_null({"oneOf": [{"type": "null"}, {"type": "object"}]})
    assert not allows_null({"type": "string", "enum": ["a", "b"], "nullable": False})
    assert not allows_null({"type": ["string", "null"], "enum": ["a"]})  # the enum does not list null


def test_unknown_fields_are_added_only_where_the_schema_leaves_objects_open() -> None:
    out, changes = mutate(ISSUE, DATA, random.Random(3), rate=1.0, kinds=["extra"])
    added = [c for c in changes if c.startswith("extra ")]
    assert any(c.startswith("extra .user.") for c in added) and any(c.startswith("extra .labels[0].") for c in added)
    assert len(out) == len(DATA) + 1 and out["closed"] == {"at": "now"}  # additionalProperties: false
    assert not any(c.startswith("extra .closed.") for c in added)
    assert set(out) - set(DATA) and not (set(out) - set(DATA)) & set(ISSUE["properties"])


def test_required_fields_survive_every_seed() -> None:
    for seed in range(200):
        out, _ = mutate(ISSUE, DATA, random.Random(seed), rate=0.9)
        assert {"number", "title", "user", "body"} <= set(out)
        assert isinstance(out["title"], str) and isinstance(out["number"], int)  # not nullable: never null
        assert all("name" in label for label in out.get("labels", []))


def test_the_same_seed_mutates_the_same_way() -> None:
    runs = [mutate(ISSUE, DATA, random.Random(seed), rate=0.5) for seed in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    answers = [mutate_answer({}, [DATA], random.Random(11)) for _ in range(2)]
    assert answers[0] == answers[1]


def test_list_answers_can_come_as_an_empty_page() -> None:
    assert empty_page([DATA, DATA]) == ([], ["empty page"])
    wrapped = {"total_count": 2, "check_runs": [{"id": 1}, {"id": 2}]}
    assert empty_page(wrapped) == ({"total_count": 2, "check_runs": []}, ["empty page .check_runs"])
    assert empty_page(DATA) is None and wrapped["check_runs"]  # not a list answer; the input unchanged
    seen = [mutate_answer({"type": "array", "items": ISSUE}, [DATA], random.Random(s))[0] for s in range(30)]
    assert [] in seen and any(x for x in seen)  # sometimes, not always


FILE: dict[str, Any] = {
    "type": "file", "encoding": "base64", "size": 12, "name": "triage-lead.yml", "path": ".github/triage-lead.yml",
    "content": base64.b64encode(b"dry_run: no\n").decode(), "sha": "a" * 40,
    "url": "https://api.github.com/repos/o/r/contents/.github/triage-lead.yml?ref=main",
    "git_url": "https://api.github.com/repos/o/r/git/blobs/" + "a" * 40,
    "html_url": "https://github.com/o/r/blob/main/.github/triage-lead.yml",
    "download_url": "https://raw.githubusercontent.com/o/r/main/.github/triage-lead.yml",
    "_links": {"self": "s", "git": "g", "html": "h"}}


def _decodes(content: str) -> bytes | None:
    try:
        return base64.b64decode(content)
    except (binascii.Error, ValueError):
        return None


def test_the_contents_api_edge_shapes() -> None:
    rng = random.Random(5)
    shapes = {kind: content_shape(FILE, kind, rng)[0] for kind in CONTENT_SHAPES}
    assert isinstance(shapes["directory"], list)
    assert all(e["path"].startswith(FILE["path"] + "/") for e in shapes["directory"])
    assert shapes["symlink"]["type"] == "symlink" and shapes["symlink"]["target"] and "content" not in shapes["symlink"]
    assert shapes["submodule"]["type"] == "submodule" and shapes["submodule"]["submodule_git_url"].endswith(".git")
    assert "content" not in shapes["submodule"]
    large = shapes["too-large"]
    assert large["encoding"] == "none" and large["content"] == "" and large["size"] > 1024 * 1024
    assert _decodes(shapes["bad-base64"]["content"]) is None
    raw = _decodes(shapes["not-utf8"]["content"])
    assert raw is not None and shapes["not-utf8"]["size"] == len(raw)
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert FILE["type"] == "file" and "content" in FILE  # the input unchanged


def test_a_contents_answer_takes_every_shape_over_seeds() -> None:
    kinds = {mutate_answer({}, FILE, random.Random(s), contents=True)[1][0].split()[-1]
             for s in range(200) if mutate_answer({}, FILE, random.Random(s), contents=True)[1]}
    assert set(CONTENT_SHAPES) <= kinds
    assert mutate_answer({}, FILE, random.Random(0), contents=False)[1] == []  # elsewhere, a file is just JSON


def test_refs_are_inlined_and_a_cycle_is_cut() -> None:
    defs = {"#/user": {"type": "object", "properties": {"login": {"type": "string"}, "boss": {"$ref": "#/user"}}}}
    schema = inline({"type": "array", "items": {"$ref": "#/user"}}, defs.__getitem__)
    assert schema["items"]["properties"]["login"] == {"type": "string"}
    assert schema["items"]["properties"]["boss"] == {}  # a ref met inside itself: left alone


# ---- the sandbox's hook -------------------------------------------------------------------------------


@pytest.fixture
def api() -> Any:
    found, why = load_github_openapi()
    if found is None:
        pytest.skip(why)
    return found


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any, dict[str, str]]:
    async with session.get(url) as resp:
        return resp.status, await resp.json(content_type=None), dict(resp.headers)


def test_the_mutator_is_seeded_and_per_request(api: Any) -> None:
    """The same seed, the same requests: the same answers; probability 0 never mutates, 1 always does."""
    data = {"login": "octocat", "id": 1, "node_id": "x", "avatar_url": "a", "gravatar_id": "g", "url": "u",
            "html_url": "h", "followers_url": "f", "following_url": "f", "gists_url": "g", "starred_url": "s",
            "subscriptions_url": "s", "organizations_url": "o", "repos_url": "r", "events_url": "e",
            "received_events_url": "r", "type": "User", "site_admin": False}
    path = f"/repos/{REPO}/collaborators/octocat/permission"
    perm = {"permission": "write", "role_name": "write", "user": data}
    one, two = Mutator(api, 3, 1.0), Mutator(api, 3, 1.0)
    answers = [[m.answer("GET", path, 200, perm) for _ in range(3)] for m in (one, two)]
    assert answers[0] == answers[1] and all(a is not None for a in answers[0])
    assert one.records == two.records and all(r.startswith(f"GET {path}: ") for r in one.records)
    never = Mutator(api, 3, 0.0)
    assert all(never.answer("GET", path, 200, perm) is None for _ in range(20)) and never.records == []


async def test_reads_are_mutated_and_tokens_writes_and_sandbox_routes_never(sandbox: Any, app_keys: tuple[str, str],
                                                                           api: Any) -> None:
    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    run = sandbox.add_workflow_run(REPO, jobs=[{"name": "tests", "conclusion": "failure", "log": "boom"}])
    job = next(j for j in sandbox.repo(REPO).jobs.values() if j["run_id"] == run["id"])
    sandbox.mutator = Mutator(api, 1, 1.0)
    app_jwt = jwt.encode({"iat": int(time.time()) - 30, "exp": int(time.time()) + 300, "iss": str(APP_ID)},
                         app_keys[0], algorithm="RS256")
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{sandbox.url}/app/installations/{INSTALLATION}/access_tokens",
                          headers={"Authorization": f"Bearer {app_jwt}"}) as resp:
            token = (await resp.json())
        assert resp.status == 201 and set(token) >= {"token", "expires_at", "permissions", "repository_selection"}
        s.headers["Authorization"] = f"token {token['token']}"
        async with s.post(f"{sandbox.url}/repos/{REPO}/issues/1/comments", json={"body": "hi"}) as resp:
            assert resp.status == 201
        async with s.get(f"{sandbox.url}/repos/{REPO}/actions/jobs/{job['id']}/logs") as resp:  # via /_sandbox/
            assert await resp.text() == "boom"
        for _ in range(5):
            await _get(s, f"{sandbox.url}/repos/{REPO}/issues/1")
    assert sandbox.mutations and all(m.startswith(f"GET /repos/{REPO}/issues/1: ") for m in sandbox.mutations)
    assert sandbox.response_errors == []


# ---- 2. mutated answers of real operations still conform ------------------------------------------

READS = ["", "/issues/1", "/issues/1/comments", "/pulls/2", "/pulls/2/files", "/issues?state=all",
         "/contents/.github/triage-lead.yml", "/contents/.claude/agents", "/check-runs/{check_run}",
         "/commits/{sha}/check-runs", "/actions/runs/{run}/jobs", "/collaborators/octocat/permission"]


async def test_mutated_answers_of_real_operations_validate_against_the_description(sandbox: Any, api: Any) -> None:
    """Every mutated answer, checked as a whole (``check_response(deep=True)``: the sandbox's own check in
    ``_middleware`` looks only at the top level), with each kind of mutation seen at least once."""
    for name in ("issues.opened.json", "pull_request.opened.json", "issue_comment.created.json",
                 "check_run.completed.json"):
        sandbox.seed_from_payload(load_fixture(name))
    seed_repo_files(sandbox)
    run = sandbox.add_workflow_run(REPO, jobs=[{"name": "tests", "conclusion": "failure", "log": "boom"}])
    check = load_fixture("check_run.completed.json")["check_run"]
    fill = {"check_run": check["id"], "sha": check["head_sha"], "run": run["id"]}
    token = sandbox.mint_token(INSTALLATION)
    problems: list[str] = []
    seen = ""
    async with aiohttp.ClientSession(headers={"Authorization": f"token {token}"}) as s:
        for seed in range(25):
            sandbox.mutator = Mutator(api, seed, 1.0)
            for read in READS:
                path = f"/repos/{REPO}{read.format(**fill)}"
                status, body, _ = await _get(s, sandbox.url + path)
                assert status == 200, (path, body)
                problems += [f"seed {seed}: {p}" for p in api.check_response("GET", path, status, body, deep=True)]
            seen += " ".join(sandbox.mutations)
    assert problems == [], problems[:10]
    assert sandbox.response_errors == [], sandbox.response_errors[:10]
    assert all(f" {kind} " in seen or f": {kind}" in seen for kind in ("drop", "null", "extra", "empty page"))
    assert all(f"contents {kind}" in seen for kind in CONTENT_SHAPES), seen


# ---- 3. the real bot under mutated answers --------------------------------------------------------

CONFIG = "max_review_iterations: 3\nescalation_mentions: ['@Codertocat']\n"
AGENT = "---\nname: code-reviewer\ndescription: house reviewer\n---\nHOUSE RULES: reject any TODO.\n"
PROBABILITY = 0.5  # of each read being mutated
WORKFLOWS = sorted(EXPECTED)
ISSUE_NUMBER, PR_NUMBER = 10, 20


def seed_repo_files(sandbox: Any) -> None:
    """A valid configuration and one repository agent on the default branch: reads of them answer 200, so
    their answers are mutated too (a 404 is never mutated)."""
    sandbox.set_file(REPO, ".github/triage-lead.yml", CONFIG)
    sandbox.set_file(REPO, ".claude/agents/code-reviewer.md", AGENT)


@functools.cache
def shipped_catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
async def bot(settings: Settings, fake: FakeAnthropic, team: Team, sandbox: Any,
              aiohttp_client: Any) -> AsyncIterator[Any]:
    """The e2e ``bot`` of tests/test_workflows_e2e.py, with the shipped catalog parsed once: parsing its YAML is
    most of a runtime's start-up, and this file starts hundreds (the catalog is immutable; a repository's
    agents make a new one)."""
    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    s = settings.with_overrides(anthropic_api_key="sk-ant-test-key", anthropic_base_url=fake.url)
    rt = await Runtime(s, github_max_wait=5.0, github_backoff=0.01, catalog=shipped_catalog(),
                       agent_options={"retry_base": 0.01, "max_retry_wait": 1.0}).start()
    yield rt, await aiohttp_client(rt.web_app())
    await rt.close()


@dataclass
class Ctx:
    bot: Any
    sandbox: Any
    api: Any
    seed: int
    label: str

    def mutate_from_now(self) -> int:
        """Mutate every read from here on; the index of the first write made under mutation."""
        self.sandbox.mutator = Mutator(self.api, self.seed, PROBABILITY)
        return len(self.sandbox.writes)

    async def deliver(self, event: str, payload: dict[str, Any]) -> None:
        await deliver(self.bot, self.sandbox, event, payload)


Scenario = Callable[[Ctx], Awaitable[tuple[int | None, int]]]  # -> (thread number or None, first mutated write)


def _labeled(payload: dict[str, Any], key: str, label: str, action: str) -> dict[str, Any]:
    payload["action"] = action
    if action == "labeled":
        payload["label"] = {"id": 1, "name": label, "color": "ededed", "default": False, "description": None,
                            "node_id": "LA_1", "url": f"https://api.github.com/repos/{REPO}/labels/{label}"}
    payload[key]["state"] = "open"
    return payload


def issue_event(action: str) -> Scenario:
    async def run(c: Ctx) -> tuple[int | None, int]:
        payload = _labeled(issue_payload(ISSUE_NUMBER, [c.label]), "issue", c.label, action)
        mark = c.mutate_from_now()
        await c.deliver("issues", payload)
        return ISSUE_NUMBER, mark
    return run


async def approve(c: Ctx) -> tuple[int | None, int]:
    """A run waiting for approval (reached unmutated), then a maintainer's `/approve` read through mutation."""
    c.sandbox.set_permission(REPO, "maintainer", "write")
    await c.deliver("issues", issue_payload(ISSUE_NUMBER, [c.label]))
    assert posts(c.sandbox, ISSUE_NUMBER)[-1] == "approval", "the unmutated setup did not reach approval"
    mark = c.mutate_from_now()
    await c.deliver("issue_comment", comment_on(c.sandbox, ISSUE_NUMBER, "Looks right.\n/approve", comment_id=7001))
    return ISSUE_NUMBER, mark


def pull_event(action: str) -> Scenario:
    async def run(c: Ctx) -> tuple[int | None, int]:
        payload = _labeled(pr_payload(c.sandbox, PR_NUMBER, [c.label]), "pull_request", c.label, action)
        mark = c.mutate_from_now()
        await c.deliver("pull_request", payload)
        return PR_NUMBER, mark
    return run


async def synchronize(c: Ctx) -> tuple[int | None, int]:
    """A pull request's run waiting for approval (unmutated), then a push to it read through mutation."""
    opened = pr_payload(c.sandbox, PR_NUMBER, [c.label])
    await c.deliver("pull_request", opened)
    assert posts(c.sandbox, PR_NUMBER)[-1] == "approval", "the unmutated setup did not reach approval"
    sync = copy.deepcopy(opened) | {"action": "synchronize"}
    sync["pull_request"]["head"]["sha"] = c.sandbox.set_file(REPO, "README.md", "changed\n",
                                                             ref=opened["pull_request"]["head"]["ref"])
    c.mutate_from_now()
    await c.deliver("pull_request", sync)
    return PR_NUMBER, 0  # a push to a run with no review step rightly adds nothing: the thread is what counts


def _check_run(on_pull: bool) -> dict[str, Any]:
    payload = load_fixture("check_run.completed.json")  # failed on pull request #2
    if not on_pull:
        payload["check_run"]["pull_requests"] = []
        payload["check_run"]["check_suite"]["head_branch"] = payload["repository"]["default_branch"]
    payload["check_run"]["output"] = {"title": "1 failed",
                                      "summary": "FAILED tests/test_api.py::test_create - AssertionError: 500 != 201"}
    return payload


async def check_run(c: Ctx) -> tuple[int | None, int]:
    on_pull = c.seed % 2 == 0  # on a pull request, or on the default branch (the bot opens an issue)
    mark = c.mutate_from_now()
    await c.deliver("check_run", _check_run(on_pull))
    return (2 if on_pull else None), mark


async def check_suite(c: Ctx) -> tuple[int | None, int]:
    base = _check_run(c.seed % 2 == 0)
    cr = base.pop("check_run")
    base |= {"action": "completed", "check_suite": cr["check_suite"] | {
        "status": "completed", "conclusion": "failure", "app": cr["app"], "pull_requests": cr["pull_requests"]}}
    mark = c.mutate_from_now()
    await c.deliver("check_suite", base)
    return (2 if cr["pull_requests"] else None), mark


async def workflow_run(c: Ctx) -> tuple[int | None, int]:
    log = "##[group]Run pytest\nFAILED tests/test_api.py::test_create - AssertionError: 500 != 201\n##[error]exit 1"
    sha = "a" * 40
    wr = c.sandbox.add_workflow_run(REPO, name="CI", head_sha=sha, head_branch="master",
                                    jobs=[{"name": "tests", "conclusion": "failure", "log": log}])
    payload = load_fixture("check_run.completed.json")
    payload.pop("check_run")
    payload |= {"action": "completed", "workflow_run": {
        "id": wr["id"], "name": "CI", "head_sha": sha, "head_branch": "master", "status": "completed",
        "conclusion": "failure", "pull_requests": [], "html_url": f"https://github.com/{REPO}/actions/runs/{wr['id']}"}}
    mark = c.mutate_from_now()
    await c.deliver("workflow_run", payload)
    return None, mark


THREAD_EVENTS: dict[str, Scenario] = {
    "issues.opened": issue_event("opened"), "issues.labeled": issue_event("labeled"),
    "issues.reopened": issue_event("reopened"), "issue_comment.approve": approve,
    "pull_request.opened": pull_event("opened"), "pull_request.synchronize": synchronize,
    "pull_request.labeled": pull_event("labeled"), "pull_request.ready_for_review": pull_event("ready_for_review"),
}
CI_EVENTS: dict[str, Scenario] = {"check_run.failure": check_run, "check_suite.failure": check_suite,
                                  "workflow_run.failure": workflow_run}
# More by hand: TRIAGE_LEAD_MUTATION_ROUNDS=20 runs twenty times as many (CI runs one round, 204 runs).
ROUNDS = int(os.environ.get("TRIAGE_LEAD_MUTATION_ROUNDS", "1"))
SEEDS_PER_WORKFLOW = 3 * ROUNDS  # thread events: 8 kinds x 7 workflows x this
CI_SEEDS = 12 * ROUNDS  # CI events (error-investigation): 3 kinds x this
# Every case its own seed: the mutator's choices are keyed by seed and request, and the requests of two
# workflows' runs are mostly the same, so a seed shared across workflows would mutate them alike.
CASES = [(kind, wf, seed) for seed, (kind, wf) in enumerate(
    [(kind, wf) for kind in THREAD_EVENTS for wf in WORKFLOWS for _ in range(SEEDS_PER_WORKFLOW)]
    + [(kind, "error-investigation") for kind in CI_EVENTS for _ in range(CI_SEEDS)])]


def _seen(sandbox: Any, number: int | None, mark: int) -> list[str]:
    """What the bot made visible to people since ``mark``: comments on the thread, issues it opened."""
    return [w.kind for w in sandbox.writes[mark:]
            if w.kind == "issue" or (w.kind == "comment" and number is not None and w.number == number)]


def _report(seed: int, sandbox: Any, caplog: Any) -> str:
    """What a failing case saw: its mutations (each distinct one once), the job runner's lines, the last traceback."""
    failures = [r.getMessage() for r in caplog.records if r.name == "bot.run.jobs" and "failed" in r.getMessage()]
    tracebacks = [caplog.handler.format(r) for r in caplog.records if r.exc_info]
    seen = list(dict.fromkeys(sandbox.mutations))
    return "\n".join([f"seed {seed}: {len(sandbox.mutations)} mutation(s), {len(seen)} distinct:", *seen[:200],
                      "job failures:", *failures, "last traceback:", *tracebacks[-1:]])


@pytest.mark.parametrize(("kind", "workflow", "seed"), CASES, ids=[f"{k}-{w}-s{s}" for k, w, s in CASES])
async def test_the_bot_under_mutated_answers(kind: str, workflow: str, seed: int, bot: Any, sandbox: Any,
                                             team: Team, api: Any, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.run.jobs")  # the job runner logs a failed attempt's traceback at DEBUG
    rt, _ = bot
    seed_repo_files(sandbox)
    ctx = Ctx(bot, sandbox, api, seed, EXPECTED[workflow][0])
    number, mark = await (THREAD_EVENTS | CI_EVENTS)[kind](ctx)
    why = _report(seed, sandbox, caplog)
    sandbox.mutator = None  # what the test itself reads below is the sandbox's truth
    states = await rt.store.job_states()
    assert "failed" not in states and set(states) <= {"done"}, f"job states {states}\n{why}"
    # A failed attempt counts too: its retry asks again and gets other mutations (they are drawn per request),
    # where GitHub would have answered the same, so the retry's success would hide the crash.
    attempts = [r.getMessage() for r in caplog.records if r.name == "bot.run.jobs" and "failed (attempt" in r.getMessage()]
    assert not attempts, f"a job attempt failed (then retried)\n{why}"
    since = [(w.kind, w.number) for w in sandbox.writes[mark:]]
    assert _seen(sandbox, number, mark), f"nothing visible on the thread after {kind}; writes: {since}\n{why}"
    assert_nothing_posted_twice(sandbox)
    assert sandbox.response_errors == [], sandbox.response_errors[:5]  # the mutations stayed within the description
