"""Lines of a failed log that green runs of the same job also print: noise, however alarming they look.

The templates are mined with Drain (drain3's ``TemplateMiner``) from the green logs, cleaned and normalised
first: what always varies between runs (dates, times, durations, hex ids, shas, uuids, temporary paths,
versions, numbers) becomes a fixed mask, so a setup line differing only in a timing or an id still matches.
A failed log's line is noise when its normalised form matches a template exactly (``match`` wants every
token that is not a wildcard to be equal).

Mining similarity 0.6 (drain3's default is 0.4): two green lines merge into one template, the differing
tokens becoming wildcards, only when at least 60% of their tokens agree once normalised. At 0.5 or below,
a logger's ``ERROR app.worker retry scheduled`` and ``ERROR app.worker job done`` (2 of 4 alike) merge into
``ERROR app.worker <*> <*>``, which then swallows the failed run's new ``ERROR app.worker database
unreachable``; at 0.8 and above ``Downloading foo-1.2.whl (12 kB)`` and ``Downloading bar-3.0.whl (4 kB)``
(3 of 4 alike) stay apart, so a download only the failed run made is not noise. The pairs in
tests/test_ci_output_noise.py pass from 0.6 to 0.9: 0.6 is the lowest that keeps the logger's lines apart.

Pure and bounded: no persistence, no profiling, a new miner per call, at most MAX_GREEN_LINES green lines
mined and the last MAX_LINES lines of the failed log checked.
"""

from __future__ import annotations

import re

from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig

from bot.core.ci_output.clean import clean_lines

MAX_GREEN_LINES = 20_000
MAX_LINES = 50_000
MAX_CHARS = 500  # of a line, normalised and mined: long lines are rare and their start says what they are
MAX_TOKENS = 32  # of a normalised line: Drain compares templates token by token
MAX_TEMPLATES = 1_000  # green logs this varied have no templates worth learning: mining stops there
SIMILARITY = 0.6

_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?\b"), "<date>"),
    (re.compile(r"\b\d{1,2}:\d\d:\d\d(?:[.,]\d+)?\b"), "<time>"),  # with seconds: 58:14 is a line:col
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"(?:/tmp|/var/folders|/private/var|[A-Za-z]:\\Users\\[^\\\s]+\\AppData\\Local\\Temp)[^\s'\":]*"),
     "<tmp>"),
    # ids and shas (a short sha may be all digits; a word of the letters a-f is left alone)
    (re.compile(r"\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*\d)[0-9a-f]{7,64}\b", re.I), "<hex>"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ns|µs|us|ms|s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)\b"), "<dur>"),
    (re.compile(r"\bv?\d+(?:\.\d+){1,3}(?:[-+][\w.]+)?\b"), "<version>"),
    (re.compile(r"\d+"), "<n>"),
)


def normalise(line: str) -> str:
    """`line` (cleaned) with what varies between runs of the same job masked."""
    out = line[:MAX_CHARS]
    for pattern, mask in _MASKS:
        out = pattern.sub(mask, out)
    return " ".join(out.split()[:MAX_TOKENS])


def _miner() -> TemplateMiner:
    config = TemplateMinerConfig()  # given, so drain3 reads no drain3.ini
    config.profiling_enabled = False
    config.drain_sim_th = SIMILARITY
    config.drain_max_children = 1_000  # a prefix-tree node's children: more distinct first words, shorter leaves
    return TemplateMiner(persistence_handler=None, config=config)


def _green_lines(green_logs: tuple[str, ...]) -> list[str]:
    """Normalised non-blank lines of the green logs, an equal share of MAX_GREEN_LINES from each."""
    logs = [log for log in green_logs if isinstance(log, str) and log]
    share = MAX_GREEN_LINES // max(len(logs), 1)
    out: list[str] = []
    for log in logs:
        # a green log may be huge: cut it before cleaning, at about MAX_CHARS per line it can keep
        lines = clean_lines(log[: share * (MAX_CHARS + 40)])
        out += [n for n in (normalise(line) for line in lines[:share]) if n]
    return out[:MAX_GREEN_LINES]


def noise_lines(lines: list[str], green_logs: tuple[str, ...]) -> frozenset[int]:
    """Indexes of cleaned `lines` that match templates mined from `green_logs` (raw logs)."""
    green = _green_lines(green_logs)
    if not green:
        return frozenset()
    miner = _miner()
    for line in dict.fromkeys(green):  # a line seen before changes no template
        if len(miner.drain.id_to_cluster) >= MAX_TEMPLATES:
            break
        miner.add_log_message(line)
    found = set()
    start = max(0, len(lines) - MAX_LINES)  # the end of the log, where the root error is looked for
    for i, line in enumerate(lines[start:], start=start):
        norm = normalise(line)
        # "never": the prefix tree's leaf only, not every template of the same length (bounded work)
        if norm and miner.match(norm, full_search_strategy="never") is not None:
            found.add(i)
    return frozenset(found)
