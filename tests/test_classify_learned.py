"""The Lead's learned evidence (bot/core/classify_learned.py): what it reads, how its points join the rules'
evidence, that --explain says what it added, that it falls back to the rules when its file is missing, and that
the shipped model is exactly the one the training script builds from the tuning part (never the held-back part).
"""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
import json
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bot.core import classify, classify_explain, classify_learned, events, triage
from bot.core.catalog import learned_model, load_catalog, validate_paths
from bot.core.classify_learned import NONE
from bot.core.workflow import DEFAULT_ROOT
from tests.conftest import ROOT

TRIAGE: Mapping[str, Any] = load_catalog().triage
CLASSES = ("database-performance", "error-investigation", NONE)


def toy(weight: int, temperature: float = 1.0) -> classify_learned.Model:
    """A model that has seen "heap" only in error reports and "howto" only in questions."""
    return classify_learned.from_counts({
        "classes": list(CLASSES), "docs": [10, 10, 10], "alpha": 1.0, "temperature": temperature, "weight": weight,
        "features": {"w:heap": [0, 9, 0], "w:howto": [0, 0, 9], "w:table": [5, 5, 5]},
    })


@pytest.fixture
def toy_speaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy knows one or two words of an issue: where no label leads, MIN_KNOWN is lowered so it speaks at all."""
    monkeypatch.setattr(classify, "MIN_KNOWN", 0)


def _train_module() -> ModuleType:
    path = ROOT / "benchmarks" / "triage" / "train_learned.py"
    spec = importlib.util.spec_from_file_location("train_learned", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_learned"] = module
    spec.loader.exec_module(module)
    return module


# ---- what it reads -----------------------------------------------------------------------------------------

def test_features_read_title_words_pairs_labels_and_shapes_once() -> None:
    feats = classify_learned.features("crash on save", "the heap grows 2048 mb", ["bug"], ["(stack trace)"])
    assert {"t:crash", "w:crash", "w:heap", "b:heap_grows", "b:save_the", "l:bug", "s:(stack trace)"} <= feats
    assert "t:heap" not in feats  # body words are not title words
    assert not any("2048" in f for f in feats)  # numbers say which version, not which work
    assert "t:on" in feats and "w:a" not in classify_learned.features("a", "")  # one letter is no word


def test_a_long_body_is_read_up_to_its_opening_words() -> None:
    body = " ".join(["alpha"] * classify_learned.MAX_WORDS + ["omega"])
    assert "w:omega" not in classify_learned.features("", body)


# ---- the posterior and its points -------------------------------------------------------------------------

def test_the_posterior_favours_the_class_whose_words_it_has_seen() -> None:
    post = toy(4).posterior({"w:heap", "w:unknown"})
    assert max(post, key=lambda c: post[c]) == "error-investigation"
    assert sum(post.values()) == pytest.approx(1.0)
    assert toy(4).posterior({"w:unknown"}) == toy(4).posterior(set())  # unknown words are skipped


def test_the_temperature_softens_and_the_weight_caps_the_points() -> None:
    sure, soft = toy(4).posterior({"w:heap"}), toy(4, temperature=64.0).posterior({"w:heap"})
    assert soft["error-investigation"] < sure["error-investigation"]
    points = toy(7).points({"w:heap"})
    assert all(0 <= add <= 7 for add, _ in points.values())
    assert points["error-investigation"][0] == round(7 * points["error-investigation"][1])


def test_telling_features_are_the_ones_that_speak_for_the_class() -> None:
    assert toy(4).telling({"w:heap", "w:table", "w:howto"}, "error-investigation") == ["w:heap"]


# ---- joining the rules' evidence ----------------------------------------------------------------------------

def test_its_points_place_an_issue_the_rules_found_too_thin(toy_speaks: None) -> None:
    title, body = "Service gets killed at night", "the heap grows"  # 2 points: below the threshold
    rules = classify.classify(TRIAGE, title=title, body=body)
    assert rules.workflow is None
    c = classify.classify(TRIAGE, title=title, body=body, learned=toy(8))
    assert c.workflow == "error-investigation" and "the learned model" in c.reason


def test_its_none_points_join_the_evidence_that_no_workflow_fits(toy_speaks: None) -> None:
    title, body = "Slow query on the orders table", "howto"
    assert classify.classify(TRIAGE, title=title, body=body).workflow == "database-performance"
    weighed = classify.weigh(TRIAGE, title=title, body=body, learned=toy(40))
    assert any(h.kind == "learned" for h in weighed.against)
    assert classify.placed(weighed) is None


def test_it_stays_out_when_a_label_leads_the_rules_case() -> None:
    title, body = "Slow query on the orders table", "howto"
    weighed = classify.weigh(TRIAGE, title=title, body=body, labels=["performance"], learned=toy(40))
    assert not any(h.kind == "learned" for h in weighed.against)
    assert classify.placed(weighed) == "database-performance"
    title, body = "Fix the crash", "the heap grows"  # labelled api: the label leads, the words say a crash
    weighed = classify.weigh(TRIAGE, title=title, body=body, labels=["api"], learned=toy(40))
    assert not any(h.kind == "learned" for case in weighed.cases for h in case.hits)
    assert classify.placed(weighed) == "backend-feature"
    _, evidence = classify_explain.explain(TRIAGE, title=title, body=body, labels=["api"], learned=toy(40))
    said = evidence.to_json()["learned"]
    assert said["added"] is False and "'api'" in said["why"] and said["changed_the_decision"] is False
    # Nothing was added, so no class shows points; what it would have added is named as such.
    assert all(c["points"] == 0 for c in said["classes"])
    assert max(c["would_add"] for c in said["classes"]) > 0


def test_where_it_stays_out_its_posterior_is_not_computed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A work label leading keeps the model out, so the Lead does not pay for its posterior (n-grams and all: about
    0.6 ms an issue); where it may speak it is computed as before."""
    def refuse(*_: object, **__: object) -> dict[str, float]:
        raise AssertionError("posterior computed where the model adds nothing")

    model = learned_model(load_catalog())
    assert model is not None
    title, body = "Fix the crash", "the heap grows"
    without = classify.weigh(TRIAGE, title=title, body=body, labels=["api"])
    monkeypatch.setattr(classify_learned.Model, "posterior", refuse)
    assert classify.weigh(TRIAGE, title=title, body=body, labels=["api"], learned=model) == without
    with pytest.raises(AssertionError, match="posterior computed"):
        classify.weigh(TRIAGE, title=title, body=body, labels=["bug"], learned=model)


def test_it_may_outweigh_an_issue_type_label(monkeypatch: pytest.MonkeyPatch) -> None:
    """``bug`` is often the template's, not a person naming the work: on a question the model's words weigh
    against it as against any evidence. A label naming the work (``performance`` above, ``api``) keeps it out.
    (The toy model knows one word of this issue: THIN_WORDS is lowered so that word is all the text it needs, and
    THIN_POINTS raised to the toy's weight.)"""
    monkeypatch.setattr(classify, "THIN_WORDS", 1)
    monkeypatch.setattr(classify, "THIN_POINTS", 40)
    title, body = "Crash report", "howto"
    assert classify.placed(classify.weigh(TRIAGE, title=title, body=body, labels=["bug"])) == "error-investigation"
    weighed = classify.weigh(TRIAGE, title=title, body=body, labels=["bug"], learned=toy(40))
    assert classify.type_led(weighed)
    assert any(h.kind == "learned" for h in weighed.against)
    assert classify.placed(weighed) is None
    _, evidence = classify_explain.explain(TRIAGE, title=title, body=body, labels=["bug"], learned=toy(40))
    said = evidence.to_json()["learned"]
    assert said["added"] is True and said["changed_the_decision"] is True


def test_a_label_on_an_issue_of_few_words_is_weighed_against_few_words() -> None:
    """With few words the model's posterior is mostly its prior, where "no workflow fits" leads: no evidence against
    the ``bug`` a person (or a template) put on "Something to do". Its weight shrinks with the words it read."""
    model = learned_model(load_catalog())
    assert model is not None
    title, body, labels = "Something to do", "", ["bug"]
    rules = classify.weigh(TRIAGE, title=title, body=body, labels=labels)
    feats = classify_learned.features(rules.text.title, rules.text.prose, labels, rules.text.shapes)
    assert 0 < classify.content_share(rules, model, feats) < 1
    assert classify.placed(classify.weigh(TRIAGE, title=title, body=body, labels=labels, learned=model)) \
        == "error-investigation"
    whole = classify.with_points(TRIAGE, rules, model.points(feats))  # the model's whole weight: it would ask
    assert classify.placed(whole) is None
    # No label leads: the model's whole weight, whatever the length; a long text: all of it too.
    bare = classify.weigh(TRIAGE, title=title, body=body)
    assert classify.content_share(bare, model, classify_learned.features(title, "")) == 1.0
    long = ("After the upgrade the server crashes when I save the settings page. The log shows a stack trace and the "
            "request returns an error 500; it worked in the previous version and fails every time since.")
    said = classify.weigh(TRIAGE, title=title, body=long, labels=labels)
    feats = classify_learned.features(said.text.title, said.text.prose, labels, said.text.shapes)
    assert model.words_known(feats) >= classify.THIN_WORDS and classify.content_share(said, model, feats) == 1.0


def test_a_thin_issue_under_a_label_gets_the_same_points_whatever_weight_the_training_chose() -> None:
    """Round 16: a retraining that chose weight 48 doubled what the model might add on a thin issue under ``bug``, and
    its prior outweighed the label on "Something to do". Under a leading label it now adds at most THIN_POINTS per
    THIN_WORDS features it knows, whatever its weight: at every weight of the training's grid the label keeps its case."""
    model = learned_model(load_catalog())
    assert model is not None
    title, labels = "Something to do", ["bug"]
    rules = classify.weigh(TRIAGE, title=title, body="", labels=labels)
    feats = classify_learned.features(rules.text.title, rules.text.prose, labels, rules.text.shapes)
    most = classify.THIN_POINTS * model.words_known(feats) / classify.THIN_WORDS
    for weight in (w for w in _train_module().WEIGHTS if w):
        at = dataclasses.replace(model, weight=weight)
        assert weight * classify.content_share(rules, at, feats) == pytest.approx(min(weight, most))
        said = classify.weigh(TRIAGE, title=title, body="", labels=labels, learned=at)
        assert classify.placed(said) == "error-investigation", weight


@pytest.mark.parametrize("labels, title, body", [
    (["security/critical"], "Update the installation steps", "howto"),  # matched by its prefix: weighs like bug
    (["bug", "security"], "Crash when saving the config", "howto"),  # the bug label leads, security is there too
    (["bug", "security"], "Error in login form", "howto"),  # a tie the title breaks towards the bug label's case
])
def test_it_stays_out_when_any_label_names_the_work(labels: list[str], title: str, body: str) -> None:
    """Found by review: the gate looked at the leading case's label weights only, so a work label matched by its
    prefix, or one beside a leading bug label, let the model overturn it."""
    rules = classify.placed(classify.weigh(TRIAGE, title=title, body=body, labels=labels))
    weighed = classify.weigh(TRIAGE, title=title, body=body, labels=labels, learned=toy(40))
    assert classify.model_barred(weighed) and not any(h.kind == "learned" for h in weighed.against)
    assert classify.placed(weighed) == rules is not None


def test_it_never_outweighs_a_label_that_says_no_work_is_wanted() -> None:
    c = classify.classify(TRIAGE, title="Crash", body="the heap grows", labels=["duplicate"], learned=toy(40))
    assert c.workflow is None and "duplicate" in c.reason


def test_a_weight_of_zero_adds_nothing() -> None:
    w = classify.weigh(TRIAGE, title="Service gets killed at night", body="the heap grows", learned=toy(0))
    assert not any(h.kind == "learned" for case in w.cases for h in case.hits)
    assert classify.placed(w) is None


# ---- --explain says what it added ------------------------------------------------------------------------------

def test_explain_shows_its_points_and_what_the_rules_alone_decided(toy_speaks: None) -> None:
    title, body = "Service gets killed at night", "the heap grows"
    c, evidence = classify_explain.explain(TRIAGE, title=title, body=body, learned=toy(8))
    assert c == classify.classify(TRIAGE, title=title, body=body, learned=toy(8))
    said = evidence.to_json()["learned"]
    assert said["rules_alone"] is None and said["changed_the_decision"] is True and said["added"] is True
    assert said["favourite"] == "error-investigation" and said["telling_features"] == ["w:heap"]
    winner = evidence.candidates[0]
    assert any(h.kind == "learned" and h.weight > 0 for h in winner.hits)
    added = {c["workflow"]: c["points"] for c in said["classes"]}
    assert added["error-investigation"] == sum(h.weight for h in winner.hits if h.kind == "learned") > 0
    assert all(c["points"] == c["would_add"] for c in said["classes"])
    assert winner.score == sum(h.weight for h in winner.hits)
    _, plain = classify_explain.explain(TRIAGE, title=title, body=body)
    assert plain.to_json()["learned"] is None


# ---- the shipped model ---------------------------------------------------------------------------------------

def _workflows_copy(tmp_path: Path) -> Path:
    root = tmp_path / "workflows"
    shutil.copytree(DEFAULT_ROOT, root)
    return root


def test_a_missing_or_broken_model_file_leaves_the_rules_alone_and_validate_says_so(tmp_path: Path) -> None:
    root = _workflows_copy(tmp_path)
    (root / classify_learned.MODEL_FILE).unlink()
    assert learned_model(load_catalog(root)) is None and validate_paths(root) == []
    (root / classify_learned.MODEL_FILE).write_text("{\"classes\": [")
    assert learned_model(load_catalog(root)) is None
    assert any(classify_learned.MODEL_FILE in e for e in validate_paths(root))


def test_the_lead_uses_the_model_beside_the_catalog_it_was_given(tmp_path: Path) -> None:
    """Not always the shipped one: a catalog read from another folder brings that folder's model."""
    shipped = learned_model(load_catalog())
    assert shipped is not None and 0 < shipped.weight and "tuning part" in shipped.about
    assert set(shipped.classes) == {*TRIAGE["priority"], NONE}
    root = _workflows_copy(tmp_path)
    data = json.loads((root / classify_learned.MODEL_FILE).read_text(encoding="utf-8"))
    (root / classify_learned.MODEL_FILE).write_text(json.dumps({**data, "about": "a model of this folder"}))
    other = load_catalog(root)
    assert learned_model(other) is not None and learned_model(other).about == "a model of this folder"  # type: ignore[union-attr]
    _, evidence = triage.explain(_issue("App crashes when opening preferences", "heap grows"), other)
    assert evidence["learned"]["trained_on"] == "a model of this folder"


def test_the_shipped_model_is_what_the_training_script_builds_from_the_tuning_part() -> None:
    train = _train_module()
    shipped = json.loads((DEFAULT_ROOT / classify_learned.MODEL_FILE).read_text(encoding="utf-8"))
    items = train.tuning_items()
    rebuilt = train.counts(items, tuple(shipped["classes"]), shipped["min_df"])
    assert rebuilt["docs"] == shipped["docs"] and rebuilt["features"] == shipped["features"]
    assert f"sha256 {train.tuning_sha()[:12]}" in shipped["about"]  # it names the tuning rows, not the whole file


def test_the_shipped_linear_part_is_the_svm_the_training_script_fits() -> None:
    """Its weights and biases are the ones scikit-learn fits on the tuning part (to one quantum: another release
    may round a last digit differently), with the mix and temperature the cross-validation chose."""
    train = _train_module()
    shipped = json.loads((DEFAULT_ROOT / classify_learned.MODEL_FILE).read_text(encoding="utf-8"))
    items = train.tuning_items()
    classes = tuple(shipped["classes"])
    rebuilt = train.linear_data(items, classes, train.counts(items, classes, shipped["min_df"]))
    ours, theirs = (base64.b64decode(d["weights"]) for d in (shipped["linear"], rebuilt))
    assert len(ours) == len(theirs) == len(shipped["features"]) * len(classes)
    assert max(abs(((a + 128) % 256) - ((b + 128) % 256)) for a, b in zip(ours, theirs, strict=True)) <= 1
    assert shipped["linear"]["bias"] == pytest.approx(rebuilt["bias"], abs=1e-4)
    assert shipped["linear"]["scale"] == pytest.approx(rebuilt["scale"], rel=1e-4)
    chars, again = shipped["linear"]["chars"], rebuilt["chars"]
    assert chars["grams"] == again["grams"] and chars["df"] == again["df"]
    assert len(chars["grams"]) == train.CHAR_FEATURES and chars["scale"] == pytest.approx(again["scale"], rel=1e-4)
    ours, theirs = (base64.b64decode(d["weights"]) for d in (chars, again))
    assert max(abs(((a + 128) % 256) - ((b + 128) % 256)) for a, b in zip(ours, theirs, strict=True)) <= 1
    assert 0 < shipped["linear"]["mix"] <= 1 and f"mixed {shipped['linear']['mix']}" in shipped["about"]


def _svm_toy(mix: float = 1.0) -> tuple[classify_learned.Model, Any, Any]:
    """The training script's linear part fitted on a few items, with scikit-learn's own fit beside it: a
    ``FeatureUnion`` of the features (binary) and the character n-grams of the items' titles (``char_wb``)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union
    from sklearn.svm import LinearSVC

    train = _train_module()
    words = {"database-performance": "slow query index", "error-investigation": "crash heap trace", NONE: "howto docs"}
    items = []
    for cls, text in words.items():
        for n in range(6):
            title = " ".join(text.split()[: n % 3 + 1])
            w = classify.weigh(TRIAGE, title=title, body="")
            items.append(train.Item(f"u{cls}{n}", cls, "x", w, w, frozenset(f"w:{x}" for x in title.split()) |
                                    {f"w:n{n % 2}"}, frozenset()))
    data = train.counts(items, CLASSES, 2)
    model = classify_learned.from_counts({**data, "alpha": 1.0, "temperature": 1.0, "weight": 10, "linear": {
        **train.linear_data(items, CLASSES, data), "mix": mix, "temperature": 1.0}})
    vec = make_union(
        TfidfVectorizer(analyzer=lambda d: d[0], vocabulary=sorted(data["features"]), sublinear_tf=True),
        TfidfVectorizer(preprocessor=lambda d: f"{d[1]} {d[1]}", analyzer="char_wb", ngram_range=(2, 5),
                        sublinear_tf=True, min_df=2, max_features=train.CHAR_FEATURES, lowercase=False))
    x = vec.fit_transform([(sorted(i.feats_kept), i.kept.text.title) for i in items])
    svm = LinearSVC(C=train.SVM_C, random_state=0).fit(x, [i.expected for i in items])
    return model, vec, svm


def test_the_linear_part_scores_an_issue_as_scikit_learn_does() -> None:
    """Features and character n-grams both: the n-grams cut as scikit-learn's ``char_wb`` cuts them, counted with
    sublinear tf, each part normed on its own."""
    model, vec, svm = _svm_toy()
    assert model.linear is not None and model.linear.grams  # the toy's titles share n-grams: the part is there
    order = [list(svm.classes_).index(c) for c in CLASSES]
    # uneven counts ("slow slow index"): sublinear tf, not raw counts, nor each n-gram once
    for feats, title in (({"w:crash", "w:n0"}, "crash crash"), ({"w:slow", "w:index", "w:unknown"}, "slow indexes"),
                         ({"w:howto"}, "howto"), (set(), ""), (set(), "queries"), ({"w:slow"}, "slow slow slow index"),
                         ({"w:heap"}, "heap trace trace trace trace query")):
        expected = svm.decision_function(vec.transform([(sorted(feats), title)]))[0]
        # each weight is off by at most half a quantum; a few terms add up
        quantum = (model.linear.scale + model.linear.gram_scale) * 4
        grams = classify_learned.char_grams(title, "")
        assert model.linear.scores(feats, grams) == pytest.approx([expected[k] for k in order], abs=quantum)
    post = model.posterior({"w:crash"}, classify_learned.char_grams("crash", ""))
    assert max(post, key=lambda c: post[c]) == "error-investigation"


def test_the_character_part_speaks_only_when_given_the_items_n_grams() -> None:
    """Without n-grams (None) the linear part reads the features alone; a word the features never saw still
    speaks through its n-grams ("queries" shares "quer", "uer" with "query")."""
    model, _, _ = _svm_toy()
    assert model.linear is not None
    unseen = classify_learned.char_grams("queries", "")
    assert model.linear.scores(set()) == model.linear.scores(set(), None) == pytest.approx(model.linear.bias)
    with_grams = dict(zip(CLASSES, model.linear.scores(set(), unseen), strict=True))
    assert max(with_grams, key=lambda c: with_grams[c]) == "database-performance"
    assert model.grams("queries", "") == unseen
    assert dataclasses.replace(model, mix=0.0).grams("queries", "") is None  # not cut where nothing reads them
    assert dataclasses.replace(model, linear=dataclasses.replace(model.linear, grams={})).grams("queries", "") is None


def test_the_mix_weighs_the_linear_part_against_naive_bayes() -> None:
    model, _, _ = _svm_toy(mix=0.5)
    assert model.linear is not None
    feats = {"w:crash", "w:index"}
    bayes = dataclasses.replace(model, linear=None).posterior(feats)
    svm = dict(zip(CLASSES, model.linear.probabilities(feats), strict=True))
    assert model.posterior(feats) == pytest.approx({c: (bayes[c] + svm[c]) / 2 for c in CLASSES})
    assert dataclasses.replace(model, mix=0.0).posterior(feats) == pytest.approx(bayes)


@pytest.mark.parametrize("change", [
    {"weights": base64.b64encode(b"\x01\x02").decode()},  # not one byte per feature and class
    {"weights": "not base64!"},
    {"bias": [0.0, 0.0]},  # a class short
    {"temperature": 0.0}, {"mix": 1.5}, {"mix": -0.1}, {"scale": float("nan")}, {"scale": 0.0}, {"scale": -0.01},
    {"bias": [float("nan")] * 8},  # JSON's NaN loads: every triage would raise on it
    {"scale": 1e308}, {"bias": [1e308] * 8},  # finite, but a score would overflow to inf and the posterior turn NaN
])
def test_a_linear_part_that_does_not_fit_the_model_leaves_the_rules_alone(tmp_path: Path, change: dict[str, Any]
                                                                          ) -> None:
    root = _workflows_copy(tmp_path)
    data = json.loads((root / classify_learned.MODEL_FILE).read_text(encoding="utf-8"))
    assert classify_learned.parse(json.dumps(data)) is not None
    (root / classify_learned.MODEL_FILE).write_text(json.dumps({**data, "linear": {**data["linear"], **change}}))
    assert learned_model(load_catalog(root)) is None
    assert any(classify_learned.MODEL_FILE in e for e in validate_paths(root))


@pytest.mark.parametrize("temperature", [0.0, -4.0, float("inf"), float("nan")])
def test_a_naive_bayes_temperature_out_of_range_leaves_the_rules_alone(tmp_path: Path, temperature: float) -> None:
    """Every posterior divides by it: 0 would raise at each triage, not when the file is read."""
    root = _workflows_copy(tmp_path)
    data = json.loads((root / classify_learned.MODEL_FILE).read_text(encoding="utf-8"))
    (root / classify_learned.MODEL_FILE).write_text(json.dumps({**data, "temperature": temperature}))
    assert learned_model(load_catalog(root)) is None
    assert any(classify_learned.MODEL_FILE in e for e in validate_paths(root))


@pytest.mark.parametrize("change", [
    {"weights": base64.b64encode(b"\x01\x02").decode()},  # not one byte per n-gram and class
    {"df": [1]},  # a count short
    {"grams": ["aa", "aa", "bb"]},  # a second copy of an n-gram would take the first one's weights
    {"df": "zero"}, {"df": [0] * 3}, {"df": [10 ** 9] * 3},  # no training document, or more than there were
    {"scale": float("nan")}, {"scale": 0.0}, {"scale": float("inf")},
    {"scale": 1e308},  # finite, but a score would overflow to inf and the posterior turn NaN
])
def test_a_character_part_that_does_not_fit_the_model_leaves_the_rules_alone(tmp_path: Path, change: dict[str, Any]
                                                                             ) -> None:
    root = _workflows_copy(tmp_path)
    data = json.loads((root / classify_learned.MODEL_FILE).read_text(encoding="utf-8"))
    chars = data["linear"]["chars"]
    width = len(data["classes"])
    small = {"grams": chars["grams"][:3], "df": chars["df"][:3], "scale": chars["scale"],
             "weights": base64.b64encode(base64.b64decode(chars["weights"])[:3 * width]).decode()}
    fits = {**data, "linear": {**data["linear"], "chars": small}}
    assert classify_learned.parse(json.dumps(fits)) is not None  # three n-grams are a model; the change is not
    (root / classify_learned.MODEL_FILE).write_text(json.dumps({**data, "linear": {**data["linear"],
                                                                                 "chars": {**small, **change}}}))
    assert learned_model(load_catalog(root)) is None
    assert any(classify_learned.MODEL_FILE in e for e in validate_paths(root))


def _rows(train: ModuleType) -> list[dict[str, Any]]:
    """Three rows of one batch and class, each with the split the rule gives it; the tuning ones say "zzkept"."""
    rows = [{"url": f"https://github.com/a/b/issues/{n}", "body": "", "labels": [], "expected": "error-investigation",
             "added": "x"} for n in (1, 2, 3)]
    rule = train.split_of(rows)
    for r in rows:
        r["split"] = rule[r["url"]]
        r["title"] = f"Crash in {'zzkept' if r['split'] == 'tuning' else 'zzheld'}{r['url'][-1]}"
    assert {r["split"] for r in rows} == {"tuning", "held-back"}
    return rows


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_training_never_reads_a_held_back_item(tmp_path: Path) -> None:
    train = _train_module()
    data = _write(tmp_path / "set.jsonl", _rows(train))
    feats = train.counts(train.tuning_items(data), CLASSES, 1)["features"]
    assert any("zzkept" in f for f in feats) and not any("zzheld" in f for f in feats)


def test_training_refuses_a_row_whose_stored_split_disagrees_with_the_rule(tmp_path: Path) -> None:
    train = _train_module()
    rows = _rows(train)
    held = next(r for r in rows if r["split"] == "held-back")
    held["split"] = "tuning"  # a hand edit that would train on a held-back issue
    with pytest.raises(SystemExit, match="refusing to train.*" + held["url"]):
        train.tuning_items(_write(tmp_path / "set.jsonl", rows))


def test_the_model_names_the_tuning_rows_only(tmp_path: Path) -> None:
    """Editing a held-back row leaves the model file as it is; editing a tuning row changes its ``about``."""
    train = _train_module()
    rows = _rows(train)
    before = train.tuning_sha(_write(tmp_path / "a.jsonl", rows))
    held = next(r for r in rows if r["split"] == "held-back")
    held["body"] = "edited"
    assert train.tuning_sha(_write(tmp_path / "b.jsonl", rows)) == before
    kept = next(r for r in rows if r["split"] == "tuning")
    kept["body"] = "edited"
    assert train.tuning_sha(_write(tmp_path / "c.jsonl", rows)) != before
    items = train.tuning_items(tmp_path / "c.jsonl")
    assert train.tuning_sha(tmp_path / "c.jsonl")[:12] in train.model_data(items, (1.0, 1, 1.0, 4), train.tuning_sha(
        tmp_path / "c.jsonl"))["about"]


def _issue(title: str, text: str) -> events.WorkItem:
    body = {"action": "opened", "repository": {"full_name": "a/b", "default_branch": "main"},
            "sender": {"login": "u", "id": 1, "type": "User"}, "installation": {"id": 1},
            "issue": {"number": 1, "title": title, "body": text,
                      "labels": [], "user": {"login": "u", "id": 1, "type": "User"}, "state": "open"}}
    event = events.parse("issues", body, "d-1")
    assert isinstance(event, events.WorkItem)
    return event


def test_triage_decide_and_explain_agree_with_the_shipped_model() -> None:
    event = _issue("App crashes when opening preferences", "heap grows")
    decision = triage.decide(event, load_catalog())
    made, evidence = triage.explain(event, load_catalog())
    assert made == decision and "the learned model" in decision.reason  # the bot's own decision uses it
    winner = evidence["workflows"][0]
    assert winner["workflow"] == decision.workflow and any(h["kind"] == "learned" for h in winner["hits"])


def test_the_benchmark_measures_the_rules_alone_beside_the_lead() -> None:
    """triage_accuracy's "rules-alone" decider is the Lead without its learned model, so before/after reproduces."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(1, str(ROOT / "benchmarks"))
    import triage_accuracy as bench

    lead, rules = bench.lead(), bench.lead(learned=False)
    tuning = [i for i in bench.load() if i["split"] == "tuning"]
    for item in tuning[:20]:
        alone = classify.classify(TRIAGE, title=item["title"], body=item["body"] or "").workflow
        assert rules(item, False) == alone
    assert any(lead(i, False) != rules(i, False) for i in tuning)  # the model changes some decisions
