"""The sandbox GitHub against GitHub's own REST description (npm ``@octokit/openapi``).

The ``sandbox`` fixture already refuses (400) and reports every request that the description does not
allow, in every test. Here: the index and the checker themselves, the sandbox's refusal, and the other
direction — the sandbox's 2xx answers on every endpoint the bot uses have the description's shape, so
code that passes against the sandbox reads fields that real GitHub sends.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.web import AbstractRoute

from bot.github.auth import app_jwt
from bot.sandbox.github import SandboxGitHub
from tests.conftest import APP_ID, INSTALLATION, load_fixture, load_github_openapi

REPO = "Codertocat/Hello-World"
R = f"/repos/{REPO}"


@pytest.fixture
def api(github_openapi: Any) -> Any:
    if github_openapi is None:
        pytest.skip(load_github_openapi()[1])
    return github_openapi


# ---- the index -------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, template", [
    ("GET", f"{R}/issues/comments/5", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("GET", f"{R}/issues/5/comments", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("GET", f"{R}/issues/comments", "/repos/{owner}/{repo}/issues/comments"),
    ("GET", f"{R}/git/ref/heads/feature/deep/name", "/repos/{owner}/{repo}/git/ref/{ref}"),
    ("PATCH", f"{R}/git/refs/heads/triage-lead/fix-1", "/repos/{owner}/{repo}/git/refs/{ref}"),
    ("GET", f"{R}/contents/.claude/agents/a.md", "/repos/{owner}/{repo}/contents/{path}"),
    ("GET", f"{R}/contents/", "/repos/{owner}/{repo}/contents/{path}"),
    ("GET", f"{R}/commits/abc123/check-runs", "/repos/{owner}/{repo}/commits/{ref}/check-runs"),
    ("GET", f"{R}/commits/feature/x", "/repos/{owner}/{repo}/commits/{ref}"),
    ("GET", f"{R}/branches/feature/x/protection", "/repos/{owner}/{repo}/branches/{branch}/protection"),
    ("DELETE", f"{R}/issues/3/labels/area%2Fci", "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}"),
    ("POST", "/app/installations/7/access_tokens", "/app/installations/{installation_id}/access_tokens"),
])
def test_paths_match_their_templates(api: Any, method: str, path: str, template: str) -> None:
    match = api.match(method, path)
    assert match is not None and match.operation.template == template


def test_the_whole_description_is_indexed(api: Any) -> None:
    assert len(api) > 1000  # ~1,200 operations in 2025
    assert api.match("GET", f"{R}/issues/3/labels/area/ci") is None  # {name} is one segment: encode the slash
    assert api.match("GET", f"{R}/git/ref/heads/a/b").params == {"owner": "Codertocat", "repo": "Hello-World",
                                                                  "ref": "heads/a/b"}


@pytest.mark.parametrize("method, path, query, body, problem", [
    ("POST", f"{R}/issues/1/comments", {}, {"bdy": "hi"}, "'body' is a required property"),
    ("POST", f"{R}/issues/1/comments", {}, {"body": 5}, "5 is not of type 'string'"),
    ("POST", f"{R}/issues/1/comments", {}, {"body": "x", "bodyy": "y"}, "'bodyy' was unexpected"),
    ("POST", f"{R}/issues/1/comments", {}, None, "a JSON body is required"),
    ("POST", f"{R}/issues/x/comments", {}, {"body": "x"}, "issue_number must be an integer, got 'x'"),
    ("GET", f"{R}/issues/1/comments", {"perpage": "100"}, None, "'perpage' is not one this operation takes"),
    ("GET", f"{R}/issues/1/comments", {"per_page": "many"}, None, "per_page must be an integer"),
    ("GET", "/search/issues", {}, None, "query parameter 'q' is required"),
    ("POST", f"{R}/check-runs", {}, {"name": "n", "head_sha": "s", "status": "done"}, "'done' is not one of"),
    ("POST", f"{R}/check-runs", {}, {"name": "n", "head_sha": "s", "output": {"title": "t"}},
     "'summary' is a required property"),
    ("POST", f"{R}/pulls/1/reviews", {}, {"event": "APPROVED"}, "'APPROVED' is not one of"),
    ("PUT", f"{R}/issues/1/comments", {}, None, "no such operation in GitHub's REST description (that path takes"),
    ("GET", f"{R}/issues/1", {}, {"title": "a body on a GET"}, "sends a body, but the operation takes none"),
])
def test_requests_that_github_would_refuse_are_named(api: Any, method: str, path: str, query: dict,
                                                     body: Any, problem: str) -> None:
    problems = api.check_request(method, path, query, body)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize("method, path, query, body", [
    ("POST", f"{R}/issues/1/comments", {}, {"body": "hi"}),
    ("GET", f"{R}/issues/1/comments", {"per_page": "100", "page": "2"}, None),
    ("POST", f"{R}/issues/1/labels", {}, {"labels": ["needs-decision"]}),
    ("POST", f"{R}/git/trees", {}, {"base_tree": "abc", "tree": [  # sha: null deletes: OpenAPI 3.0 nullable
        {"path": "gone.py", "mode": "100644", "type": "blob", "sha": None},
        {"path": "new.py", "mode": "100644", "type": "blob", "content": "x = 1\n"}]}),
    ("POST", f"{R}/check-runs", {}, {"name": "triage-lead / code-review", "head_sha": "abc", "status": "completed",
                                     "conclusion": "failure", "output": {"title": "t", "summary": "s"}}),
    ("PATCH", f"{R}/git/refs/heads/triage-lead/fix-1", {}, {"sha": "abc", "force": True}),
    ("GET", "/search/issues", {"q": "repo:a/b is:issue label:bug"}, None),
    ("POST", "/app/installations/7/access_tokens", {}, None),
])
def test_requests_the_bot_makes_conform(api: Any, method: str, path: str, query: dict, body: Any) -> None:
    assert api.check_request(method, path, query, body) == []


def test_response_checks_see_the_top_level(api: Any) -> None:
    comment = {"id": 1, "node_id": "x", "url": "u", "html_url": "h", "issue_url": "i", "user": None,
               "created_at": "t", "updated_at": "t", "author_association": "OWNER", "body": "b"}
    path = f"{R}/issues/comments/1"
    assert api.check_response("GET", path, 200, comment) == []
    missing = api.check_response("GET", path, 200, {k: v for k, v in comment.items() if k != "html_url"})
    assert any("'html_url' is a required property" in p for p in missing), missing
    wrong = api.check_response("GET", path, 200, comment | {"id": "1"})
    assert any("'1' is not of type 'integer'" in p for p in wrong), wrong
    assert api.check_response("GET", path, 404, {"message": "Not Found"}) == []  # only 2xx answers are checked


# ---- the sandbox refuses what GitHub's description does not allow ------------------------------

async def test_the_sandbox_answers_400_and_records_the_mismatch(api: Any, app_keys: tuple[str, str]) -> None:
    gh = SandboxGitHub(app_id=APP_ID, app_public_key_pem=app_keys[1], validator=api)
    await gh.start()
    try:
        gh.seed_from_payload(load_fixture("issues.opened.json"))
        token = gh.mint_token(INSTALLATION)
        headers = {"Authorization": f"token {token}", "Accept": "application/vnd.github+json"}
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.post(f"{gh.url}{R}/issues/1/comments", json={"text": "hi"}) as resp:
                assert resp.status == 400
                message = (await resp.json())["message"]
            async with session.post(f"{gh.url}{R}/issues/1/comments", json={"body": "hi"}) as ok:
                assert ok.status == 201
            async with session.get(f"{gh.url}/_sandbox/logs/{REPO}/1") as internal:  # exempt, merely absent
                assert internal.status == 404
    finally:
        await gh.close()
    assert "does not conform to GitHub's REST description" in message and "'body' is a required property" in message
    assert len(gh.conformance_errors) == 2 and all("issues/create-comment" in e for e in gh.conformance_errors)
    assert gh.validated == 2 and [w.kind for w in gh.writes] == ["comment"]


def canonical(route: AbstractRoute) -> str:
    """The route's path template (every route the app adds belongs to a resource)."""
    assert route.resource is not None, route
    return route.resource.canonical


def test_every_sandbox_route_is_a_github_operation(api: Any) -> None:
    # Routes GitHub serves but does not describe, each for a reason:
    extra = {("GET", "/repos/{owner}/{repo}/git/refs/{ref}"),  # the older spelling of git/ref/{ref}
             ("GET", "/repos/{owner}/{repo}/contents"),  # the root directory, as contents/ is
             ("GET", "/_sandbox/logs/{owner}/{repo}/{job_id}"),  # the sandbox's own log download
             ("GET", "/_sandbox/artifacts/{owner}/{repo}/{artifact_id}")}  # and artifact download
    routes = {(r.method, canonical(r)) for r in SandboxGitHub().build_app().router.routes() if r.method != "HEAD"}
    sample = {name: "1" if name.endswith(("_id", "_number")) else "x"
              for name in ("owner", "repo", "issue_number", "comment_id", "pull_number", "installation_id",
                           "check_run_id", "check_suite_id", "run_id", "job_id", "delivery_id", "code", "name",
                           "username", "ref", "path", "file_sha", "tree_sha", "commit_sha", "artifact_id", "workflow_id")} | {
                  "basehead": "a...b", "review_id": "1", "archive_format": "zip"}
    undescribed = {(m, t) for m, t in routes if api.match(m, t.format(**sample)) is None}
    assert undescribed == extra


# ---- the sandbox answers in GitHub's shapes, on every endpoint the bot uses ---------------------

class Caller:
    """Calls the sandbox over HTTP as the installation (or the App), remembering what answered."""

    def __init__(self, sandbox: SandboxGitHub, session: aiohttp.ClientSession, private_key: str) -> None:
        self.sandbox, self.session, self.private_key = sandbox, session, private_key
        self.token = sandbox.mint_token(INSTALLATION)
        self.seen: list[tuple[str, str, int, Any]] = []  # method, path, status, JSON body (None if not JSON)

    async def __call__(self, method: str, path: str, body: Any = None, *, app: bool = False,
                       anonymous: bool = False) -> Any:
        auth = {} if anonymous else {
            "Authorization": f"Bearer {app_jwt(APP_ID, self.private_key)}" if app else f"token {self.token}"}
        async with self.session.request(method, self.sandbox.url + path, json=body,
                                        headers=auth | {"Accept": "application/vnd.github+json"}) as resp:
            assert 200 <= resp.status < 300, (method, path, resp.status, await resp.text())
            data = await resp.json() if resp.content_type == "application/json" else None
            self.seen.append((method, path, resp.status, data))
            return data if data is not None else await resp.text()


async def exercise(call: Caller, sandbox: SandboxGitHub) -> None:
    """One call to each endpoint the bot uses, on realistic seeded state."""
    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    sandbox.set_permission(REPO, "maintainer", "maintain")
    sandbox.set_file(REPO, ".claude/agents/helper.md", "---\nname: helper\n---\nHelps.\n")
    sandbox.set_file(REPO, "app/main.py", "def main():\n    return 1\n")
    pr = sandbox.add_pull(REPO, title="Fix main", user="alice", head_ref="fix-main",
                          files={"app/main.py": "@@ -1,2 +1,2 @@\n def main():\n-    return 1\n+    return 2"})
    run = sandbox.add_workflow_run(REPO, name="CI", head_sha=pr["head"]["sha"], jobs=[
        {"name": "tests", "conclusion": "failure", "log": "FAILED tests/test_main.py::test_main\n"}])
    check = sandbox.add_check_run(REPO, name="lint", head_sha=pr["head"]["sha"])
    delivery = sandbox.add_hook_delivery(installation_id=INSTALLATION)
    sandbox.add_manifest_code("conversion-code")

    await call("GET", "/app", app=True)
    await call("POST", f"/app/installations/{INSTALLATION}/access_tokens", app=True)
    await call("GET", "/app/hook/deliveries?per_page=10", app=True)
    await call("POST", f"/app/hook/deliveries/{delivery['id']}/attempts", app=True)
    await call("POST", "/app-manifests/conversion-code/conversions", anonymous=True)
    await call("GET", R)
    await call("GET", f"{R}/issues/1")
    comment = await call("POST", f"{R}/issues/1/comments", {"body": "status"})
    await call("GET", f"{R}/issues/1/comments?per_page=100")
    await call("GET", f"{R}/issues/comments/{comment['id']}")
    await call("PATCH", f"{R}/issues/comments/{comment['id']}", {"body": "status, later"})
    await call("POST", f"{R}/issues/comments/{comment['id']}/reactions", {"content": "eyes"})
    await call("POST", f"{R}/issues/1/labels", {"labels": ["needs-decision"]})
    await call("DELETE", f"{R}/issues/1/labels/needs-decision")
    await call("POST", f"{R}/issues", {"title": "Tech debt: tidy", "body": "later", "labels": ["tech-debt"]})
    await call("GET", f"{R}/collaborators/maintainer/permission")
    await call("GET", f"/search/issues?q=repo:{REPO}+is:issue+label:tech-debt")
    await call("GET", f"{R}/pulls/{pr['number']}")
    await call("GET", f"{R}/pulls/{pr['number']}/files?per_page=100")
    await call("POST", f"{R}/pulls/{pr['number']}/reviews", {"event": "COMMENT", "body": "looks fine"})
    created = await call("POST", f"{R}/check-runs", {"name": "triage-lead / code-review", "head_sha": pr["head"]["sha"],
                                                     "status": "completed", "conclusion": "success",
                                                     "output": {"title": "Approved", "summary": "ok"}})
    await call("GET", f"{R}/check-runs/{check['id']}")
    await call("GET", f"{R}/check-runs/{created['id']}")
    await call("GET", f"{R}/commits/{pr['head']['sha']}/check-runs")
    await call("GET", f"{R}/actions/runs/{run['id']}/jobs")
    jobs = sandbox.repo(REPO).jobs
    await call("GET", f"{R}/actions/jobs/{next(iter(jobs))}/logs")  # 302 to the log text, followed
    await call("GET", f"{R}/commits?per_page=5")
    await call("GET", f"{R}/contents/.claude/agents?ref=main")
    await call("GET", f"{R}/contents/.claude/agents/helper.md?ref=main")
    head = await call("GET", f"{R}/git/ref/heads/main")
    base = await call("GET", f"{R}/git/commits/{head['object']['sha']}")
    blob = await call("POST", f"{R}/git/blobs", {"content": "def fix():\n    return 1\n", "encoding": "utf-8"})
    tree = await call("POST", f"{R}/git/trees", {"base_tree": base["tree"]["sha"], "tree": [
        {"path": "app/fix.py", "mode": "100644", "type": "blob", "sha": blob["sha"]}]})
    commit = await call("POST", f"{R}/git/commits", {"message": "Fix", "tree": tree["sha"],
                                                     "parents": [head["object"]["sha"]]})
    await call("POST", f"{R}/git/refs", {"ref": "refs/heads/triage-lead/fix-1", "sha": commit["sha"]})
    await call("PATCH", f"{R}/git/refs/heads/triage-lead/fix-1", {"sha": commit["sha"], "force": True})
    await call("POST", f"{R}/pulls", {"title": "Fix", "head": "triage-lead/fix-1", "base": "main", "body": "Closes #1",
                                      "draft": True})


async def test_the_sandbox_answers_in_githubs_shapes(api: Any, sandbox: SandboxGitHub,
                                                     app_keys: tuple[str, str]) -> None:
    """Top level as the sandbox records it for every test, and here the whole document, nested objects too."""
    async with aiohttp.ClientSession() as session:
        call = Caller(sandbox, session, app_keys[0])
        await exercise(call, sandbox)
    checked = {api.match(m, p.split("?")[0]).operation.operation_id for m, p, _, _ in call.seen}
    assert len(checked) >= 35, sorted(checked)
    assert sandbox.conformance_errors == []
    assert sandbox.response_errors == [], "\n".join(dict.fromkeys(sandbox.response_errors))
    deep = [e for m, p, status, data in call.seen if data is not None
            for e in api.check_response(m, p.split("?")[0], status, data, deep=True)]
    assert deep == [], "\n".join(deep)
