"""Speed work on the run path (issue 16) that must not change a result: gidgethub's URL and content-type helpers
kept per input (bot/github/speedups.py), and a window counter that reads one event instead of the whole window
(bot/store/limits.py)."""

from __future__ import annotations

import random

import pytest
import uritemplate
from gidgethub import sansio

from bot.github import (
    client,  # noqa: F401  (installs the cached helpers, as the bot does)
    speedups,
)
from bot.store.limits import nth_newest_wait, window_wait

BASES = ["https://api.github.com", "http://127.0.0.1:8080/", "https://ghe.example/api/v3"]
CASES = [
    ("/repos/{owner}/{repo}/issues/{number}", {"owner": "o", "repo": "r", "number": 7}),
    ("/repos/{owner}/{repo}/contents/{+path}{?ref}", {"owner": "o", "repo": "r", "path": "a b/c.py", "ref": "x/y"}),
    ("/repos/{owner}/{repo}/contents/{+path}{?ref}", {"owner": "o", "repo": "r", "path": "d.md"}),
    ("/repos/o/r/issues/12/comments", {}),
    ("/repos/o/r/issues/12/comments", None),
    ("https://api.github.com/app/installations/{installation_id}/access_tokens", {"installation_id": "9"}),
    ("repos/o/r/git/ref/heads/main", {}),
    ("/search/issues?q=a%20b", None),
]


def gidgethubs(url: str, url_vars: dict | None, base: str) -> str:
    """gidgethub's own format_url, as written in gidgethub/sansio.py."""
    joined = __import__("urllib.parse").parse.urljoin(base.removesuffix("/") + "/", url.removeprefix("/"))
    return uritemplate.expand(joined) if url_vars is None else uritemplate.expand(joined, var_dict=dict(url_vars))


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize(("url", "url_vars"), CASES)
def test_the_cached_format_url_gives_gidgethubs_url(url: str, url_vars: dict | None, base: str) -> None:
    assert sansio.format_url is speedups.format_url  # installed: what every request of the bot goes through
    for _ in range(2):  # the second time from the caches
        assert sansio.format_url(url, url_vars, base_url=base) == gidgethubs(url, url_vars, base)


def test_the_same_template_with_other_values_gives_other_urls() -> None:
    template = "/repos/{owner}/{repo}/issues/{number}"
    urls = {sansio.format_url(template, {"owner": "o", "repo": "r", "number": n}) for n in range(5)}
    assert urls == {f"https://api.github.com/repos/o/r/issues/{n}" for n in range(5)}


@pytest.mark.parametrize("value", ["application/json; charset=utf-8", "application/json", "text/plain; charset=latin-1",
                                   "", None, "application/vnd.github.v3.diff; charset=UTF-8"])
def test_the_cached_content_type_parse_is_gidgethubs(value: str | None) -> None:
    assert sansio._parse_content_type is speedups.parse_content_type
    assert sansio._parse_content_type(value) == speedups._ORIGINAL_PARSE_CONTENT_TYPE(value)
    body = '{"a": "é"}'.encode("latin-1" if value and "latin-1" in value else "utf-8")
    decoded = sansio._decode_body(value, body)
    assert decoded == ({"a": "é"} if value and value.startswith("application/json") else
                       None if not value else '{"a": "é"}')


def test_the_nth_newest_event_gives_the_wait_the_whole_window_gives() -> None:
    rng = random.Random(16)
    for _ in range(500):
        limits = [(f"k{i}", rng.randint(0, 6), rng.choice([1.0, 60.0, 3600.0])) for i in range(rng.randint(1, 3))]
        now = 5000.0
        recent = {k: sorted(now - rng.uniform(0, window) for _ in range(rng.randint(0, 9)))
                  for k, _, window in limits}
        nth = {k: (times[len(times) - limit] if 0 < limit <= len(times) else None)
               for (k, limit, _), times in zip(limits, recent.values(), strict=True)}
        assert nth_newest_wait(limits, nth, now) == window_wait(limits, recent, now)
