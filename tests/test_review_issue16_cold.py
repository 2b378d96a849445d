"""A cold review of issue 16's faster defusing (be5d194) and of a keyword-list reading tried in session 33 (_stuffed
counting a body's own words only where the learned model knows them): each test here failed on a defect the review
found, and holds since it was mended (the vocabulary reading was not landed).

Defusing: the output was the old one on every text tried (810,000 differential cases), but the scheme walk-back
judged every ``://`` as a URL, where the old pattern only judged a run that starts with a letter: a 64 KB
``\\:\\/\\/`` run took 2.9 s against 29 ms. Keyword lists: an English vocabulary deciding which of a body's own words
count made a report written in Spanish, French or Russian around English technical terms read as a list.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.core import defuse as D
from tests.test_attacks_s32_triage import workflow

HOSTS = frozenset({"github.com"})


# No text below holds a letter before its ':' (nor a '](', '<', 'www' or ']:'), so the old passes judged no
# destination at all; each '://' the walk-back finds cost a 300-character tail unescaped and read.
@pytest.mark.parametrize("unit", ["\\:\\/\\/", "://", "1://", "-\\://"], ids=["escaped", "bare", "digit", "dash"])
def test_a_colon_slash_run_with_no_scheme_is_not_judged_as_a_url(monkeypatch: pytest.MonkeyPatch, unit: str) -> None:
    judged: list[str] = []
    real: Callable[[str, frozenset[str]], bool] = D._allowed

    def counting(dest: str, hosts: frozenset[str]) -> bool:
        judged.append(dest)
        return real(dest, hosts)

    monkeypatch.setattr(D, "_allowed", counting)
    text = unit * 200
    assert D.defuse(text, hosts=HOSTS) == text
    assert judged == []


# Real reports in other languages, the technical terms in English as people write them, each placed by its keywords;
# an English vocabulary knew 2-4 of their own words, so 11 keyword words read as a list.
@pytest.mark.parametrize(("title", "body", "expected"), [
    ("Consulta lenta", "Consulta lenta en Postgres: EXPLAIN ANALYZE muestra seq scan en orders, ningún índice, latency "
     "alta, timeout, deadlock con high load en MySQL también.", "database-performance"),
    ("Requête lente", "Requête lente sur Postgres : EXPLAIN ANALYZE montre un seq scan sur orders, aucun index, latency "
     "élevée, timeout et deadlock sous high load, MySQL aussi.", "database-performance"),
    ("Сборка сломалась", "GitHub Actions: CI pipeline красный. Docker build падает, deploy на staging (Kubernetes, "
     "Helm) висит, Terraform и Ansible падают. Jenkins тоже.", "devops-pipeline"),
], ids=["spanish", "french", "russian"])
def test_a_report_in_another_language_is_not_read_as_a_keyword_list(title: str, body: str, expected: str) -> None:
    assert workflow(title, body) == expected
