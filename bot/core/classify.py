"""The Lead's deterministic triage: labels first, then weighted keywords, from ``workflows/triage.yml``.

Used when no model is configured. Matching follows the rules in the header of ``triage.yml``:
labels (lowercase) map to workflows and the first in ``priority`` wins; otherwise each keyword hit in
the title and body, each matching changed path and each matching failing check adds its weight.
Hidden text (HTML comments, invisible characters) is stripped first: people cannot see it, so it
must not steer the triage. :func:`explain` returns the same classification with the evidence behind it
(every workflow's labels, hits, score and verdict) for ``python -m bot triage --explain``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

from bot.core.sanitize import strip_hidden

MIN_SCORE = 3  # below this, keywords are too thin to pick a workflow


@dataclass(frozen=True)
class Classification:
    workflow: str | None
    subclass: str | None
    reason: str
    confidence: float


def _text_hit(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase.lower())}(?!\w)", text) is not None


def _path_hit(path: str, pattern: str) -> bool:
    path, name = path.lower(), PurePosixPath(path).name.lower()
    pattern = pattern.lower()
    if pattern.endswith("/"):
        return path.startswith(pattern) or f"/{pattern}" in path
    if "*" in pattern:
        return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(name, pattern)
    return path == pattern or name == pattern or path.endswith(f"/{pattern}")


@dataclass(frozen=True)
class Hit:
    """One keyword, changed path or failing check that scored for a workflow, and its weight."""

    kind: Literal["text", "path", "check"]
    pattern: str  # as written in triage.yml
    matched: str  # what it matched: the phrase, the changed file, the check's name
    weight: int

    @property
    def why(self) -> str:
        return f'"{self.pattern}"' if self.kind == "text" else f"{self.kind} {self.matched}"


def _hits(spec: Mapping[str, Any], text: str, paths: list[str], checks: list[str]) -> list[Hit]:
    hits = [Hit("text", str(phrase), str(phrase), int(weight))
            for phrase, weight in (spec.get("text") or {}).items() if _text_hit(text, str(phrase))]
    for pattern, weight in (spec.get("paths") or {}).items():
        if path := next((p for p in paths if _path_hit(p, str(pattern))), None):
            hits.append(Hit("path", str(pattern), path, int(weight)))
    for part, weight in (spec.get("checks") or {}).items():
        if check := next((c for c in checks if str(part).lower() in c.lower()), None):
            hits.append(Hit("check", str(part), check, int(weight)))
    return hits


def _score(spec: Mapping[str, Any], text: str, paths: list[str], checks: list[str]) -> tuple[int, list[str]]:
    hits = _hits(spec, text, paths, checks)
    return sum(h.weight for h in hits), [h.why for h in hits]


def _subclass(triage: Mapping[str, Any], workflow: str, text: str, paths: list[str], checks: list[str]) -> str | None:
    per = (triage.get("subclass_keywords") or {}).get(workflow) or {}
    scored = [(_score(spec, text, paths, checks)[0], name) for name, spec in per.items()]
    best = max(scored, default=(0, None), key=lambda s: s[0])
    return best[1] if best[0] > 0 else None


def classify(triage: Mapping[str, Any], *, title: str, body: str, labels: Iterable[str] = (),
             paths: Iterable[str] = (), checks: Iterable[str] = ()) -> Classification:
    """The workflow for an issue, PR or CI failure, with its evidence; workflow None when nothing is clear."""
    priority = list(triage.get("priority") or [])
    rank = {w: i for i, w in enumerate(priority)}
    text = strip_hidden(f"{title}\n{body}").lower()
    paths, checks = list(paths), list(checks)
    by_label = {str(k).lower(): v for k, v in (triage.get("labels") or {}).items()}
    labelled = sorted({(by_label[lab.lower()], lab) for lab in labels if lab.lower() in by_label},
                      key=lambda wl: rank.get(wl[0], len(rank)))
    if labelled:
        workflow, label = labelled[0]
        others = sorted({w for w, _ in labelled[1:] if w != workflow})
        note = f" (over {', '.join(others)}, by priority)" if others else ""
        return Classification(workflow, _subclass(triage, workflow, text, paths, checks),
                              f"label '{label}' maps to {workflow}{note}", 0.9)
    scores = sorted(((*_score(spec, text, paths, checks), w) for w, spec in (triage.get("keywords") or {}).items()),
                    key=lambda s: (-s[0], rank.get(s[2], len(rank))))
    if not scores or scores[0][0] < MIN_SCORE:
        hint = f"; the closest was {scores[0][2]} (score {scores[0][0]})" if scores and scores[0][0] else ""
        return Classification(None, None, f"no label or keyword clearly matches a workflow{hint}", 0.1)
    (top, why, workflow), second = scores[0], scores[1][0] if len(scores) > 1 else 0
    confidence = round(min(0.85, top / (top + second + 2)), 2)
    reason = f"keywords for {workflow} (score {top}): {', '.join(why[:8])}"
    if second:
        reason += f"; next best {scores[1][2]} (score {second})"
    return Classification(workflow, _subclass(triage, workflow, text, paths, checks), reason, confidence)


# ---- the evidence behind a classification (``python -m bot triage --explain``) ----------------------

@dataclass(frozen=True)
class Candidate:
    """One workflow's case: the item's labels that map to it, what scored for it, and how it fared."""

    workflow: str
    labels: tuple[str, ...]
    labels_used: bool  # True when these labels made the decision
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
    why: str  # why the winner won (or why nothing did): priority, confidence, the threshold
    threshold: int
    priority: tuple[str, ...]
    candidates: tuple[Candidate, ...]  # the winner first, then the labelled, then by score
    subclasses: tuple[tuple[str, int, tuple[Hit, ...]], ...]  # the winner's subclasses: name, score, hits

    def to_json(self) -> dict[str, Any]:
        return {"decided_by": self.decided_by, "why": self.why, "threshold": self.threshold,
                "priority": list(self.priority), "workflows": [c.to_json() for c in self.candidates],
                "subclasses": [{"subclass": name, "score": score, "hits": [asdict(h) for h in hits]}
                               for name, score, hits in self.subclasses]}


def explain(triage: Mapping[str, Any], *, title: str, body: str, labels: Iterable[str] = (),
            paths: Iterable[str] = (), checks: Iterable[str] = ()) -> tuple[Classification, Evidence]:
    """:func:`classify`'s result, unchanged, with the evidence for and against every workflow."""
    labels, paths, checks = list(labels), list(paths), list(checks)
    c = classify(triage, title=title, body=body, labels=labels, paths=paths, checks=checks)
    priority = tuple(str(w) for w in triage.get("priority") or [])
    rank = {w: i for i, w in enumerate(priority)}
    text = strip_hidden(f"{title}\n{body}").lower()
    by_label = {str(k).lower(): str(v) for k, v in (triage.get("labels") or {}).items()}
    keywords = triage.get("keywords") or {}
    mapped = {lab: by_label[lab.lower()] for lab in labels if lab.lower() in by_label}
    decided_by: Literal["label", "keywords", "nothing"] = (
        "label" if mapped else "keywords" if c.workflow else "nothing")
    cases = []
    for w in set(keywords) | set(by_label.values()) | set(priority):
        hits = tuple(_hits(keywords.get(w) or {}, text, paths, checks))
        labs = tuple(lab for lab, to in mapped.items() if to == w)
        cases.append((w, labs, hits, sum(h.weight for h in hits)))
    cases.sort(key=lambda k: (k[0] != c.workflow, not k[1], -k[3], rank.get(k[0], len(rank)), k[0]))
    top = next((score for w, _, _, score in cases if w == c.workflow), 0)
    candidates = tuple(Candidate(w, labs, decided_by == "label" and w == c.workflow, hits, score,
                                 _verdict(decided_by, w, labs, score, c.workflow, top))
                       for w, labs, hits, score in cases)
    per = ((triage.get("subclass_keywords") or {}).get(c.workflow) or {}) if c.workflow else {}
    subclasses = tuple((str(name), sum(h.weight for h in hs), tuple(hs))
                       for name, spec in per.items() for hs in [_hits(spec, text, paths, checks)])
    return c, Evidence(decided_by, _why(decided_by, c, candidates), MIN_SCORE, priority, candidates, subclasses)


def _verdict(decided_by: str, workflow: str, labels: tuple[str, ...], score: int, winner: str | None,
             top: int) -> str:
    """Why one workflow won or lost, in a sentence."""
    named = ", ".join(f"'{lab}'" for lab in labels)
    if decided_by == "label":
        if workflow == winner:
            return f"chosen: label {named} maps here, and labels decide before keywords"
        if labels:
            return f"label {named} maps here, but {winner} comes first in priority"
        return f"scored {score}, but labels decide before keywords" if score else "no label or keyword for it"
    if workflow == winner:
        return f"chosen: the highest score, {score}, at least the threshold {MIN_SCORE}"
    if not score:
        return "nothing scored for it"
    if winner is None:
        return f"score {score} is below the threshold {MIN_SCORE}"
    if score == top:
        return f"ties with {winner} at {score}, but {winner} comes first in priority"
    return f"score {score} is below {winner}'s {top}"


def _why(decided_by: str, c: Classification, candidates: tuple[Candidate, ...]) -> str:
    """Why the winner won, or why nothing did: priority, confidence and the threshold for asking."""
    if decided_by == "label":
        return f"labels decide before keywords: {c.reason}; confidence {c.confidence} for a label"
    if decided_by == "nothing":
        return (f"no label maps to a workflow and no score reaches the threshold {MIN_SCORE}: "
                "the bot asks for a label instead of guessing")
    top = candidates[0].score
    second = max((k.score for k in candidates[1:]), default=0)
    return (f"{c.workflow} has the highest score, {top} (threshold {MIN_SCORE}), next best {second}; "
            f"confidence {c.confidence} = {top}/({top}+{second}+2), at most 0.85")
