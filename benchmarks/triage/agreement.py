"""How often a second, blind labelling agrees with the set's ``expected`` (issue 15, fifteenth round).

``second_labelling.jsonl`` holds, for the 2,655 items the set had on 2026-12-03, a second reading by labellers who saw
the title, labels and body only (never the first label, its reason, or any classifier's output), with ``sure: false``
where they thought another careful triager could choose otherwise. No ``expected`` was changed by it: it measures how
consistent the labelling is, which bounds what any classifier can score on the set.

    python benchmarks/triage/agreement.py
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA, SECOND = HERE / "issues.jsonl", HERE / "second_labelling.jsonl"


@dataclass
class Agreement:
    items: int = 0
    agree: int = 0
    sure: int = 0
    sure_agree: int = 0
    apart: Counter[tuple[str, str]] = field(default_factory=Counter)  # (expected, second) where they differ


def agreement(data: Path = DATA, second: Path = SECOND) -> dict[str, Agreement]:
    """Per part of the split (``held-back``, ``tuning``): the items labelled twice and how often the two agree."""
    first = {r["url"]: r for r in _rows(data)}
    out: dict[str, Agreement] = {}
    for row in _rows(second):
        item = first[row["url"]]
        a = out.setdefault(item["split"], Agreement())
        same = (item["expected"] or None) == (row["label"] or None)
        a.items, a.agree = a.items + 1, a.agree + same
        a.sure, a.sure_agree = a.sure + row["sure"], a.sure_agree + (row["sure"] and same)
        if not same:
            a.apart[(item["expected"] or "none", row["label"] or "none")] += 1
    return out


def _rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    print("| part | items | agree | where the second labeller was sure | where not | most frequent disagreements |")
    print("|---|---|---|---|---|---|")
    for part, a in sorted(agreement().items()):
        top = ", ".join(f"{e} → {s} {n}" for (e, s), n in a.apart.most_common(3))
        print(f"| {part} | {a.items} | {a.agree} ({a.agree / a.items:.1%}) | {a.sure_agree} of {a.sure} | "
              f"{a.agree - a.sure_agree} of {a.items - a.sure} | {top} |")


if __name__ == "__main__":
    main()
