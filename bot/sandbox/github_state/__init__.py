"""In-memory model behind the sandbox GitHub (``bot/sandbox/github/`` is the HTTP side).

Kept apart from the server so seeding, assertions and handlers share one model.
Objects are stored in GitHub's JSON shapes; keys starting with ``__`` are internal
and stripped from responses.  URLs use the ``API`` placeholder origin, replaced by
the sandbox's real origin when a response is written, so a bot that follows
``comments_url`` & co. stays inside the sandbox.

One module per resource, each a mixin over ``base.StateBase`` naming in its bases the resources it
builds on: ``git`` (object store, refs), ``contents`` (files, REST commits, diffs), ``apps``
(installations, repositories, permissions, hook deliveries, manifests), ``issues`` (issues, comments,
labels, reactions), ``pulls``, ``checks`` (check runs and suites, workflow runs, jobs), ``search``;
``seed`` composes them into ``SandboxState`` and seeds it from webhook payloads.
"""

from .apps import PERMISSION_OF_ROLE, REPO_DEFAULTS, repo_urls
from .base import (
    API,
    DOCS,
    EMPTY_TREE,
    WEB,
    ApiError,
    RecordedRequest,
    Repo,
    Write,
    b64_lines,
    custom_invalid,
    git_sha,
    invalid,
    iso,
    node_id,
    public,
    user_urls,
)
from .checks import ANNOTATION_KEYS, CHECK_STATUSES, CONCLUSIONS
from .contents import apply_patch, make_patch, patch_stats, patch_status
from .issues import REACTIONS
from .seed import SandboxState

__all__ = ["ANNOTATION_KEYS", "API", "CHECK_STATUSES", "CONCLUSIONS", "DOCS", "EMPTY_TREE", "PERMISSION_OF_ROLE",
           "REACTIONS", "REPO_DEFAULTS", "WEB", "ApiError", "RecordedRequest", "Repo", "SandboxState", "Write",
           "apply_patch", "b64_lines", "custom_invalid", "git_sha", "invalid", "iso", "make_patch", "node_id",
           "patch_stats", "patch_status", "public", "repo_urls", "user_urls"]
