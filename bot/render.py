"""Markdown for every kind of post the bot makes. Pure: strings in, strings out."""

from __future__ import annotations

from bot.events import WorkItem

HELP_HINT = "Comment `/help` to see the commands."


def acknowledgement(item: WorkItem) -> str:
    """The first word on a new issue or PR: what was received and what happens next."""
    kind = "pull request" if item.is_pull_request else "issue"
    labels = ", ".join(f"`{name}`" for name in item.labels) or "none"
    return (
        f"**triage-lead** received this {kind}.\n\n"
        f"- Labels: {labels}\n"
        f"- Next: the Lead triages it into a workflow and posts each step in this thread.\n\n"
        f"{HELP_HINT}"
    )
