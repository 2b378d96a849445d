"""The Lead's learned evidence: a naive Bayes model of words, word pairs and labels, trained on labelled issues, with
a linear SVM over the same features mixed into its posterior.

The keyword rules in ``workflows/triage.yml`` know the words someone wrote down; a maintainer also knows the words
that usually come with each kind of work ("preferences", "heap", "toggles", "sub-issues"). This model is that
second kind of knowledge, learned from the tuning part of ``benchmarks/triage/issues.jsonl`` only (the held-back
part is never read) by ``benchmarks/triage/train_learned.py``, which writes its counts and settings to
``workflows/triage_model.json``. Its settings (smoothing, temperature, how many points it may add) were chosen by
k-fold cross-validation inside the tuning part. The linear part (:class:`Linear`) reads the same features, weighed by
how rare they are (tf-idf), and the character n-grams of the text (:func:`char_grams`); naive Bayes counts every word
as if it were the only one, the SVM learns how much each word adds beside the others, and the mix of the two placed
more tuning issues out of fold than either alone.

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
from dataclasses import dataclass, field
from typing import Any

NONE = ""  # the class of issues no workflow fits: the Lead asks for a label
MODEL_FILE = "triage_model.json"
# Words of at least two letters, in any script (a run of Chinese characters is one word); digits and punctuation
# say little of the kind of work and much of the version someone runs.
_TOKEN = re.compile(r"[^\W\d_]{2,}")
MAX_WORDS = 600  # the opening of a long body says what it is about; the rest is logs and detail
CHAR_SIZES = (2, 5)  # the character n-grams the linear part reads, shortest and longest
# A linear part's scale and bias, bounded far above any trained one (scales about 0.02, biases about 1) so no score
# can overflow to inf and turn the posterior into NaN: a weight is at most 127 scales, a part's normed sum at most
# √(terms) of them.
MAX_SCALE = 1.0
MAX_BIAS = 1000.0
# Temperatures and the weight, likewise bounded far outside what the training's grid chooses from (temperatures 0.5
# to 64, weights up to 64): a temperature of 1e-320 divides a score into inf, a weight of 10**400 into OverflowError.
MIN_TEMPERATURE = 0.01
MAX_TEMPERATURE = 1e6
MAX_WEIGHT = 1000
MAX_CHAR_PROSE = 1500  # of the prose, the characters cut into n-grams: the labelled bodies stop at 1,500 (README)


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
    """A linear SVM's scores over :func:`features` and, where the model has them, :func:`char_grams`, as
    scikit-learn's ``TfidfVectorizer`` (features binary, character n-grams counted with sublinear tf; smooth idf;
    each part l2-normed on its own, as a ``FeatureUnion`` joins them) and ``LinearSVC`` compute them, turned into
    probabilities by a softmax at ``temperature``. The weights are stored quantised to one byte each with one scale
    per part (127 levels a side moved no decision: ``train_learned.QUANTUM``)."""

    bias: tuple[float, ...]
    rows: Mapping[str, tuple[tuple[int, ...], float]]  # per known feature: quantised weights per class, its idf
    scale: float
    temperature: float
    grams: Mapping[str, tuple[tuple[int, ...], float]] = field(default_factory=dict)  # per known n-gram, the same
    gram_scale: float = 0.0

    def scores(self, feats: Iterable[str], grams: Mapping[str, int] | None = None) -> tuple[float, ...]:
        """The SVM's score per class for an item's features and its character n-grams' counts (None: the item's
        n-grams are unknown, and that part adds nothing)."""
        total = list(self.bias)
        _add(total, self.rows, ((f, 1.0) for f in feats), self.scale)
        if grams:
            _add(total, self.grams, ((g, 1.0 + math.log(n)) for g, n in grams.items()), self.gram_scale)
        return tuple(total)

    def probabilities(self, feats: Iterable[str], grams: Mapping[str, int] | None = None) -> tuple[float, ...]:
        return _softmax([v / self.temperature for v in self.scores(feats, grams)])


def _add(total: list[float], rows: Mapping[str, tuple[tuple[int, ...], float]], tfs: Iterable[tuple[str, float]],
         scale: float) -> None:
    """Adds to ``total`` one part's l2-normed tf-idf vector times its weights (unknown terms are skipped)."""
    part = [0.0] * len(total)
    norm = 0.0
    for term, tf in tfs:
        if (row := rows.get(term)) is not None:
            weights, idf_ = row
            v = tf * idf_
            norm += v * v
            for k, w in enumerate(weights):
                part[k] += w * v
    if norm:
        unit = scale / math.sqrt(norm)
        for k, v in enumerate(part):
            total[k] += v * unit


def char_grams(title: str, prose: str) -> dict[str, int]:
    """The character n-grams of :data:`CHAR_SIZES` within each word padded by a space, counted, as scikit-learn's
    ``char_wb`` analyser cuts them (a word shorter than a size counts once, whole), over the title twice and the
    first MAX_CHAR_PROSE characters of the prose (both as :func:`bot.core.classify.read` reads them). They catch
    what whole words miss: inflections, compounds, identifiers (``OAuthProvider``), scripts without spaces."""
    counts: dict[str, int] = {}
    low, high = CHAR_SIZES
    for word in f"{title} {title} {prose[:MAX_CHAR_PROSE]}".split():
        padded = f" {word} "
        size = len(padded)
        for n in range(low, high + 1):
            for i in range(max(1, size - n + 1)):
                gram = padded[i:i + n]
                counts[gram] = counts.get(gram, 0) + 1
            if size <= n:
                break
    return counts


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

    def posterior(self, feats: Iterable[str], grams: Mapping[str, int] | None = None) -> dict[str, float]:
        """P(class | features): naive Bayes softened by its temperature, mixed with the linear part's (which reads
        the character n-grams ``grams`` too, :func:`char_grams`)."""
        feats = frozenset(feats)
        p = _softmax([v / self.temperature for v in self.scores(feats)])
        if self.linear is not None and self.mix > 0:
            p = mixed(p, self.linear.scores(feats, grams), self.mix, self.linear.temperature)
        return dict(zip(self.classes, p, strict=True))

    def points(self, feats: Iterable[str], share: float = 1.0,
               grams: Mapping[str, int] | None = None) -> dict[str, tuple[int, float]]:
        """Per class: the points the model adds (``weight`` times its probability times ``share``, rounded) and that
        probability."""
        return points_of(self.weight, self.posterior(feats, grams), share)

    def grams(self, title: str, prose: str) -> dict[str, int] | None:
        """The item's character n-grams when the model reads them (:func:`char_grams`), else None (not cut: a
        model without them need not pay for them)."""
        reads = self.linear is not None and self.mix > 0 and bool(self.linear.grams)
        return char_grams(title, prose) if reads else None

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
    temperature, weight = float(data["temperature"]), int(data["weight"])
    if not (_fair(temperature) and 0 <= weight <= MAX_WEIGHT):  # every posterior divides by it; points multiply
        raise ValueError("the model's temperature or weight is out of range")
    return Model(classes, log_prior, log_like, temperature, weight, str(data.get("about", "")),
                 linear, float(data["linear"]["mix"]) if linear else 0.0)


def _fair(temperature: float) -> bool:
    return MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE


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
    if not (_fair(float(data["temperature"])) and 0 <= float(data["mix"]) <= 1 and 0 < scale <= MAX_SCALE
            and all(abs(b) <= MAX_BIAS for b in bias)):  # NaN in JSON loads, and would fail every triage after
        raise ValueError("the linear part's temperature, mix, scale or bias is out of range")
    signed = memoryview(raw).cast("b")
    rows = {f: (tuple(signed[k * width:(k + 1) * width]), idf(sum(counts[f]), n)) for k, f in enumerate(names)}
    grams, gram_scale = _chars(data["chars"], width, n) if data.get("chars") else ({}, 0.0)
    return Linear(bias, rows, scale, float(data["temperature"]), grams, gram_scale)


def _chars(data: Mapping[str, Any], width: int, n: int) -> tuple[dict[str, tuple[tuple[int, ...], float]], float]:
    """The character n-gram part: the n-grams, how many training documents held each (``df``: its idf, as for the
    features), one scale and one signed byte per n-gram and class, base64, in the n-grams' order (the training writes
    them sorted). A count short or over raises in ``zip``."""
    names = [str(g) for g in data["grams"]]
    df = [int(d) for d in data["df"]]
    raw = base64.b64decode(str(data["weights"]), validate=True)
    scale = float(data["scale"])
    if len(raw) != len(names) * width or len(set(names)) != len(names):  # a second copy would take the first's row
        raise ValueError("the linear part's character n-grams do not match their weights")
    if not (0 < scale <= MAX_SCALE and all(0 < d <= n for d in df)):
        raise ValueError("the linear part's character n-grams have a scale or a count out of range")
    signed = memoryview(raw).cast("b")
    return {g: (tuple(signed[k * width:(k + 1) * width]), idf(d, n))
            for k, (g, d) in enumerate(zip(names, df, strict=True))}, scale


def parse(text: str) -> Model | None:
    """The model in a data file's text, or None when it cannot be read as one (the rules then decide alone).
    Reading the file is the catalog's job (:func:`bot.core.catalog.learned_model`): this module does no I/O."""
    try:
        return from_counts(json.loads(text))
    except (ValueError, KeyError, TypeError, ZeroDivisionError, AttributeError, OverflowError):
        return None
