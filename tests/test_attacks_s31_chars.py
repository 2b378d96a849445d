"""Session 31, an outsider attacking the linear part's character n-grams (``classify_learned.char_grams``,
``Linear.grams``, the model file's ``linear.chars``): hostile model files, hostile text, and padding that steers.
A model file that does not fit must leave the rules alone (``parse`` returns None) or load a sane model; never a
crash or a NaN at triage time. A hole the design cannot fix cheaply is written as the behaviour it should have,
``xfail(strict=True)``; a cheap one as a plain test that fails until it is fixed."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.core import classify, classify_learned
from bot.core.catalog import DEFAULT_ROOT, learned_model, load_catalog, validate_paths
from tests.test_cli_triage import call, saved

SHIPPED = json.loads((DEFAULT_ROOT / classify_learned.MODEL_FILE).read_text(encoding="utf-8"))
Mutation = Callable[[dict[str, Any]], None]

# A few issues the hostile models are asked about: each must give a finite posterior summing to 1.
ISSUES = [("OAuth login fails", "When I sign in with GitHub OAuth the callback returns 500."),
          ("Slow query on the orders table", "The dashboard takes 30 seconds; EXPLAIN shows a sequential scan."),
          ("Hello", "hi"), ("", "")]


def shipped() -> classify_learned.Model:
    model = learned_model(load_catalog())
    assert model is not None and model.linear is not None
    return model


def without_chars(model: classify_learned.Model) -> classify_learned.Model:
    assert model.linear is not None
    return dataclasses.replace(model, linear=dataclasses.replace(model.linear, grams={}))


def hostile(mutate: Mutation) -> str:
    data = copy.deepcopy(SHIPPED)
    mutate(data)
    return json.dumps(data)  # NaN and Infinity are written as JSON's extension, which json.loads reads back


def chars(**changes: Any) -> Mutation:
    return lambda d: d["linear"]["chars"].update(changes)


def set_chars(value: Any) -> Mutation:
    return lambda d: d["linear"].__setitem__("chars", value)


def n_grams() -> int:
    return len(SHIPPED["linear"]["chars"]["grams"])


def width() -> int:
    return len(SHIPPED["classes"])


def sane(model: classify_learned.Model) -> None:
    """The model answers every issue with a finite posterior summing to 1, and triage with it does not raise."""
    triage = load_catalog().triage
    for title, body in ISSUES:
        text = classify.read(title, body)
        feats = classify_learned.features(text.title, text.prose)
        p = model.posterior(feats, model.grams(text.title, text.prose))
        assert all(math.isfinite(v) and 0 <= v <= 1 for v in p.values()), p
        assert math.isclose(sum(p.values()), 1.0, abs_tol=1e-9)
        classify.classify(triage, title=title, body=body, learned=model)


def test_the_shipped_model_reads_character_n_grams() -> None:
    """The attacks below are on the real thing: the shipped file has a char part and the Lead reads it."""
    model = shipped()
    assert model.linear is not None and len(model.linear.grams) == n_grams() > 0 and model.mix > 0
    sane(model)


# ---- hostile model files: refused (the rules decide alone) ---------------------------------------------------

REFUSED: dict[str, Mutation] = {
    "grams-duplicate": lambda d: d["linear"]["chars"]["grams"].__setitem__(1, d["linear"]["chars"]["grams"][0]),
    "grams-missing": lambda d: d["linear"]["chars"].pop("grams"),
    "grams-too-few": lambda d: d["linear"]["chars"]["grams"].pop(),
    "df-zero": lambda d: d["linear"]["chars"]["df"].__setitem__(0, 0),
    "df-negative": lambda d: d["linear"]["chars"]["df"].__setitem__(0, -3),
    "df-above-docs": lambda d: d["linear"]["chars"]["df"].__setitem__(0, sum(d["docs"]) + 1),
    "df-huge": lambda d: d["linear"]["chars"]["df"].__setitem__(0, 10**400),
    "df-float-string": lambda d: d["linear"]["chars"]["df"].__setitem__(0, "1.5"),
    "df-nan": lambda d: d["linear"]["chars"]["df"].__setitem__(0, math.nan),
    "df-infinite": lambda d: d["linear"]["chars"]["df"].__setitem__(0, math.inf),
    "df-null": lambda d: d["linear"]["chars"]["df"].__setitem__(0, None),
    "df-too-short": lambda d: d["linear"]["chars"]["df"].pop(),
    "df-not-a-list": chars(df=7),
    "weights-too-short": chars(weights=base64.b64encode(bytes(n_grams() * width() - 1)).decode()),
    "weights-too-long": chars(weights=base64.b64encode(bytes(n_grams() * width() + 1)).decode()),
    "weights-a-row-more": chars(weights=base64.b64encode(bytes((n_grams() + 1) * width())).decode()),
    "weights-not-base64": chars(weights="not base64!"),
    "weights-a-list": chars(weights=[1, 2, 3]),
    "scale-nan": chars(scale=math.nan),
    "scale-infinite": chars(scale=math.inf),
    "scale-negative": chars(scale=-0.01),
    "scale-zero": chars(scale=0),
    "scale-string": chars(scale="big"),
    "scale-null": chars(scale=None),
    "chars-a-string": set_chars("grams"),
    "chars-a-number": set_chars(7),
    "chars-true": set_chars(True),
    "chars-a-list": set_chars([{"grams": []}]),
}


@pytest.mark.parametrize("mutate", REFUSED.values(), ids=REFUSED.keys())
def test_a_char_part_that_does_not_fit_leaves_the_rules_alone(mutate: Mutation) -> None:
    assert classify_learned.parse(hostile(mutate)) is None


def catalog_with(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "workflows"
    shutil.copytree(DEFAULT_ROOT, root)
    (root / classify_learned.MODEL_FILE).write_text(text, encoding="utf-8")
    return root


def test_validate_names_a_char_part_that_does_not_fit(tmp_path: Path) -> None:
    problems = validate_paths(catalog_with(tmp_path, hostile(REFUSED["grams-duplicate"])))
    assert any("triage_model.json: not a learned model the Lead can read" in p for p in problems), problems


# ---- hostile model files: loaded, and sane --------------------------------------------------------------------

NO_CHARS: dict[str, Mutation] = {"null": set_chars(None), "empty-list": set_chars([]), "empty-dict": set_chars({}),
                                 "missing": lambda d: d["linear"].pop("chars")}


@pytest.mark.parametrize("mutate", NO_CHARS.values(), ids=NO_CHARS.keys())
def test_no_char_part_means_the_linear_part_without_one(mutate: Mutation) -> None:
    """null, [], {} or no key: a model without n-grams, exactly the shipped one with its n-grams taken away."""
    model = classify_learned.parse(hostile(mutate))
    assert model is not None and model.linear is not None and not model.linear.grams
    assert model.grams("oauth login", "the callback fails") is None  # not cut: nobody reads them
    off = without_chars(shipped())
    for title, body in ISSUES:
        text = classify.read(title, body)
        feats = classify_learned.features(text.title, text.prose)
        assert model.posterior(feats, model.grams(text.title, text.prose)) == off.posterior(feats)
    sane(model)


def test_extra_keys_in_the_char_part_are_ignored() -> None:
    model = classify_learned.parse(hostile(lambda d: d["linear"]["chars"].update(zzz=1, about="?")))
    assert model is not None and model.linear is not None and len(model.linear.grams) == n_grams()
    sane(model)


# Either outcome is fine here: refused, or loaded and sane (the grams' order is no longer checked: a list whose
# weights follow it in any order is a model; the rows of a reversed list are wrong but finite).
EITHER: dict[str, Mutation] = {
    "grams-unsorted": lambda d: d["linear"]["chars"]["grams"].reverse(),
    "grams-not-strings": lambda d: d["linear"]["chars"].update(grams=list(range(n_grams()))),
    "df-floats-truncated": lambda d: d["linear"]["chars"].update(df=[x + 0.9 for x in d["linear"]["chars"]["df"]]),
    "scale-tiny": chars(scale=5e-324),
    "scale-large": chars(scale=1e6),
    "weights-all-extreme": chars(weights=base64.b64encode(bytes([0x80, 0x7F]) * (n_grams() * width() // 2)).decode()),
}


def test_the_most_extreme_model_the_bounds_accept_is_sane() -> None:
    """Every weight at ±127, both scales at MAX_SCALE, the bias at ±MAX_BIAS: still finite on the longest text."""
    extreme = base64.b64encode(bytes([0x7F, 0x80]) * (n_grams() * width() // 2) + bytes([0x7F]) * (n_grams() * width()
                                                                                                   % 2)).decode()

    def mutate(d: dict[str, Any]) -> None:
        lin = d["linear"]
        words = len(base64.b64decode(lin["weights"]))
        lin |= {"scale": classify_learned.MAX_SCALE, "weights": base64.b64encode(bytes([0x80]) * words).decode(),
                "bias": [classify_learned.MAX_BIAS * (-1) ** k for k in range(width())]}
        lin["chars"] |= {"scale": classify_learned.MAX_SCALE, "weights": extreme}

    model = classify_learned.parse(hostile(mutate))
    assert model is not None
    sane(model)
    text = classify.read(*TEXTS["lowercase-grows"])
    p = model.posterior(classify_learned.features(text.title, text.prose), model.grams(text.title, text.prose))
    assert all(math.isfinite(v) for v in p.values())


# Was a hole when this file was written (a scale bounded only by ``< inf``: 1e307 loaded, the part's score
# overflowed to ±inf, every posterior was NaN and ``points_of`` raised on every triage, while ``validate`` said the
# file was fine); the Lead's MAX_SCALE now refuses it.
OVERFLOWS: dict[str, Mutation] = {
    "chars-scale-1e307": chars(scale=1e307),
    "chars-scale-max-float": chars(scale=1.7976931348623157e308),
    "linear-scale-1e307": lambda d: d["linear"].__setitem__("scale", 1e307),
}


def test_validate_names_a_scale_that_overflows(tmp_path: Path) -> None:
    problems = validate_paths(catalog_with(tmp_path, hostile(OVERFLOWS["chars-scale-1e307"])))
    assert any("triage_model.json" in p for p in problems), problems


# Were holes (older than the char part, found on the way): a temperature bounded only by ``0 < t < inf``, so a tiny
# one (1e-320) loaded and divided every score to ±inf: NaN posterior, and ``points_of`` raised at triage (for naive
# Bayes's temperature and the linear part's alike); a weight past a float (10**400) loaded and raised OverflowError in
# ``points_of``. The Lead now bounds both (MIN_TEMPERATURE, MAX_WEIGHT).
SETTINGS: dict[str, Mutation] = {
    "temperature-zero": lambda d: d.__setitem__("temperature", 0),
    "temperature-tiny": lambda d: d.__setitem__("temperature", 1e-320),
    "linear-temperature-tiny": lambda d: d["linear"].__setitem__("temperature", 1e-320),
    "bias-huge": lambda d: d["linear"].__setitem__("bias", [1e308] * len(d["classes"])),
    "weight-past-a-float": lambda d: d.__setitem__("weight", 10**400),
}


ODD = {**EITHER, **OVERFLOWS, **SETTINGS}


@pytest.mark.parametrize("mutate", ODD.values(), ids=ODD.keys())
def test_an_odd_model_file_is_refused_or_loads_a_sane_model(mutate: Mutation) -> None:
    """A char part that loads or not (EITHER), a scale that would overflow (OVERFLOWS), settings out of range
    (SETTINGS): never a model that breaks at triage time."""
    model = classify_learned.parse(hostile(mutate))
    if model is not None:
        sane(model)


def test_a_negative_temperature_is_refused() -> None:
    assert classify_learned.parse(hostile(lambda d: d.__setitem__("temperature", -1))) is None


# ---- hostile text ---------------------------------------------------------------------------------------------

TEXTS = {
    "one-megabyte": ("t", "word " * 200_000),
    "one-100k-word": ("t", "a" * 100_000),
    "zero-width": ("x\u200b" * 2000, "\u200b\u200c\u200d\ufeff" * 20_000),
    "combining": ("e\u0301" * 2000, "a\u0300\u0301\u0302" * 20_000),
    "rtl-overrides": ("\u202e" * 500 + "abc", "\u202e\u2066\u05d0\u05d1" * 10_000),
    "nul": ("a\x00b", "\x00" * 100_000),
    "lone-surrogates": ("\ud800 title", "\udfff body \ud83d"),
    "emoji": ("\U0001f525" * 1000, "\U0001f469\u200d\U0001f469\u200d\U0001f467" * 10_000),
    "cjk-no-spaces": ("\u6570\u636e\u5e93" * 400, "\u6570\u636e\u5e93\u7d22\u5f15\u67e5\u8be2\u5f88\u6162" * 5000),
    "whitespace-only": ("   ", "\n\t " * 50_000),
    "empty": ("", ""),
    "lowercase-grows": ("\u0130" * 5000, "\u0130" * 100_000),  # "İ".lower() is two characters
}
# Each character of the text cut into n-grams yields at most one n-gram of each of the four sizes, plus the two
# padding spaces of its word: what the title (read twice, at most twice MAX_TITLE once lowercased) and the cut
# prose can cost, whatever the body's length.
MOST_GRAMS = 4 * 3 * (2 * 2 * classify.MAX_TITLE + classify_learned.MAX_CHAR_PROSE)


@pytest.mark.parametrize(("title", "body"), TEXTS.values(), ids=TEXTS.keys())
def test_hostile_text_gives_a_posterior_and_a_bounded_count_of_n_grams(title: str, body: str) -> None:
    model = shipped()
    text = classify.read(title, body)
    grams = model.grams(text.title, text.prose)
    assert grams is not None and sum(grams.values()) <= MOST_GRAMS  # the work done: one count per n-gram cut
    p = model.posterior(classify_learned.features(text.title, text.prose), grams)
    assert all(math.isfinite(v) for v in p.values()) and math.isclose(sum(p.values()), 1.0, abs_tol=1e-9)
    c = classify.classify(load_catalog().triage, title=title, body=body, learned=model)
    assert 0 <= c.confidence <= 1


def test_a_megabyte_body_is_cut_into_as_many_n_grams_as_its_opening() -> None:
    body = "x" * classify_learned.MAX_CHAR_PROSE
    assert classify_learned.char_grams("t", body + " oauth" * 200_000) == classify_learned.char_grams("t", body)


def test_padding_past_the_prose_cut_moves_nothing() -> None:
    """``oauth`` 5,000 times after the cut (and past MAX_WORDS): the same n-grams, the same posterior, the same
    decision (the rules read further, to MAX_BODY, and may add their own "oauth" hit: not the model's doing)."""
    model, title = shipped(), "App crashes on startup"
    head = "After upgrading, the app shows a blank screen and nothing happens. " + "lorem ipsum " * 300
    a, b = classify.read(title, head), classify.read(title, head + " oauth" * 5000)
    assert model.grams(a.title, a.prose) == model.grams(b.title, b.prose)
    fa, fb = classify_learned.features(a.title, a.prose), classify_learned.features(b.title, b.prose)
    assert model.posterior(fa, model.grams(a.title, a.prose)) == model.posterior(fb, model.grams(b.title, b.prose))
    assert decided(model, title, head) == decided(model, title, head + " oauth" * 5000) == "error-investigation"


# ---- steering with what the char part weighs ------------------------------------------------------------------

def decided(model: classify_learned.Model, title: str, body: str) -> str | None:
    return classify.classify(load_catalog().triage, title=title, body=body, learned=model).workflow


def test_a_title_stuffed_with_a_class_s_n_grams_decides_as_without_the_char_part() -> None:
    model, title = shipped(), "oauthoauthoauth sso webhooks oauthprovider"
    assert decided(model, title, "The page shows a blank screen.") == decided(
        without_chars(model), title, "The page shows a blank screen.")


# Were holes (the char part counts repeats with sublinear tf where the words are binary, and one word's n-grams, normed
# per item, speak as surely as a whole report: "Hello" with "oauth" three times started integration-setup, with
# "token" security-fix): where no label leads the model now says nothing on an issue of at most MIN_KNOWN known
# features (classify.content_share; benchmarks/triage/README.md, round 17).
@pytest.mark.parametrize("word", ["oauth", "query"])
def test_repeating_one_word_weighs_no_more_than_saying_it_once(word: str) -> None:
    model = shipped()
    assert decided(without_chars(model), "Hello", f"{word} " * 3) == decided(without_chars(model), "Hello", word)
    assert decided(model, "Hello", f"{word} " * 3) == decided(model, "Hello", word)


@pytest.mark.parametrize("word", ["deploy", "docker", "slow", "token", "endpoint", "migration"])
def test_a_greeting_and_one_word_still_asks_for_a_label(word: str) -> None:
    model = shipped()
    assert decided(without_chars(model), "Hello", word) is None  # as before the char part
    assert decided(model, "Hello", word) is None


# ---- --explain with hostile text ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lone-surrogates", "nul", "rtl-overrides", "emoji", "cjk-no-spaces", "one-100k-word"])
def test_explain_renders_hostile_text(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str) -> None:
    title, body = TEXTS[name]
    path = saved(tmp_path, json.dumps({"title": title, "body": body, "labels": [], "number": 7, "state": "OPEN"}))
    code, out, err = call(capsys, path, explain=True)
    assert code == 0, err
    learned = out["evidence"]["learned"]
    assert learned is not None and learned["classes"]
    assert all(math.isfinite(k["probability"]) for k in learned["classes"])
    assert "{" not in out["evidence"]["why"] and "{" not in out["reason"]  # no format string left unfilled
