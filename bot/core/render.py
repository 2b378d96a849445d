"""Markdown for a workflow run's thread: the status comment, each step's output or skip, the gate's verdicts,
escalations, the approval request, the project context and the closing summary. Pure: records in, strings out.

Model output reaching these functions has already been cleaned (secrets redacted, defused as prose) by the
agent runtime. Names people or models chose (file paths, labels, check names, errors quoting them) go into
:func:`code_span`, whole texts (file contents, log lines) into a block, both sized by bot/core/defuse.py so
nothing inside can close them; the GitHub client defuses whatever is posted once more. Everything here is
clipped to GitHub's comment limit. The bot's other texts (command replies, notices, filed issues, the pull
request's own verdict) are bot/core/texts.py; they are re-exported here, so callers name every post
``render.X``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from bot.core import defuse
from bot.core.defuse import clip
from bot.core.engine import BUDGET, BUDGET_NAMES, TRIGGERS, Run
from bot.core.sanitize import clean_for_github
from bot.core.secrets import secrets as logged_secrets
from bot.core.texts import (
    HELP_HINT,
    STATUS_CADENCE,
    ask_for_label,
    budget_wait,
    ci_failure_issue,
    ci_repeat,
    code_span,
    config_problems,
    failure_note,
    findings_list,
    fold,
    help_text,
    ignored_commands,
    locked_down,
    one_line,
    over_reply_limit,
    pending_note,
    pull_verdict,
    refusal,
    tech_debt_issue,
    unknown_command,
)
from bot.core.workflow import Workflow

__all__ = ["HELP_HINT", "approval_request", "ask_for_label", "ci_failure_issue", "ci_repeat", "clip",
           "code_span", "config_problems", "context_document", "escalation", "failure_note", "finished", "help_text",
           "ignored_commands", "locked_down", "over_reply_limit", "pending_note", "provenance_table", "pull_verdict",
           "refusal", "status", "status_head", "step_output", "tech_debt_issue", "unknown_command", "usage_line", "verdict"]

ICONS = {"pending": "⬜", "running": "🔄", "done": "✅", "skipped": "⏭️", "failed": "❌", "waiting": "⏸️"}
STATE_LINE = {"running": "🔄 Running", "waiting": "⏸️ Waiting for `/approve`",
              "escalated": "🚨 Escalated — waiting for a decision", "done": "✅ Done", "cancelled": "⏹️ Cancelled",
              BUDGET: "💰 Waiting for `/approve budget`"}


def _mermaid(run: Run, wf: Workflow) -> str:
    lines = ["flowchart LR"]
    for step in wf.steps:
        lines.append(f'    {_node(step.id)}["{step.title}<br/>{run.steps[step.id].agent or step.agent}"]')
    for step in wf.steps:
        for need in step.needs:
            lines.append(f"    {_node(need)} --> {_node(step.id)}")
        if step.gate:
            lines.append(f"    {_node(step.id)} -. rejected .-> {_node(step.gate.on_reject)}")
    classes = {"done": "done", "running": "current", "waiting": "current", "failed": "failed", "skipped": "skipped"}
    for step in wf.steps:
        cls = classes.get(run.steps[step.id].status)
        if cls:
            lines.append(f"    class {_node(step.id)} {cls}")
    lines += ["    classDef done fill:#d4f7d4,stroke:#2da44e",
              "    classDef current fill:#fff3b0,stroke:#bf8700,stroke-width:3px",
              "    classDef failed fill:#ffd8d3,stroke:#cf222e",
              "    classDef skipped fill:#eeeeee,stroke:#999,stroke-dasharray: 4 4"]
    return defuse.block("\n".join(lines), "mermaid")


def _node(step_id: str) -> str:
    return step_id.replace("-", "_")


def usage_line(usage: Mapping[str, Any]) -> str:
    tokens = sum(int(usage.get(k, 0)) for k in ("input_tokens", "output_tokens", "cache_read_input_tokens",
                                                 "cache_creation_input_tokens"))
    cached = int(usage.get("cache_read_input_tokens", 0))
    return (f"{tokens:,} tokens ({cached:,} read from cache), {int(usage.get('calls', 0))} model calls, "
            f"≈ ${float(usage.get('cost_usd', 0.0)):.4f}")


def status_head(run: Run, wf: Workflow, *, announce: str, note: str = "") -> str:
    """The status comment's first lines: what the run is about and its state. The executor edits the comment
    whenever these change (a state change, a rejection, a stop, a refused write), so they are never stale."""
    state = STATE_LINE.get(run.state, run.state)
    return "\n".join([f"### triage-lead · {wf.title} ({code_span(wf.name, 100)})", "", f"> {_announce(announce)}",
                      "", f"**State:** {state} · **Review rejections:** {run.rejections}/{wf.max_rejections}", "",
                      *_budget_lines(run),
                      *([f"> ⚠️ {clean_for_github(note, logged_secrets())}.", ""] if note else [])])


@functools.lru_cache(maxsize=1024)
def _announce(text: str) -> str:
    """The Lead's line as the head shows it: pure in ``text`` (no registered secret is asked for), so cleaned once
    a run rather than at each of its ~10 checks of the head (issue 16: 2% of the event loop's time)."""
    return clean_for_github(text)


def _budget_lines(run: Run) -> list[str]:
    """A run waiting for its budget says which, by how much, and what lets it go on; an approved one, by whom."""
    if run.state == BUDGET and run.budget is not None:
        return [f"> 💰 {budget_wait(run.budget, BUDGET_NAMES)}.", ""]
    if run.budget_approval is not None:
        return [f"Budget approved by {code_span(run.budget_approval['by'], 100)}: this repository's own token limits "
                "do not apply to this run; the operator's ceilings do.", ""]
    return []


def _row(run: Run, wf: Workflow, step_id: str, links: Mapping[str, str]) -> str:
    step, st = wf.step(step_id), run.steps[step_id]
    agent = st.agent or step.agent
    extra = f" · iteration {st.iteration}" if st.iteration > 1 else ""
    if st.status == "skipped":  # a skipped step has no comment of its own: its reason is here
        extra += f" · skipped, condition not met: _{step.when.text if step.when else 'not needed'}_"
    elif step.when:
        extra += f" · _{step.when.text}_"
    link = f" — [output]({links[step_id]})" if step_id in links else ""
    return f"- {ICONS.get(st.status, '⬜')} **{step.title}** ({agent}){extra}{link}"


def status(run: Run, wf: Workflow, *, announce: str, usage: Mapping[str, Any], links: Mapping[str, str],
           note: str = "") -> str:
    """The one status comment per run. Its head (:func:`status_head`) is always current; the step list is as
    of the last edit, which while the run works may be a few steps behind, and says so."""
    rows = [_row(run, wf, step.id, links) for step in wf.steps]
    at_work = ", ".join(f"{code_span(run.steps[s].agent or '', 100)} on {wf.step(s).title}"
                        for s in run.running()) or "nobody"
    progress = ([f"_Steps as of this update ({at_work} at work). {STATUS_CADENCE}_", ""] if run.state == "running"
                else [])
    parts = [status_head(run, wf, announce=announce, note=note), *progress, *rows, "", f"**Usage:** {usage_line(usage)}",
             "", "<details><summary>Workflow diagram</summary>\n", _mermaid(run, wf), "\n</details>", "", HELP_HINT]
    return clip("\n".join(parts))


def _criteria(result: Mapping[str, Any]) -> str:
    items = result.get("criteria") or []
    return "\n".join(f"- {'✅' if c.get('met') else '❌'} {c.get('criterion', '')}"
                     + (f" — {c['note']}" if c.get("note") else "") for c in items if isinstance(c, Mapping))


MAX_FINDINGS = 20  # findings listed under a step's output; the rest are counted
FINDING_CHARS = 500  # characters of one finding


def _findings(findings: Sequence[Any]) -> list[str]:
    """A step's findings, each on one line of its list item (a finding is an agent's, or a log's, text: a
    newline in it would leave the list), at most :data:`MAX_FINDINGS` of them."""
    shown = [f"- {one_line(f, FINDING_CHARS)}" for f in findings[:MAX_FINDINGS]]
    return shown + ([f"- … and {len(findings) - MAX_FINDINGS} more"] if len(findings) > MAX_FINDINGS else [])


def step_output(wf: Workflow, step_id: str, iteration: int, agent: str, result: Mapping[str, Any]) -> str:
    """One comment per step's output, headed with the agent and step."""
    step = wf.step(step_id)
    head = f"#### {step.title} · {code_span(agent, 100)}" + (f" · iteration {iteration}" if iteration > 1 else "")
    parts = [head, "", fold(str(result.get("summary") or "(no summary)"))]
    if findings := result.get("findings"):
        parts += ["", "**Findings**", *_findings(findings)]
    if result.get("changes"):
        # Paths and contents are the model's (or a file's) own: inline code and a block neither can close.
        parts += ["", "**Proposed changes**", *[f"- {code_span(str(c.get('path')), 300)}: {one_line(c.get('reason', ''))}"
                                                for c in result["changes"]]]
        code = "\n\n".join(f"{code_span(str(c.get('path')), 300)}\n{defuse.block(str(c.get('content', '')))}"
                            for c in result["changes"])
        parts += ["", f"<details><summary>Full contents of {len(result['changes'])} file(s)</summary>"
                      f"\n\n{code}\n\n</details>"]
    if result.get("context"):
        ctx = result["context"]
        for key in ("goals", "constraints", "decisions", "progress"):
            if ctx.get(key):
                parts += ["", f"**{key.title()}**", *[f"- {x}" for x in ctx[key]]]
    if criteria := _criteria(result):
        parts += ["", "**Pass criteria**", criteria]
    flags = {k: v for k, v in (result.get("flags") or {}).items()}
    if flags:
        parts += ["", "Flags: " + ", ".join(code_span(f"{k}={str(v).lower()}", 100) for k, v in flags.items())]
    return clip("\n".join(parts))


def context_document(run: Run, wf: Workflow) -> str:
    """long-running-project's context: the newest checkpoint's lists (the context-manager prunes), the
    decisions people made, and the handoff once written. One comment, edited in place."""
    latest: Mapping[str, Any] = {}
    handoff = ""
    for step in wf.steps:
        result = run.steps[step.id].result or {}
        if step.kind == "context" and isinstance(result.get("context"), Mapping):
            latest = result["context"]
            if step.id == "handoff":
                handoff = str(result.get("summary") or "")
    parts = ["### 📒 Project context", "", "_Kept by `context-manager`; updated at each checkpoint, stale entries pruned._"]
    for key in ("goals", "constraints", "decisions", "progress"):
        items = list(latest.get(key) or [])
        if key == "decisions":
            items += [f"{d['choice']} (option {d['option']} at {d['stage']}, by @{d['by']})" for d in run.decisions]
        parts += ["", f"**{key.title()}**", *([f"- {x}" for x in items] or ["- none yet"])]
    done = [wf.step(sid).title for sid, st in run.steps.items() if st.status == "done"]
    parts += ["", f"**Milestones reached:** {', '.join(done) or 'none yet'}"]
    if handoff:
        parts += ["", "**Handoff for the next session**", "", handoff]
    return clip("\n".join(parts))


def verdict(wf: Workflow, step_id: str, iteration: int, result: Mapping[str, Any], *, rejections: int) -> str:
    step = wf.step(step_id)
    v = result.get("verdict", "REJECTED")
    icon = "✅" if v == "APPROVED" else "❌"
    parts = [f"#### {step.title} · `code-reviewer` · iteration {iteration}", "", f"## {icon} {v}", "",
             *findings_list("Critical", result.get("critical") or []), "",
             *findings_list("Warnings", result.get("warnings") or []), "",
             *findings_list("Suggestions", result.get("suggestions") or []), "", fold(str(result.get("summary") or ""))]
    if v != "APPROVED":
        target = wf.step(step.gate.on_reject).title if step.gate else "the implementer"
        left = wf.max_rejections - rejections
        parts += ["", f"Sent back to **{target}** with these findings"
                  + (f" ({left} more rejection(s) before escalation)." if left > 0 else ".")]
    return clip("\n".join(parts))


def escalation(run: Run, wf: Workflow, mention: str = "") -> str:
    """The spec's escalation format, with the commands that answer it."""
    esc: Mapping[str, Any] = run.escalation or {}  # none: an empty form, as it always was
    stage = esc.get("stage") or ""
    title = wf.step(stage).title if stage in run.steps else stage
    options = "\n".join(f"{i}. **{o['title']}** - {o.get('tradeoff', '')}"
                        for i, o in enumerate(esc.get("options") or [], 1))
    return clip("\n".join([
        "## Escalation Required", "",
        f"**Issue**: {esc.get('issue', '')}",
        f"**Trigger**: {TRIGGERS.get(esc.get('trigger', ''), esc.get('trigger', ''))}",
        f"**Workflow Stage**: {title} ({wf.name})",
        "**Options**:", "", options, "",
        f"**Recommendation**: {esc.get('recommendation', '')}",
        f"**Blocking**: {esc.get('blocking', '')}", "",
        f"{mention}Reply `/approve N` to choose option N (`/approve` alone takes option 1), or `/cancel`.".strip()]))


def approval_request(result: Mapping[str, Any], *, head: str | None = None) -> str:
    """The Lead's summary in the shape of the spec's Step 5 example, asking for /approve (for ``head``, on a PR:
    an approval holds for that commit only)."""
    parts = ["#### APPROVAL · `principal-software-engineer`", "", str(result.get("summary") or "")]
    if result.get("deployment_plan"):
        parts += ["", "**Plan**", str(result["deployment_plan"])]
    parts += ["", "Ready to proceed. Shall I? A maintainer comments `/approve` to go on, or `/escalate` / `/cancel`."]
    if head:
        parts += [f"This is for the pull request at `{head[:12]}`; a push after it makes the approval stale."]
    return clip("\n".join(parts))


def finished(run: Run, wf: Workflow, *, pull_url: str | None, pushed: str | None, debt: list[str],
             tasks: Sequence[str] = (), provenance: Sequence[Mapping[str, Any]] = ()) -> str:
    by = run.approval.get("by") if run.approval else None
    parts = [f"### ✅ {wf.title} workflow complete", ""]
    if by:
        parts.append(f"- Approved by @{by}")
    if pull_url:
        parts.append(f"- Proposed changes: {pull_url} (draft)")
    if pushed:
        parts.append(f"- Fix pushed as {pushed}")
    if debt:
        parts.append(f"- Tech-debt follow-ups: {', '.join(debt)}")
    if tasks:
        parts.append(f"- Tasks, each running its own workflow: {', '.join(tasks)}")
    for d in run.decisions:
        which = f"option {d['option']} ({d['choice']})" if d.get("option") else str(d.get("choice"))
        parts.append(f"- Decision at {d['stage']}: {which} by @{d['by']}")
    if provenance:
        parts += ["", provenance_table(provenance, run.approval)]
    return "\n".join(parts)


def provenance_table(steps: Sequence[Mapping[str, Any]], approval: Mapping[str, Any] | None) -> str:
    """Who did each step, on which model and instructions, at which head, for how much; and the head a person
    approved: folded, for whoever audits the run (the same as ``python -m bot runs show``). Every value is in a
    code span: a model id comes from a repository's config."""
    def cell(value: Any, limit: int) -> str:  # a | would end the cell even inside a code span: escaped
        return code_span(str(value or "-"), limit).replace("|", "\\|")

    rows = [f"| {cell(p.get('step'), 60)} | {cell(p.get('agent'), 60)} | {cell(p.get('model'), 60)} "
            f"| {cell(p.get('prompt'), 20)} | {cell(p.get('rules'), 20)} | {cell(str(p.get('head') or '')[:7], 10)} "
            f"| {int(p.get('tokens') or 0):,} | ${float(p.get('cost') or 0):.4f} |" for p in steps]
    approved = (f"\n\nApproved at head {cell(str(approval.get('head_sha') or '')[:12], 20)}."
                if approval and approval.get("by") else "")
    return ("<details><summary>Provenance</summary>\n\n"
            "| step | agent | model | prompt | rules | head | tokens | cost |\n|---|---|---|---|---|---|---|---|\n"
            + "\n".join(rows) + approved + "\n\n</details>")
