"""Two pure helpers of gidgethub's sans-I/O layer, kept per input instead of recomputed on every request.

Runs at scale (issue 16) make ~15 GitHub requests a run, and gidgethub spends a fifth of each one's CPU on two
pure functions: parsing the response's content type with ``email.message.Message`` and parsing the URL template
with ``uritemplate``. GitHub answers with a handful of content types, and the bot's requests use a few dozen
templates, so both are kept in bounded caches. The results are the same strings and tuples gidgethub computes
(tests/test_speed_github.py compares them); :func:`install` wraps gidgethub's functions once per process.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Mapping
from typing import Any

import uritemplate
from gidgethub import sansio

_ORIGINAL_FORMAT_URL = sansio.format_url
_ORIGINAL_PARSE_CONTENT_TYPE = sansio._parse_content_type


@functools.lru_cache(maxsize=64)
def parse_content_type(content_type: str | None) -> tuple[str | None, str]:
    """gidgethub's content-type parse, once per distinct header value."""
    return _ORIGINAL_PARSE_CONTENT_TYPE(content_type)


@functools.lru_cache(maxsize=512)
def _joined(base_url: str, url: str) -> str:
    return urllib.parse.urljoin(base_url.removesuffix("/") + "/", url.removeprefix("/"))


@functools.lru_cache(maxsize=512)
def _template(url: str) -> uritemplate.URITemplate:
    return uritemplate.URITemplate(url)


def format_url(url: str, url_vars: Mapping[str, Any] | None, *, base_url: str = sansio.DOMAIN) -> str:
    """gidgethub's ``format_url``: `url` joined to `base_url`, then expanded as a URI template with `url_vars`.
    A URL without a template expression is returned as joined (expanding it changes nothing); a template is
    parsed once (the bot's templates are a fixed set; a URL built with values in it has no braces)."""
    joined = _joined(base_url, url)
    if "{" not in joined:
        return joined
    return str(_template(joined).expand(var_dict=dict(url_vars or {})))


def install() -> None:
    """Use the cached versions in gidgethub (idempotent)."""
    sansio.format_url = format_url  # type: ignore[assignment]
    sansio._parse_content_type = parse_content_type  # type: ignore[assignment]
