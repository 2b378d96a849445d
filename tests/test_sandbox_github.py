"""The sandbox GitHub, driven over HTTP by the real gidgethub client (no Python-level mocks)."""

from __future__ import annotations

import asyncio
import base64
import time

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gidgethub import BadRequest, GitHubBroken, InvalidField, ValidationError, apps
from gidgethub.aiohttp import GitHubAPI

from bot.sandbox.github import SandboxGitHub

APP_ID = 4242
REPO = "acme/widgets"


def _keypair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return _keypair()


@pytest.fixture(scope="module")
def other_keys() -> tuple[bytes, bytes]:
    return _keypair()


def make_sandbox(public_pem: bytes, **kw) -> SandboxGitHub:
    sb = SandboxGitHub(app_id=APP_ID, app_public_key_pem=public_pem, **kw)
    sb.add_installation(11, "acme")
    sb.add_repo(REPO, installation_id=11)
    sb.add_installation(22, "rival")
    sb.add_repo("rival/secret", installation_id=22, private=True)
    return sb


@pytest.fixture
async def sandbox(keys):
    sb = make_sandbox(keys[1])
    await sb.start()
    yield sb
    await sb.close()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


async def app_gh(sandbox: SandboxGitHub, session: aiohttp.ClientSession, private_pem: bytes,
                 installation_id: int = 11) -> GitHubAPI:
    """A gidgethub client authenticated with a fresh installation token, the way the bot does it."""
    anon = GitHubAPI(session, "triage-lead-tests", base_url=sandbox.url)
    token = await apps.get_installation_access_token(anon, installation_id=str(installation_id),
                                                     app_id=str(APP_ID), private_key=private_pem)
    return GitHubAPI(session, "triage-lead-tests", oauth_token=token["token"], base_url=sandbox.url)


@pytest.fixture
async def gh(sandbox, session, keys) -> GitHubAPI:
    return await app_gh(sandbox, session, keys[0])


async def raw(session, sandbox, method, path, token=None, **kw):
    """Plain aiohttp, for what gidgethub hides (status codes, headers)."""
    headers = {"Authorization": f"token {token}"} if token else {}
    async with session.request(method, sandbox.url + path, headers=headers, allow_redirects=False, **kw) as r:
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, r.headers, body


# ---- authentication ---------------------------------------------------------------
async def test_token_from_good_jwt(sandbox, session, keys):
    gh = await app_gh(sandbox, session, keys[0])
    assert sandbox.tokens_issued == 1
    token = gh.oauth_token
    assert token.startswith("ghs_") and len(token) == 40
    repo = await gh.getitem(f"/repos/{REPO}")
    assert (repo["full_name"], repo["default_branch"], repo["private"]) == (REPO, "main", False)
    mint, use = sandbox.requests[-2:]
    assert (mint.method, mint.status, mint.auth_kind) == ("POST", 201, "jwt")
    assert (use.status, use.auth_kind) == (200, "token")
    assert token not in repr(sandbox.requests)  # the secret is never recorded


async def test_token_response_shape(sandbox, session, keys):
    now = int(time.time())
    tok = jwt.encode({"iat": now - 30, "exp": now + 500, "iss": str(APP_ID)}, keys[0], "RS256")
    async with session.post(sandbox.url + "/app/installations/11/access_tokens",
                            headers={"Authorization": f"Bearer {tok}"}) as r:
        assert r.status == 201
        body = await r.json()
        for h in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-used",
                  "x-ratelimit-resource", "x-github-request-id"):
            assert h in r.headers
    assert body["expires_at"].endswith("Z") and body["repository_selection"] == "all"
    assert body["permissions"]["issues"] == "write"


async def test_jwt_signed_by_other_key_is_rejected(sandbox, session, other_keys):
    with pytest.raises(BadRequest) as exc:
        await app_gh(sandbox, session, other_keys[0])
    assert exc.value.status_code == 401
    assert sandbox.tokens_issued == 0 and sandbox.requests[-1].status == 401


async def test_expired_jwt_is_rejected(sandbox, session, keys):
    now = int(time.time())
    stale = jwt.encode({"iat": now - 700, "exp": now - 100, "iss": str(APP_ID)}, keys[0], algorithm="RS256")
    too_long = jwt.encode({"iat": now - 10, "exp": now + 3600, "iss": str(APP_ID)}, keys[0], algorithm="RS256")
    wrong_app = jwt.encode({"iat": now - 10, "exp": now + 500, "iss": str(APP_ID + 1)}, keys[0], algorithm="RS256")
    anon = GitHubAPI(session, "t", base_url=sandbox.url)
    for token in (stale, too_long, wrong_app):
        with pytest.raises(BadRequest) as exc:
            await anon.post("/app/installations/11/access_tokens", data=b"", jwt=token)
        assert exc.value.status_code == 401
    app = await anon.getitem("/app", jwt=apps.get_jwt(app_id=str(APP_ID), private_key=keys[0]))
    assert app["id"] == APP_ID and app["slug"] == "triage-lead"


async def test_unknown_installation_is_404(sandbox, session, keys):
    with pytest.raises(BadRequest) as exc:
        await app_gh(sandbox, session, keys[0], installation_id=999)
    assert exc.value.status_code == 404


async def test_unsigned_check_when_no_public_key(session, keys, other_keys):
    sb = SandboxGitHub(app_id=APP_ID)  # no key: the signature is not checked, the claims still are
    sb.add_installation(11, "acme")
    async with sb:
        gh = await app_gh(sb, session, other_keys[0])
        assert gh.oauth_token.startswith("ghs_")
        now = int(time.time())
        with pytest.raises(BadRequest):
            await gh.post("/app/installations/11/access_tokens", data=b"",
                          jwt=jwt.encode({"iat": now, "exp": now + 600, "iss": "7"}, keys[0], "RS256"))


async def test_no_token_expired_token_and_foreign_repo(session, keys):
    sb = make_sandbox(keys[1], token_ttl=0.2)
    async with sb:
        anon = GitHubAPI(session, "t", base_url=sb.url)
        with pytest.raises(BadRequest) as exc:
            await anon.getitem(f"/repos/{REPO}")
        assert exc.value.status_code == 401 and sb.requests[-1].auth_kind is None

        gh = await app_gh(sb, session, keys[0])
        with pytest.raises(BadRequest) as exc:
            await gh.getitem("/repos/rival/secret")  # exists, but not in installation 11: hidden
        assert exc.value.status_code == 404
        assert (await gh.getitem(f"/repos/{REPO}"))["id"]

        await asyncio.sleep(0.3)
        with pytest.raises(BadRequest) as exc:
            await gh.getitem(f"/repos/{REPO}")
        assert exc.value.status_code == 401 and str(exc.value) == "Bad credentials"


# ---- issues, comments, labels, reactions -------------------------------------------
async def test_comments_create_edit_and_paginate(sandbox, session, gh):
    sandbox.add_issue(REPO, title="Crash on start", body="boom")
    for i in range(60):
        sandbox.add_comment(REPO, 1, f"seed {i}", user="alice")
    made = await gh.post(f"/repos/{REPO}/issues/1/comments", data={"body": "Looking into it"})
    assert made["user"]["login"] == "triage-lead[bot]" and made["user"]["type"] == "Bot"
    edited = await gh.patch(f"/repos/{REPO}/issues/comments/{made['id']}", data={"body": "Fixed in #2"})
    assert edited["body"] == "Fixed in #2"

    seen = [c["body"] async for c in gh.getiter(f"/repos/{REPO}/issues/1/comments?per_page=25")]
    assert len(seen) == 61 and seen[0] == "seed 0" and seen[-1] == "Fixed in #2"
    pages = [r.query.get("page", "1") for r in sandbox.requests if r.path.endswith("/issues/1/comments")
             and r.method == "GET"]
    assert pages == ["1", "2", "3"]

    status, headers, body = await raw(session, sandbox, "GET", f"/repos/{REPO}/issues/1/comments?per_page=25&page=2",
                                      gh.oauth_token)
    base = f"{sandbox.url}/repos/{REPO}/issues/1/comments?per_page=25"
    assert headers["Link"] == (f'<{base}&page=1>; rel="prev", <{base}&page=3>; rel="next", '
                               f'<{base}&page=3>; rel="last", <{base}&page=1>; rel="first"')
    assert len(body) == 25 and body[0]["url"].startswith(sandbox.url)  # urls point back at the sandbox

    assert [(w.kind, w.number) for w in sandbox.writes] == [("comment", 1), ("comment_edit", 1)]
    assert sandbox.comments(REPO, 1)[-1]["body"] == "Fixed in #2"
    assert sandbox.issue(REPO, 1)["comments"] == 61

    with pytest.raises(InvalidField):
        await gh.post(f"/repos/{REPO}/issues/1/comments", data={})
    await gh.delete(f"/repos/{REPO}/issues/comments/{made['id']}")
    assert sandbox.writes[-1].kind == "comment_deleted" and len(sandbox.comments(REPO, 1)) == 60


async def test_issue_create_validate_and_list(sandbox, gh):
    with pytest.raises(InvalidField) as exc:
        await gh.post(f"/repos/{REPO}/issues", data={"body": "no title"})
    assert exc.value.status_code == 422 and exc.value.errors[0]["field"] == "title"
    made = await gh.post(f"/repos/{REPO}/issues", data={"title": "Flaky test", "labels": ["ci"]})
    assert made["number"] == 1 and [label["name"] for label in made["labels"]] == ["ci"]
    await gh.patch(f"/repos/{REPO}/issues/1", data={"state": "closed"})
    sandbox.add_issue(REPO, title="Other", labels=["bug"])
    open_ = [i["number"] async for i in gh.getiter(f"/repos/{REPO}/issues")]
    closed = [i["number"] async for i in gh.getiter(f"/repos/{REPO}/issues?state=closed&labels=ci")]
    assert (open_, closed) == ([2], [1])
    assert [w.kind for w in sandbox.writes] == ["issue", "issue_edit"]


async def test_labels_add_and_remove(sandbox, gh):
    sandbox.add_issue(REPO, title="t", labels=["bug"])
    labels = await gh.post(f"/repos/{REPO}/issues/1/labels", data={"labels": ["needs triage", "bug"]})
    assert [label["name"] for label in labels] == ["bug", "needs triage"]
    left = await gh.delete(f"/repos/{REPO}/issues/1/labels/needs%20triage")
    assert left is None or [label["name"] for label in left] == ["bug"]
    assert [label["name"] for label in sandbox.issue(REPO, 1)["labels"]] == ["bug"]
    with pytest.raises(BadRequest) as exc:
        await gh.delete(f"/repos/{REPO}/issues/1/labels/needs%20triage")
    assert exc.value.status_code == 404
    assert [(w.kind, w.data) for w in sandbox.writes] == [
        ("labels", {"labels": ["needs triage", "bug"]}), ("label_removed", {"name": "needs triage"})]
    names = [label["name"] async for label in gh.getiter(f"/repos/{REPO}/labels")]
    assert sorted(names) == ["bug", "needs triage"]  # adding unknown labels creates them, as on GitHub
    with pytest.raises(InvalidField):
        await gh.post(f"/repos/{REPO}/labels", data={"name": "BUG"})


async def test_reactions_created_then_existing(sandbox, session, gh):
    sandbox.add_issue(REPO, title="t")
    cid = sandbox.add_comment(REPO, 1, "please fix")["id"]
    path = f"/repos/{REPO}/issues/comments/{cid}/reactions"
    first = await raw(session, sandbox, "POST", path, gh.oauth_token, json={"content": "eyes"})
    again = await raw(session, sandbox, "POST", path, gh.oauth_token, json={"content": "eyes"})
    bad = await raw(session, sandbox, "POST", path, gh.oauth_token, json={"content": "thumbsup"})
    assert (first[0], again[0], bad[0]) == (201, 200, 422)
    assert first[2]["id"] == again[2]["id"] and first[2]["user"]["login"] == "triage-lead[bot]"
    assert sandbox.comments(REPO, 1)[0]["reactions"]["eyes"] == 1
    assert [w.kind for w in sandbox.writes] == ["reaction"]
    await gh.post(f"/repos/{REPO}/issues/1/reactions", data={"content": "rocket"})
    assert sandbox.issue(REPO, 1)["reactions"]["rocket"] == 1


@pytest.mark.parametrize("role,permission", [("admin", "admin"), ("maintain", "write"), ("write", "write"),
                                             ("triage", "read"), ("read", "read"), ("none", "none")])
async def test_collaborator_permission(sandbox, gh, role, permission):
    sandbox.set_permission(REPO, "dev", role)
    got = await gh.getitem(f"/repos/{REPO}/collaborators/dev/permission")
    assert (got["permission"], got["role_name"], got["user"]["login"]) == (permission, role, "dev")


async def test_permission_defaults(sandbox, session, keys):
    sandbox.add_repo("acme/private", private=True)  # owned by acme, so installation 11 sees it
    gh = await app_gh(sandbox, session, keys[0])
    public = await gh.getitem(f"/repos/{REPO}/collaborators/stranger/permission")
    private = await gh.getitem("/repos/acme/private/collaborators/stranger/permission")
    owner = await gh.getitem(f"/repos/{REPO}/collaborators/acme/permission")
    assert [(p["permission"], p["role_name"]) for p in (public, private, owner)] == [
        ("read", "read"), ("none", "none"), ("admin", "admin")]


# ---- pulls, checks, Actions ---------------------------------------------------------
async def test_pull_files_and_head_contents(sandbox, gh):
    sandbox.set_file(REPO, "README.md", "# Widgets\nold line\n")
    sandbox.add_issue(REPO, title="an issue first")
    pr = sandbox.add_pull(REPO, title="Fix parser", user="alice", head_ref="fix-parser", files={
        "src/parser.py": "@@ -0,0 +1,2 @@\n+def parse(s):\n+    return s.strip()",
        "README.md": "@@ -1,2 +1,2 @@\n # Widgets\n-old line\n+new line"})
    assert pr["number"] == 2  # PRs share the issue number space
    got = await gh.getitem(f"/repos/{REPO}/pulls/2")
    assert (got["head"]["ref"], got["base"]["ref"], got["user"]["login"]) == ("fix-parser", "main", "alice")
    assert got["head"]["repo"]["full_name"] == REPO and len(got["head"]["sha"]) == 40
    files = [f async for f in gh.getiter(f"/repos/{REPO}/pulls/2/files")]
    by_name = {f["filename"]: f for f in files}
    assert by_name["src/parser.py"]["status"] == "added" and by_name["src/parser.py"]["additions"] == 2
    assert (by_name["README.md"]["status"], by_name["README.md"]["changes"]) == ("modified", 2)
    as_issue = await gh.getitem(f"/repos/{REPO}/issues/2")
    assert "pull_request" in as_issue
    readme = await gh.getitem(f"/repos/{REPO}/contents/README.md?ref={got['head']['sha']}")
    assert base64.b64decode(readme["content"]).decode() == "# Widgets\nnew line\n"
    assert sandbox.file_content(REPO, "src/parser.py", ref="fix-parser") == "def parse(s):\n    return s.strip()\n"


async def test_create_pull_validations(sandbox, gh):
    with pytest.raises(InvalidField):
        await gh.post(f"/repos/{REPO}/pulls", data={"title": "x", "head": "nope", "base": "main"})
    sandbox.set_file(REPO, "a.txt", "1\n", ref="topic")
    pr = await gh.post(f"/repos/{REPO}/pulls", data={"title": "Topic", "head": "topic", "base": "main"})
    assert pr["number"] == 1 and pr["changed_files"] == 1
    with pytest.raises(ValidationError):  # a PR for this head is already open
        await gh.post(f"/repos/{REPO}/pulls", data={"title": "again", "head": "acme:topic", "base": "main"})
    listed = [p["number"] async for p in gh.getiter(f"/repos/{REPO}/pulls?head=acme:topic")]
    assert listed == [1]
    review = await gh.post(f"/repos/{REPO}/pulls/1/reviews", data={"event": "COMMENT", "body": "LGTM-ish"})
    assert review["state"] == "COMMENTED" and review["commit_id"] == pr["head"]["sha"]
    with pytest.raises(BadRequest):  # the bot cannot approve its own PR
        await gh.post(f"/repos/{REPO}/pulls/1/reviews", data={"event": "APPROVE"})
    assert [w.kind for w in sandbox.writes] == ["pull", "review"]


async def test_check_run_create_and_patch(sandbox, gh):
    sha = sandbox.set_file(REPO, "x.py", "x = 1\n")
    run = await gh.post(f"/repos/{REPO}/check-runs", data={"name": "triage", "head_sha": sha, "status": "in_progress"})
    assert (run["status"], run["conclusion"]) == ("in_progress", None)
    done = await gh.patch(f"/repos/{REPO}/check-runs/{run['id']}", data={
        "conclusion": "failure", "output": {"title": "1 problem", "summary": "see annotations", "annotations": [
            {"path": "x.py", "start_line": 1, "end_line": 1, "annotation_level": "failure", "message": "bad"}]}})
    assert (done["status"], done["conclusion"], done["output"]["annotations_count"]) == ("completed", "failure", 1)
    listed = await gh.getitem(f"/repos/{REPO}/commits/main/check-runs")
    assert listed["total_count"] == 1 and listed["check_runs"][0]["output"]["title"] == "1 problem"
    notes = await gh.getitem(f"/repos/{REPO}/check-runs/{run['id']}/annotations")
    assert notes[0]["message"] == "bad"
    suite = await gh.getitem(f"/repos/{REPO}/check-suites/{run['check_suite']['id']}")
    assert (suite["status"], suite["conclusion"]) == ("completed", "failure")
    with pytest.raises(InvalidField):
        await gh.post(f"/repos/{REPO}/check-runs", data={"name": "no sha"})
    assert [w.kind for w in sandbox.writes] == ["check_run", "check_run_edit"]


async def test_job_logs_follow_redirect(sandbox, session, gh):
    run = sandbox.add_workflow_run(REPO, name="CI", jobs=[
        {"name": "lint", "conclusion": "success", "log": "all good"},
        {"name": "test", "conclusion": "failure", "log": "collected 3 items\nFAILED tests/test_x.py::test_y"}])
    jobs = await gh.getitem(f"/repos/{REPO}/actions/runs/{run['id']}/jobs")
    assert jobs["total_count"] == 2
    failed = next(j for j in jobs["jobs"] if j["conclusion"] == "failure")
    log = await gh.getitem(f"/repos/{REPO}/actions/jobs/{failed['id']}/logs")
    assert "FAILED tests/test_x.py::test_y" in log
    assert [r.status for r in sandbox.requests[-2:]] == [302, 200]
    status, headers, _ = await raw(session, sandbox, "GET", f"/repos/{REPO}/actions/jobs/{failed['id']}/logs",
                                   gh.oauth_token)
    assert status == 302 and headers["Location"].startswith(sandbox.url)
    runs = await gh.getitem(f"/repos/{REPO}/actions/runs?status=failure&branch=main")
    assert [r["id"] for r in runs["workflow_runs"]] == [run["id"]]
    check = await gh.getitem(f"/repos/{REPO}/check-runs/{failed['id']}")  # job ids are check run ids
    assert check["name"] == "test" and check["conclusion"] == "failure"


# ---- git data & contents ---------------------------------------------------------------
async def test_git_blob_tree_commit_ref_then_contents(sandbox, gh):
    sandbox.set_file(REPO, "src/app.py", "print('v1')\n")
    main = await gh.getitem(f"/repos/{REPO}/git/ref/heads/main")
    base_commit = await gh.getitem(f"/repos/{REPO}/git/commits/{main['object']['sha']}")
    await gh.post(f"/repos/{REPO}/git/refs", data={"ref": "refs/heads/fix", "sha": main["object"]["sha"]})
    with pytest.raises(BadRequest) as exc:
        await gh.post(f"/repos/{REPO}/git/refs", data={"ref": "refs/heads/fix", "sha": main["object"]["sha"]})
    assert exc.value.status_code == 422 and "already exists" in str(exc.value)

    blob = await gh.post(f"/repos/{REPO}/git/blobs", data={"content": base64.b64encode(b"print('v2')\n").decode(),
                                                            "encoding": "base64"})
    tree = await gh.post(f"/repos/{REPO}/git/trees", data={"base_tree": base_commit["tree"]["sha"], "tree": [
        {"path": "src/app.py", "mode": "100644", "type": "blob", "sha": blob["sha"]},
        {"path": "NOTES.md", "mode": "100644", "type": "blob", "content": "notes\n"}]})
    commit = await gh.post(f"/repos/{REPO}/git/commits", data={"message": "Fix app", "tree": tree["sha"],
                                                                "parents": [main["object"]["sha"]]})
    assert commit["parents"][0]["sha"] == main["object"]["sha"]
    updated = await gh.patch(f"/repos/{REPO}/git/refs/heads/fix", data={"sha": commit["sha"]})
    assert updated["object"]["sha"] == commit["sha"]

    got = await gh.getitem(f"/repos/{REPO}/contents/src/app.py?ref=fix")
    assert base64.b64decode(got["content"]) == b"print('v2')\n" and got["sha"] == blob["sha"]
    main_copy = await gh.getitem(f"/repos/{REPO}/contents/src/app.py")
    assert base64.b64decode(main_copy["content"]) == b"print('v1')\n"
    listing = await gh.getitem(f"/repos/{REPO}/contents?ref=fix")
    assert {(e["name"], e["type"]) for e in listing} == {("src", "dir"), ("NOTES.md", "file")}
    full = await gh.getitem(f"/repos/{REPO}/git/trees/{tree['sha']}?recursive=1")
    assert {e["path"] for e in full["tree"]} == {"src", "src/app.py", "NOTES.md"}
    with pytest.raises(BadRequest) as exc:
        await gh.getitem(f"/repos/{REPO}/contents/missing.txt?ref=fix")
    assert exc.value.status_code == 404

    with pytest.raises(BadRequest) as exc:  # moving fix back to main is not a fast-forward
        await gh.patch(f"/repos/{REPO}/git/refs/heads/fix", data={"sha": main["object"]["sha"]})
    assert "fast forward" in str(exc.value)
    history = [c["commit"]["message"] async for c in gh.getiter(f"/repos/{REPO}/commits?sha=fix&path=src/app.py")]
    assert history == ["Fix app", "Update src/app.py"]
    assert [w.kind for w in sandbox.writes] == ["ref", "blob", "tree", "commit", "ref_update"]


# ---- search, faults, seeding, protocol details -------------------------------------------
async def test_search_issues(sandbox, gh):
    sandbox.add_issue(REPO, title="Null pointer in parser", body="stack trace", labels=["bug"])
    sandbox.add_issue(REPO, title="Docs typo", body="A null pointer mention", labels=["docs"])
    sandbox.add_issue(REPO, title="Null pointer again", labels=["bug"], state="closed")
    sandbox.add_pull(REPO, title="Fix null pointer", files={"a.py": "@@ -0,0 +1 @@\n+a"})
    res = await gh.getitem(f'/search/issues?q=repo:{REPO} is:issue is:open label:bug "null pointer"')
    assert res["total_count"] == 1 and res["incomplete_results"] is False
    assert res["items"][0]["title"] == "Null pointer in parser"
    prs = await gh.getitem(f"/search/issues?q=repo:{REPO}+is:pr+NULL")
    assert [i["number"] for i in prs["items"]] == [4]
    with pytest.raises(BadRequest):
        await gh.getitem("/search/issues?q=repo:rival/secret bug")
    sandbox.set_file(REPO, "src/db.py", "def connect():\n    return Pool(size=5)\n")
    code = await gh.getitem(f"/search/code?q=Pool+repo:{REPO}")
    assert [(i["path"], i["repository"]["full_name"]) for i in code["items"]] == [("src/db.py", REPO)]


async def test_fault_injection_then_success(sandbox, gh):
    sandbox.fail("GET", rf"/repos/{REPO}", 500)
    with pytest.raises(GitHubBroken) as exc:
        await gh.getitem(f"/repos/{REPO}")
    assert exc.value.status_code == 500
    assert (await gh.getitem(f"/repos/{REPO}"))["full_name"] == REPO
    assert [r.status for r in sandbox.requests[-2:]] == [500, 200]

    sandbox.fail("POST", r"/repos/.+/issues/\d+/comments", 403, times=-1, headers={"retry-after": "1"},
                 body={"message": "You have exceeded a secondary rate limit."})
    sandbox.add_issue(REPO, title="t")
    for _ in range(2):
        with pytest.raises(BadRequest) as exc:
            await gh.post(f"/repos/{REPO}/issues/1/comments", data={"body": "hi"})
        assert exc.value.status_code == 403 and "secondary rate limit" in str(exc.value)
        assert exc.value.headers["retry-after"] == "1"
    sandbox.clear_faults()
    await gh.post(f"/repos/{REPO}/issues/1/comments", data={"body": "hi"})
    assert [w.kind for w in sandbox.writes] == ["comment"]


async def test_seed_from_issues_opened_payload(session, keys):
    payload = {
        "action": "opened",
        "issue": {"id": 5550001, "number": 17, "title": "App crashes on save", "body": "Steps: click save",
                  "user": {"login": "reporter", "id": 77, "type": "User"}, "state": "open",
                  "labels": [{"id": 1, "name": "bug", "color": "d73a4a"}], "comments": 0},
        "repository": {"id": 900, "name": "gadgets", "full_name": "octo/gadgets", "private": False,
                       "default_branch": "trunk", "owner": {"login": "octo", "type": "Organization"}},
        "installation": {"id": 31337},
        "sender": {"login": "reporter", "type": "User"},
    }
    sb = SandboxGitHub(app_id=APP_ID, app_public_key_pem=keys[1])
    sb.seed_from_payload(payload)
    sb.seed_from_payload({"zen": "ping"})  # tolerant of payloads that name nothing
    async with sb:
        gh = await app_gh(sb, session, keys[0], installation_id=31337)
        repo = await gh.getitem("/repos/octo/gadgets")
        assert (repo["id"], repo["default_branch"]) == (900, "trunk")
        issue = await gh.getitem("/repos/octo/gadgets/issues/17")
        assert (issue["id"], issue["title"], issue["body"]) == (5550001, "App crashes on save", "Steps: click save")
        assert issue["user"]["login"] == "reporter" and [label["name"] for label in issue["labels"]] == ["bug"]
        await gh.post("/repos/octo/gadgets/issues/17/comments", data={"body": "Thanks!"})
        assert sb.comments("octo/gadgets", 17)[0]["body"] == "Thanks!"
        assert sb.writes[0].repo == "octo/gadgets" and sb.writes[0].number == 17


async def test_seed_from_check_run_payload(session, keys):
    sb = SandboxGitHub(app_id=APP_ID, app_public_key_pem=keys[1])
    sb.seed_from_payload({
        "action": "completed", "installation": {"id": 5}, "repository": {"full_name": "octo/ci"},
        "check_run": {"id": 123456, "name": "pytest", "head_sha": "a" * 40, "status": "completed",
                      "conclusion": "failure", "check_suite": {"id": 654321, "head_branch": "main"}}})
    async with sb:
        gh = await app_gh(sb, session, keys[0], installation_id=5)
        run = await gh.getitem("/repos/octo/ci/check-runs/123456")
        assert (run["name"], run["conclusion"], run["check_suite"]["id"]) == ("pytest", "failure", 654321)
        runs = await gh.getitem(f"/repos/octo/ci/commits/{'a' * 40}/check-runs")
        assert runs["total_count"] == 1


async def test_protocol_errors(sandbox, session, gh):
    token = gh.oauth_token
    status, _, body = await raw(session, sandbox, "GET", "/nope", token)
    assert (status, body) == (404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
    status, _, _ = await raw(session, sandbox, "DELETE", f"/repos/{REPO}", token)  # wrong method: 404 too
    assert status == 404
    async with session.post(f"{sandbox.url}/repos/{REPO}/issues", data=b"{not json",
                            headers={"Authorization": f"token {token}"}) as r:
        assert r.status == 400 and (await r.json())["message"] == "Problems parsing JSON"
    assert sandbox.requests[-1].status == 400 and sandbox.requests[-1].json is None


async def test_build_app_under_test_server_and_deliveries(keys, session):
    sb = make_sandbox(keys[1])
    for i in range(3):
        sb.add_hook_delivery(event="issues", status_code=500 if i == 1 else 200)
    server = TestServer(sb.build_app())
    await server.start_server()
    try:
        url = str(server.make_url("")).rstrip("/")
        anon = GitHubAPI(session, "t", base_url=url)
        app_jwt = apps.get_jwt(app_id=str(APP_ID), private_key=keys[0])
        got = [d async for d in anon.getiter("/app/hook/deliveries?per_page=2", jwt=app_jwt)]
        assert len(got) == 3 and [d["status_code"] for d in got] == [200, 500, 200]
        await anon.post(f"/app/hook/deliveries/{got[1]['id']}/attempts", data=b"", jwt=app_jwt)
        assert sb.writes[-1].kind == "redelivery" and sb.writes[-1].data["delivery_id"] == got[1]["id"]
        sb.add_manifest_code("abc123")
        conv = await anon.post("/app-manifests/abc123/conversions", data=b"")
        assert conv["id"] == APP_ID and conv["pem"].startswith("-----BEGIN")
        with pytest.raises(BadRequest):  # codes are single-use
            await anon.post("/app-manifests/abc123/conversions", data=b"")
    finally:
        await server.close()


async def test_a_review_comment_outside_the_diff_is_refused_as_github_does(sandbox, gh):
    """GitHub takes a line comment only on a line inside the diff's hunks (the side named; RIGHT by default)."""
    lines = [f"line {n}\n" for n in range(1, 21)]
    sandbox.set_file(REPO, "a.txt", "".join(lines))
    sandbox.set_file(REPO, "a.txt", "".join(lines[:9] + ["changed\n"] + lines[10:]), ref="topic")
    pr = await gh.post(f"/repos/{REPO}/pulls", data={"title": "Topic", "head": "topic", "base": "main"})
    url = f"/repos/{REPO}/pulls/{pr['number']}/reviews"
    inside = [{"path": "a.txt", "line": 10, "side": "RIGHT", "body": "here"}, {"path": "a.txt", "line": 7, "body": "ctx"}]
    review = await gh.post(url, data={"event": "COMMENT", "body": "two", "comments": inside})
    assert review["state"] == "COMMENTED"
    for wrong in ({"path": "a.txt", "line": 2, "body": "far"}, {"path": "b.txt", "line": 1, "body": "no file"},
                  {"path": "a.txt", "line": 20, "side": "LEFT", "body": "not in the old side's hunk"}):
        with pytest.raises(BadRequest) as refused:
            await gh.post(url, data={"event": "COMMENT", "body": "one", "comments": [wrong]})
        assert refused.value.status_code == 422
    assert [w.kind for w in sandbox.writes] == ["pull", "review"]
