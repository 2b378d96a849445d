"""A failed job's reading for people: a verdict, what failed, the root error quoted, context, evidence folded.

At most about 60 lines whatever the log holds (500 failing tests, a 10,000-line error): every list and block is
capped and says how much it left out. Everything from the log (test names, error lines, paths) is untrusted: it
goes into texts' code spans and blocks, which nothing inside can close. Both the CI-failure issue and the offline
error-detective post this, so they say the same about the same log.

The link to the log: a raw job log has no step numbers, so GitHub's ``#step:N:L`` anchors cannot be built from
it; the digest links the job's page as gathered (``log_url``) and names the line number beside it.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.ci_output.reading import TRAILER, Reading
from bot.core.ci_output.records import Annotation, Context, InfraKind
from bot.core.texts import block, code_span, one_line

MAX_TESTS = 8  # listed one per line; the rest are named on one more line, as many as fit in MORE_TESTS_CHARS
MORE_TESTS_CHARS = 600
MAX_ROOT_LINES = 10
MAX_TAIL = 10
MAX_COMMITS = 5
MAX_EVIDENCE = 4  # annotations, and report cases, listed under <details>
MAX_OTHERS = 4  # other failed jobs, named on one line
MAX_MISSING = 4  # pieces GitHub would not give, named on one line
MAX_AGREEING = 5  # tests also failing on the default branch
LINE = 300  # characters of one quoted log line
ROOT_LINE = 1000  # characters of the root error's own line: an assertion often prints its values at the end
LEVELS = frozenset({"notice", "warning", "failure"})  # GitHub's annotation levels
KINDS: dict[InfraKind, str] = {
    "runner-lost": "runner lost", "oom": "out of memory", "killed": "killed", "timeout": "timed out",
    "network": "network error", "rate-limit": "rate limited", "disk-full": "disk full", "cancelled": "cancelled"}


def verdict(r: Reading) -> str:
    """One line: the number of failing tests, an infrastructure failure, an error, or nothing readable. Named
    failing tests are the change's failure whatever the runner also said: never "not this change" then."""
    if r.tests:
        also = f"; the runner also reported: {_kind(r.infra.kind)}" if r.infra is not None else ""
        return f"{len(r.tests)} failing test{'s' if len(r.tests) != 1 else ''}{also}"
    if r.infra is not None:
        return f"Infrastructure failure ({_kind(r.infra.kind)}): not this change"
    if r.root is not None:
        return "Build error"
    return "Failed; no failing test or error could be named"


def headline(r: Reading) -> str:
    """What an issue title says failed (plain text: the title is defused as prose)."""
    if r.tests:
        return r.tests[0] + (f" and {len(r.tests) - 1} more" if len(r.tests) > 1 else "")
    if r.infra is not None:
        return f"infrastructure failure ({_kind(r.infra.kind)})"
    if r.root is not None:
        return r.root.line[:150]
    return "no error could be read from the log"


def _kind(kind: InfraKind) -> str:
    return KINDS.get(kind, kind)


def render(r: Reading, context: Context | None = None, others: Sequence[Reading] = (),
           missing: Sequence[str] = ()) -> str:
    """The digest of `r` (the failed job people read first), with `context`, one line for `others` and one
    for the `missing` pieces GitHub would not give (an expired log, a refused artifact)."""
    context = context or Context()
    sections = [[f"**{verdict(r)}** in {code_span(r.job, 200)}."], _context(context), _tests(r), _root(r),
                _others(others), _commits(context), _missing(missing), _evidence(r)]
    return "\n\n".join("\n".join(s) for s in sections if s)


def _missing(missing: Sequence[str]) -> list[str]:
    """One line naming what could not be read, so a thin digest says why it is thin."""
    if not missing:
        return []
    named = ", ".join(code_span(m, 160) for m in missing[:MAX_MISSING])  # names in them are anyone's
    more = f" and {len(missing) - MAX_MISSING} more" if len(missing) > MAX_MISSING else ""
    return [f"_Could not be read:_ {named}{more}."]


def _more(shown: int, total: int, what: str = "more") -> list[str]:
    return [f"- … and {total - shown} {what}"] if total > shown else []


def _context(c: Context) -> list[str]:
    out = []
    if c.also_on_default:
        branch = code_span(c.default_branch or "the default branch", 100)
        named = ", ".join(code_span(x, 200) for x in c.also_on_default[:MAX_AGREEING])
        more = f" and {len(c.also_on_default) - MAX_AGREEING} more" if len(c.also_on_default) > MAX_AGREEING else ""
        out.append(f"**Also failing on {branch}, not this change:** {named}{more}.")
    if c.flaky:
        out.append("**Flaky:** the same check failed and then passed on the same commit.")
    return out


def _tests(r: Reading) -> list[str]:
    """The failing tests, one per line; past MAX_TESTS, the rest named on one line (every test is named, up to
    MORE_TESTS_CHARS), so a run of nine or twenty failures names them all and one of 500 stays short."""
    if not r.tests:
        return []
    return ([f"**Failing tests** ({len(r.tests)}):"] + [f"- {code_span(t, 200)}" for t in r.tests[:MAX_TESTS]]
            + _more_tests(r.tests[MAX_TESTS:]))


def _more_tests(rest: Sequence[str]) -> list[str]:
    if not rest:
        return []
    named: list[str] = []
    for t in rest:
        span = code_span(t, 200)
        if sum(len(n) + 2 for n in named) + len(span) > MORE_TESTS_CHARS:
            break
        named.append(span)
    unlisted = f" and {len(rest) - len(named)} not listed" if len(named) < len(rest) else ""
    return [f"- … and {len(rest)} more: {', '.join(named)}{unlisted}" if named else f"- … and {len(rest)} more"]


def _clip(line: str, limit: int) -> str:
    return line[:limit] + ("…" if len(line) > limit else "")


def _quoted(lines: Sequence[str], limit: int, root: str | None = None) -> str:
    kept = [_clip(line, ROOT_LINE if line == root else LINE) for line in lines[:limit]]
    return block("\n".join(kept + ([f"… ({len(lines) - limit} more lines)"] if len(lines) > limit else [])))


def _root(r: Reading) -> list[str]:
    if r.root is not None:
        where = f", line {r.root.line_number} of the log" if r.root.line_number else ""
        link = f": <{r.log_url}>" if r.log_url else ""
        source = {"annotation": "from the check's annotations", "report": "from the test report"}.get(r.root.source, "")
        # The context around the error may reach the runner's exit-code trailer: it is never quoted.
        context = tuple(line for line in r.root.context if not TRAILER.match(line.strip()))
        quoted = context if r.root.line in context else (r.root.line, *context)
        return [f"**Root error**{f' ({source})' if source else ''}{where}{link}",
                _quoted(quoted, MAX_ROOT_LINES, r.root.line)]
    if r.infra is not None:
        return ["**The runner said:**", _quoted([r.infra.line], 1)]
    if r.tail and not r.tests:
        link = f" (the job's log: <{r.log_url}>)" if r.log_url else ""
        return [f"**The last lines of the log**{link}, as nothing more precise could be read:", _quoted(r.tail, MAX_TAIL)]
    return []


def _others(others: Sequence[Reading]) -> list[str]:
    if not others:
        return []
    named = ", ".join(f"{code_span(o.job, 100)} ({verdict(o).split(':')[0]})" for o in others[:MAX_OTHERS])
    more = f" and {len(others) - MAX_OTHERS} more" if len(others) > MAX_OTHERS else ""
    return [f"**Also failed:** {named}{more}."]


def _commits(c: Context) -> list[str]:
    if not c.since_green:
        return []
    head = (f"**Commits since the last green run** ({code_span(c.green_sha[:12], 20)}):" if c.green_sha
            else "**Recent commits** (no green run found):")
    return ([head] + [f"- `{sha[:10]}` {one_line(message, 100)}" for sha, message in c.since_green[:MAX_COMMITS]]
            + _more(MAX_COMMITS, len(c.since_green)))


def _evidence(r: Reading) -> list[str]:
    if not (r.annotations or r.cases or r.noise_lines):  # nothing structured was read, no line set aside
        return []
    noise = (f"{r.noise_lines} of {r.log_lines} log lines matched green runs of the same job and were set aside."
             if r.noise_lines else f"{r.log_lines} log lines read; none matched a green run's.")
    summary = (f"Evidence: {len(r.annotations)} annotation{'s' if len(r.annotations) != 1 else ''}, "
               f"{len(r.cases)} report case{'s' if len(r.cases) != 1 else ''}, "
               f"{r.noise_lines} of {r.log_lines} log lines matched green runs")
    out = ["<details>", f"<summary>{summary}</summary>", ""]
    if r.annotations:
        out += [f"Annotations ({len(r.annotations)}):"] + [_annotation(a) for a in r.annotations[:MAX_EVIDENCE]]
        out += _more(MAX_EVIDENCE, len(r.annotations))
    if r.cases:
        out += [f"Failed report cases ({len(r.cases)}):"] + [
            f"- {code_span(c.name, 200)}" + (f": {code_span(c.message, 200)}" if c.message.strip() else "")
            for c in r.cases[:MAX_EVIDENCE]] + _more(MAX_EVIDENCE, len(r.cases))
    return out + [noise, "", "</details>"]


def _annotation(a: Annotation) -> str:
    where = f"{a.path}:{a.start_line}" if a.start_line else a.path or "-"
    return f"- {code_span(where, 200)} {a.level if a.level in LEVELS else 'annotation'}: {code_span(a.message, 200)}"
