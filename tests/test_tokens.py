"""Installation tokens: resolved per request, refreshed on a 401, and never posted or logged.

A job does not bake a token into its client: a step that outlives the token's hour (here: every token
expires in the middle of a run) goes on with a fresh one. Every token the bot was handed is redacted by
value from what it posts and logs, whatever its format.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from bot.sandbox.team import result
from tests.conftest import log_lines
from tests.test_faults import DEVOPS, HookTeam, assert_nothing_posted_twice, deliver, team  # noqa: F401
from tests.test_workflows_e2e import REPO, bot, fake, issue_payload, posts  # noqa: F401


def expire_all(sandbox: Any) -> list[str]:
    """Every token the sandbox issued expires now (as an hour passing would); returns them."""
    tokens = list(sandbox._tokens)
    for token, (inst, _) in list(sandbox._tokens.items()):
        sandbox._tokens[token] = (inst, time.time() - 1)
    return tokens


async def test_a_token_that_expires_mid_run_is_replaced_and_the_run_finishes(bot: Any, sandbox: Any,
                                                                            team: HookTeam) -> None:
    expired: list[str] = []
    team.hooks["IMPLEMENTATION"] = lambda: expired.extend(expire_all(sandbox))
    await deliver(bot, sandbox, "issues", issue_payload(60, ["devops"]))
    assert expired, "the hook did not run: vacuous"
    assert posts(sandbox, 60) == DEVOPS  # every later write went through
    assert await bot[0].store.job_states() == {"done": 1}
    refused = [r for r in sandbox.requests if r.status == 401]
    assert refused and sandbox.tokens_issued == 2  # one 401, then one fresh token, then on
    assert_nothing_posted_twice(sandbox)


async def test_a_token_echoed_by_the_model_is_never_posted(bot: Any, sandbox: Any, team: HookTeam) -> None:
    def echo_the_token() -> None:
        token = next(iter(sandbox._tokens))
        team.script["IMPLEMENTATION"] = [result("implement", summary=f"I used {token} to read the repo",
                                                notes=f"token={token}")]

    team.hooks["IMPLEMENTATION"] = echo_the_token
    await deliver(bot, sandbox, "issues", issue_payload(61, ["devops"]))
    bodies = "\n".join(c["body"] for c in sandbox.comments(REPO, 61))
    assert "I used" in bodies and "[redacted]" in bodies, "the echo did not reach a comment: vacuous"
    for token in sandbox._tokens:
        assert token not in bodies
        assert token[4:] not in bodies  # nor without its ghs_ prefix, whatever the format


async def test_a_token_never_reaches_a_log_line(bot: Any, sandbox: Any, team: HookTeam) -> None:
    await deliver(bot, sandbox, "issues", issue_payload(62, ["devops"]))
    token = next(iter(sandbox._tokens))
    with log_lines(json=True) as out:
        logging.getLogger("test").error("GitHub said: bad token %s", token[4:], exc_info=ValueError(token))
    line = json.loads(out.getvalue())
    assert token[4:] not in out.getvalue() and "[redacted]" in line["message"] and "[redacted]" in line["exception"]


async def test_a_401_forgets_only_the_token_it_was_sent_with() -> None:
    """Two requests refused together: the second must not throw away the fresh token the first just fetched."""
    from bot.github.auth import Token, TokenCache

    issued = iter(["ghs_old", "ghs_fresh", "ghs_third"])

    async def fetch(_: int) -> Token:
        return Token(next(issued), time.time() + 3600)

    tokens = TokenCache(fetch)
    assert await tokens.get(1) == "ghs_old"
    tokens.forget(1, "ghs_old")  # the first refused request
    assert await tokens.get(1) == "ghs_fresh"
    tokens.forget(1, "ghs_old")  # the second, sent with the same old token: the fresh one stays
    assert await tokens.get(1) == "ghs_fresh" and tokens.fetches == 2
