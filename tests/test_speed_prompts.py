"""A step's prompt text made once per value (issue 16: CPU per run): a result schema once per schema object, an earlier
step's result once per job however many later steps read it; the text the same as made afresh."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.agents import prompts
from bot.agents.runner import _result_schema
from bot.sandbox.anthropic import FakeAnthropic
from bot.sandbox.team import result
from tests.test_agents_common import REPO, analyze, claude, context, fake, gh, make_request, make_runtime  # noqa: F401


def counted(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    """Every value prompts' `name` encoder is asked to encode, from now on."""
    seen: list[Any] = []
    real = getattr(prompts, name)

    def encode(value: Any) -> str:
        seen.append(value)
        return real(value)
    monkeypatch.setattr(prompts, name, encode)
    return seen


def test_a_value_never_gets_the_text_of_another_that_had_its_id() -> None:
    encoded = prompts.Encoded(size=1)
    texts = [encoded.get({"n": n}, json.dumps) for n in range(200)]  # each dict dropped at once: CPython hands
    assert texts == [json.dumps({"n": n}) for n in range(200)]         # its memory, and so its id, to the next


def test_a_schema_is_encoded_once_and_another_object_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = counted(monkeypatch, "_schema_text")
    schema = _result_schema("review", (("gate_passed", "x"),))
    first = prompts.schema_text(schema)
    assert prompts.schema_text(schema) == first and len(seen) == 1
    copy = json.loads(json.dumps(schema))
    assert prompts.schema_text(copy) == first and len(seen) == 2


async def test_the_steps_of_a_job_encode_each_earlier_result_once(monkeypatch: pytest.MonkeyPatch, fake: FakeAnthropic,
                                                                 claude: Any, gh: Any, sandbox: Any) -> None:
    sandbox.add_issue(REPO, title="Add an endpoint", body="b")
    inputs = {"triage": analyze(summary="triaged"), "architecture": analyze(findings=["use `app/api.py`"])}
    steps = [make_request("backend-feature", "implementation", context(1), inputs=inputs),
             make_request("backend-feature", "review", context(1), inputs=inputs | {"implementation": analyze()})]
    seen = counted(monkeypatch, "_json")
    fake.script(result("implement"), result("review"), result("review"))
    job = make_runtime(gh, claude)
    assert all([(await job.run(request)).ok for request in steps])
    assert sorted(map(id, seen)) == sorted({id(v) for r in steps for v in r.inputs.values()})
    assert (await make_runtime(gh, claude).run(steps[1])).ok  # another job: its own texts, made afresh
    assert len(seen) == 3 + 3
    review, again = (r["messages"][0]["content"][-1]["text"] for r in fake.requests[1:])
    assert review == again and "result of step architecture" in review and "use `app/api.py`" in review
