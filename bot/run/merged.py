"""A merged pull request (issue 17, point 2): being built."""

from __future__ import annotations

import logging

from gidgethub.abc import GitHubAPI

from bot.core import events
from bot.run.runs import Deps

log = logging.getLogger(__name__)


async def on_pull_merged(event: events.PullMerged, gh: GitHubAPI, deps: Deps) -> None:
    log.error("%s: merged, and open findings are not filed yet", event.thread)
