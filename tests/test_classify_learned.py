"""The Lead's learned evidence (bot/core/classify_learned.py): what it reads, how its points join the rules'
evidence, that --explain says what it added, that it falls back to the rules when its file is missing, and that
the shipped model is exactly the one the training script builds from the tuning part (never the held-back part).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bot.core import classify, classify_learned, triage
from bot.core.catalog import load_catalog
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

def test_its_points_place_an_issue_the_rules_found_too_thin() -> None:
    title, body = "Service gets killed at night", "the heap grows"  # 2 points: below the threshold
    rules = classify.classify(TRIAGE, title=title, body=body)
    assert rules.workflow is None
    c = classify.classify(TRIAGE, title=title, body=body, learned=toy(8))
    assert c.workflow == "error-investigation" and "the learned model" in c.reason


def test_its_none_points_join_the_evidence_that_no_workflow_fits() -> None:
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
    _, evidence = classify.explain(TRIAGE, title=title, body=body, labels=["api"], learned=toy(40))
    said = evidence.to_json()["learned"]
    assert said["added"] is False and "'api'" in said["why"] and said["changed_the_decision"] is False


def test_it_never_outweighs_a_label_that_says_no_work_is_wanted() -> None:
    c = classify.classify(TRIAGE, title="Crash", body="the heap grows", labels=["duplicate"], learned=toy(40))
    assert c.workflow is None and "duplicate" in c.reason


def test_a_weight_of_zero_adds_nothing() -> None:
    w = classify.weigh(TRIAGE, title="Service gets killed at night", body="the heap grows", learned=toy(0))
    assert not any(h.kind == "learned" for case in w.cases for h in case.hits)
    assert classify.placed(w) is None


# ---- --explain says what it added ------------------------------------------------------------------------------

def test_explain_shows_its_points_and_what_the_rules_alone_decided() -> None:
    title, body = "Service gets killed at night", "the heap grows"
    c, evidence = classify.explain(TRIAGE, title=title, body=body, learned=toy(8))
    assert c == classify.classify(TRIAGE, title=title, body=body, learned=toy(8))
    said = evidence.to_json()["learned"]
    assert said["rules_alone"] is None and said["changed_the_decision"] is True and said["added"] is True
    assert said["favourite"] == "error-investigation" and said["telling_features"] == ["w:heap"]
    winner = evidence.candidates[0]
    assert any(h.kind == "learned" and h.weight > 0 for h in winner.hits)
    assert winner.score == sum(h.weight for h in winner.hits)
    _, plain = classify.explain(TRIAGE, title=title, body=body)
    assert plain.to_json()["learned"] is None


# ---- the shipped model ---------------------------------------------------------------------------------------

def test_a_missing_or_broken_model_file_leaves_the_rules_alone(tmp_path: Path) -> None:
    assert classify_learned.load(tmp_path / "absent.json") is None
    (tmp_path / "broken.json").write_text("{\"classes\": [")
    assert classify_learned.load(tmp_path / "broken.json") is None


def test_the_lead_uses_the_shipped_model() -> None:
    model = classify_learned.shipped()
    assert model is not None and 0 < model.weight
    assert set(model.classes) == {*TRIAGE["priority"], NONE}
    assert "tuning part" in model.about


def test_the_shipped_model_is_what_the_training_script_builds_from_the_tuning_part() -> None:
    train = _train_module()
    shipped = json.loads((DEFAULT_ROOT / classify_learned.MODEL_FILE).read_text(encoding="utf-8"))
    items = train.tuning_items()
    rebuilt = train.counts(items, tuple(shipped["classes"]), shipped["min_df"])
    assert rebuilt["docs"] == shipped["docs"] and rebuilt["features"] == shipped["features"]


def test_training_never_reads_a_held_back_item(tmp_path: Path) -> None:
    train = _train_module()
    rows = [{"url": "https://github.com/a/b/issues/1", "title": "Crash in zzkeptword", "body": "", "labels": [],
             "expected": "error-investigation", "split": "tuning", "added": "x"},
            {"url": "https://github.com/a/b/issues/2", "title": "Crash in zzheldword", "body": "", "labels": [],
             "expected": "error-investigation", "split": "held-back", "added": "x"}]
    data = tmp_path / "set.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    feats = train.counts(train.tuning_items(data), CLASSES, 1)["features"]
    assert "w:zzkeptword" in feats and not any("zzheldword" in f for f in feats)


def test_triage_decide_and_explain_agree_with_the_shipped_model() -> None:
    from bot.core import events

    body = {"action": "opened", "repository": {"full_name": "a/b", "default_branch": "main"},
            "sender": {"login": "u", "id": 1, "type": "User"}, "installation": {"id": 1},
            "issue": {"number": 1, "title": "App crashes when opening preferences", "body": "heap grows",
                      "labels": [], "user": {"login": "u", "id": 1, "type": "User"}, "state": "open"}}
    event = events.parse("issues", body, "d-1")
    assert isinstance(event, events.WorkItem)
    decision = triage.decide(event, load_catalog())
    made, evidence = triage.explain(event, load_catalog())
    assert made == decision and "the learned model" in decision.reason  # the bot's own decision uses it
    winner = evidence["workflows"][0]
    assert winner["workflow"] == decision.workflow and any(h["kind"] == "learned" for h in winner["hits"])
