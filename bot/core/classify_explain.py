"""The evidence behind a classification, for a person checking it (``python -m bot triage --explain``).

:func:`explain` returns :func:`bot.core.classify.classify`'s result, unchanged, with the evidence for and against
every workflow, read from the same scoring (:func:`bot.core.classify.weigh`) so the two cannot drift apart; with a
learned model, also what it said, what it added (nothing when a label naming the work is on the item and a label
leads the rules' case: then each class's ``would_add`` says what it would have added) and what the rules alone
would have decided. Never read by the bot itself to decide anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from bot.core.classify import (
    MARGIN,
    MIN_KNOWN,
    MIN_SCORE,
    Case,
    Classification,
    Hit,
    Weighed,
    _asks,
    _decide,
    _hits,
    content_share,
    label_led,
    label_names,
    model_barred,
    placed,
    says_documentation,
    weigh,
    weighed_text,
    with_learned,
)
from bot.core.classify_learned import Model, features


@dataclass(frozen=True)
class Candidate:
    """One workflow's case: the item's labels that map to it, what scored for it, and how it fared."""

    workflow: str
    labels: tuple[str, ...]
    labels_used: bool  # True when this workflow won and its labels were part of the evidence
    hits: tuple[Hit, ...]
    score: int
    verdict: str  # one sentence: why it won or lost

    def to_json(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "score": self.score,
                "labels": [{"label": lab, "used": self.labels_used} for lab in self.labels],
                "hits": [asdict(h) for h in self.hits], "verdict": self.verdict}


@dataclass(frozen=True)
class Evidence:
    """Everything :func:`classify` weighed, for a person checking a decision; never read by the bot itself."""

    decided_by: Literal["label", "keywords", "nothing"]
    why: str  # why the winner won (or why nothing did): the threshold, the evidence against, confidence
    threshold: int
    priority: tuple[str, ...]
    candidates: tuple[Candidate, ...]  # the winner first, then by score
    against: tuple[Hit, ...]  # the evidence that no workflow fits
    subclasses: tuple[tuple[str, int, tuple[Hit, ...]], ...]  # the winner's subclasses: name, score, hits
    learned: Mapping[str, Any] | None = None  # what the learned model said and added, and the rules' own decision

    def to_json(self) -> dict[str, Any]:
        return {"decided_by": self.decided_by, "why": self.why, "threshold": self.threshold,
                "priority": list(self.priority), "workflows": [c.to_json() for c in self.candidates],
                "no_workflow": {"score": sum(h.weight for h in self.against),
                                "hits": [asdict(h) for h in self.against]},
                "subclasses": [{"subclass": name, "score": score, "hits": [asdict(h) for h in hits]}
                               for name, score, hits in self.subclasses],
                "learned": dict(self.learned) if self.learned is not None else None}


def explain(triage: Mapping[str, Any], *, title: str, body: str, labels: Iterable[str] = (),
            paths: Iterable[str] = (), checks: Iterable[str] = (),
            learned: Model | None = None) -> tuple[Classification, Evidence]:
    """:func:`classify`'s result, unchanged, with the evidence for and against every workflow."""
    paths, checks, labels = list(paths), list(checks), [str(lab) for lab in labels]
    rules = weigh(triage, title=title, body=body, labels=labels, paths=paths, checks=checks)
    w = rules if learned is None else with_learned(triage, rules, learned, labels)
    c = _decide(triage, w, paths, checks)
    winner = next((k for k in w.cases if k.workflow == c.workflow), None)
    decided_by: Literal["label", "keywords", "nothing"] = (
        "nothing" if winner is None else "label" if winner.labels else "keywords")
    cases = sorted(w.cases, key=lambda k: k.workflow != c.workflow)  # stable: the winner first, then by score
    candidates = tuple(Candidate(k.workflow, k.labels, k is winner and bool(k.labels), k.hits, k.score,
                                 _verdict(k, winner, w)) for k in cases)
    per = ((triage.get("subclass_keywords") or {}).get(c.workflow) or {}) if c.workflow else {}
    subclasses = tuple((str(name), sum(h.weight for h in hs), tuple(hs))
                       for name, spec in per.items() for hs in [_hits(spec, weighed_text(w), paths, checks)])
    priority = tuple(str(p) for p in triage.get("priority") or [])
    said = None if learned is None else _learned_evidence(learned, rules, labels, c.workflow)
    return c, Evidence(decided_by, _why(c, w), MIN_SCORE, priority, candidates, w.against, subclasses, said)


def _learned_evidence(learned: Model, rules: Weighed, labels: list[str], chosen: str | None) -> dict[str, Any]:
    """What the learned model said (its probabilities, the points it added, the words that spoke most for its
    favourite) and what the rules alone would have decided, so a reader sees whether it changed the decision."""
    feats = features(rules.text.title, rules.text.prose, (n for lab in labels for n in label_names(lab)),
                     rules.text.shapes)
    share = content_share(rules, learned, feats)
    points = learned.points(feats, share, learned.grams(rules.text.title, rules.text.prose))
    favourite = max(points, key=lambda k: points[k][1])
    alone = placed(rules)
    added = not model_barred(rules) and share > 0
    return {"weight": learned.weight, "temperature": learned.temperature, "linear_mix": learned.mix,
            # the share of its weight it may use: less where a label leads and the issue has few words of its own,
            # none where no label leads and it knows at most MIN_KNOWN of them (classify.content_share)
            "share": round(share, 3), "trained_on": learned.about,
            "added": added,
            "why": _learned_why(rules, learned, feats, added),
            # naive Bayes's most telling features for the favourite (the SVM's part is not broken down by feature)
            "favourite": favourite or None, "telling_features": learned.telling(feats, favourite),
            # "points" is what it added to the score (0 when it is barred), "would_add" what it adds when it may:
            # a reader must not take points the model was kept from adding for points in the score.
            "classes": [{"workflow": k or None, "probability": round(p, 3), "points": add if added else 0,
                         "would_add": add}
                        for k, (add, p) in sorted(points.items(), key=lambda kv: -kv[1][1])],
            "rules_alone": alone, "changed_the_decision": alone != chosen}


def _verdict(case: Case, winner: Case | None, w: Weighed) -> str:
    """Why one workflow won or lost, in a sentence."""
    named = f" (label {', '.join(repr(lab) for lab in case.labels)} among them)" if case.labels else ""
    if case is winner:
        best = "the highest score" if case.score >= w.second else f"a tie within {MARGIN} won"
        return f"chosen: {best}, {case.score}{named}, at least the threshold {MIN_SCORE}"
    if not case.score:
        return "nothing scored for it"
    if winner is None:
        if case.score < MIN_SCORE:
            return f"score {case.score}{named} is below the threshold {MIN_SCORE}"
        return f"score {case.score}{named}, but the Lead asks: {_asks(w)}"
    if abs(winner.score - case.score) <= MARGIN:
        return f"ties with {winner.workflow} (within {MARGIN}) at {case.score}{named}, but {_tie_break(winner, case)}"
    return f"score {case.score}{named} is below {winner.workflow}'s {winner.score}"


def _learned_why(rules: Weighed, learned: Model, feats: frozenset[str], added: bool) -> str:
    """Why the learned model added what it did, or nothing (found by attack, session 32: a thin or stuffed body
    showed "added" with a share of 0 and no reason)."""
    if added:
        return "its points join each workflow's score and the evidence that none fits"
    if rules.stuffed:
        return "nothing added: the body is mostly the rules' own keywords, a list rather than a report"
    if says_documentation(rules):
        return "nothing added: a documentation label says no workflow fits, and only the rules may overturn it"
    if label_led(rules) and rules.top is not None:
        led = f"nothing added: label {', '.join(repr(lab) for lab in rules.top.labels)} leads the rules' case and "
        if model_barred(rules):
            return led + "only the rules may overturn a label that names a kind of work"
        return led + "the model knows no word of the issue's own text to weigh against it"  # points by words known
    return (f"nothing added: it knows {learned.words_known(feats)} feature(s) of the issue's own text, too few to "
            f"tell one kind of work from another (it speaks past {MIN_KNOWN} where no label leads)")


def _why(c: Classification, w: Weighed) -> str:
    """Why the winner won, or why nothing did: the threshold, the evidence against, the confidence."""
    unread = ("the body is mostly the rules' own keywords, a list rather than a report, so neither the rules' "
              "keywords nor the learned model weigh it; " if w.stuffed else "")
    if c.workflow is None:
        return f"{unread}{c.reason}: the bot asks for a label instead of guessing (threshold {MIN_SCORE})"
    winner, runner_up = w.cases[0], w.cases[1] if len(w.cases) > 1 else None
    tie = (f", a tie (within {MARGIN}) {_tie_break(winner, runner_up)}"
           if runner_up and runner_up.score and winner.score - runner_up.score <= MARGIN else "")
    return (f"{unread}labels and content weighed together; {c.workflow} wins with {winner.score} (threshold {MIN_SCORE}), "
            f"next best {w.second}{tie}; no-workflow evidence {w.against_score}; confidence {c.confidence}, "
            "0.5 on a tie rising with the lead and the evidence, at most 0.9")


def _tie_break(winner: Case, loser: Case) -> str:
    """How the margin rule broke a tie, in words."""
    if winner.in_title and not loser.in_title:
        return f"{winner.workflow} won: the title speaks for it"
    if loser.by_form and not winner.by_form:
        return f"{winner.workflow} won: {loser.workflow}'s case rests on an issue-type label, its on the content"
    return f"{winner.workflow} won: it comes first in priority"
