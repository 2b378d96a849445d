"""Every real example payload of @octokit/webhooks-examples, signed and posted to /webhook."""

from __future__ import annotations

import collections
import logging
from typing import Any

from tests.conftest import INSTALLATION, post_webhook


async def test_every_example_is_accepted_or_deliberately_ignored(
        client: Any, runtime: Any, sandbox: Any, webhook_examples: list[tuple[str, dict]], caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    outcomes: collections.Counter[str] = collections.Counter()
    for i, (event, payload) in enumerate(webhook_examples):
        if isinstance(payload.get("installation"), dict):
            # The examples name one repository under several installations; on GitHub a repository belongs to
            # one, so they all share ours (otherwise each re-seeding moves the repository away mid-job).
            payload = {**payload, "installation": {**payload["installation"], "id": INSTALLATION}}
        sandbox.seed_from_payload(payload)
        resp = await post_webhook(client, event, payload, delivery=f"example-{i}")
        answer = await resp.json()
        assert resp.status in (200, 202), (event, payload.get("action"), resp.status, answer)
        outcomes[answer.get("status") or answer.get("msg")] += 1
    await runtime.jobs.drained(60)
    assert len(webhook_examples) > 300
    assert outcomes["accepted"] > 0 and outcomes["ignored"] > 0 and outcomes["pong"] >= 1
    assert sum(outcomes.values()) == len(webhook_examples)
    assert "failed" not in await runtime.store.job_states()
    noisy = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert noisy == [], [r.getMessage() for r in noisy]
    assert "Traceback" not in caplog.text
