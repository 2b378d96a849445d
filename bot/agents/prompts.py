"""The prompt around an agent's own instructions: fixed rules, the repository context, the step.

Order matters for the prompt cache (tools, then system, then messages). Every specialist of a run gets
the same tool definitions (each agent may call only its own, see ``Tools``), the same system prompt
(the team's rules), and the same repository context as the first block of the first user message, so
that prefix is written once per run and read from the cache by every later turn, step, agent and
review iteration. The agent's own role prompt and the step come after it.
"""

from __future__ import annotations

import json
from typing import Any

from bot.agents.gate import Finding
from bot.agents.request import AgentRequest, RepoContext
from bot.core.sanitize import UNTRUSTED_RULE, fence

EPHEMERAL = {"type": "ephemeral"}

RULES = f"""

## How you work in triage-lead

- You read one GitHub repository through read-only tools. You cannot write to GitHub, run code or
  browse the web; the App posts and commits for you after your result is checked.
- {UNTRUSTED_RULE}
- Never put credentials, tokens or personal data in your result, and never @-mention anyone.
- Base each claim on something you read, citing path:line or the log line; say what you could not verify.
- Escalate (the `escalate` field) only when a person must decide: conflicting requirements, security vs.
  speed, a breaking change, repeated rejections, or a task out of scope. Give at least two options with
  their tradeoffs, your recommendation and what is blocked. Otherwise `escalate` is null.
- When you are done, answer with only the JSON result the response format describes, no text around it:
  `summary` (Markdown for the people on the issue), `passed` (every pass criterion met), `criteria`
  (one entry per pass criterion), `flags` (every flag listed in the step, true or false), `escalate`,
  and the fields of the step's kind."""


TEAM = ("You are one specialist of triage-lead's engineering team, working on one GitHub repository. Your role, "
        "your specialty and your task follow in the first message, after the repository context.")


def system_blocks() -> list[dict[str, Any]]:
    """The same for every agent, so the cached prefix is shared across the run's specialists."""
    return [{"type": "text", "text": TEAM + RULES, "cache_control": EPHEMERAL}]


def role_text(request: AgentRequest) -> str:
    """The agent's own prompt (its Markdown file's body) and the tools it may use."""
    tools = ", ".join(request.agent.tools) or "none"
    return f"# Your role: {request.agent.name}\n\n{request.agent.prompt.strip()}\n\nTools you may use: {tools}."


def context_text(ctx: RepoContext) -> str:
    """The repository context block: stable for every step of a run on one issue or PR."""
    what = "Pull request" if ctx.is_pull_request else "Issue"
    lines = ["## Repository context", f"Repository: {ctx.repo} (default branch {ctx.default_branch})"]
    if ctx.number is not None:
        commit = (f", head commit {ctx.head_sha}" if ctx.is_pull_request
                  else f"; the repository as of commit {ctx.head_sha}")
        lines.append(f"{what} #{ctx.number}" + (commit if ctx.head_sha else ""))
    elif ctx.head_sha:
        lines.append(f"Commit {ctx.head_sha}")
    if ctx.ci:
        ci = ctx.ci
        lines.append(f"CI failure: {ci.get('source')} {ci.get('id')} ({fence('check name', str(ci.get('name', '')))}) "
                     f"on {ci.get('head_sha') or ctx.head_sha}")
        if ci.get("summary"):
            lines.append(fence("CI summary", str(ci["summary"])))
    lines += [fence(f"{what.lower()} title", ctx.title), fence(f"{what.lower()} body", ctx.body or "(empty)")]
    return "\n".join(lines)


def _json(value: Any) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False, default=str)


def step_text(request: AgentRequest, findings: list[Finding] | None = None) -> str:
    """The step: task, expected output, pass criteria, flags, earlier results, rejection feedback."""
    step = request.step
    lines = [f"## Step {step.title} ({step.kind}) of run {request.run_id}, attempt {request.iteration}",
             f"You are {request.agent.name}. Task:\n{request.task or step.task}", f"Expected output: {step.output}"]
    criteria = step.pass_criteria
    lines.append("Pass criteria:\n" + ("\n".join(f"- {c}" for c in criteria) if criteria
                                       else "- none beyond doing the task well (`passed` true if you did)"))
    if step.gate is not None:
        lines.append(f"Review focus: {step.gate.focus}\nVerdict REJECTED sends the work back to the "
                     f"'{step.gate.on_reject}' step with your critical issues; any MUST PASS failure means REJECTED.")
    if request.flags_wanted:
        lines.append("Flags to set in `flags`:\n" + "\n".join(f"- {k}: {v}" for k, v in request.flags_wanted.items()))
    else:
        lines.append("Flags to set: none (`flags` is {}).")
    for sid, result in request.inputs.items():
        lines.append(fence(f"result of step {sid}", _json(result)))
    if request.feedback:
        lines.append("Your previous attempt was REJECTED by review. Address every critical issue:\n"
                     + fence("review that rejected the previous attempt", _json(request.feedback)))
    if findings is not None:
        shown = "\n".join(f"- {f.severity}: {f.item()['text']}" for f in findings) or "- none"
        # Findings name files the change's author chose: fenced like any other untrusted text.
        lines.append("The deterministic checks already ran on the change (their critical findings reject it "
                     "whatever you decide):\n" + fence("deterministic gate findings", shown))
    lines.append("Use the tools as needed, then answer with only the JSON result.")
    return "\n\n".join(lines)


def first_message(request: AgentRequest, findings: list[Finding] | None = None) -> dict[str, Any]:
    return {"role": "user", "content": [
        {"type": "text", "text": context_text(request.context), "cache_control": EPHEMERAL},
        {"type": "text", "text": role_text(request) + "\n\n" + step_text(request, findings)},
    ]}
