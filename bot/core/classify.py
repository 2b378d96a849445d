"""The Lead's deterministic triage: labels first, then weighted keywords, from ``workflows/triage.yml``.

Used when no model is configured. Matching follows the rules in the header of ``triage.yml``:
labels (lowercase) map to workflows and the first in ``priority`` wins; otherwise each keyword hit in
the title and body, each matching changed path and each matching failing check adds its weight.
Hidden text (HTML comments, invisible characters) is stripped first: people cannot see it, so it
must not steer the triage.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

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


def _score(spec: Mapping[str, Any], text: str, paths: list[str], checks: list[str]) -> tuple[int, list[str]]:
    score, why = 0, list[str]()
    for phrase, weight in (spec.get("text") or {}).items():
        if _text_hit(text, str(phrase)):
            score, why = score + int(weight), why + [f'"{phrase}"']
    for pattern, weight in (spec.get("paths") or {}).items():
        if hit := next((p for p in paths if _path_hit(p, str(pattern))), None):
            score, why = score + int(weight), why + [f"path {hit}"]
    for part, weight in (spec.get("checks") or {}).items():
        if hit := next((c for c in checks if str(part).lower() in c.lower()), None):
            score, why = score + int(weight), why + [f"check {hit}"]
    return score, why


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
