"""Markdown for every kind of post the bot makes. Pure: records in, strings out.

Model output reaching these functions has already been cleaned (secrets redacted, defused as prose) by the
agent runtime. Names people or models chose (file paths, labels, check names, errors quoting them) go into
:func:`code_span`, whole texts (file contents, log lines) into :func:`block`, both sized by bot/core/defuse.py so
nothing inside can close them; the GitHub client defuses whatever is posted once more. Everything here is
clipped to GitHub's comment limit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bot.core import defuse
from bot.core.catalog import Workflow
from bot.core.engine import TRIGGERS, Run
from bot.core.sanitize import clean_for_github, redact
from bot.core.secrets import secrets as logged_secrets

HELP_HINT = "Comment `/help` to see the commands."
GITHUB_LIMIT = defuse.GITHUB_LIMIT
clip = defuse.clip  # the one cut (bot/core/defuse.py); render's callers name it render.clip
FOLD_OVER = 1_500  # step outputs longer than this are folded in <details>
ICONS = {"pending": "⬜", "running": "🔄", "done": "✅", "skipped": "⏭️", "failed": "❌", "waiting": "⏸️"}
STATE_LINE = {"running": "🔄 Running", "waiting": "⏸️ Waiting for `/approve`",
              "escalated": "🚨 Escalated — waiting for a decision", "done": "✅ Done", "cancelled": "⏹️ Cancelled"}
COMMANDS = {
    "/approve": "approve the step waiting for approval; after an escalation `/approve N` picks option N",
    "/escalate [reason]": "stop the workflow here and ask for a decision",
    "/status": "show where the workflow stands",
    "/retry": "run the failed or escalated step again",
    "/cancel": "stop the workflow",
    "/help": "show this list",
}


def ask_for_label(reason: str, labels: Mapping[str, str]) -> str:
    by_workflow: dict[str, list[str]] = {}
    for label, workflow in labels.items():
        by_workflow.setdefault(workflow, []).append(code_span(label, 100))
    rows = "\n".join(f"| {code_span(w, 100)} | {', '.join(ls[:4])} |" for w, ls in sorted(by_workflow.items()))
    return ("**principal-software-engineer (Lead)**: I can't place this in a workflow with confidence "
            f"({reason}), so I won't guess. Add one of these labels and I'll start:\n\n"
            f"| workflow | labels |\n|---|---|\n{rows}")


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


def status(run: Run, wf: Workflow, *, announce: str, usage: Mapping[str, Any], links: Mapping[str, str],
           note: str = "") -> str:
    """The one status comment per run, edited in place as the run advances."""
    rows = []
    for step in wf.steps:
        st = run.steps[step.id]
        agent = st.agent or step.agent
        extra = f" · iteration {st.iteration}" if st.iteration > 1 else ""
        if step.when:
            extra += f" · _{step.when.text}_"
        link = f" — [output]({links[step.id]})" if step.id in links else ""
        rows.append(f"- {ICONS.get(st.status, '⬜')} **{step.title}** ({agent}){extra}{link}")
    at_work = ", ".join(f"{code_span(run.steps[s].agent or '', 100)} on {wf.step(s).title}"
                        for s in run.running()) or "nobody"
    parts = [f"### triage-lead · {wf.title} ({code_span(wf.name, 100)})", "", f"> {clean_for_github(announce)}", "",
             f"**State:** {STATE_LINE.get(run.state, run.state)} · **At work:** {at_work} · "
             f"**Review rejections:** {run.rejections}/{wf.max_rejections}", "",
             *([f"> ⚠️ {clean_for_github(note, logged_secrets())}.", ""] if note else []),
             *rows, "", f"**Usage:** {usage_line(usage)}", "",
             "<details><summary>Workflow diagram</summary>\n", _mermaid(run, wf), "\n</details>", "", HELP_HINT]
    return clip("\n".join(parts))


def _fold(text: str) -> str:
    if len(text) <= FOLD_OVER:
        return text
    return f"<details><summary>Full output ({len(text):,} characters)</summary>\n\n{text}\n\n</details>"


def _criteria(result: Mapping[str, Any]) -> str:
    items = result.get("criteria") or []
    return "\n".join(f"- {'✅' if c.get('met') else '❌'} {c.get('criterion', '')}"
                     + (f" — {c['note']}" if c.get("note") else "") for c in items if isinstance(c, Mapping))


def step_output(wf: Workflow, step_id: str, iteration: int, agent: str, result: Mapping[str, Any]) -> str:
    """One comment per step's output, headed with the agent and step."""
    step = wf.step(step_id)
    head = f"#### {step.title} · {code_span(agent, 100)}" + (f" · iteration {iteration}" if iteration > 1 else "")
    parts = [head, "", _fold(str(result.get("summary") or "(no summary)"))]
    if result.get("findings"):
        parts += ["", "**Findings**", *[f"- {f}" for f in result["findings"]]]
    if result.get("changes"):
        # Paths and contents are the model's (or a file's) own: inline code and a block neither can close.
        parts += ["", "**Proposed changes**", *[f"- {code_span(str(c.get('path')), 300)}: {_one_line(c.get('reason', ''))}"
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


def skipped(wf: Workflow, step_id: str) -> str:
    step = wf.step(step_id)
    condition = step.when.text if step.when else "not needed"
    return (f"#### {step.title} · {code_span(step.agent, 100)} · skipped\n\n"
            f"Condition not met: _{condition}_. The workflow moves on.")


def _findings(title: str, items: list[Mapping[str, Any]]) -> list[str]:
    if not items:
        return [f"**{title}:** None"]
    out = [f"**{title}:**"]
    for f in items:  # a path is a file name someone chose (or the model wrote): inert, whatever it holds
        spot = f"{f['path']}:{f['line']}" if f.get("path") and f.get("line") else str(f.get("path") or "")
        where = f" ({code_span(spot, 300)})" if spot else ""
        out.append(f"- {_one_line(f.get('text', ''))}{where}")
    return out


def verdict(wf: Workflow, step_id: str, iteration: int, result: Mapping[str, Any], *, rejections: int) -> str:
    step = wf.step(step_id)
    v = result.get("verdict", "REJECTED")
    icon = "✅" if v == "APPROVED" else "❌"
    parts = [f"#### {step.title} · `code-reviewer` · iteration {iteration}", "", f"## {icon} {v}", "",
             *_findings("Critical", result.get("critical") or []), "",
             *_findings("Warnings", result.get("warnings") or []), "",
             *_findings("Suggestions", result.get("suggestions") or []), "", _fold(str(result.get("summary") or ""))]
    if v != "APPROVED":
        target = wf.step(step.gate.on_reject).title if step.gate else "the implementer"
        left = wf.max_rejections - rejections
        parts += ["", f"Sent back to **{target}** with these findings"
                  + (f" ({left} more rejection(s) before escalation)." if left > 0 else ".")]
    return clip("\n".join(parts))


def pull_verdict(*, sha: str, headline: str, findings: list[Mapping[str, Any]], review: Mapping[str, Any] | None,
                 covered: tuple[str, ...], no_model: str = "", unchecked: list[str] | None = None) -> str:
    """The pull request's own verdict at one head: what the checks found, what the model said, and what was
    covered, so a pass is never read as more than it is. Locations are file names the PR's author chose: inert."""
    own = {(f.get("path"), f.get("line")) for f in findings}  # the gate's findings, merged into the model's review
    lines = [f"## triage-lead review of `{sha[:12]}`: {headline}", ""]
    for title, severity in (("Deterministic checks that failed (MUST PASS)", "critical"),
                            ("Deterministic warnings (for a person to weigh)", "warning")):
        items = [f for f in findings if f.get("severity") == severity]
        lines += [f"**{title}**:", *(_finding_line(f) for f in items)] if items else []
    if not any(f.get("severity") == "critical" for f in findings):
        lines.append("**Deterministic checks**: none failed.")
    lines += ["", "They cover: " + "; ".join(covered) + "."]
    if unchecked:
        lines += ["", "**Not checked** (no diff from GitHub): " + ", ".join(code_span(u, 200) for u in unchecked[:20])
                  + (f" and {len(unchecked) - 20} more" if len(unchecked) > 20 else "") + "."]
    if review is None:
        lines += ["", f"**No model reviewed this change**: {code_span(no_model or 'no model is configured')}. Passing "
                      "the checks above is not an approval: a person must review the pull request."]
    else:
        lines += ["", f"**Model review**: {review.get('verdict', 'REJECTED')}", ""]
        for title, key in (("Critical", "critical"), ("Warnings", "warnings"), ("Suggestions", "suggestions")):
            items = [i for i in review.get(key) or [] if isinstance(i, Mapping)
                     and not (i.get("path") and (i.get("path"), i.get("line")) in own)]
            if items:
                lines += [*_findings(title, items), ""]
        lines.append(_fold(str(review.get("summary") or "")))
    return clip("\n".join(lines))


def _finding_line(f: Mapping[str, Any]) -> str:
    """One deterministic finding: its location (a file name the PR's author chose) and text, both inert."""
    where = f.get("path") and (f"{f['path']}:{f['line']}" if f.get("line") else str(f["path"]))
    text = str(f.get("text", ""))
    if where and text.startswith(f"{where}: "):
        text = text[len(where) + 2:]
    return f"- {'❌' if f.get('severity') == 'critical' else '⚠️'} " + (f"{code_span(str(where))}: " if where else "") \
        + _one_line(redact(text, logged_secrets()), 1_000)


def escalation(run: Run, wf: Workflow, mention: str = "") -> str:
    """The spec's escalation format, with the commands that answer it."""
    esc = run.escalation or {}
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


def approval_request(result: Mapping[str, Any], wf: Workflow, *, head: str | None = None) -> str:
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
             tasks: Sequence[str] = ()) -> str:
    by = (run.approval or {}).get("by")
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
    return "\n".join(parts)


def tech_debt_issue(item: Mapping[str, Any], *, run_link: str, step_title: str) -> tuple[str, str]:
    title = clip(str(item.get("title") or item.get("text") or "Follow-up"), 200)
    body = "\n".join([str(item.get("body") or item.get("text") or ""), "",
                      f"Deferred during {step_title} of {run_link}. Filed by triage-lead as a tech-debt follow-up."])
    return title, clip(body)


def help_text() -> str:
    rows = "\n".join(f"| `{cmd}` | {what} |" for cmd, what in COMMANDS.items())
    return ("**triage-lead commands** (on a line of their own; `/approve`, `/escalate`, `/retry` and `/cancel` "
            f"need write access)\n\n| command | what it does |\n|---|---|\n{rows}")


def refusal(actor: str, command: str, permission: str) -> str:
    return (f"@{actor} `/{command}` needs write, maintain or admin access to this repository "
            f"(yours is `{permission}`), so I haven't acted on it. `/status` and `/help` are open to everyone.")


def unknown_command(name: str, guess: str) -> str:
    return f"`/{name}` isn't a command I know; did you mean `/{guess}`? {HELP_HINT}"


def _block(text: str) -> str:
    """``text`` (a log line, a failure signature) as a code block no line of it can close, tokens redacted."""
    return defuse.block(redact(text, logged_secrets()))


def code_span(text: str, limit: int = 600) -> str:
    """Untrusted text (a file name, a path, a label, an error quoting one) as inline code, backticks included:
    one line, tokens and keys redacted, cut to ``limit``, between backtick runs nothing inside can close."""
    return defuse.code_span(redact(str(text), logged_secrets()), limit)


def _one_line(text: object, limit: int = 2_000) -> str:
    """Prose (a finding, a reason) on one line, so it stays inside the list item it is written into."""
    return " ".join(str(text or "").split())[:limit]


def config_problems(errors: tuple[str, ...] | list[str], fallback: str) -> tuple[str, str]:
    """The issue saying what the bot could not read or use of a repository's set-up, and what it does instead."""
    doing = (f"Until it is fixed, triage-lead runs on {fallback}." if fallback else
             "The rest of the configuration applies; what is listed is ignored.")
    body = ("triage-lead could not read or use part of its set-up on the default branch:\n\n"
            + "\n".join(f"- {code_span(e)}" for e in errors[:30]) + f"\n\n{doing} "
            "This issue is opened once for each distinct set of problems.")
    title = ("triage-lead: its configuration could not be used" if fallback
             else "triage-lead: part of its set-up was ignored")
    return title, clip(body)


def failure_note(what: str, cause: str, hint: str, *, command: bool = False) -> str:
    """A job ended without doing its work: what failed (quoted: GitHub's messages echo what people wrote),
    what would fix it (our own text), how to run it again. A command is run again by commenting it again:
    `/retry` never replays someone's old command against a newer head."""
    again = ("Comment the command again to run it (or `/retry`, where it had already set work going)." if command else
             "Someone with write access can comment `/retry` on this thread to run it again.")
    return clip(f"⚠️ triage-lead could not finish its work on {what}: {code_span(cause)}"
                + (f"\n\n{hint}" if hint else "") + f"\n\n{again}")


def pending_note(what: str, *, running: bool, error: str | None, retry_at: float) -> str:
    """A delivery is taking longer than usual: say that it was received and why it waits."""
    import time

    if error:
        wait = max(0, round(retry_at - time.time()))
        why = (f"Its last try failed ({code_span((error.splitlines() or [''])[0], 300)}); it tries again "
               + (f"in about {wait} s." if wait else "now."))
    elif running:
        why = "It is working on it now."
    else:
        why = "It is queued behind other work."
    return f"⏳ triage-lead received {what} and will post here when it has something to show. {why}"


def ci_failure_issue(name: str, signature: str, first_error: str, sha: str, url: str | None) -> tuple[str, str]:
    """Check names and log lines are untrusted (a fork's workflow chooses them): the name as inline code, the
    log lines as blocks nothing inside can close, the title defused as prose."""
    title = clip(" ".join(clean_for_github(f"CI failure: {name}: {first_error}", logged_secrets()).split()), 200)
    body = "\n".join([f"The check {code_span(name, 200)} failed on the default branch at `{sha[:12]}`.", "",
                      "First error:", _block(first_error), "", f"Details: <{url}>" if url else "",
                      "", "Failure signature:", _block(signature), "",
                      "A repeat of the same failure is noted here instead of opening another issue."])
    return title, body


def ci_repeat(name: str, sha: str, url: str | None) -> str:
    return (f"The same failure of {code_span(name, 200)} happened again at `{sha[:12]}`."
            + (f" Details: <{url}>" if url else ""))


def as_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True)


def ignored_commands(acted: str, lines: list[tuple[str, int]], shown: int = 5) -> str:
    """A comment's other command lines, named once in its one reply: a comment acts on its first command only,
    so a pasted list of commands costs one reply, not one each. ``lines``: (line, times), first seen first."""
    named = ", ".join(code_span(line, 80) + (f" ({n} times)" if n > 1 else "") for line, n in lines[:shown])
    rest = sum(n for _, n in lines[shown:])
    return (f"I act on one command per comment, its first: {code_span(acted, 80)}. Ignored: {named}"
            + (f" and {rest} more" if rest else "") + ".")


def over_reply_limit(login: str, command: str, minutes: int, *, per_minute: int, per_hour: int) -> str:
    """Said once a window to someone whose commands outrun the reply limits (not an @-mention: no ping)."""
    return (f"{code_span(login, 60)}: you're over the reply limit ({per_minute} replies a minute per person on a "
            f"thread, {per_hour} an hour per repository), so I haven't answered {code_span(command, 80)} and "
            f"won't answer more of your commands here for now; try again in {max(1, minutes)} "
            f"minute{'s' if minutes > 1 else ''}.")
