"""The labelled triage set (benchmarks/triage/issues.jsonl) keeps the shape its README promises.

Every row has its fields, a known workflow or null, a one-line reason, at most 1,500 characters of body and a
URL that names its repository; URLs are sorted and unique; and each row's ``split`` is the one the hash rule
gives within its batch (the rows with one ``added`` value, a day or a later batch that day such as ``2026-12-03b``,
one ``expected`` class at a time), so nobody can move an item between the tuning and the held-back part by hand.
Each check is shown to catch a row that breaks it.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parent.parent / "benchmarks" / "triage" / "issues.jsonl"
FIELDS = ("url", "repo", "title", "labels", "body", "expected", "reason", "split", "added")
WORKFLOWS = {
    "security-fix",
    "error-investigation",
    "database-performance",
    "devops-pipeline",
    "backend-feature",
    "integration-setup",
    "long-running-project",
    None,
}
MAX_BODY = 1_500
_URL = re.compile(r"https://github\.com/([^/]+/[^/]+)/(?:issues|pull)/\d+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}[a-z]?")  # a day; a letter after it names a second batch that day

Row = dict[str, Any]


def rows() -> list[Row]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


def split_rule(items: list[Row]) -> dict[str, str]:
    """Within each batch and expected class, ordered by sha256(url): positions 0, 3, 6, … held back."""
    groups: dict[tuple[str, str | None], list[str]] = {}
    for item in items:
        groups.setdefault((item["added"], item["expected"]), []).append(item["url"])
    out: dict[str, str] = {}
    for urls in groups.values():
        ranked = sorted(urls, key=lambda u: hashlib.sha256(u.encode()).hexdigest())
        out.update({u: "held-back" if k % 3 == 0 else "tuning" for k, u in enumerate(ranked)})
    return out


def _row_problems(n: int, item: Row) -> list[str]:
    if missing := [f for f in FIELDS if f not in item]:
        return [f"line {n}: missing {missing}"]
    out = []
    if item["expected"] not in WORKFLOWS:
        out.append(f"line {n}: unknown workflow {item['expected']!r}")
    if (m := _URL.fullmatch(item["url"])) is None or m.group(1) != item["repo"]:
        out.append(f"line {n}: url and repo disagree")
    if not isinstance(item["labels"], list) or not all(isinstance(lab, str) for lab in item["labels"]):
        out.append(f"line {n}: labels are not a list of names")
    if not item["title"].strip() or not item["reason"].strip() or "\n" in item["reason"]:
        out.append(f"line {n}: title or one-line reason missing")
    if len(item["body"]) > MAX_BODY:
        out.append(f"line {n}: body longer than {MAX_BODY}")
    if not _DATE.fullmatch(str(item["added"])):
        out.append(f"line {n}: added is not a date")
    return out


def problems(items: list[Row]) -> list[str]:
    """Everything wrong with a set of rows, as sentences naming the line."""
    found = [p for n, item in enumerate(items, 1) for p in _row_problems(n, item)]
    if found:
        return found
    urls = [item["url"] for item in items]
    if urls != sorted(set(urls)):
        found.append("urls are not sorted and unique")
    rule = split_rule(items)
    found += [
        f"line {n}: split {item['split']!r}, the rule says {rule[item['url']]!r}"
        for n, item in enumerate(items, 1)
        if item["split"] != rule[item["url"]]
    ]
    return found


def test_the_shipped_set_keeps_its_promises() -> None:
    items = rows()
    assert problems(items) == []
    assert len(items) >= 150 and {item["expected"] for item in items} == WORKFLOWS
    assert sum(item["split"] == "held-back" for item in items) >= len(items) // 4


def _dup(items: list[Row]) -> None:
    items.insert(1, copy.deepcopy(items[0]))


def _swap_split(items: list[Row]) -> None:
    items[0]["split"] = "tuning" if items[0]["split"] == "held-back" else "held-back"


BREAKS: dict[str, Callable[[list[Row]], None]] = {
    "missing field": lambda items: items[0].pop("reason"),
    "unknown workflow": lambda items: items[0].update(expected="bug"),
    "url and repo disagree": lambda items: items[0].update(repo="someone/else"),
    "labels not names": lambda items: items[0].update(labels="bug"),
    "two-line reason": lambda items: items[0].update(reason="one\ntwo"),
    "long body": lambda items: items[0].update(body="x" * (MAX_BODY + 1)),
    "added not a date": lambda items: items[0].update(added="yesterday"),
    "duplicate url": _dup,
    "unsorted": lambda items: items.reverse(),
    "split moved by hand": _swap_split,
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_each_check_catches_a_row_that_breaks_it(name: str) -> None:
    items = rows()
    BREAKS[name](items)
    assert problems(items), name


def test_the_second_labelling_is_of_known_items_and_gives_the_figures_the_readme_reports() -> None:
    """benchmarks/triage/second_labelling.jsonl: one blind second reading per item of the set as it was on
    2026-12-03 (sorted, unique, known URLs; a workflow or null; a one-line reason); agreement.py's figures are the
    ones triage/README.md's fifteenth round reports."""
    second = DATA.with_name("second_labelling.jsonl")
    rows = [json.loads(line) for line in second.read_text(encoding="utf-8").splitlines()]
    urls = [r["url"] for r in rows]
    assert urls == sorted(set(urls)) and len(urls) == 2_655
    assert set(urls) <= {json.loads(line)["url"] for line in DATA.read_text(encoding="utf-8").splitlines()}
    assert all(set(r) == {"url", "label", "sure", "reason"} and r["label"] in WORKFLOWS and isinstance(r["sure"], bool)
               and 0 < len(r["reason"]) <= 120 and "\n" not in r["reason"] for r in rows)
    spec = importlib.util.spec_from_file_location("agreement", DATA.with_name("agreement.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["agreement"] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    figures = module.agreement()
    assert [(p, a.items, a.agree, a.sure, a.sure_agree) for p, a in sorted(figures.items())] == [
        ("held-back", 916, 855, 687, 684), ("tuning", 1_739, 1_603, 1_338, 1_322)]
