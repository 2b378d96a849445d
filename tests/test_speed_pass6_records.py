"""A run's plain form without ``dataclasses.asdict`` (issue 16, sixth pass): the same dict asdict makes, as new
dicts and lists the caller may change without changing the run."""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

from bot.core.run_records import Run, StepState, _plain


def rich_run() -> Run:
    run = Run(id="r1", workflow="backend-feature", head_sha="a" * 40, on_pull=True, head_since=12.5, rejections=2)
    run.steps = {"analyze": StepState("done", 1, "analyst", {"summary": "s", "flags": {"x": True},
                                                             "findings": ["a", {"deep": [1, 2.5, None]}]}),
                 "review": StepState("active", 2, "reviewer", None, "boom", {"verdict": "REJECTED", "critical": []}),
                 "approve": StepState()}
    run.escalation = {"trigger": "repeated-rejections", "stage": "review", "issue": "i", "recommendation": "r",
                      "blocking": "b", "failure": None,
                      "options": [{"title": "t", "tradeoff": "d", "action": "continue"}]}
    run.approval = {"by": "octocat", "head_sha": None}
    run.decisions = [{"stage": "review", "trigger": None, "option": 1, "by": "octocat", "choice": "c"}]
    run.budget = {"budget": "run", "by_repo": False, "estimate": 10, "left": 5, "operator_left": 7}
    run.budget_approval = {"by": "octocat"}
    return run


def as_asdict(run: Run) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(run).items() if v is not None or k not in Run.OPTIONAL_KEYS}


def test_the_plain_form_is_asdicts_for_a_new_and_a_full_run() -> None:
    for run in (Run(id="r0", workflow="w", steps={"a": StepState()}), rich_run()):
        assert run.to_dict() == as_asdict(run)
        assert Run.from_dict(run.to_dict()) == run


def test_changing_the_plain_form_leaves_the_run_as_it_was() -> None:
    run = rich_run()
    out = run.to_dict()
    out["steps"]["analyze"]["result"]["findings"][1]["deep"].append("x")
    out["steps"]["analyze"]["result"]["flags"]["x"] = False
    out["escalation"]["options"][0]["title"] = "changed"
    out["decisions"].clear()
    assert run.to_dict() == as_asdict(rich_run())


def test_tuples_named_tuples_and_other_kinds_come_out_as_asdict_makes_them() -> None:
    Pair = collections.namedtuple("Pair", "a b")
    value: dict[str, Any] = {"t": (1, [2]), "p": Pair([1], {"k": (2,)}), "o": collections.OrderedDict(z=[1]),
                             "s": {1, 2}}
    made = _plain(value)
    assert made == value and type(made["p"]) is Pair and type(made["o"]) is collections.OrderedDict
    assert made["p"].a is not value["p"].a and made["s"] is not value["s"] and made["t"][1] is not value["t"][1]
