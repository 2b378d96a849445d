"""What a failure means for the person who has to fix it: GitHub's refusals in words, with a hint."""

from __future__ import annotations

import asyncio

import aiohttp

from bot.github.client import TokenRefused, Uninstalled
from bot.logs import printable, scrub
from bot.store import StoreUnavailable

# Matched on GitHub's message, lower-cased.
_HINTS = (
    ("without `workflows` permission", "The App needs the `workflows` permission to change files in "
                                       "`.github/workflows/`; an owner can grant it in the App's settings."),
    ("resource not accessible by integration", "The App lacks a permission this needs; an owner can review "
                                               "the App's permissions in the installation settings."),
    ("not a fast forward", "The branch moved after the approval. The new commits make the approval stale: the "
                           "review runs again on the new head, and it needs a new `/approve`."),
    ("installation has been suspended", "The App's installation is suspended; an owner can unsuspend it."),
)


_CATEGORIES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    ((asyncio.TimeoutError, TimeoutError), "GitHub or the model did not answer in time"),
    (StoreUnavailable, "the bot's own database was unavailable"),
    ((aiohttp.ClientError, OSError), "GitHub could not be reached"),
)


def explain(exc: BaseException) -> tuple[str, str]:
    """(what failed, what would fix it) in a person's words; the hint may be empty."""
    status = getattr(exc, "status_code", None)
    message = printable(scrub(" ".join(str(exc).split())))[:300]  # redacted before it is cut
    if status is not None:
        asked = getattr(exc, "request_line", "")
        cause = f"GitHub answered {int(status)} to {asked or 'a request'}" + (f": {message}" if message else "")
    elif isinstance(exc, (TokenRefused, Uninstalled)):
        cause = message  # our own words, with GitHub's answer to the token request
    else:  # not GitHub's words: database hosts and internal addresses stay in the operators' log
        cause = next((said for kinds, said in _CATEGORIES if isinstance(exc, kinds)),
                     "an error inside triage-lead (the operators' log has the details)")
    lowered = message.lower()
    return cause, next((h for key, h in _HINTS if key in lowered), "")
