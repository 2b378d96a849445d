"""The dashboard issue (issue 17, point 1): being built."""

from __future__ import annotations

import logging

from gidgethub.abc import GitHubAPI

from bot.core import events
from bot.run.runs import Deps

log = logging.getLogger(__name__)


async def on_dashboard_edit(event: events.DashboardEdit, gh: GitHubAPI, deps: Deps) -> None:
    log.error("%s: a dashboard edit, and the dashboard is not built yet", event.thread)
