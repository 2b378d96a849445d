"""GitHub's real payloads for every event the bot acts on, run to a result on the sandbox.

``test_webhook_examples`` shows every example of ``@octokit/webhooks-examples`` is answered; this
goes further for the events the bot acts on: each example (given an ``installation``: without one
the bot ignores it, as it must) runs alone against a fresh sandbox GitHub seeded from the payload and
a fresh bot on the offline backend, and must end in a write on its thread, or in a decision not to
act that the test can name: a webhook answer of ``ignored`` with its reason (a check that passed), a
comment without a command, a push to a pull request no workflow is running on. Never a failed job,
an error or a traceback in the logs, or a request GitHub's REST description does not allow.
Variants with a command, or with a failed conclusion, cover the paths the examples alone miss.
"""

from __future__ import annotations

import collections
import copy
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.core import commands, events
from bot.run.runtime import Runtime
from bot.sandbox.github import SandboxGitHub
from bot.settings import Settings
from tests.conftest import APP_ID, SECRET, post_webhook

CI = ("check_run", "check_suite", "workflow_run")
ACTED_ON = {event: actions for event, actions in events.HANDLED.items() if event != "installation"}
EXAMPLE_INSTALLATION = {"id": 5050505, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNTA1MDUwNQ=="}


@dataclass
class Case:
    name: str
    event: str
    payload: dict[str, Any]
    expect: str  # "acted" | "ignored" (answered 200 with a reason) | "no command" | "no run" | "nothing open"
    why: str = "nothing failed"  # for "ignored": what the reason says


def thread_number(event: str, payload: dict[str, Any]) -> int | None:
    return (payload.get("issue") or payload.get("pull_request") or {}).get("number") if event not in CI else None


def cases_for(event: str, examples: list[tuple[str, dict[str, Any]]]) -> list[Case]:
    """Each acted-on example of ``event`` (with an installation), plus the variants that reach the paths the
    examples alone do not: a command in a real comment payload, a failed conclusion on a real CI payload."""
    out: list[Case] = []
    for i, (_, original) in enumerate(e for e in examples if e[0] == event):
        if original.get("action") not in ACTED_ON[event]:
            continue
        p = copy.deepcopy(original)
        p.setdefault("installation", EXAMPLE_INSTALLATION)
        label = f"{event}.{p['action']}#{i}"
        if event in CI:
            failed = p[event].get("conclusion") in events.CI_FAILED
            # A run of another repository's commit (a fork's) without a pull request here is not this one's.
            head_repo = (p[event].get("head_repository") or {}).get("full_name")
            failure = "another repository's" if head_repo not in (None, p["repository"]["full_name"]) \
                and not p[event].get("pull_requests") else "acted"
            out.append(Case(label, event, p, failure if failed else "ignored"))
            if not failed:
                v = copy.deepcopy(p)
                v[event] |= {"conclusion": "failure", "status": "completed"}
                out.append(Case(label + "+failure", event, v, failure))
        elif event == "issue_comment":
            out.append(Case(label, event, p, "acted" if commands.parse(p["comment"]["body"]) else "no command"))
            v = copy.deepcopy(p)
            v["comment"]["body"] = "Thanks!\n\n/help\n"
            if v["action"] == "edited":
                v.setdefault("changes", {})["body"] = {"from": p["comment"]["body"]}
            out.append(Case(label + "+/help", event, v, "acted"))
        elif event == "pull_request" and p["action"] == "synchronize":
            out.append(Case(label, event, p, "no run"))  # a push moves a run; with none, there is nothing to move
        elif event == "issues" and p["action"] == "edited":  # only a dashboard's edits are acted on
            out.append(Case(label, event, p, "ignored", why="not a dashboard"))
        elif event == "pull_request" and p["action"] in ("closed", "reopened"):  # a merge files the reviews' open
            out.append(Case(label, event, p, "nothing open"))  # findings; closed unmerged or reopened notes retention
        else:
            out.append(Case(label, event, p, "acted"))
    return out


@asynccontextmanager
async def bot_for(payload: dict[str, Any], folder: Path, keys: tuple[str, str],
                  api: Any) -> AsyncIterator[tuple[SandboxGitHub, Runtime, TestClient]]:
    """A fresh sandbox seeded from ``payload`` and a fresh bot on the offline backend (no Anthropic key)."""
    sandbox = SandboxGitHub(app_id=APP_ID, app_public_key_pem=keys[1], validator=api)
    await sandbox.start()
    sandbox.seed_from_payload(payload)
    folder.mkdir(parents=True, exist_ok=True)
    settings = Settings(app_id=APP_ID, private_key=keys[0], webhook_secret=SECRET, github_api_url=sandbox.url,
                        database_url=f"sqlite:///{folder / 'bot.sqlite3'}", write_spacing=0.0)
    runtime = await Runtime(settings, github_max_wait=5.0, github_backoff=0.01).start()
    client = TestClient(TestServer(runtime.web_app()))
    await client.start_server()
    try:
        yield sandbox, runtime, client
    finally:
        await client.close()
        await runtime.close()
        await sandbox.close()


async def run_case(case: Case, folder: Path, keys: tuple[str, str], api: Any) -> str:
    """Post one case and say what became of it; assert it is what the case expects."""
    async with bot_for(case.payload, folder, keys, api) as (sandbox, runtime, client):
        resp = await post_webhook(client, case.event, case.payload)
        answer = await resp.json()
        await runtime.jobs.drained(60)
        states = await runtime.store.job_states()
        number = thread_number(case.event, case.payload)
        on_thread = [w for w in sandbox.writes if number is None or w.number == number or w.kind == "issue"]
        problems = sandbox.conformance_errors
    assert not problems, (case.name, problems)
    assert set(states) <= {"done"}, (case.name, states)  # nothing failed, queued or left running
    if case.expect == "ignored":
        assert resp.status == 200 and answer.get("status") == "ignored" and answer.get("reason"), (case.name, answer)
        assert case.why in answer["reason"], (case.name, answer)
        return "ignored"
    assert resp.status == 202 and answer == {"status": "accepted"}, (case.name, resp.status, answer)
    assert states == {"done": 1}, (case.name, states)
    if case.expect == "acted":
        assert on_thread, (case.name, [w.kind for w in sandbox.writes])
        return "acted"
    assert sandbox.writes == [], (case.name, case.expect, [w.kind for w in sandbox.writes])
    return case.expect


@pytest.mark.parametrize("event", sorted(ACTED_ON))
async def test_every_example_runs_to_a_result(event: str, webhook_examples: list[tuple[str, dict[str, Any]]],
                                              app_keys: tuple[str, str], github_openapi: Any, tmp_path: Path,
                                              caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    cases = cases_for(event, webhook_examples)
    outcomes: collections.Counter[str] = collections.Counter()
    for i, case in enumerate(cases):
        outcomes[await run_case(case, tmp_path / str(i), app_keys, github_openapi)] += 1
    print(f"\n{event}: {len(cases)} payloads: {dict(outcomes)}")
    assert cases and outcomes["acted"] >= 1
    noisy = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert noisy == [], [r.getMessage() for r in noisy]
    assert "Traceback" not in caplog.text


async def test_the_bug_label_a_person_adds_starts_a_workflow_on_a_real_issue(
        webhook_examples: list[tuple[str, dict[str, Any]]], app_keys: tuple[str, str], github_openapi: Any,
        tmp_path: Path) -> None:
    """The examples' issue is a README typo carrying ``bug`` from the start: the Lead weighs the label with the
    words, places it nowhere and asks, naming the label it outweighed. A maintainer adding ``bug`` again steers:
    the offline run then gets as far as the offline backend can, and asks."""
    case = next(c for c in cases_for("issues", webhook_examples) if c.payload["action"] == "opened")
    repo, number = case.payload["repository"]["full_name"], case.payload["issue"]["number"]
    async with bot_for(case.payload, tmp_path, app_keys, github_openapi) as (sandbox, runtime, client):
        assert (await post_webhook(client, "issues", case.payload)).status == 202
        await runtime.jobs.drained(60)
        asked = [c["body"] for c in sandbox.comments(repo, number)]
        labeled = copy.deepcopy(case.payload) | {"action": "labeled", "label": {"name": "bug"},
                                                 "sender": {"login": "maintainer", "id": 4242, "type": "User"}}
        assert (await post_webhook(client, "issues", labeled)).status == 202
        await runtime.jobs.drained(60)
        bodies = [c["body"] for c in sandbox.comments(repo, number)]
        labels = [label["name"] for label in sandbox.issue(repo, number)["labels"]]
    assert len(asked) == 1 and "won't guess" in asked[0] and "already carries `bug`" in asked[0], asked
    assert not any("error-investigation workflow" in b for b in asked)
    assert any("Starting error-investigation workflow" in b and "was just added" in b for b in bodies), bodies
    assert "needs-decision" in labels or any("Ready to proceed" in b for b in bodies), (labels, bodies)
