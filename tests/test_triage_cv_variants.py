"""benchmarks/triage/cv_variants.py: its "shipped" combination decides as the bot does (so the comparison measures
the Lead, not a copy of it), its other gates let the model speak where a label leads, and it trains per fold on the
tuning items alone."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from bot.core import classify, classify_learned
from bot.core.catalog import learned_model, load_catalog
from tests.conftest import ROOT

TRIAGE = load_catalog().triage
# The replay fixture's issue (fixtures/issues.opened.json): a README typo labelled `bug`, placed by the label today.
TYPO = ("Spelling error in the README file", "This is a ticket about the readme typo.", ["bug"])


def _variants() -> ModuleType:
    path = ROOT / "benchmarks" / "triage" / "cv_variants.py"
    spec = importlib.util.spec_from_file_location("cv_variants", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cv_variants"] = module
    spec.loader.exec_module(module)
    return module


def _toy() -> classify_learned.Model:
    """Sure that a readme typo is no work for any workflow."""
    classes = list(_variants().CLASSES)
    typo = [9 if c == classify_learned.NONE else 0 for c in classes]
    heap = [0 if c == classify_learned.NONE else 9 for c in classes]
    return classify_learned.from_counts({"classes": classes, "docs": [10] * len(classes), "alpha": 1.0,
                                         "temperature": 1.0, "weight": 8,
                                         "features": {"w:typo": typo, "w:heap": heap}})


def _post(model: classify_learned.Model, title: str, body: str, labels: list[str]) -> tuple[classify.Weighed,
                                                                                            dict[str, float]]:
    w, feats = _read(title, body, labels)
    return w, model.posterior(feats, model.grams(w.text.title, w.text.prose))


def _read(title: str, body: str, labels: list[str]) -> tuple[classify.Weighed, frozenset[str]]:
    w = classify.weigh(TRIAGE, title=title, body=body, labels=labels)
    return w, classify_learned.features(w.text.title, w.text.prose,
                                        [n for lab in labels for n in classify.label_names(lab)], w.text.shapes)


def test_the_shipped_combination_decides_as_the_bot_does() -> None:
    v, model = _variants(), learned_model(load_catalog())
    assert model is not None
    for title, body, labels in (TYPO, ("Service gets killed at night", "the heap grows", []),
                                ("Slow query on the orders table", "full table scan", ["bug"])):
        w, feats = _read(title, body, labels)
        post = model.posterior(feats, model.grams(w.text.title, w.text.prose))
        share = classify.content_share(w, model, feats)
        bot = classify.placed(classify.weigh(TRIAGE, title=title, body=body, labels=labels, learned=model))
        setting = ("shipped", model.weight, model.weight, model.weight)
        assert v.combined(w, post, setting, share) == (bot or classify_learned.NONE), title


def test_the_other_gates_let_the_model_outweigh_an_issue_type_label() -> None:
    v, model = _variants(), _toy()
    w, post = _post(model, *TYPO)
    assert classify.label_led(w) and v.type_led(w)
    assert v.combined(w, post, ("label", 8, 8, 0)) == "error-investigation"  # the label leads: the model stays out
    assert v.combined(w, post, ("shipped", 8, 8, 8)) == classify_learned.NONE  # an issue-type label: it may speak
    assert v.combined(w, post, ("type", 8, 8, 8)) == classify_learned.NONE
    assert v.combined(w, post, ("any", 8, 8, 8)) == classify_learned.NONE
    w, post = _post(model, TYPO[0], TYPO[1], ["security"])  # a repository's own label: the shipped gate keeps it out
    assert classify.label_led(w) and not v.type_led(w)
    assert v.combined(w, post, ("shipped", 8, 8, 8)) == "security-fix"
    assert v.combined(w, post, ("type", 8, 8, 8)) == "security-fix"
    assert v.combined(w, post, ("any", 8, 8, 8)) == classify_learned.NONE


def test_each_fold_trains_on_the_other_folds_only() -> None:
    v = _variants()
    seen: list[set[str]] = []

    def train(items: list[object]) -> classify_learned.Model:
        seen.append({i.url for i in items})  # type: ignore[attr-defined]
        return _toy()

    items = [it for it in v.T.tuning_items() if it.batch == v.T.FRESH][:20]
    v.out_of_fold(items, train)
    folds = v.T.folds(items)
    assert len(seen) == v.T.K
    for f, trained in enumerate(seen):
        assert trained == {i.url for i, k in zip(items, folds, strict=True) if k != f}
