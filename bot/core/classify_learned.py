"""The Lead's learned evidence: a naive Bayes model of words, word pairs and labels, trained on labelled issues, with
a linear SVM over the same features mixed into its posterior.

The keyword rules in ``workflows/triage.yml`` know the words someone wrote down; a maintainer also knows the words
that usually come with each kind of work ("preferences", "heap", "toggles", "sub-issues"). This model is that
second kind of knowledge, learned from the tuning part of ``benchmarks/triage/issues.jsonl`` only (the held-back
part is never read) by ``benchmarks/triage/train_learned.py``, which writes its counts and settings to
``workflows/triage_model.json``. Its settings (smoothing, temperature, how many points it may add) were chosen by
k-fold cross-validation inside the tuning part. The linear part (:class:`Linear`) reads the same features, weighed by
how rare they are (tf-idf); naive Bayes counts every word as if it were the only one, the SVM learns how much each
word adds beside the others, and the mix of the two placed more tuning issues out of fold than either alone.

It does not decide: :func:`points` turns its posterior into at most ``weight`` points per workflow (and for "no
workflow fits"), which :mod:`bot.core.classify` adds to the rules' evidence as one more hit, so thresholds, ties and
the "ask for a label when evidence is thin" rule apply to the sum, and ``--explain`` shows what it added. Where a
label leads the rules' case and a label on the item names a kind of work, it adds nothing: only the rules may
overturn such a label (an issue-type label such as ``bug`` it may outweigh; see ``classify.model_barred``). A
missing or unreadable model file leaves the rules alone. Pure: :mod:`bot.core.catalog` reads the file beside the
catalog's workflow files (once per folder and process) and the Lead passes the model in.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
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
class Linear:
    """A linear SVM's scores over :func:`features`, as scikit-learn's ``TfidfVectorizer`` (binary features, smooth
    idf, l2 norm) and ``LinearSVC`` compute them, turned into probabilities by a softmax at ``temperature``. The
    weights are stored quantised to one byte each with one ``scale`` (the training checks the decisions do not move)."""

    bias: tuple[float, ...]
    rows: Mapping[str, tuple[tuple[int, ...], float]]  # per known feature: quantised weights per class, its idf
    scale: float
    temperature: float

    def scores(self, feats: Iterable[str]) -> tuple[float, ...]:
        total = [0.0] * len(self.bias)
        norm = 0.0
        for f in feats:
            if (row := self.rows.get(f)) is not None:
                weights, idf = row
                norm += idf * idf
                for k, v in enumerate(weights):
                    total[k] += v * idf
        unit = self.scale / math.sqrt(norm) if norm else 0.0
        return tuple(b + t * unit for b, t in zip(self.bias, total, strict=True))

    def probabilities(self, feats: Iterable[str]) -> tuple[float, ...]:
        return _softmax([v / self.temperature for v in self.scores(feats)])


def _softmax(s: list[float]) -> tuple[float, ...]:
    top = max(s)
    e = [math.exp(v - top) for v in s]
    z = sum(e)
    return tuple(v / z for v in e)


def mixed(bayes: Sequence[float], svm_scores: Sequence[float], mix: float, temperature: float) -> tuple[float, ...]:
    """The posterior the Lead uses: naive Bayes's probabilities and the softmax of the SVM's scores at
    ``temperature``, the SVM's weighing ``mix`` (the training's grid calls this too, so both compute one thing)."""
    svm = _softmax([v / temperature for v in svm_scores])
    return tuple((1 - mix) * a + mix * b for a, b in zip(bayes, svm, strict=True))


def points_of(weight: int, posterior: Mapping[str, float], share: float = 1.0) -> dict[str, tuple[int, float]]:
    """Per class: the points added (``weight`` times the probability times ``share``, rounded) and the probability."""
    return {c: (round(weight * p * share), p) for c, p in posterior.items()}


@dataclass(frozen=True)
class Model:
    """Binary multinomial naive Bayes over :func:`features`, with the settings the training chose."""

    classes: tuple[str, ...]  # workflow names, and NONE
    log_prior: tuple[float, ...]
    log_like: Mapping[str, tuple[float, ...]]  # per known feature: log P(feature | class)
    temperature: float  # the posterior is softened by this: naive Bayes is sure of itself far too often
    weight: int  # the most points it may add to one workflow's (or to "none fits") score
    about: str = ""
    linear: Linear | None = None
    mix: float = 0.0  # the linear part's share of the posterior

    def scores(self, feats: Iterable[str]) -> tuple[float, ...]:
        """Log prior plus the log likelihood of each known feature, per class (unknown features are skipped)."""
        total = list(self.log_prior)
        for f in feats:
            if (row := self.log_like.get(f)) is not None:
                for k, v in enumerate(row):
                    total[k] += v
        return tuple(total)

    def posterior(self, feats: Iterable[str]) -> dict[str, float]:
        """P(class | features): naive Bayes softened by its temperature, mixed with the linear part's."""
        feats = frozenset(feats)
        p = _softmax([v / self.temperature for v in self.scores(feats)])
        if self.linear is not None and self.mix > 0:
            p = mixed(p, self.linear.scores(feats), self.mix, self.linear.temperature)
        return dict(zip(self.classes, p, strict=True))

    def points(self, feats: Iterable[str], share: float = 1.0) -> dict[str, tuple[int, float]]:
        """Per class: the points the model adds (``weight`` times its probability times ``share``, rounded) and that
        probability."""
        return points_of(self.weight, self.posterior(feats), share)

    def words_known(self, feats: Iterable[str]) -> int:
        """How many of ``feats`` it knows, the labels' names aside: how much of the issue's own text it read."""
        return sum(1 for f in feats if not f.startswith("l:") and f in self.log_like)

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
    linear = _linear(data["linear"], classes, docs, counts) if data.get("linear") else None
    return Model(classes, log_prior, log_like, float(data["temperature"]), int(data["weight"]), str(data.get("about", "")),
                 linear, float(data["linear"]["mix"]) if linear else 0.0)


def idf(df: int, n: int) -> float:
    """scikit-learn's smooth idf of a feature ``df`` of ``n`` documents hold: the training need not store it."""
    return math.log((1 + n) / (1 + df)) + 1


def _linear(data: Mapping[str, Any], classes: tuple[str, ...], docs: list[int],
            counts: Mapping[str, list[int]]) -> Linear:
    """The linear part from the data file: one signed byte per feature (in sorted order) and class, base64."""
    raw = base64.b64decode(str(data["weights"]), validate=True)
    names, width, n = sorted(counts), len(classes), sum(docs)
    bias = tuple(float(b) for b in data["bias"])
    if len(raw) != len(names) * width or len(bias) != width:
        raise ValueError("the linear part's weights do not match the model's features and classes")
    scale = float(data["scale"])
    if not (float(data["temperature"]) > 0 and 0 <= float(data["mix"]) <= 1 and 0 < scale < math.inf
            and all(math.isfinite(b) for b in bias)):  # NaN in JSON loads, and would fail every triage after
        raise ValueError("the linear part's temperature, mix, scale or bias is out of range")
    signed = memoryview(raw).cast("b")
    rows = {f: (tuple(signed[k * width:(k + 1) * width]), idf(sum(counts[f]), n)) for k, f in enumerate(names)}
    return Linear(bias, rows, scale, float(data["temperature"]))


def parse(text: str) -> Model | None:
    """The model in a data file's text, or None when it cannot be read as one (the rules then decide alone).
    Reading the file is the catalog's job (:func:`bot.core.catalog.learned_model`): this module does no I/O."""
    try:
        return from_counts(json.loads(text))
    except (ValueError, KeyError, TypeError, ZeroDivisionError, AttributeError, OverflowError):
        return None
