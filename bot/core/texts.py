"""Markdown for what the bot says outside a workflow run's own thread of posts: replies to commands, notes on
work that failed or waits, the issues it files, the pull request's own verdict; and the pieces every post is
built from (inert code spans, one-line prose, folding). Pure: records in, strings out.

Names people or models chose go into :func:`code_span`, whole texts into blocks, both sized by
bot/core/defuse.py so nothing inside can close them; the GitHub client defuses whatever is posted once more.
The posts about a run (status, step outputs, gate verdicts, escalations) are bot/core/render.py, which
re-exports every public name here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.core import defuse
from bot.core.defuse import clip
from bot.core.sanitize import clean_for_github, redact, strip_hidden
from bot.core.secrets import secrets as logged_secrets

HELP_HINT = "Comment `/help` to see the commands."
# Why the step list of a running run's status comment may lag: it is edited on state changes only (each edit
# is a GitHub write; see bot/run/writes.py _status), while every step's result is a comment of its own.
STATUS_CADENCE = ("This comment is updated when the run starts, waits for someone, is rejected or ends; each step's "
                  "result is posted below as it finishes, and `/status` shows the live state.")
FOLD_OVER = 1_500  # step outputs longer than this are folded in <details>
COMMANDS = {
    "/approve": "approve the step waiting for approval; after an escalation `/approve N` picks option N",
    "/approve budget": "let a run waiting for its token budget go on past this repository's own limits (the "
                       "operator's ceilings still apply)",
    "/escalate [reason]": "stop the workflow here and ask for a decision",
    "/status": "show where the workflow stands",
    "/retry": "run the failed or escalated step again",
    "/cancel": "stop the workflow",
    "/help": "show this list",
}


def code_span(text: str, limit: int = 600) -> str:
    """Untrusted text (a file name, a path, a label, an error quoting one) as inline code, backticks included:
    one line, tokens and keys redacted, cut to ``limit``, between backtick runs nothing inside can close."""
    return defuse.code_span(redact(str(text), logged_secrets()), limit)


def one_line(text: object, limit: int = 2_000) -> str:
    """Prose (a finding, a reason) on one line, so it stays inside the list item it is written into."""
    return " ".join(str(text or "").split())[:limit]


def block(text: str) -> str:
    """``text`` (a log line, a failure signature) as a code block no line of it can close, tokens redacted."""
    return defuse.block(redact(text, logged_secrets()))


def fold(text: str) -> str:
    """``text`` as it is when short, else folded in a <details> block that says how long it is."""
    if len(text) <= FOLD_OVER:
        return text
    return f"<details><summary>Full output ({len(text):,} characters)</summary>\n\n{text}\n\n</details>"


def findings_list(title: str, items: list[Mapping[str, Any]]) -> list[str]:
    """A reviewer's findings under ``title`` (``None`` when there are none), each on one line with its place."""
    if not items:
        return [f"**{title}:** None"]
    out = [f"**{title}:**"]
    for f in items:  # a path is a file name someone chose (or the model wrote): inert, whatever it holds
        spot = f"{f['path']}:{f['line']}" if f.get("path") and f.get("line") else str(f.get("path") or "")
        where = f" ({code_span(spot, 300)})" if spot else ""
        out.append(f"- {one_line(f.get('text', ''))}{where}")
    return out


def ask_for_label(reason: str, labels: Mapping[str, str], present: Sequence[str] = ()) -> str:
    """The Lead's question when it places nothing. ``present``: the item's labels that map to a workflow the
    repository runs (``triage.outweighed``): they did not decide it, and adding one again is what steers."""
    by_workflow: dict[str, list[str]] = {}
    for label, workflow in labels.items():
        by_workflow.setdefault(workflow, []).append(code_span(label, 100))
    rows = "\n".join(f"| {code_span(w, 100)} | {', '.join(ls[:4])} |" for w, ls in sorted(by_workflow.items()))
    lowered = {str(k).lower(): str(v) for k, v in labels.items()}
    named = [f"{code_span(lab, 100)} ({code_span(lowered[lab.lower()], 100)})"
             for lab in dict.fromkeys(present) if lab.lower() in lowered][:4]
    again = (f"\n\nIt already carries {', '.join(named)}, which did not decide it on its own: remove the label and "
             "add it again to start that workflow anyway." if named else "")
    if not rows:  # the repository's config turns every workflow off: no label would start one
        return ("**principal-software-engineer (Lead)**: I can't place this in a workflow "
                f"({reason}), and this repository's config (`workflows:` in `.github/triage-lead.yml`) turns every "
                "workflow off, so no label starts one.")
    return ("**principal-software-engineer (Lead)**: I can't place this in a workflow with confidence "
            f"({reason}), so I won't guess. Add one of these labels and I'll start:\n\n"
            f"| workflow | labels |\n|---|---|\n{rows}{again}")


def budget_wait(short: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """Why a run waits in its budget state and what lets it go on (``short``: the engine's BudgetShort)."""
    whose = "set by this repository's config" if short["by_repo"] else "the operator's ceiling"
    text = (f"This run has not started: its estimate of {short['estimate']:,} tokens is more than "
            f"{names.get(short['budget'], 'its token budget')} ({whose}) has left: {short['left']:,} tokens. ")
    if short["estimate"] > short["operator_left"]:  # no approval gets it past: say what approving does then
        return text + (f"The operator's ceilings leave {short['operator_left']:,} tokens, and no approval lifts "
                       "them: someone with write access can comment `/approve budget` to start it anyway, and it "
                       "stops where they are reached, or `/cancel` to end it")
    return text + ("Someone with write access can comment `/approve budget` to let it go on past this repository's "
                   "own limits; the operator's ceilings still apply")


def help_text() -> str:
    rows = "\n".join(f"| `{cmd}` | {what} |" for cmd, what in COMMANDS.items())
    return ("**triage-lead commands** (on a line of their own; `/approve`, `/escalate`, `/retry` and `/cancel` "
            f"need write access)\n\n| command | what it does |\n|---|---|\n{rows}")


def refusal(actor: str, command: str, permission: str) -> str:
    return (f"@{actor} `/{command}` needs write, maintain or admin access to this repository "
            f"(yours is `{permission}`), so I haven't acted on it. `/status` and `/help` are open to everyone.")


def locked_down(actor: str) -> str:
    """The one note a person without triage access gets on a thread of a repository in lockdown."""
    return (f"@{actor} thanks for this. This repository runs triage-lead in lockdown: it acts only on issues, pull "
            "requests and commands from people with triage access or more, so it hasn't acted on yours. A "
            "maintainer can start it on a thread by adding one of its workflow labels.")


def unknown_command(name: str, guess: str) -> str:
    return f"`/{name}` isn't a command I know; did you mean `/{guess}`? {HELP_HINT}"


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
                lines += [*findings_list(title, items), ""]
        lines.append(fold(str(review.get("summary") or "")))
    return clip("\n".join(lines))


def _finding_line(f: Mapping[str, Any]) -> str:
    """One deterministic finding: its location (a file name the PR's author chose) and text, both inert."""
    where = f.get("path") and (f"{f['path']}:{f['line']}" if f.get("line") else str(f["path"]))
    text = str(f.get("text", ""))
    if where and text.startswith(f"{where}: "):
        text = text[len(where) + 2:]
    return f"- {'❌' if f.get('severity') == 'critical' else '⚠️'} " + (f"{code_span(str(where))}: " if where else "") \
        + one_line(redact(text, logged_secrets()), 1_000)


def tech_debt_issue(item: Mapping[str, Any], *, run_link: str, step_title: str) -> tuple[str, str]:
    title = clip(str(item.get("title") or item.get("text") or "Follow-up"), 200)
    body = "\n".join([str(item.get("body") or item.get("text") or ""), "",
                      f"Deferred during {step_title} of {run_link}. Filed by triage-lead as a tech-debt follow-up."])
    return title, clip(body)


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


def failure_note(what: str, cause: str, hint: str, *, command: bool = False, retry: bool = True) -> str:
    """A job ended without doing its work: what failed (quoted: GitHub's messages echo what people wrote),
    what would fix it (our own text), how to run it again. A command is run again by commenting it again:
    `/retry` never replays someone's old command against a newer head. ``retry=False``: running it again
    cannot help (the hint says what does), so the note does not offer it."""
    again = ("" if not retry else
             "Comment the command again to run it (or `/retry`, where it had already set work going)." if command else
             "Someone with write access can comment `/retry` on this thread to run it again.")
    return clip(f"⚠️ triage-lead could not finish its work on {what}: {code_span(cause)}"
                + (f"\n\n{hint}" if hint else "") + (f"\n\n{again}" if again else ""))


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


def ci_failure_issue(name: str, headline: str, digest: str, signature: str, sha: str,
                     url: str | None) -> tuple[str, str]:
    """The issue for a failure on the default branch: ``digest`` is bot/core/ci_output/digest.py's rendering
    (built from these helpers). Check names and log lines are untrusted (a fork's workflow chooses them): the
    title is defused as prose, the signature quoted as a block nothing inside can close."""
    # Bidi overrides and invisible characters would make a title read differently from what it says.
    title = clip(" ".join(clean_for_github(strip_hidden(f"CI failure: {name}: {headline}"), logged_secrets()).split()),
                 200)
    body = "\n".join([f"The check {code_span(name, 200)} failed on the default branch at `{sha[:12]}`.", "",
                      digest, "", f"Details: <{url}>" if url else "",
                      "", "Failure signature:", block(signature), "",
                      "A repeat of the same failure is noted here instead of opening another issue."])
    return title, clip(body)


def ci_flaky(name: str, sha: str, url: str | None) -> str:
    """Said once on the thread the bot posted a failure on, when the same check then passed at the same commit."""
    return (f"**Flaky**: the check {code_span(name, 200)} failed at `{sha[:12]}` and then passed on the same "
            "commit, so this failure may not be caused by the change." + (f" Passing run: <{url}>" if url else ""))


def ci_repeat(name: str, sha: str, url: str | None) -> str:
    return (f"The same failure of {code_span(name, 200)} happened again at `{sha[:12]}`."
            + (f" Details: <{url}>" if url else ""))
