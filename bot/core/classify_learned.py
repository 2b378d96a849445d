"""The Lead's learned evidence: a naive Bayes model of words, word pairs and labels, trained on labelled issues.

The keyword rules in ``workflows/triage.yml`` know the words someone wrote down; a maintainer also knows the words
that usually come with each kind of work ("preferences", "heap", "toggles", "sub-issues"). This model is that
second kind of knowledge, learned from the tuning part of ``benchmarks/triage/issues.jsonl`` only (the held-back
part is never read) by ``benchmarks/triage/train_learned.py``, which writes its counts and settings to
``workflows/triage_model.json``. Its settings (smoothing, temperature, how many points it may add) were chosen by
k-fold cross-validation inside the tuning part.

It does not decide: :func:`points` turns its posterior into at most ``weight`` points per workflow (and for "no
workflow fits"), which :mod:`bot.core.classify` adds to the rules' evidence as one more hit, so thresholds, ties and
the "ask for a label when evidence is thin" rule apply to the sum, and ``--explain`` shows what it added. Where a
label leads the rules' case and a label on the item names a kind of work, it adds nothing: only the rules may
overturn such a label (an issue-type label such as ``bug`` it may outweigh; see ``classify.model_barred``). A
missing or unreadable model file leaves the rules alone. Pure: :mod:`bot.core.catalog` reads the file beside the
catalog's workflow files (once per folder and process) and the Lead passes the model in.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NONE = ""  # the class of issues no workflow fits: the Lead asks for a label
MODEL_FILE = "triage_model.json"
# Words of at least two letters, in any script (a run of Chinese characters is one word); digits and punctuation
# say little of the kind of work and much of the version someone runs.
_TOKEN = re.compile(r"[^\W\d_]{2,}")
MAX_WORDS = 600  # the opening of a long body says what it is about; the rest is logs and detail


def features(title: str, prose: str, label_names: Iterable[str] = (), shapes: Iterable[str] = ()) -> frozenset[str]:
    """What the model reads, each counted once: title words (``t:``), words anywhere (``w:``), adjacent word pairs
    (``b:``), the names labels go by (``l:``) and body shapes such as a stack trace (``s:``). ``title`` and ``prose``
    are already read as :func:`bot.core.classify.read` reads them (lowercased, template noise and code removed)."""
    title_words = _TOKEN.findall(title)
    words = [*title_words, *_TOKEN.findall(prose)[:MAX_WORDS]]
    out = {f"t:{w}" for w in title_words} | {f"w:{w}" for w in words}
    out |= {f"b:{a}_{b}" for a, b in zip(words, words[1:], strict=False)}
    out |= {f"l:{n}" for n in label_names if n} | {f"s:{s}" for s in shapes}
    return frozenset(out)


@dataclass(frozen=True)
class Model:
    """Binary multinomial naive Bayes over :func:`features`, with the settings the training chose."""

    classes: tuple[str, ...]  # workflow names, and NONE
    log_prior: tuple[float, ...]
    log_like: Mapping[str, tuple[float, ...]]  # per known feature: log P(feature | class)
    temperature: float  # the posterior is softened by this: naive Bayes is sure of itself far too often
    weight: int  # the most points it may add to one workflow's (or to "none fits") score
    about: str = ""

    def scores(self, feats: Iterable[str]) -> tuple[float, ...]:
        """Log prior plus the log likelihood of each known feature, per class (unknown features are skipped)."""
        total = list(self.log_prior)
        for f in feats:
            if (row := self.log_like.get(f)) is not None:
                for k, v in enumerate(row):
                    total[k] += v
        return tuple(total)

    def posterior(self, feats: Iterable[str]) -> dict[str, float]:
        """P(class | features), softened by the temperature."""
        s = [v / self.temperature for v in self.scores(feats)]
        top = max(s)
        e = [math.exp(v - top) for v in s]
        z = sum(e)
        return {c: v / z for c, v in zip(self.classes, e, strict=True)}

    def points(self, feats: Iterable[str]) -> dict[str, tuple[int, float]]:
        """Per class: the points the model adds (``weight`` times its probability, rounded) and that probability."""
        return {c: (round(self.weight * p), p) for c, p in self.posterior(feats).items()}

    def telling(self, feats: Iterable[str], cls: str, n: int = 6) -> list[str]:
        """The features that speak most for ``cls`` against the other classes on average: what --explain shows."""
        k = self.classes.index(cls)
        rated = []
        for f in set(feats):
            if (row := self.log_like.get(f)) is not None:
                others = [v for j, v in enumerate(row) if j != k]
                rated.append((row[k] - sum(others) / len(others), f))
        return [f for lift, f in sorted(rated, reverse=True)[:n] if lift > 0]


def from_counts(data: Mapping[str, Any]) -> Model:
    """A model from the counts and settings ``train_learned.py`` writes (the data file's shape): per class the number
    of documents and per feature the documents of each class that hold it; Laplace smoothing ``alpha``."""
    classes = tuple(str(c) for c in data["classes"])
    docs = [int(n) for n in data["docs"]]
    counts = {str(f): [int(v) for v in row] for f, row in data["features"].items()}
    alpha = float(data["alpha"])
    totals = [sum(row[k] for row in counts.values()) for k in range(len(classes))]
    vocab = len(counts)
    log_prior = tuple(math.log(n / sum(docs)) for n in docs)
    denominators = [math.log(t + alpha * vocab) for t in totals]
    log_like = {f: tuple(math.log(v + alpha) - d for v, d in zip(row, denominators, strict=True))
                for f, row in counts.items()}
    return Model(classes, log_prior, log_like, float(data["temperature"]), int(data["weight"]), str(data.get("about", "")))


def parse(text: str) -> Model | None:
    """The model in a data file's text, or None when it cannot be read as one (the rules then decide alone).
    Reading the file is the catalog's job (:func:`bot.core.catalog.learned_model`): this module does no I/O."""
    try:
        return from_counts(json.loads(text))
    except (ValueError, KeyError, TypeError, ZeroDivisionError, AttributeError):
        return None
