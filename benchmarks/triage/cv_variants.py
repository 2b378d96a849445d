"""Candidates for the Lead's learned evidence, compared out of fold on the tuning part only (issue 15, sixth round).

``train_learned.py`` chooses the shipped model's settings; this script asks whether anything else would do better,
by the same 5-fold cross-validation inside the tuning part (``train_learned.tuning_items`` drops the held-back rows
unread and ``train_learned.folds`` makes the folds), so no candidate is ever judged on a held-back issue:

- the learned model alone (its likeliest class): the shipped naive Bayes; naive Bayes also trained on every item
  with its labels removed ("label dropout", so words must carry the class without a label); naive Bayes on the
  1,000 features of most mutual information with the class; a multinomial logistic regression (plain SGD, L2);
- the rules with the model's points, as the bot adds them (``classify.placed`` on the sum): the shipped setting,
  whose model speaks where an issue-type label (``bug``, ``enhancement``, a label matched by its prefix) leads the
  rules' case and stays out where a label naming a kind of work does; the model kept out under every label (the
  Lead until the seventh round) or speaking under any label; and a separate weight for "no workflow fits".

The rules were tuned on most of the tuning part, so a combination's figure there is flattering; the columns
``fresh`` count the tuning items of batches ``2026-12-03e`` to ``2026-12-03g``, which no rule was tuned on.

    python benchmarks/triage/cv_variants.py        # ~1 minute
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(1, str(Path(__file__).resolve().parent))
import train_learned as T  # noqa: E402  (puts the repository root and benchmarks/ on the path)

from bot.core import classify, classify_learned  # noqa: E402
from bot.core.catalog import learned_model, load_catalog  # noqa: E402

NONE = classify_learned.NONE
Feats = frozenset[str]


class Scorer(Protocol):
    @property
    def classes(self) -> tuple[str, ...]: ...

    def scores(self, feats: frozenset[str]) -> Sequence[float]: ...


# ---- the learned candidates --------------------------------------------------------------------------------

# The shipped model's settings (train_learned.py chose them): "naive Bayes (shipped)" below is that model, out of fold.
_SHIPPED = json.loads((T.ROOT / "workflows" / "triage_model.json").read_text())


def naive_bayes(items: list[T.Item], min_df: int = _SHIPPED["min_df"], alpha: float = _SHIPPED["alpha"],
                keep: Callable[[T.Item], Feats] = lambda i: i.feats_kept) -> classify_learned.Model:
    """The shipped model's kind and settings, trained on ``keep(item)`` of each item."""
    data = T.counts([replace(i, feats_kept=keep(i)) for i in items], CLASSES, min_df)
    return classify_learned.from_counts({**data, "alpha": alpha, "temperature": _SHIPPED["temperature"], "weight": 0})


def label_dropout(items: list[T.Item]) -> classify_learned.Model:
    """Naive Bayes on every item twice: with its labels and without (labels are missing on half of real issues)."""
    return naive_bayes([*items, *(replace(i, feats_kept=i.feats_removed) for i in items)])


def most_informative(items: list[T.Item], k: int = 1000) -> classify_learned.Model:
    """Naive Bayes on the ``k`` features (held by at least two items) of most mutual information with the class."""
    n, by_class = len(items), Counter(i.expected for i in items)
    per: dict[str, Counter[str]] = {}
    for i in items:
        for f in i.feats_kept:
            per.setdefault(f, Counter())[i.expected] += 1

    def info(cc: Counter[str]) -> float:
        held, out = sum(cc.values()), 0.0
        for c, nc in by_class.items():
            for joint, marginal in ((cc[c], held), (nc - cc[c], n - held)):
                out += joint / n * math.log(joint * n / (marginal * nc)) if joint else 0.0
        return out

    ranked = sorted(((info(cc), f) for f, cc in per.items() if sum(cc.values()) >= 2), reverse=True)
    chosen = frozenset(f for _, f in ranked[:k])
    return naive_bayes(items, 1, 1.0, lambda i: i.feats_kept & chosen)


class Logistic:
    """Multinomial logistic regression on binary features scaled by 1/sqrt(count), L2, plain SGD."""

    def __init__(self, items: list[T.Item], lam: float = 1e-4, epochs: int = 30, rate: float = 0.5) -> None:
        self.classes = CLASSES
        seen = Counter(f for i in items for f in i.feats_kept)
        self.w = {f: [0.0] * len(CLASSES) for f, n in seen.items() if n >= 2}
        self.b = [0.0] * len(CLASSES)
        docs = [([f for f in i.feats_kept if f in self.w], CLASSES.index(i.expected)) for i in items]
        rnd, step = random.Random(0), 0
        for _ in range(epochs):
            rnd.shuffle(docs)
            for feats, y in docs:
                step += 1
                eta = rate / (1 + rate * lam * step)
                g = _softmax(self.scores(feats))
                g[y] -= 1
                z = 1 / math.sqrt(len(feats)) if feats else 0.0
                self.b = [b - eta * gk for b, gk in zip(self.b, g, strict=True)]
                for f in feats:
                    self.w[f] = [v * (1 - eta * lam) - eta * gk * z for v, gk in zip(self.w[f], g, strict=True)]

    def scores(self, feats: Iterable[str]) -> list[float]:
        known = [f for f in feats if f in self.w]
        out = list(self.b)
        for f in known:
            out = [s + v / math.sqrt(len(known)) for s, v in zip(out, self.w[f], strict=True)]
        return out


def _softmax(s: Iterable[float], temperature: float = 1.0) -> list[float]:
    s = [v / temperature for v in s]
    top = max(s)
    e = [math.exp(v - top) for v in s]
    return [v / sum(e) for v in e]


# ---- the combinations ----------------------------------------------------------------------------------------

type_led = classify.type_led  # the test of this script and older notes name it here


def combined(w: classify.Weighed, post: Mapping[str, float], setting: tuple[str, int, int, int],
             share: float = 1.0) -> str:
    """The Lead's decision with the model's points as ``setting`` (gate, workflow weight, none weight, weight where
    a label leads) adds them. Where a label leads the rules' case: gate "label" adds nothing (the Lead until the
    seventh round); "shipped" and "type" add the last weight only under issue-type labels (the Lead's own gate,
    ``classify.model_barred``); "any" adds it under any label. ``share`` scales the points as the Lead's
    ``classify.content_share`` does (the variants here were compared before it, at 1)."""
    gate, weight, none_weight, under_label = setting
    if classify.label_led(w):
        barred = gate == "label" or (gate in ("shipped", "type", "work") and classify.model_barred(w))
        weight = none_weight = 0 if barred else under_label
        if gate == "work":  # a label says there is work: the model may say which, not that there is none
            none_weight = 0
    if not weight and not none_weight:
        return classify.placed(w) or NONE
    points = {c: (round((none_weight if c == NONE else weight) * p * share), p) for c, p in post.items()}
    return classify.placed(_with_points(w, points)) or NONE


def _with_points(w: classify.Weighed, points: Mapping[str, tuple[int, float]]) -> classify.Weighed:
    """``classify.with_points`` without its label gate (the gate is what is being tested here)."""
    def hit(cls: str) -> tuple[classify.Hit, ...]:
        add, p = points.get(cls, (0, 0.0))
        return (classify.Hit("learned", "learned model", f"p={p:.2f}", add),) if add > 0 else ()

    rank = {str(x): i for i, x in enumerate(TRIAGE.get("priority") or [])}
    cases = [classify.Case(c.workflow, (*c.hits, *hit(c.workflow))) for c in w.cases]
    return replace(w, cases=classify._ordered(cases, rank), against=(*w.against, *hit(NONE)))


# ---- cross-validation --------------------------------------------------------------------------------------------

TRIAGE: Mapping[str, Any] = load_catalog().triage
CLASSES = (*sorted({str(w) for w in TRIAGE.get("priority") or []}), NONE)


def out_of_fold(items: list[T.Item], train: Callable[[list[T.Item]], Scorer],
                settings: Iterable[tuple[str, int, int, int]] = ()) -> dict[str, Counter[str]]:
    """Per candidate (the model alone, then each combination ``setting``): right answers with labels kept and
    removed, on the whole tuning part and on its fresh batch, and placeable items asked about."""
    settings, fold_of = list(settings), T.folds(items)
    out: dict[str, Counter[str]] = {"alone": Counter(), **{str(s): Counter() for s in settings}}
    for f in range(T.K):
        model = train([i for i, k in zip(items, fold_of, strict=True) if k != f])
        for item in (i for i, k in zip(items, fold_of, strict=True) if k == f):
            for tag, w, feats in (("kept", item.kept, item.feats_kept), ("removed", item.removed, item.feats_removed)):
                # Softened by the model's temperature, as the bot's posterior is (without it, the shipped combination
                # scored below the rules alone here while train_learned.py, through the bot's code, scored above them).
                post = dict(zip(model.classes, _softmax(model.scores(feats), getattr(model, "temperature", 1.0)),
                                strict=True))
                got = {"alone": max(post, key=lambda c: post[c]), **{str(s): combined(w, post, s) for s in settings}}
                for name, decided in got.items():
                    _tally(out[name], tag, item, decided)
    return out


def _tally(t: Counter[str], tag: str, item: T.Item, decided: str) -> None:
    t[tag] += decided == item.expected
    t[f"fresh {tag}"] += item.batch in T.FRESH and decided == item.expected
    t[f"asked {tag}"] += item.expected != NONE and decided == NONE


def main() -> int:
    items = T.tuning_items()
    shipped = learned_model(load_catalog())
    w = shipped.weight if shipped is not None else 4
    settings = [("shipped", 0, 0, 0), ("shipped", w, w, w), ("label", w, w, 0), ("any", w, w, w), ("any", w, w, 2 * w),
                ("type", w, w, 2 * w), ("work", w, w, w), ("shipped", w, 2 * w, w), ("shipped", w // 2, w, w // 2)]
    fresh = sum(i.batch in T.FRESH for i in items)
    print(f"{T.K}-fold out of fold, tuning part only: {len(items)} items ({fresh} fresh, batches {', '.join(T.FRESH)}), "
          f"{sum(i.expected != NONE for i in items)} placeable")
    print("| candidate | kept | removed | fresh kept | fresh removed | asked (kept, removed) |\n|---|---|---|---|---|---|")
    candidates: list[tuple[str, Callable[[list[T.Item]], Scorer], list[tuple[str, int, int, int]]]] = [
        ("naive Bayes (shipped)", naive_bayes, settings), ("naive Bayes, label dropout", label_dropout, settings[1:3]),
        ("naive Bayes, 1,000 most informative features", most_informative, []), ("logistic regression", Logistic, [])]
    for name, train, combos in candidates:
        for key, t in out_of_fold(items, train, combos).items():
            what = f"{name} alone" if key == "alone" else f"rules + {name}, (gate, weight, none, under a label) {key}"
            print(f"| {what} | {t['kept']} | {t['removed']} | {t['fresh kept']} | {t['fresh removed']} | "
                  f"{t['asked kept']}, {t['asked removed']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
