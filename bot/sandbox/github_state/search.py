"""Issue search in the sandbox GitHub's model: GitHub's query syntax (qualifiers, phrases, words)."""

from __future__ import annotations

import re
import shlex

from .base import Repo, StateBase


def _qual_ok(key: str, v: str, issue: dict, labels: set[str], is_pr: bool) -> bool:
    """Whether ``issue`` satisfies one ``key:v`` search qualifier; unknown qualifiers match."""
    if key == "is":
        return {"issue": not is_pr, "pr": is_pr, "open": issue["state"] == "open",
                "closed": issue["state"] == "closed"}.get(v, True)
    if key == "type":
        return (v == "pr") == is_pr
    if key == "state":
        return issue["state"] == v
    if key == "label":
        return bool(labels & {x.strip() for x in v.split(",")})
    if key == "author":
        return issue["user"]["login"].lower() == v
    if key == "no":
        return not labels if v == "label" else True
    return True


class SearchState(StateBase):
    """Parsing a search query and matching an issue against it."""

    @staticmethod
    def parse_query(q: str) -> tuple[list[tuple[str, str, bool]], list[str]]:
        """(qualifiers as (key, value, negated), lower-cased free terms/phrases) of a search string."""
        try:
            tokens = shlex.split(q)
        except ValueError:
            tokens = q.split()
        quals, terms = [], []
        for t in tokens:
            neg = t.startswith("-") and ":" in t
            key, sep, value = t.removeprefix("-").partition(":") if neg else t.partition(":")
            if sep and re.fullmatch(r"[a-z-]+", key) and value:
                quals.append((key.lower(), value, neg))
            elif t.upper() not in ("AND", "OR", "NOT"):
                terms.append(t.lower())
        return quals, terms

    def match_issue(self, repo: Repo, issue: dict, quals: list[tuple[str, str, bool]], terms: list[str]) -> bool:
        where = {v.lower() for k, v, _ in quals if k == "in"} or {"title", "body"}
        text = " ".join([issue["title"]] * ("title" in where) + [issue["body"] or ""] * ("body" in where) + [
            c["body"] for c in repo.comments.values() if "comments" in where and c["__number"] == issue["number"]])
        if not all(t in text.lower() for t in terms):
            return False
        is_pr, labels = "__pull" in issue, {lab["name"].lower() for lab in issue["labels"]}
        for key, value, neg in quals:
            if _qual_ok(key, value.lower(), issue, labels, is_pr) == neg:
                return False
        return True
