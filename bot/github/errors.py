"""What a failure means for the person who has to fix it: GitHub's refusals in words, with a hint."""

from __future__ import annotations

import asyncio

import aiohttp

from bot.github.client import TokenRefused, Uninstalled
from bot.logs import printable, scrub
from bot.store import StoreUnavailable
from bot.store.run_format import StoredRunError

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


# A run whose stored state cannot be read fails the same way however often it is tried: only ending it helps.
UNREADABLE_RUN = ("`/retry` would read the same stored state and fail the same way. A maintainer can comment "
                  "`/cancel` to end that run; the next event on this thread then starts a new one.")


def explain(exc: BaseException) -> tuple[str, str]:
    """(what failed, what would fix it) in a person's words; the hint may be empty."""
    if isinstance(exc, StoredRunError):
        return _unreadable(exc), UNREADABLE_RUN
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


def _unreadable(exc: StoredRunError) -> str:
    """Said on the thread and, as the failed job's reason, in the operators' ERROR line: the run, and the field
    that cannot be read (StoredRunError names fields and types, never a stored value; redacted all the same)."""
    run_id = printable(scrub(str(exc.run_id)))[:80]
    what = printable(scrub(" ".join(str(exc.what).split())))[:300]
    return f"the stored state of run {run_id} cannot be read ({what})"
