"""How the Lead places real public GitHub issues: accuracy with and without labels, against naive baselines.

Reads ``benchmarks/triage/issues.jsonl`` (labelled by hand before any tuning; see
``benchmarks/triage/README.md``), turns each item into the webhook payload it would arrive as
(``issues.opened``, or ``pull_request.opened`` for a pull request), parses it with ``bot.core.events.parse``
and asks the Lead's offline decision (``bot.core.triage.decide`` with the default catalog), once with the
issue's labels and once with them removed; beside it the same Lead without its learned model ("rules-alone"),
so what the model adds can be measured again. The held-back part is the one to report; the tuning part is
printed separately and is the only one to look at while tuning.

A decision counts as right when it equals ``expected``; for an issue no workflow fits (``expected`` null),
asking for a label (workflow None) is the right answer. Beside the Lead, two naive baselines that do not
move when the classifier is tuned: the label map alone, and the label map else the keyword found first in
the text (both from a frozen copy of the untuned triage.yml).

    python benchmarks/triage_accuracy.py                 # held-back, then tuning
    python benchmarks/triage_accuracy.py --part tuning --misses
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import _common as C

DATA = C.ROOT / "benchmarks" / "triage" / "issues.jsonl"
WORKFLOWS = ("security-fix", "error-investigation", "database-performance", "devops-pipeline",
             "backend-feature", "integration-setup", "long-running-project")
SHORT = {"security-fix": "sec", "error-investigation": "err", "database-performance": "db",
         "devops-pipeline": "ops", "backend-feature": "api", "integration-setup": "int",
         "long-running-project": "long", None: "asked"}
FIELDS = ("url", "repo", "title", "labels", "body", "expected", "reason", "split")
_URL = re.compile(r"https://github\.com/([^/]+/[^/]+)/(issues|pull)/(\d+)")

# The baselines read a frozen copy of workflows/triage.yml's label map, priority and text keywords as they
# were before any tuning (benchmarks/triage/baseline.json), so the reference figures stay put while the
# classifier and triage.yml change.
BASELINE = json.loads((DATA.parent / "baseline.json").read_text(encoding="utf-8"))


# ---- the labelled set ------------------------------------------------------------------------

def load(path: Path = DATA) -> list[dict[str, Any]]:
    """The labelled issues, checked: every field present, a known workflow or null, sorted unique URLs."""
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    problems = []
    for n, item in enumerate(items, 1):
        missing = [f for f in FIELDS if f not in item]
        if missing:
            problems.append(f"line {n}: missing {missing}")
        elif item["expected"] not in (*WORKFLOWS, None) or item["split"] not in ("tuning", "held-back"):
            problems.append(f"line {n}: expected {item['expected']!r} / split {item['split']!r}")
        elif (m := _URL.fullmatch(item["url"])) is None or m.group(1) != item["repo"]:
            problems.append(f"line {n}: url and repo disagree")
    urls = [i.get("url") for i in items]
    if urls != sorted(set(urls)):
        problems.append("urls are not sorted and unique")
    if problems:
        raise SystemExit(f"{path}: " + "; ".join(problems))
    return items


def split_of(items: list[dict[str, Any]]) -> dict[str, str]:
    """The split rule, recomputed: within each batch (``added``) and expected class, ordered by sha256(url), every
    third is held back. Per batch, so that adding issues never moves one between parts."""
    groups: dict[tuple[Any, Any], list[str]] = {}
    for i in items:
        groups.setdefault((i.get("added"), i["expected"]), []).append(i["url"])
    out: dict[str, str] = {}
    for urls in groups.values():
        ranked = sorted(urls, key=lambda u: hashlib.sha256(u.encode()).hexdigest())
        out.update({u: "held-back" if k % 3 == 0 else "tuning" for k, u in enumerate(ranked)})
    return out


# ---- payloads and decisions ------------------------------------------------------------------

def payload(item: dict[str, Any], *, labels: bool) -> tuple[str, dict[str, Any]]:
    """(event name, webhook payload) as GitHub would deliver the item when it is opened."""
    m = _URL.fullmatch(item["url"])
    assert m is not None
    repo, kind, number = m.group(1), m.group(2), int(m.group(3))
    user = {"login": "reporter", "id": 1, "type": "User"}
    thing = {"number": number, "title": item["title"], "body": item["body"] or None,
             "labels": [{"name": name} for name in item["labels"]] if labels else [],
             "user": user, "state": "open", "html_url": item["url"]}
    base = {"action": "opened", "repository": {"full_name": repo, "default_branch": "main"},
            "sender": user, "installation": {"id": C.INSTALLATION}}
    if kind == "pull":
        sha = hashlib.sha1(item["url"].encode()).hexdigest()
        thing |= {"head": {"sha": sha, "ref": "topic", "repo": {"full_name": repo}},
                  "base": {"sha": "0" * 40, "ref": "main"}, "draft": False}
        return "pull_request", base | {"pull_request": thing}
    return "issues", base | {"issue": thing}


def lead(*, learned: bool = True) -> Callable[[dict[str, Any], bool], str | None]:
    """The Lead's offline decision for an item, through the same parse the webhook uses; with ``learned=False``
    the rules alone (the Lead without its learned model), so the model's before/after can be measured."""
    from dataclasses import replace

    from bot.core import events, triage
    from bot.core.catalog import learned_model, load_catalog

    catalog = load_catalog()
    if not learned:
        catalog = replace(catalog, root=None)  # a catalog with no folder has no learned model beside it
        assert learned_model(catalog) is None

    def decide(item: dict[str, Any], labels: bool) -> str | None:
        name, body = payload(item, labels=labels)
        event = events.parse(name, body, f"bench-{hashlib.sha1(item['url'].encode()).hexdigest()[:12]}")
        if not isinstance(event, events.WorkItem):
            raise SystemExit(f"{item['url']}: the payload did not parse as a work item: {event}")
        workflow = triage.decide(event, catalog).workflow
        return workflow if isinstance(workflow, str) else None

    return decide


def label_map(item: dict[str, Any], labels: bool) -> str | None:
    """Baseline: the first mapped label by priority, or ask."""
    mapped = BASELINE["labels"]
    hits = {mapped[lab.lower()] for lab in (item["labels"] if labels else []) if lab.lower() in mapped}
    return next((w for w in BASELINE["priority"] if w in hits), None)


def first_keyword(item: dict[str, Any], labels: bool) -> str | None:
    """Baseline: the label map, else the workflow of the keyword found earliest in the title and body, else ask."""
    if by_label := label_map(item, labels):
        return by_label
    text = f"{item['title']}\n{item['body']}".lower()
    best: tuple[int, str] | None = None
    for workflow, words in BASELINE["keywords"].items():
        for word in words:
            if (m := re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text)) and (best is None or m.start() < best[0]):
                best = (m.start(), workflow)
    return best[1] if best else None


# ---- figures ---------------------------------------------------------------------------------

def score(items: list[dict[str, Any]], decided: list[str | None]) -> dict[str, Any]:
    """Accuracy, placeable issues asked about, and placed wrongly."""
    placeable = [(i, d) for i, d in zip(items, decided, strict=True) if i["expected"] is not None]
    right = sum(i["expected"] == d for i, d in zip(items, decided, strict=True))
    asked = sum(d is None for _, d in placeable)
    return {"n": len(items), "right": right, "accuracy": round(right / len(items), 3) if items else None,
            "placeable": len(placeable), "asked_placeable": asked,
            "asked_share": round(asked / len(placeable), 3) if placeable else None,
            "null_items": len(items) - len(placeable),
            "null_right": sum(d is None for i, d in zip(items, decided, strict=True) if i["expected"] is None)}


def confusion(items: list[dict[str, Any]], decided: list[str | None], title: str) -> None:
    """Expected (rows) × decided (columns), None shown as 'asked'."""
    counts = Counter((i["expected"], d) for i, d in zip(items, decided, strict=True))
    cols = [*WORKFLOWS, None]
    rows = [{"expected \\ decided": SHORT[e], **{SHORT[d]: counts.get((e, d), 0) or "." for d in cols},
             "total": sum(counts.get((e, d), 0) for d in cols)} for e in cols]
    C.table(rows, ["expected \\ decided", *(SHORT[d] for d in cols), "total"], title=title)


def run_part(name: str, items: list[dict[str, Any]], deciders: dict[str, Callable[[dict[str, Any], bool], str | None]],
             *, misses: bool) -> None:
    """Every decider with and without labels on one part: JSON lines, a side-by-side table, the Lead's matrices."""
    rows, lead_runs = [], {}
    for who, decide in deciders.items():
        for with_labels in (True, False):
            decided = [decide(i, with_labels) for i in items]
            rec = {"bench": "triage_accuracy", "part": name, "decider": who,
                   "labels": "with" if with_labels else "removed", **score(items, decided)}
            C.emit(rec)
            rows.append(rec)
            if who == "lead":
                lead_runs[with_labels] = decided
    C.table(rows, ["decider", "labels", "n", "right", "accuracy", "placeable", "asked_placeable", "asked_share",
                   "null_items", "null_right"], title=f"{name}: {len(items)} issues, {_mix(items)}")
    by_batch(items, lead_runs, name)
    for with_labels, decided in lead_runs.items():
        confusion(items, decided, f"{name}, the Lead, labels {'kept' if with_labels else 'removed'}: "
                                  f"expected (rows) x decided (columns)")
        if misses:
            _print_misses(items, decided)


def by_batch(items: list[dict[str, Any]], lead_runs: dict[bool, list[str | None]], name: str) -> None:
    """The Lead's figures per batch (``added``), counts only: a batch written down after a round of tuning is the
    cleanest test of whether that round's rules carry over to new issues."""
    rows = []
    for batch in sorted({str(i.get("added")) for i in items}):
        at = [k for k, i in enumerate(items) if str(i.get("added")) == batch]
        row: dict[str, Any] = {"batch": batch, "n": len(at)}
        for with_labels, decided in lead_runs.items():
            s = score([items[k] for k in at], [decided[k] for k in at])
            tag = "kept" if with_labels else "removed"
            row |= {f"right ({tag})": s["right"], f"asked placeable ({tag})": f"{s['asked_placeable']}/{s['placeable']}"}
            C.emit({"bench": "triage_accuracy", "part": name, "decider": "lead", "batch": batch,
                    "labels": "with" if with_labels else "removed", **s})
        rows.append(row)
    C.table(rows, list(rows[0]) if rows else [], title=f"{name}: the Lead per batch")


def _mix(items: Iterable[dict[str, Any]]) -> str:
    c = Counter(SHORT[i["expected"]] for i in items)
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items()))


def _print_misses(items: list[dict[str, Any]], decided: list[str | None]) -> None:
    for item, d in zip(items, decided, strict=True):
        if item["expected"] != d:
            print(f"  miss: expected {SHORT[item['expected']]:5} got {SHORT[d]:5} {item['url']}  "
                  f"[{', '.join(item['labels'])}] {item['title'][:70]}")


def main(args: argparse.Namespace) -> int:
    items = load(Path(args.data))
    rule = split_of(items)  # once: it ranks every batch and class
    drift = [i["url"] for i in items if rule[i["url"]] != i["split"]]
    if drift:
        print(f"warning: {len(drift)} items' split differs from the rule (first: {drift[0]})", file=sys.stderr)
    deciders = {"lead": lead(), "rules-alone": lead(learned=False), "label-map": label_map,
                "first-keyword": first_keyword}
    C.emit({"bench": "triage_accuracy", "data": str(Path(args.data)), "items": len(items),
            "held_back": sum(i["split"] == "held-back" for i in items), "machine": C.machine()})
    for part in (("held-back", "tuning") if args.part == "both" else (args.part,)):
        chosen = items if part == "all" else [i for i in items if i["split"] == part]
        # The held-back part's misses are never listed: reading them is how a held-back set stops being one.
        # "all" holds the held-back part too, so it never lists them either.
        run_part(part, chosen, deciders, misses=args.misses and part == "tuning")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("both", "held-back", "tuning", "all"), default="both",
                        help="which part of the set to score (default: held-back, then tuning)")
    parser.add_argument("--misses", action="store_true", help="list the Lead's misses under each matrix (never for the held-back part)")
    parser.add_argument("--data", default=str(DATA), help="the labelled set (JSON lines)")
    sys.exit(main(parser.parse_args()))
