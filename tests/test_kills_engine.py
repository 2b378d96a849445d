"""The engine's records and replies, pinned where the mutation run found nothing checking them.

tests/test_engine.py drives the workflows through their states; these check what people and the executor rely
on at each transition: the exact actions (step, iteration, agent, SHA) in their order, the escalation record
(trigger, stage, issue, options and what each does, recommendation, blocking, failure), the decision recorded
for a choice, the iteration and rejection counters, and the replies people read (the actor, the SHA prefix,
the option numbers). Pure state machine: no I/O, each test well under a second.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from bot.core import engine as E
from bot.core.run_records import Escalation
from tests.test_engine import CHANGED, A, drive, impl, kinds, ok, review, waiting_on_pull, wf

C = "c0ffee1" + "d" * 33  # a head whose 7-character prefix is easy to spot in a reply
PREFIX_A, PREFIX_C = f"`{A[:7]}`", f"`{C[:7]}`"  # how a reply names a commit: 7 characters, in backticks
DB = "database-optimization"  # database-performance's investigator and implementer
PSE = "principal-software-engineer"


def replies(actions: list[Any]) -> list[str]:
    return [a.text for a in actions if isinstance(a, E.Reply)]


def text_of(action: E.Action) -> str:
    """The text of an action the test expects to be a reply (it fails, naming the action, when it is not)."""
    assert isinstance(action, E.Reply), action
    return action.text


def menu(esc: Escalation) -> list[tuple[str, str]]:
    """The escalation's options as people choose them: (title, what `/approve N` does)."""
    return [(o["title"], o["action"]) for o in esc["options"]]


def tradeoffs(esc: Escalation) -> list[str]:
    out = [o["tradeoff"] for o in esc["options"]]
    for t in out:  # rendered as "N. **Title** - Tradeoff": each a sentence of its own
        assert t[:1].isupper() and t.endswith("."), t
    return out


STOP = ("Stop this workflow", "stop")
STEP_MENU = [("Run the step again", "retry"), ("Skip this step and continue", "continue"), STOP]


def at_implementation(**kw: Any) -> tuple[E.Run, Any]:
    """database-performance with investigate finished and implementation running (iteration 1)."""
    w = wf("database-performance")
    run, _ = E.advance(E.Run.new("r", w, **kw), E.Start(), w)
    run, actions = E.advance(run, E.AgentDone("investigate", 1, ok()), w)
    assert actions[-1] == E.RunAgent("implementation", 1, DB)
    return run, w


def at_review(**kw: Any) -> tuple[E.Run, Any]:
    run, w = at_implementation(**kw)
    run, actions = E.advance(run, E.AgentDone("implementation", 1, impl()), w)
    assert actions == [E.PostStep("implementation", 1), E.RunAgent("review", 1, "code-reviewer")]
    return run, w


def rejected_three_times(last: dict[str, Any] | None = None) -> tuple[E.Run, Any]:
    run, w = at_review()
    no = review("REJECTED", critical=[{"text": "no tests"}])
    for i in (1, 2, 3):
        run, actions = E.advance(run, E.AgentDone("review", i, last if (i == 3 and last) else no), w)
        if i < 3:
            assert actions == [E.PostVerdict("review", i), E.RunAgent("implementation", i + 1, DB)]
            run, _ = E.advance(run, E.AgentDone("implementation", i + 1, impl()), w)
    assert actions == [E.PostVerdict("review", 3), E.Escalate()]
    return run, w


# ---- the run record -------------------------------------------------------------------------

def test_a_new_run_names_itself_its_workflow_and_its_head() -> None:
    w = wf("security-fix")
    run = E.Run.new("run-42", w, head_sha=A, on_pull=True)
    assert (run.id, run.workflow, run.head_sha, run.on_pull, run.state) == ("run-42", "security-fix", A, True, E.RUNNING)
    assert list(run.steps) == [s.id for s in w.steps]
    assert all(st == E.StepState() for st in run.steps.values())


def test_the_record_round_trips_through_json_and_a_minimal_record_loads_with_defaults() -> None:
    run, w = rejected_three_times()
    data = json.loads(json.dumps(run.to_dict()))
    assert data["steps"]["review"]["iteration"] == 3 and data["escalation"]["trigger"] == "repeated-rejections"
    assert E.Run.from_dict(data) == run
    bare = E.Run.from_dict({"id": "r", "workflow": "devops-pipeline"})
    assert bare == E.Run("r", "devops-pipeline") and bare.steps == {} and bare.decisions == []


def test_flags_are_read_from_finished_steps_only_and_running_lists_active_steps_in_order() -> None:
    w = wf("security-fix")
    run, _ = E.advance(E.Run.new("r", w), E.Start(), w)
    assert run.flags() == {} and run.running() == ["assess"]
    run, _ = E.advance(run, E.AgentDone("assess", 1, ok(flags={"unknown_vulnerability": True})), w)
    assert run.flags() == {"assess": {"unknown_vulnerability": True}}
    assert run.running() == ["research", "architecture"]
    run, _ = E.advance(run, E.AgentDone("architecture", 1, ok(flags=None)), w)  # no flags at all: an empty set
    assert run.flags() == {"assess": {"unknown_vulnerability": True}, "architecture": {}}
    assert run.running() == ["research"]


def test_advance_never_modifies_the_run_it_is_given() -> None:
    run, w = at_review(head_sha=A, on_pull=True)
    for signal in (E.AgentDone("review", 1, review("REJECTED")), E.AgentFailed("review", 1, "boom"),
                   E.Command("cancel", "m"), E.Command("escalate", "m"), E.HeadMoved(C, paths=None)):
        before = copy.deepcopy(run)
        after, actions = E.advance(run, signal, w)
        assert actions and after != run
        assert run == before


# ---- steps, verdicts, tech debt, tasks -------------------------------------------------------

def test_each_action_names_its_step_iteration_and_agent_through_a_rejection_loop() -> None:
    run, w = at_review()
    no = review("REJECTED", critical=[{"text": "no tests"}])
    run, actions = E.advance(run, E.AgentDone("review", 1, no), w)
    assert actions == [E.PostVerdict("review", 1), E.RunAgent("implementation", 2, DB)]
    assert run.rejections == 1 and run.steps["implementation"].feedback == no
    run, actions = E.advance(run, E.AgentDone("implementation", 2, impl()), w)
    assert actions == [E.PostStep("implementation", 2), E.RunAgent("review", 2, "code-reviewer")]
    run, actions = E.advance(run, E.AgentDone("review", 2, review("APPROVED")), w)
    assert actions == [E.PostVerdict("review", 2), E.RunAgent("validation", 1, DB)]
    assert run.steps["review"].status == E.FINISHED and run.rejections == 1


@pytest.mark.parametrize("verdict", ["APPROVED", "REJECTED"])
@pytest.mark.parametrize("extra, files", [({"tech_debt": [{"title": "t", "body": "b"}]}, True),
                                          ({"suggestions": [{"text": "s"}]}, True), ({}, False)])
def test_a_verdict_with_deferred_work_or_suggestions_files_tech_debt_for_that_iteration(
        verdict: str, extra: dict[str, Any], files: bool) -> None:
    run, w = at_review()
    run, actions = E.advance(run, E.AgentDone("review", 1, review(verdict, **extra)), w)
    nxt = E.RunAgent("validation", 1, DB) if verdict == "APPROVED" else E.RunAgent("implementation", 2, DB)
    assert actions == [E.PostVerdict("review", 1)] + ([E.FileTechDebt("review", 1)] if files else []) + [nxt]


def test_a_delegate_step_files_its_tasks_after_posting() -> None:
    w = wf("long-running-project")
    run, _ = E.advance(E.Run.new("r", w), E.Start(), w)
    run, actions = E.advance(run, E.AgentDone("setup", 1, ok()), w)
    assert actions == [E.PostStep("setup", 1), E.RunAgent("execute", 1, PSE)]
    run, actions = E.advance(run, E.AgentDone("execute", 1, ok()), w)
    assert actions == [E.PostStep("execute", 1), E.FileTasks("execute"), E.RunAgent("checkpoint", 1, "context-manager")]


def test_results_that_are_not_for_the_running_iteration_are_ignored() -> None:
    run, w = at_implementation()
    # the same result delivered twice: the second changes nothing
    done, actions = E.advance(run, E.AgentDone("investigate", 1, ok(summary="again")), w)
    assert actions == [] and done == run
    # a step the workflow does not have
    for signal in (E.AgentDone("nope", 1, ok()), E.AgentFailed("nope", 1, "x")):
        assert E.advance(run, signal, w) == (run, [])
    # a late result of an earlier iteration, while the next one runs
    run, _ = E.advance(run, E.AgentDone("implementation", 1, impl()), w)
    run, _ = E.advance(run, E.AgentDone("review", 1, review("REJECTED")), w)
    assert run.steps["implementation"].iteration == 2
    late, actions = E.advance(run, E.AgentDone("implementation", 1, impl()), w)
    assert actions == [] and late == run
    late, actions = E.advance(run, E.AgentFailed("implementation", 1, "timeout"), w)
    assert actions == [] and late.state == E.RUNNING


# ---- escalations: the record people answer ---------------------------------------------------

def test_unmet_pass_criteria_escalate_naming_each_unmet_criterion_only() -> None:
    w = wf("database-performance")
    run, _ = E.advance(E.Run.new("r", w), E.Start(), w)
    bad = ok(passed=False, criteria=[{"criterion": "Root cause identified", "met": False, "note": ""},
                                     {"criterion": "Query plan captured", "met": True, "note": ""},
                                     {"criterion": "Fix measured", "met": False, "note": ""}])
    esc_run, actions = E.advance(run, E.AgentDone("investigate", 1, bad), w)
    assert actions == [E.PostStep("investigate", 1), E.Escalate()]
    esc = esc_run.escalation
    assert esc is not None and esc_run.state == E.ESCALATED
    assert {k: v for k, v in esc.items() if k != "options"} == {
        "trigger": "out-of-scope", "stage": "investigate",
        "issue": "INVESTIGATE did not meet its pass criteria: Root cause identified; Fix measured",
        "recommendation": "Option 1.", "blocking": "Every step after investigate.", "failure": None}
    assert menu(esc) == STEP_MENU
    # failed without naming a criterion: the sentence ends there
    esc_run, _ = E.advance(run, E.AgentDone("investigate", 1, ok(passed=False, criteria=[])), w)
    assert esc_run.escalation["issue"] == "INVESTIGATE did not meet its pass criteria."  # type: ignore[index]


def test_a_models_escalation_keeps_its_issue_recommendation_blocking_and_options() -> None:
    w = wf("backend-feature")
    proposal = {"trigger": "breaking-change", "issue": "Renames a public field",
                "recommendation": "Option 2: deprecate first", "blocking": "The implementation and review",
                "options": [{"title": "Rename now", "tradeoff": "Breaks clients."},
                            {"title": "Deprecate first"}, "not an option"]}
    run, actions = drive(E.Run.new("r", w), w, {"architecture": [ok(escalate=proposal)]})
    assert kinds(actions)[-2:] == ["PostStep:architecture", "Escalate"]
    esc = run.escalation
    assert esc is not None
    assert {k: v for k, v in esc.items() if k != "options"} == {
        "trigger": "breaking-change", "stage": "architecture", "issue": "Renames a public field",
        "recommendation": "Option 2: deprecate first", "blocking": "The implementation and review", "failure": None}
    assert esc["options"][:2] == [{"title": "Rename now", "tradeoff": "Breaks clients.", "action": "decide"},
                                  {"title": "Deprecate first", "tradeoff": "", "action": "decide"}]
    assert menu(esc)[2:] == [STOP]
    # a choice of the model's options: recorded with who chose it; the step's outcome stands and the flow goes on
    chosen, actions = E.advance(run, E.Command("approve", "owner", option=2), w)
    assert chosen.decisions == [{"stage": "architecture", "trigger": "breaking-change", "option": 2, "by": "owner",
                                 "choice": "Deprecate first"}]
    assert chosen.escalation is None and chosen.state == E.RUNNING
    assert chosen.steps["architecture"].status == E.FINISHED
    assert actions[0] == E.ResolveEscalation() and E.RunAgent("implementation", 1, PSE) in actions


def test_a_bare_escalation_from_a_model_falls_back_to_the_triggers_name_and_the_step_menu() -> None:
    w = wf("backend-feature")
    for proposal, trigger in (({}, "out-of-scope"), ({"trigger": "made-up"}, "out-of-scope"),
                              ({"trigger": "security-vs-speed", "recommendation": "", "options": []}, "security-vs-speed")):
        run, _ = drive(E.Run.new("r", w), w, {"architecture": [ok(escalate=proposal)]})
        esc = run.escalation
        assert esc is not None
        assert (esc["trigger"], esc["stage"], esc["issue"], esc["recommendation"], esc["blocking"]) == (
            trigger, "architecture", E.TRIGGERS[trigger], "Option 1.", "Every step after architecture.")
        assert menu(esc) == STEP_MENU


@pytest.mark.parametrize("kind, hint", [("no-model", "a model configured"), ("budget", "a budget raised"),
                                        ("api-error", "another attempt"), ("invalid-result", "another attempt")])
def test_a_failed_step_escalates_with_its_error_its_kind_and_a_retry_hint_that_fits(kind: str, hint: str) -> None:
    run, w = at_implementation()
    run, actions = E.advance(run, E.AgentFailed("implementation", 1, "The model's answer was cut off.", kind), w)
    assert actions == [E.Escalate()] and run.state == E.ESCALATED
    st = run.steps["implementation"]
    assert (st.status, st.error) == (E.FAILED, "The model's answer was cut off.")
    esc = run.escalation
    assert esc is not None
    assert {k: v for k, v in esc.items() if k != "options"} == {
        "trigger": "out-of-scope", "stage": "implementation", "issue": "The model's answer was cut off.",
        "recommendation": "Option 1.", "blocking": "Every step after implementation.", "failure": kind}
    assert menu(esc) == STEP_MENU
    retry, skip, stop = tradeoffs(esc)
    assert hint in retry
    assert "without this step's output" in skip and "thread stays open" in stop


def test_repeated_rejections_offer_accept_another_round_or_stop() -> None:
    run, _ = rejected_three_times()
    esc = run.escalation
    assert esc is not None and run.rejections == 3
    assert run.steps["review"].status == E.FINISHED  # the third iteration is over; the escalation holds it
    assert {k: v for k, v in esc.items() if k != "options"} == {
        "trigger": "repeated-rejections", "stage": "review",
        "issue": "The code-reviewer rejected the change 3 times without resolution.",
        "recommendation": "Option 1.", "blocking": "Every step after review.", "failure": None}
    assert menu(esc) == [("Accept the change with the reviewer's open findings", "continue"),
                         ("Give the implementer another round of review iterations", "retry"), STOP]
    accept, again, stop = tradeoffs(esc)
    assert "known issues" in accept and "tech-debt follow-ups" in accept
    assert "More time and tokens" in again and "findings go back as feedback" in again
    assert "Nothing more is done" in stop


def test_accepting_the_open_findings_moves_on_with_the_review_finished() -> None:
    run, w = rejected_three_times()
    run, actions = E.advance(run, E.Command("approve", "lead", option=1), w)
    assert actions == [E.ResolveEscalation(), E.RunAgent("validation", 1, DB)]
    assert run.steps["review"].status == E.FINISHED and run.escalation is None
    assert run.decisions == [{"stage": "review", "trigger": "repeated-rejections", "option": 1, "by": "lead",
                              "choice": "Accept the change with the reviewer's open findings"}]


def test_another_round_sends_the_last_findings_back_and_counts_afresh() -> None:
    last = review("REJECTED", critical=[{"text": "the third finding", "path": "q.sql", "line": 2}])
    run, w = rejected_three_times(last)
    run, actions = E.advance(run, E.Command("retry", "lead"), w)
    assert actions == [E.ResolveEscalation(), E.RunAgent("implementation", 4, DB)]
    assert run.rejections == 0 and run.steps["implementation"].feedback == last
    assert run.steps["review"].status == E.PENDING and run.escalation is None


# ---- choosing an option ----------------------------------------------------------------------

def failed() -> tuple[E.Run, Any]:
    run, w = at_implementation()
    run, _ = E.advance(run, E.AgentFailed("implementation", 1, "no model", "no-model"), w)
    return run, w


def test_approve_alone_takes_option_one() -> None:
    run, w = failed()
    run, actions = E.advance(run, E.Command("approve", "maintainer"), w)
    assert actions == [E.ResolveEscalation(), E.RunAgent("implementation", 2, DB)]
    assert run.decisions == [{"stage": "implementation", "trigger": "out-of-scope", "option": 1, "by": "maintainer",
                              "choice": "Run the step again"}]
    assert run.escalation is None and run.state == E.RUNNING


def test_skipping_a_failed_step_marks_it_skipped_and_runs_the_next() -> None:
    run, w = failed()
    run, actions = E.advance(run, E.Command("approve", "m", option=2), w)
    assert actions == [E.ResolveEscalation(), E.RunAgent("review", 1, "code-reviewer")]
    assert run.steps["implementation"].status == E.SKIPPED
    assert run.decisions[-1]["choice"] == "Skip this step and continue" and run.decisions[-1]["option"] == 2


def test_the_last_option_stops_the_run() -> None:
    run, w = failed()
    run, actions = E.advance(run, E.Command("approve", "m", option=3), w)
    assert actions == [E.ResolveEscalation()] and run.state == E.CANCELLED and run.escalation is None
    assert run.decisions[-1] == {"stage": "implementation", "trigger": "out-of-scope", "option": 3, "by": "m",
                                 "choice": "Stop this workflow"}


@pytest.mark.parametrize("n", [0, 4])
def test_an_option_out_of_range_is_answered_and_changes_nothing(n: int) -> None:
    run, w = failed()
    after, actions = E.advance(run, E.Command("approve", "m", option=n), w)
    assert after == run and len(actions) == 1
    assert f"no option {n}" in text_of(actions[0]) and "choose 1 to 3" in text_of(actions[0])


def test_retry_on_a_models_escalation_runs_the_step_again() -> None:
    w = wf("backend-feature")
    proposal = {"trigger": "conflicting-requirements", "issue": "x", "options": [{"title": "A", "tradeoff": "a"},
                                                                                 {"title": "B", "tradeoff": "b"}]}
    run, _ = drive(E.Run.new("r", w), w, {"architecture": [ok(escalate=proposal)]})
    run, actions = E.advance(run, E.Command("retry", "m"), w)
    assert actions == [E.ResolveEscalation(), E.RunAgent("architecture", 2, "backend-architect")]
    assert run.decisions[-1]["by"] == "m" and run.decisions[-1]["stage"] == "architecture"


# ---- commands --------------------------------------------------------------------------------

def test_escalate_stops_the_running_step_and_offers_resume_or_stop() -> None:
    run, w = at_implementation()
    esc_run, actions = E.advance(run, E.Command("escalate", "alice"), w)
    assert actions == [E.Escalate()] and esc_run.state == E.ESCALATED
    assert esc_run.steps["implementation"].status == E.PENDING
    assert esc_run.steps["investigate"].status == E.FINISHED
    esc = esc_run.escalation
    assert esc is not None
    assert {k: v for k, v in esc.items() if k != "options"} == {
        "trigger": "requested", "stage": "implementation", "issue": "@alice asked for a decision.",
        "recommendation": "Option 1.", "blocking": "Every step after implementation.", "failure": None}
    assert menu(esc) == [("Resume where the workflow stopped", "retry"), STOP]
    assert "runs again" in tradeoffs(esc)[0]
    with_reason, _ = E.advance(run, E.Command("escalate", "alice", reason="needs a product call"), w)
    assert with_reason.escalation["issue"] == "@alice asked for a decision: needs a product call"  # type: ignore[index]
    # asked again: already waiting; nothing changes
    again, actions = E.advance(esc_run, E.Command("escalate", "bob", reason="me too"), w)
    assert again == esc_run and len(actions) == 1
    assert text_of(actions[0]).startswith("This run is already waiting for a decision")
    # resume: the interrupted step runs again
    resumed, actions = E.advance(esc_run, E.Command("approve", "alice"), w)
    assert actions == [E.ResolveEscalation(), E.RunAgent("implementation", 2, DB)]
    assert resumed.decisions[-1] == {"stage": "implementation", "trigger": "requested", "option": 1, "by": "alice",
                                     "choice": "Resume where the workflow stopped"}


def test_escalate_while_waiting_for_approval_holds_the_approval_step() -> None:
    w = wf("database-performance")
    run, _ = drive(E.Run.new("r", w), w, {})
    assert run.state == E.WAITING and run.running() == []
    run, actions = E.advance(run, E.Command("escalate", "m"), w)
    assert actions == [E.Escalate()]
    assert run.escalation["stage"] == "approval"  # type: ignore[index]
    assert run.escalation["blocking"] == "Every step after approval."  # type: ignore[index]
    run, actions = E.advance(run, E.Command("approve", "m"), w)
    assert actions == [E.ResolveEscalation(), E.RunAgent("approval", 2, PSE)]


def test_cancel_stops_the_run_and_names_who_cancelled() -> None:
    run, w = at_implementation()
    cancelled, actions = E.advance(run, E.Command("cancel", "bob"), w)
    assert actions == [E.Reply("Cancelled by @bob.")] and cancelled.state == E.CANCELLED
    assert cancelled.steps["implementation"].status == E.PENDING  # its late result is ignored
    assert cancelled.steps["investigate"].status == E.FINISHED
    run, _ = E.advance(run, E.AgentFailed("implementation", 1, "x"), w)
    cancelled, actions = E.advance(run, E.Command("cancel", "carol"), w)  # an escalation open: it is resolved
    assert actions == [E.ResolveEscalation(), E.Reply("Cancelled by @carol.")]


def test_commands_on_a_finished_run_say_so() -> None:
    w = wf("database-performance")
    run, _ = drive(E.Run.new("r", w), w, {})
    done, _ = E.advance(run, E.Command("approve", "m"), w)
    assert done.state == E.DONE
    after, actions = E.advance(done, E.Command("approve", "m"), w)
    assert after == done and len(actions) == 1
    assert "already done" in text_of(actions[0]) and "`/approve` changes nothing" in text_of(actions[0])
    cancelled, _ = E.advance(run, E.Command("cancel", "m"), w)
    _, actions = E.advance(cancelled, E.Command("retry", "m"), w)
    assert "already cancelled" in text_of(actions[0]) and "`/retry` changes nothing" in text_of(actions[0])


def test_approve_or_retry_while_the_run_is_working_changes_nothing_and_says_why() -> None:
    run, w = at_implementation()
    after, actions = E.advance(run, E.Command("approve", "m"), w)
    assert after == run and len(actions) == 1
    assert text_of(actions[0]).startswith("Nothing is waiting for approval yet")
    after, actions = E.advance(run, E.Command("retry", "m"), w)
    assert after == run and len(actions) == 1
    assert text_of(actions[0]).startswith("No step has failed, so there is nothing to retry")
    assert text_of(actions[0]).endswith("carries on from where it is.")


# ---- pushes, stale approvals, refused deliveries ---------------------------------------------

def test_a_push_of_the_same_head_or_of_no_head_changes_nothing() -> None:
    run, w = waiting_on_pull()
    for sha in (A, ""):
        assert E.advance(run, E.HeadMoved(sha, paths=None), w) == (run, [])


def test_a_push_beside_the_change_asks_approval_again_naming_the_new_head() -> None:
    run, w = waiting_on_pull()
    run, actions = E.advance(run, E.HeadMoved(C, paths=("README.md",)), w)
    assert actions[:2] == [E.ReviewPull(C), E.AskApproval("approval")] and len(actions) == 3
    text = text_of(actions[2])
    assert f"New commits were pushed ({PREFIX_C})" in text and "do not touch the proposed change's files" in text
    assert "An approval given before them does not count" in text and "asked again for the new head" in text


@pytest.mark.parametrize("paths, why", [(CHANGED, "New commits touch files of the proposed change"),
                                        (None, "New commits were pushed and GitHub could not say which files they change")])
def test_a_push_on_the_change_makes_it_again_and_says_why(paths: tuple[str, ...] | None, why: str) -> None:
    run, w = waiting_on_pull()
    run, actions = E.advance(run, E.HeadMoved(C, paths=paths), w)
    assert actions[0] == E.ReviewPull(C) and actions[2] == E.RunAgent("implementation", 2, PSE) and len(actions) == 3
    assert text_of(actions[1]).startswith(f"{why} (now {PREFIX_C}), so **IMPLEMENTATION** makes the proposed change "
                                          "again on the new head")
    assert text_of(actions[1]).endswith("reviewed again before anything is approved.")
    assert run.head_sha == C and run.rejections == 0


def test_an_unreported_push_at_approve_is_not_approved_and_names_both_heads() -> None:
    run, w = waiting_on_pull()
    run, actions = E.advance(run, E.Command("approve", "m", head_sha=C, moved=("docs/x.md",)), w)
    assert actions[:2] == [E.ReviewPull(C), E.AskApproval("approval")]
    texts = replies(actions)
    assert len(texts) == 2 and PREFIX_C in texts[0]
    assert texts[1] == (f"`/approve` by @m was not applied: the pull request's head is {PREFIX_C}, "
                        f"not {PREFIX_A} as summarised.")
    assert run.state == E.WAITING and run.approval is None and run.head_sha == C


def test_a_push_while_escalated_is_noted_once_and_the_change_made_again_before_the_option() -> None:
    run, w = rejected_three_times()
    run.head_sha, run.on_pull = A, True
    moved, actions = E.advance(run, E.HeadMoved(C, paths=CHANGED), w)
    assert actions[0] == E.ReviewPull(C) and len(actions) == 2 and moved.stale_from == "implementation"
    text = text_of(actions[1])
    assert text.startswith(f"New commits were pushed ({PREFIX_C}) that may change files of the proposed change")
    assert "unless the workflow is stopped, the change is made again on the new head" in text
    assert text.endswith("before the chosen option goes on.")
    twice, actions = E.advance(moved, E.HeadMoved(B2 := "e" * 40, paths=CHANGED), w)
    assert actions == [E.ReviewPull(B2)] and twice.stale_from == "implementation"
    chosen, actions = E.advance(moved, E.Command("approve", "m", option=1), w)
    assert actions[0] == E.ResolveEscalation() and actions[-1] == E.RunAgent("implementation", 4, DB)
    assert text_of(actions[1]).startswith(f"New commits arrived while this waited for a decision (now {PREFIX_C})")
    assert chosen.stale_from is None and chosen.rejections == 0 and chosen.decisions[-1]["option"] == 1
    stopped, actions = E.advance(moved, E.Command("approve", "m", option=3), w)
    assert actions == [E.ResolveEscalation()] and stopped.state == E.CANCELLED and stopped.stale_from is None


def test_a_push_while_escalated_ignores_a_change_that_is_to_be_made_again_anyway() -> None:
    run, w = at_review(head_sha=A, on_pull=True)
    run, _ = E.advance(run, E.AgentDone("review", 1, review("REJECTED")), w)  # implementation iteration 2 runs
    run, _ = E.advance(run, E.Command("escalate", "m"), w)
    assert run.steps["implementation"].status == E.PENDING and run.steps["implementation"].result is not None
    moved, actions = E.advance(run, E.HeadMoved(C, paths=CHANGED), w)
    assert actions == [E.ReviewPull(C)] and moved.stale_from is None


def test_a_refused_delivery_names_the_new_head_and_makes_the_change_again() -> None:
    run, w = waiting_on_pull("error-investigation")
    run, _ = E.advance(run, E.Command("approve", "m", head_sha=A), w)
    run, actions = E.advance(run, E.DeliveryRefused(C), w)
    assert actions[0] == E.ReviewPull(C) and actions[2] == E.RunAgent("fix", 2, PSE)
    assert text_of(actions[1]).startswith(f"The branch moved after the approval (now {PREFIX_C}), so **FIX** makes")


def test_a_refused_delivery_without_a_change_says_nothing_was_committed() -> None:
    w = wf("database-performance")
    run, _ = drive(E.Run.new("r", w), w, {})  # no implement result carries changes
    run, _ = E.advance(run, E.Command("approve", "m"), w)
    after, actions = E.advance(run, E.DeliveryRefused(C), w)
    assert len(actions) == 1 and after.state == E.DONE and after.head_sha == C
    assert f"The branch moved to {PREFIX_C} after the approval" in text_of(actions[0])
    assert "nothing was committed" in text_of(actions[0])


def test_retry_where_no_retry_option_was_offered_records_a_retry_not_the_first_option() -> None:
    """A model's own options carry no retry: /retry runs the step again and says so, it does not pretend someone
    chose the model's first option."""
    w = wf("backend-feature")
    proposal = {"trigger": "conflicting-requirements", "issue": "REST or gRPC?", "recommendation": "Option 1.",
                "blocking": "Implementation", "options": [{"title": "Use REST", "tradeoff": "t1"},
                                                          {"title": "Use gRPC", "tradeoff": "t2"}]}
    run, _ = E.advance(E.Run.new("r", w), E.Start(), w)
    run, _ = E.advance(run, E.AgentDone("triage", 1, ok(escalate=proposal)), w)
    assert run.state == E.ESCALATED
    run, actions = E.advance(run, E.Command("retry", "m"), w)
    assert run.decisions[-1]["option"] is None and run.decisions[-1]["choice"] == "Run the step again (/retry)"
    assert "RunAgent:triage" in kinds(actions)


# ---- an /approve written before the push of the head it would approve --------------------------------

PUSHED = 1_800_000_000.0  # when the push of C landed, by GitHub's clock


@pytest.mark.parametrize(("written", "applied"), [(PUSHED - 60, False), (PUSHED, False), (PUSHED + 1, True),
                                                  (None, True)], ids=["before", "same-second", "after", "unknown"])
def test_an_approve_counts_only_when_written_at_or_after_the_push_of_the_head(written: float | None,
                                                                              applied: bool) -> None:
    run, w = waiting_on_pull()
    run, actions = E.advance(run, E.HeadMoved(C, paths=("docs/x.md",), at=PUSHED), w)
    assert run.state == E.WAITING and run.head_since == PUSHED and E.AskApproval("approval") in actions
    after, actions = E.advance(run, E.Command("approve", "m", head_sha=C, written_at=written), w)
    assert (after.approval == {"by": "m", "head_sha": C}) is applied
    if not applied:
        assert after.state == E.WAITING and replies(actions) == [
            f"`/approve` by @m was not applied: it was written before the push of {PREFIX_C}, so it approved the "
            "code before that push. Approve again if the change still stands on the new head."]


def test_a_push_whose_time_is_unknown_lets_no_old_time_stand() -> None:
    run, w = waiting_on_pull()
    run, _ = E.advance(run, E.HeadMoved(C, paths=("docs/x.md",), at=PUSHED), w)
    run, _ = E.advance(run, E.HeadMoved(B := "b" * 40, paths=("docs/x.md",)), w)  # no time in the event
    assert run.head_since is None  # not C's: an approval is judged by its head alone, as before any push
    after, _ = E.advance(run, E.Command("approve", "m", head_sha=B, written_at=PUSHED - 60), w)
    assert after.approval == {"by": "m", "head_sha": B}


def test_the_push_time_survives_the_runs_record() -> None:
    run, w = waiting_on_pull()
    run, _ = E.advance(run, E.HeadMoved(C, paths=("docs/x.md",), at=PUSHED), w)
    assert E.Run.from_dict(json.loads(json.dumps(run.to_dict()))).head_since == PUSHED
