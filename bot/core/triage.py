"""The Lead's triage: an event → which workflow, why, and how sure. Pure.

Labels first (the label→workflow map, the spec's Quick Reference by default), then content: the
title and body, a PR's changed paths, a CI failure's check name, with the learned model's points beside the
keyword rules (``bot/core/classify_learned.py``, ``workflows/triage_model.json``). A CI failure always starts
error-investigation (the spec: a failed check starts it by itself). An item nothing places clearly
gets ``workflow=None``, and the bot asks for a label instead of guessing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from bot.core.catalog import Catalog, learned_model
from bot.core.classify import classify, subclass_of
from bot.core.classify_explain import explain as explain_classification
from bot.core.events import CiFailure, WorkItem


@dataclass(frozen=True)
class Decision:
    workflow: str | None
    reason: str
    confidence: float
    labels_used: tuple[str, ...]
    subclass: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["labels_used"] = list(self.labels_used)
        return data


def _by_name(label_map: Mapping[str, Any]) -> dict[str, Any]:
    """The label map keyed by lowercased name: GitHub's label names are case-insensitive."""
    return {str(k).lower(): v for k, v in label_map.items()}


def allowed_workflows(catalog: Catalog, enabled: Iterable[str] | None) -> set[str]:
    """The workflows that may start: the catalog's, limited to those a repository's config turned on."""
    return set(catalog.workflows) if enabled is None else set(enabled) & set(catalog.workflows)


def _labels_used(labels: Iterable[str], label_map: Mapping[str, str], workflow: str | None) -> tuple[str, ...]:
    """The item's mapped labels that point at the workflow chosen: a label the content outweighed was not used."""
    lowered = _by_name(label_map)
    return tuple(label for label in labels if workflow is not None and lowered.get(label.lower()) == workflow)


def _steered(event: WorkItem, label_map: Mapping[str, Any]) -> str | None:
    """The workflow of a label a person has just added: labels present at opening are evidence weighed with the
    text, but adding one is how people steer the bot, so it decides whatever the content says. Only people with
    triage access can add one; an issue template's labels arrive as "labeled" too (part of the opening), and a
    bot's label (an Actions labeler reading the author's words) is no person's decision: neither steers."""
    if event.action != "labeled" or not event.added_label or event.label_at_opening or event.sender.is_bot:
        return None
    found = _by_name(label_map).get(event.added_label.lower())
    return found if isinstance(found, str) else None


def outweighed(labels: Iterable[str], label_map: Mapping[str, Any], allowed: Iterable[str]) -> tuple[str, ...]:
    """The item's labels that map to a workflow this repository runs: when the Lead asks anyway, adding one again
    is how a person starts it (:func:`_steered`)."""
    lowered, runs = _by_name(label_map), set(allowed)
    seen: set[str] = set()  # GitHub's label names are case-insensitive: one spelling of each, the first seen
    out = []
    for lab in labels:
        if lab.lower() not in seen and lowered.get(lab.lower()) in runs:
            seen.add(lab.lower())
            out.append(lab)
    return tuple(out)


def decide(event: WorkItem | CiFailure, catalog: Catalog, *, paths: Iterable[str] = (),
           checks: Iterable[str] = (), enabled: Iterable[str] | None = None) -> Decision:
    """The workflow for an issue, PR or CI failure. ``enabled`` limits the workflows a repo turned on."""
    if isinstance(event, CiFailure):
        if enabled is not None and "error-investigation" not in set(enabled):
            return Decision(None, "error-investigation is turned off for this repository", 0.0, ())
        verb = "timed out" if event.conclusion == "timed_out" else "failed"
        return Decision("error-investigation", f"the check '{event.name}' {verb} on "
                        f"{event.head_branch or event.head_sha[:7]}", 1.0, ())
    triage = catalog.triage
    c = classify(triage, title=event.title, body=event.body, labels=event.labels, paths=paths, checks=checks,
                 learned=learned_model(catalog))
    allowed = allowed_workflows(catalog, enabled)
    steered = _steered(event, triage.get("labels") or {})
    if steered is not None and steered != c.workflow and steered in allowed:  # a turned-off one steers nowhere
        content = "the content alone: " + (f"{c.workflow}, {c.reason}" if c.workflow else c.reason)
        c = replace(c, workflow=steered, confidence=1.0,
                    subclass=subclass_of(triage, steered, title=event.title, body=event.body, paths=paths,
                                         checks=checks),
                    reason=f"label '{event.added_label}' was just added: {steered} ({content})")
    used = _labels_used(event.labels, triage.get("labels") or {}, c.workflow)
    if c.workflow is not None and c.workflow not in allowed:
        return Decision(None, f"{c.reason}, but {c.workflow} is turned off for this repository", c.confidence, used)
    return Decision(c.workflow, c.reason, c.confidence, used, c.subclass)


def explain(event: WorkItem | CiFailure, catalog: Catalog, *, paths: Iterable[str] = (),
            checks: Iterable[str] = (), enabled: Iterable[str] | None = None) -> tuple[Decision, dict[str, Any]]:
    """:func:`decide`'s decision, unchanged, with its evidence as JSON (``python -m bot triage --explain``)."""
    paths, checks = list(paths), list(checks)
    decision = decide(event, catalog, paths=paths, checks=checks, enabled=enabled)
    if isinstance(event, CiFailure):
        return decision, {"decided_by": "ci", "why": decision.reason if decision.workflow is None else
                          "a failed or timed-out check starts error-investigation by itself (the spec); "
                          "its content is not scored"}
    c, evidence = explain_classification(catalog.triage, title=event.title, body=event.body, labels=event.labels,
                                         paths=paths, checks=checks, learned=learned_model(catalog))
    data = evidence.to_json()
    if c.workflow != decision.workflow:  # a person's label steered, or the repository turned the workflow off
        steered = _steered(event, catalog.triage.get("labels") or {}) if decision.workflow is not None else None
        data["why"] += f"; {decision.reason}" if steered else f"; {c.workflow} is turned off for this repository"
    return decision, data


def announce(decision: Decision, catalog: Catalog) -> str:
    """The Lead's opening line, in the spec's "I'll handle this using the … workflow" voice."""
    wf = catalog.workflows[decision.workflow or ""]
    sub = f", classified as '{decision.subclass}'" if decision.subclass else ""
    return f"{wf.announce}{sub}. Why: {decision.reason}."
