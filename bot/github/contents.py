"""Reading one file through the contents API, whatever shape GitHub's answer takes.

GitHub's description allows more than "a base64 file": the path may be a directory (a list), a symbolic
link or a submodule; a file over 1 MB comes with ``encoding: "none"`` and empty ``content`` (its blob
must be read instead); ``content`` may fail to decode; fields may be null or missing. Each of those is a
:class:`Unreadable` with a reason a person can act on, never an exception that stops the job. A 404 is
"no file"; a 5xx or a timeout is raised, so the caller's retries treat it as the outage it is.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Any

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

log = logging.getLogger(__name__)

# Larger than the contents API's 1 MB (its blob is read then), but a config or agent file this big is a mistake.
MAX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileText:
    path: str
    text: str


@dataclass(frozen=True, slots=True)
class Unreadable:
    """The path exists but is not a text file the bot can use; ``reason`` says why, for a person."""

    path: str
    reason: str


def _decode(path: str, content: Any, max_bytes: int) -> FileText | Unreadable:
    if not isinstance(content, str):
        return Unreadable(path, "GitHub sent no content for it")
    try:
        data = base64.b64decode(content.encode("ascii", "strict"), validate=False)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return Unreadable(path, "its content, as GitHub sent it, is not valid base64")
    if len(data) > max_bytes:
        return Unreadable(path, f"it is larger than {max_bytes // 1024} KB")
    try:
        return FileText(path, data.decode("utf-8"))
    except UnicodeDecodeError:
        return Unreadable(path, "it is not UTF-8 text")


async def _blob(gh: GitHubAPI, repo: str, path: str, sha: Any, max_bytes: int) -> FileText | Unreadable:
    """A file too large for the contents API: its blob carries the bytes (the blob API allows 100 MB)."""
    if not isinstance(sha, str) or not sha:
        return Unreadable(path, "it is too large for the contents API and GitHub gave no blob to read instead")
    try:
        blob = await gh.getitem(f"/repos/{repo}/git/blobs/{sha}")
    except BadRequest as exc:
        if exc.status_code in (404, 409, 422):
            return Unreadable(path, f"its blob could not be read (GitHub answered {exc.status_code})")
        raise
    if not isinstance(blob, dict) or blob.get("encoding") not in (None, "base64"):
        return Unreadable(path, "its blob came in an encoding the bot does not read")
    if isinstance(blob.get("size"), int) and blob["size"] > max_bytes:
        return Unreadable(path, f"it is larger than {max_bytes // 1024} KB")
    return _decode(path, blob.get("content"), max_bytes)


def _kind_problem(path: str, item: Any) -> Unreadable | None:
    if isinstance(item, list):
        return Unreadable(path, "it is a directory, not a file")
    if not isinstance(item, dict):
        return Unreadable(path, "GitHub's answer for it was not a file")
    kind = item.get("type") or "file"
    if kind == "symlink":
        return Unreadable(path, f"it is a symbolic link (to {str(item.get('target') or '?')[:200]!r}); "
                                "the bot reads only regular files")
    if kind == "submodule":
        return Unreadable(path, "it is a submodule, not a file")
    if kind != "file":
        return Unreadable(path, f"it is a {str(kind)[:40]}, not a file")
    return None


async def _get(gh: GitHubAPI, repo: str, path: str, ref: str | None) -> Any:
    """The contents API's answer for ``path`` (a file, a listing, a link...), or None for a 404."""
    try:
        return await gh.getitem(f"/repos/{repo}/contents/{path}" + (f"?ref={ref}" if ref else ""))
    except BadRequest as exc:
        if exc.status_code == 404:
            return None
        raise


async def read_file(gh: GitHubAPI, repo: str, path: str, ref: str | None = None, *,
                    max_bytes: int = MAX_BYTES) -> FileText | Unreadable | None:
    """The text of ``path`` at ``ref`` (default branch when None); None when there is no such path."""
    item = await _get(gh, repo, path, ref)
    if item is None:
        return None
    problem = _kind_problem(path, item)
    if problem is not None:
        return problem
    if isinstance(item.get("size"), int) and item["size"] > max_bytes:
        return Unreadable(path, f"it is larger than {max_bytes // 1024} KB")
    content, encoding = item.get("content"), item.get("encoding")
    if content == "" and not item.get("size") and encoding != "none":
        return FileText(path, "")  # an empty file
    if encoding == "none" or not isinstance(content, str) or not content:
        # Over 1 MB the contents API sends no content ("none"); a null one is read the same way, never as empty.
        return await _blob(gh, repo, path, item.get("sha"), max_bytes)
    if encoding not in (None, "base64"):
        return Unreadable(path, f"GitHub sent it in an encoding the bot does not read ({str(encoding)[:40]})")
    return _decode(path, content, max_bytes)


async def list_dir(gh: GitHubAPI, repo: str, path: str, ref: str | None = None) -> list[dict[str, Any]] | Unreadable:
    """The entries of a directory ([] when there is none); a file or link where a folder was expected is
    :class:`Unreadable`. Entries without a usable ``name`` and ``path`` are left out."""
    listing = await _get(gh, repo, path, ref)
    if listing is None:
        return []
    if not isinstance(listing, list):
        return Unreadable(path, "it is not a directory")
    return [e for e in listing if isinstance(e, dict) and isinstance(e.get("name"), str)
            and isinstance(e.get("path"), str) and e["path"]]
