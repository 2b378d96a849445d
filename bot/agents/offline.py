"""The offline backend, used when no model is configured: deterministic, and honest about its limits.

Only steps a program can do well get a result: the Lead's triage (triage data), error-detective's
log reading, search-specialist's related-issue search and code-reviewer's gate. Every other step
answers "no-model" instead of a fabricated result, so the engine can tell people what is missing.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import Any

import gidgethub

from bot.agents.ci_evidence import CiTarget, Gathered, gather
from bot.agents.gate import INJECTION_CRITERION, SECRETS_CRITERION, TESTS_CRITERION, Finding
from bot.agents.models import Usage
from bot.agents.request import AgentOutcome, AgentRequest, RepoContext
from bot.agents.tools import RepoReader
from bot.core import catalog
from bot.core.ci_output import digest
from bot.core.ci_output.reading import Reading, read_all
from bot.core.ci_output.records import Context, Evidence
from bot.core.classify import classify
from bot.core.sanitize import strip_hidden
from bot.core.texts import code_span, one_line

log = logging.getLogger(__name__)
FROM_CHECK = "the failed check"
NOTHING_FOUND = "No failing test or error line was found; a model is needed for a deeper look."
MAX_FINDINGS = 50  # failing tests listed per job in the findings (the digest shows fewer)
_DATABASE = re.compile(r"(?i)\b(?:sql\w*|psycopg\d?|sqlalchemy|postgres\w*|mysql|sqlite\d?|database|deadlock|"
                       r"migrations?|integrityerror|operationalerror|connection pool|ora-\d+)\b")
_STOPWORDS = frozenset("""about after again also because been before being could does doing during each from have
having into just more most only other over same should some such than that their them then there these they this
those through under until very what when where which while with would your error issue fails failing failed
broken when""".split())
NO_MODEL = "No model is configured (ANTHROPIC_API_KEY is not set); {agent} needs one for {step}."


def no_model(request: AgentRequest) -> AgentOutcome:
    return AgentOutcome(None, Usage(), NO_MODEL.format(agent=request.agent.name, step=request.step.title),
                        "no-model", offline=True)


def _base(request: AgentRequest, summary: str, passed: bool, flags: Mapping[str, bool] | None = None) -> dict[str, Any]:
    """The common fields; pass criteria a program cannot judge are reported as not assessed."""
    return {"summary": summary, "passed": passed and not request.step.pass_criteria,
            "criteria": [{"criterion": c, "met": False, "note": "not assessed: no model is configured"}
                         for c in request.step.pass_criteria],
            "flags": {name: bool((flags or {}).get(name, False)) for name in request.flags_wanted},
            "escalate": None}


async def triage(request: AgentRequest, reader: RepoReader, labels: list[str]) -> AgentOutcome:
    ctx = request.context
    paths: list[str] = []
    if ctx.is_pull_request and ctx.number is not None:
        try:
            paths = [f["filename"] for f in await reader.pull_files(ctx.number)]
        except gidgethub.RateLimitExceeded:
            raise  # a rate limit or a 5xx is for the job runner to retry, not a reason to triage without paths
        except gidgethub.BadRequest as e:
            log.warning("offline triage: cannot list files of %s#%s: %s", ctx.repo, ctx.number, e)
    checks = [str(ctx.ci.get("name", ""))] if ctx.ci else []
    shipped = catalog.load_catalog()  # read once per process, not per event
    c = classify(shipped.triage, title=ctx.title, body=ctx.body, labels=labels, paths=paths, checks=checks,
                 learned=catalog.learned_model(shipped))
    chosen = f"**{c.workflow}**" + (f" ({c.subclass})" if c.subclass else "") if c.workflow else "no workflow"
    summary = ("Triage without a model (ANTHROPIC_API_KEY is not set), from labels, keywords and a learned model: "
               f"{chosen}.\n\n"
               f"Evidence: {c.reason}.")
    if request.flags_wanted:
        summary += "\n\nFlags were not assessed without a model and are set to false."
    result = _base(request, summary, c.workflow is not None)
    result.update(workflow=c.workflow, subclass=c.subclass, reason=c.reason, confidence=c.confidence)
    return AgentOutcome(result, Usage(), offline=True)


def _target(ci: Mapping[str, Any]) -> CiTarget | None:
    """The CI failure a run context names, or None when its id is not a number (a context of another shape)."""
    ident = ci.get("id")
    if not isinstance(ident, int) or isinstance(ident, bool):
        return None
    return CiTarget(source=str(ci.get("source") or ""), id=ident, name=str(ci.get("name") or ""),
                    head_sha=str(ci.get("head_sha") or ""), summary=str(ci.get("summary") or ""))


async def _gathered(reader: RepoReader, ctx: RepoContext) -> tuple[Gathered, str]:
    """What GitHub says about the run's CI failure (the same gather as the CI-failure issue's), and where it
    came from; a run without one reads the log people pasted in the issue."""
    target = _target(ctx.ci) if ctx.ci else None
    if target is not None:
        try:
            got = await gather(reader, target, default_branch=ctx.default_branch or "main")
        except gidgethub.RateLimitExceeded:
            raise  # gather degrades on a refused piece (4xx); a rate limit or a 5xx is the job runner's to retry
        except gidgethub.BadRequest as e:
            log.warning("offline error-detective: cannot read CI output for %s: %s", ctx.repo, e)
        else:
            got.log_missing(log, f"offline error-detective on {ctx.repo}#{ctx.number}")
            return got, FROM_CHECK
    return Gathered(evidence=[Evidence(job="issue body", log=strip_hidden(ctx.body))]), "the issue's text"


def _findings(readings: list[Reading], context: Context) -> list[str]:
    """One line per failing test, root error, infrastructure failure and the commits since green; what the log
    says (a test's name, an error line) is anyone's text: each in a code span, cut."""
    out: list[str] = []
    for r in readings:
        out += [f"Failing test: {code_span(t, 200)}" for t in r.tests[:MAX_FINDINGS]]
        out += [f"Error: {code_span(r.root.line, 300)}"] if r.root else []
        out += [f"Infrastructure failure: {r.infra.kind}: {code_span(r.infra.line, 300)}"] if r.infra else []
    if context.since_green:
        where = (f"since the last green commit {context.green_sha[:10]}" if context.green_sha
                 else "before this failure (no green commit found)")
        out.append(f"Commits {where}: " + "; ".join(f"{sha[:10]} {one_line(msg, 100)}" for sha, msg in context.since_green))
    return out


async def error_detective(request: AgentRequest, reader: RepoReader) -> AgentOutcome:
    """The failure read by the one reader of CI output, and its digest: what the CI-failure issue says too."""
    gathered, where = await _gathered(reader, request.context)
    # The reader runs in a thread: a long log is seconds of CPU, and the event loop serves everyone else.
    readings, context = await asyncio.to_thread(read_all, gathered.evidence, gathered.on_default,
                                                default_branch=request.context.default_branch,
                                                green_sha=gathered.green_sha, since_green=gathered.since_green)
    found = [r for r in readings if r.tests or r.root or r.infra]
    parts = [f"Log analysis without a model (ANTHROPIC_API_KEY is not set), from {where}."]
    if readings and (found or where == FROM_CHECK):  # an issue's text that names no failure is no log to quote
        parts.append(digest.render(readings[0], context, readings[1:], gathered.missing))
    if not found:
        parts.append(NOTHING_FOUND)
    findings = _findings(readings, context)
    database = any(_DATABASE.search(x) for x in findings)
    result = _base(request, "\n\n".join(parts), bool(found), {"database_related": database})
    result["findings"] = findings
    return AgentOutcome(result, Usage(), offline=True)


def _keywords(title: str, limit: int = 4) -> list[str]:
    words = re.findall(r"[A-Za-z][A-Za-z0-9_.-]{3,}", strip_hidden(title).lower())
    return list(dict.fromkeys(w.strip(".-") for w in words if w not in _STOPWORDS))[:limit]


async def search_specialist(request: AgentRequest, reader: RepoReader) -> AgentOutcome:
    """Issues sharing words with the title: one search per word (issue search ANDs its terms), ranked by
    how many words each shares, keeping those that share at least two (one for a one-word title)."""
    ctx, words = request.context, _keywords(request.context.title)
    hits: dict[int, tuple[int, dict]] = {}
    for word in words:
        try:
            found = await reader.search_issues(word)
        except gidgethub.HTTPException as e:
            log.warning("offline search-specialist: search failed on %s: %s", ctx.repo, e)
            break
        for i in found.get("items") or []:
            if i.get("number") != ctx.number:
                hits[i["number"]] = (hits.get(i["number"], (0, i))[0] + 1, i)
    need = min(2, len(words))
    items = [i for n, i in sorted(hits.values(), key=lambda h: (-h[0], h[1]["number"])) if n >= need][:10]
    findings = [f"#{i['number']} [{i.get('state')}] {i.get('title')} ({i.get('html_url')})" for i in items]
    summary = (f"Related issues found without a model (ANTHROPIC_API_KEY is not set), searching for "
               f"{', '.join(words) or 'nothing (the title has no searchable words)'}:\n\n"
               + ("\n".join(f"- {f}" for f in findings) if findings else "None found.")
               + "\n\nNo web research or documentation review was done; a model is needed for that.")
    result = _base(request, summary, bool(findings))
    result["findings"] = findings
    return AgentOutcome(result, Usage(), offline=True)


def code_reviewer(request: AgentRequest, findings: list[Finding], reviewed: str) -> AgentOutcome:
    """The gate alone decides: REJECTED on any MUST PASS failure, else APPROVED, saying no model reviewed it."""
    critical = [f for f in findings if f.severity == "critical"]
    verdict = "REJECTED" if critical else "APPROVED"
    checked = (SECRETS_CRITERION, INJECTION_CRITERION, TESTS_CRITERION)
    summary = (f"**{verdict}** by the deterministic checks only: no model reviewed {reviewed} (ANTHROPIC_API_KEY "
               "is not set). Checked: exposed credentials, obvious injection, tests for changed code; "
               "not checked: input validation, error handling, readability, design.")
    if critical:
        summary += "\n\n" + "\n".join(f"- {f.item()['text']}" for f in critical)
    result = _base(request, summary, not critical)
    result["criteria"] += [{"criterion": c, "met": not any(f.criterion == c for f in critical),
                            "note": "deterministic check"} for c in checked]
    result.update(verdict=verdict, critical=[f.item() for f in critical],
                  warnings=[f.item() for f in findings if f.severity == "warning"], suggestions=[], tech_debt=[])
    return AgentOutcome(result, Usage(), offline=True)


async def run(request: AgentRequest, reader: RepoReader, labels: list[str],
              findings: list[Finding] | None, reviewed: str) -> AgentOutcome:
    """The offline outcome for `request` (`findings`: the gate's, for review steps)."""
    kind, agent = request.step.kind, request.agent.name
    if kind == "triage":
        return await triage(request, reader, labels)
    if kind == "review" and agent == "code-reviewer":
        return code_reviewer(request, findings or [], reviewed)
    if kind == "analyze" and agent == "error-detective":
        return await error_detective(request, reader)
    if kind == "analyze" and agent == "search-specialist":
        return await search_specialist(request, reader)
    return no_model(request)
