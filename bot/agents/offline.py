"""The offline backend, used when no model is configured: deterministic, and honest about its limits.

Only steps a program can do well get a result: the Lead's triage (triage data), error-detective's
log reading, search-specialist's related-issue search and code-reviewer's gate. Every other step
answers "no-model" instead of a fabricated result, so the engine can tell people what is missing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

import gidgethub

from bot.agents import logs
from bot.agents.gate import INJECTION_CRITERION, SECRETS_CRITERION, TESTS_CRITERION, Finding
from bot.agents.models import Usage
from bot.agents.request import AgentOutcome, AgentRequest
from bot.agents.tools import RepoReader, first_line
from bot.core import catalog
from bot.core.classify import classify
from bot.core.sanitize import strip_hidden

log = logging.getLogger(__name__)
GREEN = ("success", "neutral", "skipped")
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


def _code_block(lines: Iterable[str]) -> str:
    body = "\n".join(line.replace("```", "'''") for line in lines)
    return f"```text\n{body}\n```"


async def triage(request: AgentRequest, reader: RepoReader, labels: list[str]) -> AgentOutcome:
    ctx = request.context
    paths: list[str] = []
    if ctx.is_pull_request and ctx.number is not None:
        try:
            paths = [f["filename"] for f in await reader.pull_files(ctx.number)]
        except gidgethub.HTTPException as e:
            log.warning("offline triage: cannot list files of %s#%s: %s", ctx.repo, ctx.number, e)
    checks = [str(ctx.ci.get("name", ""))] if ctx.ci else []
    shipped = catalog.load_catalog()  # read once per process, not per event
    c = classify(shipped.triage, title=ctx.title, body=ctx.body, labels=labels, paths=paths, checks=checks)
    chosen = f"**{c.workflow}**" + (f" ({c.subclass})" if c.subclass else "") if c.workflow else "no workflow"
    summary = (f"Triage without a model (ANTHROPIC_API_KEY is not set), from labels and keywords: {chosen}.\n\n"
               f"Evidence: {c.reason}.")
    if request.flags_wanted:
        summary += "\n\nFlags were not assessed without a model and are set to false."
    result = _base(request, summary, c.workflow is not None)
    result.update(workflow=c.workflow, subclass=c.subclass, reason=c.reason, confidence=c.confidence)
    return AgentOutcome(result, Usage(), offline=True)


async def _ci_texts(reader: RepoReader, ci: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, text) of the failing CI output: workflow-run job logs, check-run output and job logs."""
    source, ident = ci.get("source"), int(ci.get("id") or 0)
    if source == "workflow_run":
        return [(f"job {name}", text) for name, text in await reader.failed_job_logs(run_id=ident)]
    runs = [await reader.check_run(ident)] if source == "check_run" else await reader.suite_runs(ident)
    out: list[tuple[str, str]] = []
    for run in runs:
        if source == "check_suite" and run.get("conclusion") not in ("failure", "timed_out", "cancelled"):
            continue
        o = run.get("output") or {}
        text = "\n".join(filter(None, [o.get("title"), o.get("summary"), o.get("text")]))
        out.append((f"check {run.get('name')}", text))
        try:  # an Actions job has the id of its check run
            out += [(f"job {run.get('name')}", t) for _, t in await reader.failed_job_logs(job_id=int(run["id"]))]
        except gidgethub.HTTPException:
            pass
    return out


async def _since_green(reader: RepoReader, head: str, depth: int = 10) -> tuple[str | None, list[dict]]:
    """(last green sha, commits after it, newest first): green = every check run on the commit succeeded."""
    commits = await reader.commits(sha=head, per_page=depth + 1)
    for i, c in enumerate(commits[1:], 1):
        runs = await reader.commit_runs(c["sha"])
        if runs and all(r.get("status") == "completed" and r.get("conclusion") in GREEN for r in runs):
            return c["sha"], commits[:i]
    return None, commits


async def error_detective(request: AgentRequest, reader: RepoReader) -> AgentOutcome:
    ctx = request.context
    texts: list[tuple[str, str]] = []
    if ctx.ci:
        try:
            texts += await _ci_texts(reader, ctx.ci)
        except gidgethub.HTTPException as e:
            log.warning("offline error-detective: cannot read CI output for %s: %s", ctx.repo, e)
    texts.append(("issue body", strip_hidden(ctx.body)))
    found = logs.Failures()
    for _, text in texts:
        f = logs.failures(text)
        for kind in ("tests", "errors", "exit_codes"):
            for value in getattr(f, kind):
                found.add(kind, value)
    findings = [f"Failing test: {t}" for t in found.tests] + [f"Error: {e}" for e in found.errors]
    findings += [f"Exit code: {', '.join(found.exit_codes)}"] if found.exit_codes else []
    parts = ["Log analysis without a model (ANTHROPIC_API_KEY is not set): failing tests and errors "
             f"extracted from {', '.join(label for label, _ in texts)}."]
    if found.tests:
        parts.append("**Failing tests**\n" + "\n".join(f"- `{t}`" for t in found.tests))
    if found.errors:
        parts.append("**Errors**\n" + _code_block(found.errors))
    if found.exit_codes:
        parts.append(f"**Exit code(s)**: {', '.join(found.exit_codes)}")
    if not found:
        parts.append("No failing test or error line was found; a model is needed for a deeper look.")
    head = (ctx.ci or {}).get("head_sha") or ctx.head_sha
    if head:
        try:
            green, since = await _since_green(reader, head)
        except gidgethub.HTTPException as e:
            green, since = None, []
            log.warning("offline error-detective: cannot list commits of %s: %s", ctx.repo, e)
        lines = [f"{c['sha'][:10]} {first_line(c['commit']['message'])[:100]}" for c in since]
        where = f"since the last green commit {green[:10]}" if green else f"on {head[:10]} (no green commit found)"
        if lines:
            findings.append(f"Commits {where}: " + "; ".join(lines))
            parts.append(f"**Commits {where}**\n" + "\n".join(f"- {line}" for line in lines))
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
