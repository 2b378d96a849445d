"""Conditional reads in the sandbox GitHub, as GitHub does them: every 200 to a GET carries an ``ETag``; a GET
whose ``If-None-Match`` names the current one is answered ``304 Not Modified`` with no body, and a 304 does not
count against the rate limit.

Like GitHub's, the ETag depends on the credential as well as the body (GitHub varies on ``Authorization``: an
installation's refreshed token gets new ETags, github/docs#34689), and ``If-None-Match`` compares weakly
(``W/"x"`` matches ``"x"``, RFC 9110 13.1.2). A 304 is answered only on operations whose REST description lists
304 (:data:`DESCRIBED_304`); the others still carry an ETag, and a matching one gets a full 200.
"""

from __future__ import annotations

import hashlib

from aiohttp import web

# Route templates (aiohttp's canonical form) whose operation lists 304 in @octokit/openapi; a test keeps it true.
DESCRIBED_304 = frozenset({
    "/repos/{owner}/{repo}/contents", "/repos/{owner}/{repo}/contents/{path}",
    "/repos/{owner}/{repo}/issues/{issue_number}",
    "/repos/{owner}/{repo}/pulls", "/repos/{owner}/{repo}/pulls/{pull_number}",
    "/search/issues", "/search/code",
})
# Sent with every 200 to a GET and with every 304, as GitHub sends them.
CACHE_HEADERS = {"Cache-Control": "private, max-age=60, s-maxage=60",
                 "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP"}


def etag(body: bytes, credential: str, *, weak: bool) -> str:
    """The ETag of ``body`` as this credential is shown it (the credential only salts a hash)."""
    digest = hashlib.sha256(hashlib.sha256(credential.encode()).digest() + body).hexdigest()[:32]
    return f'W/"{digest}"' if weak else f'"{digest}"'


def matches(if_none_match: str, current: str) -> bool:
    """Whether ``If-None-Match`` (one tag, a list, or ``*``) names ``current``, compared weakly."""
    opaque = current.removeprefix("W/")
    tags = [t.strip() for t in if_none_match.split(",")]
    return any(t == "*" or t.removeprefix("W/") == opaque for t in tags if t)


def conditional(rq: web.Request, resp: web.StreamResponse, credential: str, *, weak: bool,
                honour: bool) -> web.StreamResponse:
    """``resp`` (the final answer to a GET) with its ETag, or the 304 that replaces it. ``honour``: False makes
    a server that sends ETags but ignores ``If-None-Match`` (a proxy, an older GitHub Enterprise)."""
    if not (isinstance(resp, web.Response) and resp.status == 200 and isinstance(resp.body, bytes)):
        return resp
    tag = etag(resp.body, credential, weak=weak)
    resp.headers["ETag"] = tag
    for k, v in CACHE_HEADERS.items():
        resp.headers.setdefault(k, v)
    asked = rq.headers.get("If-None-Match")
    route = rq.match_info.route.resource
    described = route is not None and route.canonical in DESCRIBED_304
    if honour and asked and described and matches(asked, tag):
        return web.Response(status=304, headers={"ETag": tag, **CACHE_HEADERS})
    return resp
