"""The engine as a pure state machine, on the shipped workflows: no I/O at all."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bot.core import engine as E
from bot.core.catalog import load_catalog

CATALOG = load_catalog()


def wf(name: str) -> Any:
    return CATALOG.workflows[name]


def ok(**extra: Any) -> dict[str, Any]:
    return {"summary": "done", "passed": True, "criteria": [], "flags": {}, "escalate": None} | extra


def review(verdict: str, **extra: Any) -> dict[str, Any]:
    return ok(verdict=verdict, critical=[], warnings=[], suggestions=[], tech_debt=[]) | extra


def drive(run: E.Run, w: Any, results: dict[str, list[dict[str, Any]]]) -> tuple[E.Run, list[Any]]:
    """Feed scripted results to every RunAgent until the run stops asking; return all actions."""
    run, pending = E.advance(run, E.Start(), w)
    seen: list[Any] = list(pending)
    while True:
        todo = [a for a in pending if isinstance(a, E.RunAgent)]
        if not todo:
            return run, seen
        pending = []
        for a in todo:
            default = review("APPROVED") if w.step(a.step).kind == "review" else ok()
            result = results[a.step].pop(0) if results.get(a.step) else default
            run, acts = E.advance(run, E.AgentDone(a.step, a.iteration, result), w)
            pending += acts
            seen += acts


def kinds(actions: list[Any]) -> list[str]:
    return [type(a).__name__ + (f":{a.step}" if hasattr(a, "step") else "") for a in actions]


def test_devops_runs_in_order_skips_the_conditional_step_and_waits_for_approval() -> None:
    w = wf("devops-pipeline")
    run, actions = drive(E.Run.new("r", w), w, {"triage": [ok(flags={"infra_affects_services": False})]})
    assert kinds(actions) == ["RunAgent:triage", "PostStep:triage", "PostSkip:architecture-review",
                              "RunAgent:implementation", "PostStep:implementation", "RunAgent:review",
                              "PostVerdict:review", "RunAgent:approval", "AskApproval:approval"]
    assert run.state == E.WAITING
    run, actions = E.advance(run, E.Command("approve", "maintainer"), w)
    assert run.state == E.DONE and kinds(actions) == ["Finish"]
    assert run.approval == {"by": "maintainer", "head_sha": None}


def test_conditional_step_taken_when_flag_true() -> None:
    w = wf("devops-pipeline")
    run, actions = drive(E.Run.new("r", w), w, {"triage": [ok(flags={"infra_affects_services": True})]})
    assert "RunAgent:architecture-review" in kinds(actions)
    assert run.steps["architecture-review"].status == E.FINISHED


def test_rejection_loops_back_to_the_implementer_with_feedback_then_passes() -> None:
    w = wf("backend-feature")
    rejected = review("REJECTED", critical=[{"text": "no tests", "path": "api.py", "line": 3}])
    run, actions = drive(E.Run.new("r", w), w, {"review": [rejected, review("APPROVED")]})
    assert run.state == E.WAITING and run.rejections == 1
    assert run.steps["implementation"].iteration == 2 and run.steps["review"].iteration == 2
    assert run.steps["implementation"].feedback == rejected
    assert kinds(actions).count("PostVerdict:review") == 2


def test_three_rejections_escalate() -> None:
    w = wf("backend-feature")
    no = review("REJECTED", critical=[{"text": "SQL built by string formatting"}])
    run, actions = drive(E.Run.new("r", w), w, {"review": [no, no, no]})
    assert run.state == E.ESCALATED and run.rejections == 3
    assert run.escalation["trigger"] == "repeated-rejections"  # type: ignore[index]
    assert kinds(actions)[-1] == "Escalate"
    # /approve 2: another round: rejections reset, implementer runs again with the findings
    run, actions = E.advance(run, E.Command("approve", "lead", option=2), w)
    assert run.state == E.RUNNING and run.rejections == 0
    assert kinds(actions) == ["ResolveEscalation", "RunAgent:implementation"]
    assert run.decisions[-1]["option"] == 2


def test_parallel_steps_start_together() -> None:
    w = wf("security-fix")
    run, actions = E.advance(E.Run.new("r", w), E.Start(), w)
    run, actions = E.advance(run, E.AgentDone("assess", 1, ok(flags={"unknown_vulnerability": True})), w)
    assert kinds(actions) == ["PostStep:assess", "RunAgent:research", "RunAgent:architecture"]
    run, actions = E.advance(run, E.AgentDone("architecture", 1, ok()), w)
    assert kinds(actions) == ["PostStep:architecture"]  # implementation waits for research too
    run, actions = E.advance(run, E.AgentDone("research", 1, ok()), w)
    assert kinds(actions) == ["PostStep:research", "RunAgent:implementation"]


def test_routing_picks_the_database_architect() -> None:
    w = wf("error-investigation")
    run, actions = drive(E.Run.new("r", w), w, {"detect": [ok(flags={"database_related": True})]})
    agents = {a.step: a.agent for a in actions if isinstance(a, E.RunAgent)}
    assert agents["analyze"] == "database-architect"


def test_agent_failure_escalates_and_retry_runs_the_step_again() -> None:
    w = wf("integration-setup")
    run, actions = E.advance(E.Run.new("r", w), E.Start(), w)
    first = next(a for a in actions if isinstance(a, E.RunAgent))
    run, actions = E.advance(run, E.AgentFailed(first.step, 1, "No model is configured.", "no-model"), w)
    assert run.state == E.ESCALATED and run.escalation["trigger"] == "out-of-scope"  # type: ignore[index]
    run, actions = E.advance(run, E.Command("retry", "maintainer"), w)
    assert kinds(actions) == ["ResolveEscalation", f"RunAgent:{first.step}"]
    assert run.steps[first.step].iteration == 2


def test_escalate_mid_run_ignores_the_late_result() -> None:
    w = wf("database-performance")
    run, actions = E.advance(E.Run.new("r", w), E.Start(), w)
    step = next(a for a in actions if isinstance(a, E.RunAgent))
    run, actions = E.advance(run, E.Command("escalate", "maintainer", reason="needs a product call"), w)
    assert run.state == E.ESCALATED and "needs a product call" in run.escalation["issue"]  # type: ignore[index]
    run, actions = E.advance(run, E.AgentDone(step.step, step.iteration, ok()), w)
    assert actions == [] and run.steps[step.step].result is None


def test_model_escalation_offers_its_options_and_records_the_choice() -> None:
    w = wf("backend-feature")
    proposal = {"trigger": "breaking-change", "issue": "Renames a public field", "recommendation": "Option 2",
                "blocking": "implementation", "options": [{"title": "Rename now", "tradeoff": "breaks clients"},
                                                          {"title": "Deprecate first", "tradeoff": "slower"}]}
    run, actions = drive(E.Run.new("r", w), w, {"architecture": [ok(escalate=proposal)]})
    assert run.state == E.ESCALATED and run.escalation["trigger"] == "breaking-change"  # type: ignore[index]
    assert [o["title"] for o in run.escalation["options"]] == ["Rename now", "Deprecate first", "Stop this workflow"]  # type: ignore[index]
    run, actions = E.advance(run, E.Command("approve", "owner", option=2), w)
    assert run.state == E.RUNNING and run.decisions[-1]["choice"] == "Deprecate first"
    run, actions = E.advance(run, E.Command("approve", "owner", option=9), w)
    assert kinds(actions) == ["Reply"]


A, B = "a" * 40, "b" * 40
CHANGED = ("app/fix.py",)  # the scripted implementer's change set (tests/test_engine's ok() has none: see impl())


def impl() -> dict[str, Any]:
    return ok(changes=[{"path": "app/fix.py", "content": "x = 1\n", "reason": "r"}], notes="")


def waiting_on_pull(name: str = "backend-feature") -> tuple[E.Run, Any]:
    w = wf(name)
    run, _ = drive(E.Run.new("r", w, head_sha=A, on_pull=True), w, {"implementation": [impl()], "fix": [impl()]})
    assert run.state == E.WAITING
    return run, w


def test_a_run_on_a_pull_request_judges_the_pull_request_first_and_only_there() -> None:
    w = wf("backend-feature")
    _, actions = E.advance(E.Run.new("r", w, head_sha=A, on_pull=True), E.Start(), w)
    assert kinds(actions)[0] == "ReviewPull" and isinstance(actions[0], E.ReviewPull) and actions[0].sha == A
    _, actions = E.advance(E.Run.new("r", w, head_sha=A), E.Start(), w)
    assert "ReviewPull" not in kinds(actions)


def test_a_push_that_misses_the_proposed_files_asks_for_approval_again_for_the_new_head() -> None:
    run, w = waiting_on_pull()
    run, actions = E.advance(run, E.HeadMoved(B, paths=("README.md",)), w)
    assert run.state == E.WAITING and run.head_sha == B
    assert kinds(actions) == ["ReviewPull", "AskApproval:approval", "Reply"]
    run, actions = E.advance(run, E.Command("approve", "m", head_sha=B), w)
    assert run.state == E.DONE and run.approval == {"by": "m", "head_sha": B}


def test_a_push_that_touches_the_proposed_files_makes_the_implementer_run_again() -> None:
    for paths in (CHANGED, None):  # None: GitHub could not say what changed (a force-push)
        run, w = waiting_on_pull()
        run, actions = E.advance(run, E.HeadMoved(B, paths=paths), w)
        assert run.state == E.RUNNING and kinds(actions) == ["ReviewPull", "Reply", "RunAgent:implementation"]
        assert run.steps["approval"].status == E.PENDING and run.approval is None


def test_the_apps_own_push_makes_nothing_stale() -> None:
    run, w = waiting_on_pull()
    run, actions = E.advance(run, E.HeadMoved(B, paths=CHANGED, own=True), w)
    assert run.state == E.WAITING and kinds(actions) == ["ReviewPull"]


def test_a_finished_run_on_a_pull_request_still_judges_each_new_head() -> None:
    run, w = waiting_on_pull()
    run, _ = E.advance(run, E.Command("approve", "m", head_sha=A), w)
    assert run.state == E.DONE
    done, actions = E.advance(run, E.HeadMoved(B, paths=CHANGED), w)
    assert kinds(actions) == ["ReviewPull"] and done.state == E.DONE and done.approval == run.approval
    issue_run = dataclasses.replace(run, on_pull=False)
    assert E.advance(issue_run, E.HeadMoved(B), w)[1] == []


def test_a_head_that_moved_without_a_push_event_is_handled_at_approve() -> None:
    run, w = waiting_on_pull()
    run, actions = E.advance(run, E.Command("approve", "m", head_sha=B, moved=CHANGED), w)
    assert run.state == E.RUNNING and run.approval is None and run.head_sha == B
    assert "RunAgent:implementation" in kinds(actions)
    assert isinstance(actions[-1], E.Reply) and "not applied" in actions[-1].text
    run, w = waiting_on_pull()
    run, actions = E.advance(run, E.Command("approve", "m", head_sha=B, moved=("docs/x.md",)), w)
    assert run.state == E.WAITING and kinds(actions)[:2] == ["ReviewPull", "AskApproval:approval"]


def test_cancel_and_commands_on_a_finished_run() -> None:
    w = wf("devops-pipeline")
    run, _ = E.advance(E.Run.new("r", w), E.Start(), w)
    run, actions = E.advance(run, E.Command("cancel", "m"), w)
    assert run.state == E.CANCELLED
    run, actions = E.advance(run, E.Command("approve", "m"), w)
    assert kinds(actions) == ["Reply"]


def test_failed_pass_criteria_escalate() -> None:
    w = wf("database-performance")
    bad = ok(passed=False, criteria=[{"criterion": "Clear root cause identified", "met": False, "note": ""}])
    run, actions = drive(E.Run.new("r", w), w, {"investigate": [bad]})
    assert run.state == E.ESCALATED
    assert "Clear root cause identified" in run.escalation["issue"]  # type: ignore[index]


@pytest.mark.parametrize("name", sorted(CATALOG.workflows))
def test_every_workflow_reaches_approval_then_done(name: str) -> None:
    w = wf(name)
    run, actions = drive(E.Run.new("r", w), w, {})
    assert run.state == E.WAITING, kinds(actions)
    run, actions = E.advance(run, E.Command("approve", "m"), w)
    assert run.state == E.DONE
    assert E.Run.from_dict(run.to_dict()) == run  # the record round-trips through JSON-able data


def test_a_failure_in_one_parallel_step_does_not_wedge_the_other() -> None:
    w = wf("security-fix")
    run, _ = E.advance(E.Run.new("r", w), E.Start(), w)
    run, _ = E.advance(run, E.AgentDone("assess", 1, ok(flags={"unknown_vulnerability": True})), w)
    run, actions = E.advance(run, E.AgentFailed("research", 1, "no model", "no-model"), w)
    assert run.state == E.ESCALATED and run.steps["architecture"].status == E.PENDING
    run, actions = E.advance(run, E.AgentDone("architecture", 1, ok()), w)  # its late result is stale
    assert actions == []
    run, actions = E.advance(run, E.Command("retry", "m"), w)
    assert sorted(a.step for a in actions if isinstance(a, E.RunAgent)) == ["architecture", "research"]


def test_a_push_while_escalated_is_judged_and_redoes_a_stale_change_before_the_option_applies() -> None:
    w = wf("security-fix")
    no = review("REJECTED", critical=[{"text": "x"}])
    start = E.Run.new("r", w, head_sha=A, on_pull=True)
    run, _ = drive(start, w, {"implementation": [impl()] * 3, "review": [no, no, no]})
    assert run.state == E.ESCALATED and run.escalation["trigger"] == "repeated-rejections"  # type: ignore[index]
    moved, actions = E.advance(run, E.HeadMoved(B, paths=CHANGED), w)
    assert moved.state == E.ESCALATED and kinds(actions) == ["ReviewPull", "Reply"]
    done, actions = E.advance(moved, E.Command("approve", "m", option=1, head_sha=B), w)  # "accept with findings"
    assert done.state == E.RUNNING and kinds(actions)[-1] == "RunAgent:implementation"
    # untouched files: the option applies as chosen, and the head is still judged
    moved, actions = E.advance(run, E.HeadMoved(B, paths=("README.md",)), w)
    assert kinds(actions) == ["ReviewPull"]
    done, actions = E.advance(moved, E.Command("approve", "m", option=1, head_sha=B), w)
    assert "RunAgent:implementation" not in kinds(actions) and "RunAgent:validation" in kinds(actions)
    # a push nobody reported, seen at /approve: the same before the option applies
    done, actions = E.advance(run, E.Command("approve", "m", option=1, head_sha=B, moved=CHANGED), w)
    assert kinds(actions)[0] == "ReviewPull" and kinds(actions)[-1] == "RunAgent:implementation"


def test_retry_on_a_head_that_moved_unreported_redoes_the_change_once_with_a_fresh_count() -> None:
    w = wf("security-fix")
    no = review("REJECTED", critical=[{"text": "x"}])
    run, _ = drive(E.Run.new("r", w, head_sha=A, on_pull=True), w, {"implementation": [impl()] * 3,
                                                                     "review": [no, no, no]})
    assert run.rejections == 3
    run, actions = E.advance(run, E.Command("retry", "m", head_sha=B, moved=CHANGED), w)
    assert run.head_sha == B and run.rejections == 0 and run.state == E.RUNNING
    assert kinds(actions).count("RunAgent:implementation") == 1 and kinds(actions)[0] == "ReviewPull"
    run, actions = E.advance(run, E.AgentDone("implementation", 4, impl()), w)
    run, actions = E.advance(run, E.AgentDone("review", run.steps["review"].iteration, no), w)
    assert run.state == E.RUNNING and run.rejections == 1  # one strike on the new change, not the fourth


def test_a_refused_delivery_makes_the_change_again_on_the_new_head() -> None:
    run, w = waiting_on_pull("error-investigation")
    run, _ = E.advance(run, E.Command("approve", "m", head_sha=A), w)
    assert run.state == E.DONE
    run, actions = E.advance(run, E.DeliveryRefused(B), w)
    assert run.state == E.RUNNING and run.head_sha == B and run.approval is None
    assert kinds(actions) == ["ReviewPull", "Reply", "RunAgent:fix"]
    again, actions = E.advance(run, E.DeliveryRefused("c" * 40), w)  # only a finished, approved run is redone
    assert actions == [] and again.head_sha == B


def test_retry_after_repeated_rejections_is_recorded_as_the_retry_option() -> None:
    w = wf("backend-feature")
    no = review("REJECTED", critical=[{"text": "x"}])
    run, _ = drive(E.Run.new("r", w), w, {"review": [no, no, no]})
    run, actions = E.advance(run, E.Command("retry", "lead"), w)
    assert run.decisions[-1]["option"] == 2 and run.decisions[-1]["choice"].startswith("Give the implementer")


def test_advance_leaves_the_given_run_as_it_was_and_shares_what_it_did_not_change() -> None:
    w = wf("backend-feature")
    no = review("REJECTED", critical=[{"text": "no tests"}])
    run, _ = drive(E.Run.new("r", w), w, {"review": [no, no, no]})  # escalated: three rejections
    signals: list[E.Signal] = [E.Command("approve", "lead", option=2), E.Command("escalate", "lead"),
                               E.Command("approve", "lead", option=1), E.Command("cancel", "lead")]
    for signal in signals:
        before = run.to_dict()
        new, _ = E.advance(run, signal, w)
        assert run.to_dict() == before, signal  # steps, decisions and escalation of the old run untouched
        assert new is not run and new.to_dict() != before
        # No deep copy per step: a step's result (a model's whole output) is the same object in both runs.
        done = [sid for sid, st in run.steps.items() if st.result]
        assert done and all(new.steps[sid].result is run.steps[sid].result for sid in done)
        run = new
