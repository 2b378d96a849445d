"""A sandbox GitHub: an in-memory aiohttp server speaking the REST slice the bot uses.

Lets the real gidgethub client (``base_url=sandbox.url``), the ``replay`` CLI and the
tests run the bot end to end without github.com.  Every request goes through
``SandboxGitHub._middleware`` (recording, fault injection, auth, repo access, JSON
parsing, error shaping, dispatch); given a ``validator`` (``openapi.GitHubOpenAPI``) it first
checks each request against GitHub's REST description — route templates are GitHub's own
(e.g. ``/repos/{owner}/{repo}/issues/{issue_number}``).  Handlers are plain methods that
return JSON-able data, ``(data, status)`` or an aiohttp response.

Write kinds (``SandboxGitHub.writes``; data is the request body plus the ids noted):
comment, comment_edit, comment_deleted (id, body) · issue, issue_edit, pull, pull_edit (+number) ·
labels (POST; data["labels"] = names sent), labels_set (PUT), label_removed (name), label_created ·
reaction (content, subject "issue"|"comment", subject_id; only when new) · review (+id) ·
review_dismissal (review_id, message) · check_run, check_run_edit (+id) · ref, ref_update (ref, sha, force) ·
blob, tree, commit (+sha) ·
contents (PUT; +path, branch, commit) · redelivery (delivery_id, guid) · manifest_conversion.
Token creation is not a write: see ``tokens_issued``.

One module per resource, each a mixin of handlers with its own route table over ``handlers.Handlers``
(the request keys and response helpers, on top of the model in ``bot/sandbox/github_state/``):
``apps`` (the App, installations, tokens, hook deliveries, manifests; the JWT and token checks),
``issues`` (issues, comments, labels, reactions), ``pulls`` (pull requests, reviews), ``checks``
(check runs and suites, workflow runs, jobs, job logs), ``git`` (refs, blobs, trees, git commits),
``contents`` (files, commits, comparisons), ``search``; ``server`` wires them into one aiohttp app, and
``etags`` answers conditional reads (ETags, 304s; ``SandboxGitHub.not_modified`` counts them).
"""

from ..github_state import ApiError, RecordedRequest, Write
from .server import SandboxGitHub

__all__ = ["SandboxGitHub", "RecordedRequest", "Write", "ApiError"]
