"""What a failure means for the person who has to fix it: GitHub's refusals in words, with a hint."""

from __future__ import annotations

import asyncio

# Matched on GitHub's message, lower-cased.
_HINTS = (
    ("without `workflows` permission", "The App needs the `workflows` permission to change files in "
                                       "`.github/workflows/`; an owner can grant it in the App's settings."),
    ("resource not accessible by integration", "The App lacks a permission this needs; an owner can review "
                                               "the App's permissions in the installation settings."),
    ("not a fast forward", "The branch moved while this was prepared; `/retry` prepares it again on the new head."),
    ("installation has been suspended", "The App's installation is suspended; an owner can unsuspend it."),
)


def explain(exc: BaseException) -> tuple[str, str]:
    """(what failed, what would fix it) in a person's words; the hint may be empty."""
    status = getattr(exc, "status_code", None)
    message = " ".join(str(exc).split())[:300]
    if status is not None:
        asked = getattr(exc, "request_line", "")
        cause = f"GitHub answered {int(status)} to {asked or 'a request'}" + (f": {message}" if message else "")
    elif isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        cause = "GitHub or the model did not answer in time"
    else:
        cause = f"{type(exc).__name__}" + (f": {message}" if message else "")
    lowered = message.lower()
    return cause, next((h for key, h in _HINTS if key in lowered), "")
