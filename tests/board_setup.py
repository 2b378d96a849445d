"""The dashboard tests' one set-up (tests/test_dashboard.py, tests/test_attacks_dashboard.py): the repository's config
turning the dashboard on, the bot's clock moved by hand, GitHub's ``issues.edited`` deliveries of ticks, and
``waiting_board``: a run waiting for approval and the dashboard listing it. Not a conftest: each test module imports
what it uses, as with tests/test_workflows_e2e.py's fixtures.
"""

from __future__ import annotations

import time
import zlib
from typing import Any

import pytest

from bot.core.markers import trailing
from tests.conftest import load_fixture, post_webhook
from tests.test_workflows_e2e import REPO, bot, issue_payload, posts, send  # noqa: F401

CONFIG = "dashboard: true\n"


def opted_in(sandbox: Any, **roles: str) -> None:
    """The repository's config turns the dashboard on; each person gets their role."""
    sandbox.set_file(REPO, ".github/triage-lead.yml", CONFIG)
    for login, role in roles.items():
        sandbox.set_permission(REPO, login, role)


class Clock:
    """The bot's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def later(self, seconds: float = 61.0) -> None:
        self.now += seconds


@pytest.fixture
def clock(bot: Any) -> Clock:
    c = Clock()
    bot[0].deps.clock = c
    return c


def dashboards(sandbox: Any) -> list[dict[str, Any]]:
    return [i for i in sandbox.repo(REPO).issues.values() if trailing(i["body"]) == f"dashboard:{REPO}"]


def board(sandbox: Any) -> dict[str, Any]:
    [one] = dashboards(sandbox)  # never two
    return one


def box_of(body: str, action: str, number: int) -> str:
    """The id of the ``action`` box under the run of thread ``number``."""
    lines = body.split("\n")
    at = next(i for i, line in enumerate(lines) if f" on #{number} " in line and not line.lstrip().startswith("- ["))
    for line in lines[at + 1:]:
        if not line.lstrip().startswith("- ["):
            break
        key = line.rsplit("<!-- box:", 1)[1].split(" ")[0]
        if key.startswith(action + ":"):
            return key
    raise AssertionError(f"no {action} box for #{number}")


def ticked(body: str, key: str) -> str:
    line = next(ln for ln in body.split("\n") if ln.endswith(f"<!-- box:{key} -->"))
    return body.replace(line, line.replace("- [ ]", "- [x]", 1))


def edited(sandbox: Any, number: int, body: str, login: str, before: str | None = None) -> dict[str, Any]:
    """``issues.edited`` as GitHub sends it when ``login`` edits issue ``number``'s body to ``body``, from
    ``before`` (default: the body the issue has now; a person's page may be older)."""
    p = load_fixture("issues.opened.json")
    issue = sandbox.issue(REPO, number)
    before = issue["body"] if before is None else before
    p["issue"] = issue | {"body": body, "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))}
    p["action"], p["changes"] = "edited", {"body": {"from": before}}
    p["sender"] = {**p["sender"], "login": login, "type": "User", "id": zlib.crc32(login.encode())}
    return p


async def post(bot: Any, sandbox: Any, event: str, payload: dict[str, Any], status: int = 202) -> None:
    """A delivery and its job, whatever becomes of the job (``send`` asserts that none failed); ``status``: the
    webhook's answer (200: ignored at the door, so never stored)."""
    rt, client = bot
    sandbox.seed_from_payload(payload)
    assert (await post_webhook(client, event, payload)).status == status
    await rt.jobs.drained(30)


async def deliver(bot: Any, sandbox: Any, payload: dict[str, Any], status: int = 202) -> None:
    """An ``issues.edited`` delivery, and the jobs its ticks queued on their runs' threads."""
    rt, _ = bot
    failed = (await rt.store.job_states()).get("failed", 0)
    await post(bot, sandbox, "issues", payload, status)
    for thread in await rt.store.queued_threads():  # queued by the bot itself: kicked here, not by the 5 s poll
        rt.jobs.kick(thread, delivered=False)
    await rt.jobs.drained(30)
    assert (await rt.store.job_states()).get("failed", 0) <= failed  # none failed (one may have been retried)


async def tick(bot: Any, sandbox: Any, number: int, key: str, login: str) -> None:
    """``login`` ticks box ``key`` on dashboard ``number``."""
    await deliver(bot, sandbox, edited(sandbox, number, ticked(sandbox.issue(REPO, number)["body"], key), login))


async def waiting_run(bot: Any, sandbox: Any, number: int) -> None:
    await send(bot, sandbox, "issues", issue_payload(number, ["api"], title="Add an @octocat endpoint"))
    assert posts(sandbox, number)[-1] == "approval"


@pytest.fixture
async def waiting_board(bot: Any, sandbox: Any, team: Any, clock: Clock) -> dict[str, Any]:  # noqa: F811
    """The dashboard on (a maintainer with write access, a reader with read), a run on #15 waiting for approval,
    and the dashboard listing it, as GitHub has it."""
    opted_in(sandbox, maintainer="write", reader="read")
    await waiting_run(bot, sandbox, 15)
    return board(sandbox)
