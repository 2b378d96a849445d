"""Attacks on issue 16's scale work and on the Lead's learned model beside labels: a save lost right after a wave of
writes (their records ride with the next save), and the learned model beside issue-type, work-naming, closing and
documentation labels (bot/core/classify.py). A test that passes is an attack the code holds; one kept
``xfail(strict=True)`` is an attack that succeeds, its reason the harm. (The attacks on deferred token settlements and
on slots taken n at a time were run against a change that did not land; they are kept outside the repository.)"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from bot.core.catalog import learned_model, load_catalog
from bot.core.classify import classify, model_barred, weigh
from bot.core.markers import markers_in
from bot.store import StoreUnavailable
from bot.store.base import Along
from tests.conftest import INSTALLATION
from tests.test_budget_ceilings import served_tokens
from tests.test_workflows_e2e import REPO, body_of, bot, fake, issue_payload, posts, send, team  # noqa: F401

# ---- 1b. a job killed between posting and its save (real gidgethub and anthropic against the fakes) ---------

@pytest.mark.parametrize("which", ["the-drains-last"])  # "with-the-next-step": only with saves that did not land
async def test_a_save_lost_after_a_wave_of_writes_posts_nothing_twice(which: str, bot: Any, sandbox: Any,  # noqa: F811
                                                                      team: Any, fake: Any) -> None:  # noqa: F811
    """The save that would carry a wave's posted records (with the next step's result, or the drain's last, with
    the status comment's final body) fails once (the store down at the worst moment): the job is retried; nothing is posted twice, the run ends where it would, the status
    comment says what the store says, and the day's tokens equal what the steps used."""
    rt, _ = bot
    sandbox.set_permission(REPO, "maintainer", "maintain")
    failed: list[str] = []
    for name in ("save_run", "save_run_fields"):
        inner = getattr(rt.store, name)

        async def flaky(*args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
            along = args[-1] if args and isinstance(args[-1], Along) else kwargs.get("along")
            if not failed and along is not None and along.posted and (along.step is not None) == (
                    which == "with-the-next-step"):
                failed.append("once")
                raise StoreUnavailable("the store went away")
            return await _inner(*args, **kwargs)
        setattr(rt.store, name, flaky)
    await send(bot, sandbox, "issues", issue_payload(70, ["api"]))
    assert failed == ["once"]  # the attack happened
    counts = Counter(k for c in sandbox.comments(REPO, 70) for k in markers_in(c["body"]))
    assert counts and all(n == 1 for n in counts.values()), counts
    assert posts(sandbox, 70)[-1] == "approval"
    run = await rt.store.active_run(f"{REPO}#70")
    assert run is not None and run.data["status_body"]
    assert run.data["status_body"] in body_of(sandbox, 70, "status")  # the comment says what the store holds
    day = time.strftime("%Y-%m-%d", time.gmtime())
    # Every token the Messages API served is counted, the lost step's twice-made call included (no reservation
    # left at its reserved amount, none settled twice); the step records count the retried step once.
    assert await rt.store.spent(f"day:{INSTALLATION}:{day}") == served_tokens(fake)
    used = await rt.store.usage_on(INSTALLATION, day)
    assert used < served_tokens(fake) if which == "with-the-next-step" else used == served_tokens(fake)



# ---- 3. the learned model beside issue-type labels --------------------------------------------------------------

CATALOG = load_catalog()
MODEL = learned_model(CATALOG)
TRIAGE = CATALOG.triage
SECURITY_WORDS = "vulnerable untrusted arbitrary crafted attackers xxe entity denial redirection poc"
PROJECT_WORDS = ("typescript react vue incrementally rewrite component refactor migrating stories maintainable "
                 "internationalization epics tickets tasks components frontend")


def placed(title: str, body: str, labels: list[str], *, learned: bool = True) -> str | None:
    return classify(TRIAGE, title=title, body=body, labels=labels, learned=MODEL if learned else None).workflow


@pytest.mark.parametrize("label", ["api", "API", "kind/api", "type: security", ":lock: security", "Security 🔒",
                                   "area/database"])
def test_a_label_naming_the_work_bars_the_model_in_any_form(label: str) -> None:
    """Hostile words for long-running-project: the model may not move an item off a label naming its work."""
    for words in (SECURITY_WORDS, PROJECT_WORDS):
        assert placed("Save button does nothing", words, [label]) == placed(
            "Save button does nothing", words, [label], learned=False)


def test_keyword_stuffing_under_bug_moves_the_item_but_the_rules_alone_could_already() -> None:
    """Under a template's ``bug`` an outsider's word list moves the item to security-fix or long-running-project
    (files up to max_issues_per_run task issues and starts child runs before any /approve) where the rules alone
    say error-investigation; but a title the outsider also writes takes the rules there with no model at all, so
    the model gives an outsider no workflow they could not already start (lockdown is the guard for that)."""
    assert placed("Crash when saving", PROJECT_WORDS, ["bug"], learned=False) == "error-investigation"
    assert placed("Crash when saving", PROJECT_WORDS, ["bug"]) == "long-running-project"
    assert placed("Roadmap: plan multiple sessions", "epic roadmap milestones phases", ["bug"],
                  learned=False) == "long-running-project"
    assert placed("Security vulnerability: attacker gets tokens", "", ["bug"], learned=False) == "security-fix"


@pytest.mark.parametrize("extra", [["good first issue"], ["needs-triage", "p1", "help wanted"], ["foo", "bar"] * 20])
def test_labels_the_map_does_not_know_do_not_bar_or_unbar_the_model(extra: list[str]) -> None:
    """Only a label naming the work bars the model. (The model reads the names of the labels it was trained with as
    words, "help wanted" and "p1" among them, so with the linear SVM of round 15 they may move its points; a
    maintainer sets them, an outsider cannot.)"""
    for labels in (["bug", *extra], ["api", *extra]):
        w = weigh(TRIAGE, title="Crash when saving", body=PROJECT_WORDS, labels=labels)
        base = weigh(TRIAGE, title="Crash when saving", body=PROJECT_WORDS, labels=labels[:1])
        assert [c.workflow for c in w.cases][:1] == [c.workflow for c in base.cases][:1]
        assert model_barred(w) == model_barred(base) == (labels[0] == "api")
    assert placed("Crash when saving", PROJECT_WORDS, ["api", *extra]) == placed("Crash when saving", PROJECT_WORDS,
                                                                               ["api"]) == "backend-feature"


@pytest.mark.parametrize("closing", ["wontfix", "Won't Fix", "status: wontfix", "resolution/duplicate",
                                     "❌ wontfix", "Status: Invalid"])
def test_a_closing_label_beside_others_stops_the_model_too(closing: str) -> None:
    assert placed("Crash when saving", SECURITY_WORDS, ["bug", closing, "api"]) is None


@pytest.mark.parametrize("closing", ["wont-fix", "not-planned", "won\u2019t fix"])
def test_a_closing_label_in_other_spellings_stops_the_run(closing: str) -> None:
    assert placed("Crash when saving", SECURITY_WORDS, ["bug", closing]) is None


@pytest.mark.parametrize("labels", [["documentation"], ["docs"], ["bug", "documentation"], ["type: docs"]])
def test_a_documentation_label_is_not_overturned_by_the_model(labels: list[str]) -> None:
    assert placed("Crash when saving", PROJECT_WORDS, labels, learned=False) is None  # the rules ask
    assert placed("Crash when saving", PROJECT_WORDS, labels) is None
