"""The texts of a pull request's converging review (issue 17, point 2): each head's review note, the comments on
lines, the thread's verdict comment across pushes and the tech-debt issue a finding left open at the merge leaves.

Pure: built from a round of findings (bot/core/findings.py) and passed through the renderer; a finding's text and
file are the pull request author's or the model's, never posted raw. bot/run/pull_review.py posts them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bot.core import findings as F
from bot.core import render
from bot.core.texts import one_line  # the renderer's (bot/core/render.py re-exports it, outside its __all__)

ICONS = {"critical": "❌", "warning": "⚠️"}
MAX_LISTED = 30  # findings per list
CHECK_NAME = "triage-lead / code-review"  # the check run that holds each head's whole verdict


def spot(t: F.Tracked) -> str:
    where = f"{t.path}:{t.line}" if t.path and t.line else t.path or ""
    return f"{render.code_span(where, 300)}: " if where else ""  # a file name the PR's author chose: inert


def inline(t: F.Tracked) -> str:
    """A review comment on the finding's line."""
    by = "a deterministic check" if t.source == F.CHECK else "the model review"
    return f"{ICONS.get(t.severity, '⚠️')} {one_line(t.text, 1_000)}\n\n(found by {by})"


def listed(items: list[F.Tracked], note: Callable[[F.Tracked], str]) -> list[str]:
    """One line per finding (at most MAX_LISTED), its place and text inert, ``note(t)`` after it."""
    lines = [f"- {ICONS.get(t.severity, '⚠️')} {spot(t)}{one_line(t.text, 1_000)}{note(t)}"
             for t in items[:MAX_LISTED]]
    return lines + ([f"- and {len(items) - MAX_LISTED} more"] if len(items) > MAX_LISTED else [])


def note(title: str, rnd: F.Round, inline_count: int, outside: list[F.Tracked]) -> str:
    """A head's own review once the pull request has findings: what changed at this head, the new findings the
    diff does not show, and where the rest is (the check run; the thread comment is linked after it)."""
    counts = ", ".join(f"{len(ids)} {word}" for word, ids in (("new", rnd.new), ("still open", rnd.still_open),
                       ("open again", rnd.reopened), ("fixed", rnd.fixed), ("gone", rnd.gone)) if ids)
    lines = [f"## triage-lead: {title}", "", f"Findings at this head: {counts or 'none'}."]
    if inline_count:
        lines.append(f"{inline_count} new finding(s) are commented on their lines.")
    if outside:
        lines += ["", "**New findings on lines the diff does not show**:",
                  *listed(outside, lambda t: again_note(rnd, t.id))]
    lines += ["", "The whole verdict (what the checks cover, the model's review) is the check run "
                  f"{render.code_span(CHECK_NAME)}."]
    return "\n".join(lines)


def back_again(title: str, sha: str, thread_url: str | None) -> str:
    """The review that gives a head's verdict again when the pull request is back at it (a force-push back, A → B →
    A): its approval or change request was dismissed when the later head was judged, and GitHub cannot undo that."""
    where = (f"Every finding of this pull request, in its state across pushes: {thread_url}." if thread_url
             else "")
    return "\n".join([f"## triage-lead: {title}", "",
                      f"This pull request is back at {render.code_span(sha[:12])}, reviewed before: its verdict "
                      "stands, given again here because that review was dismissed when a later head was reviewed "
                      "(a dismissal cannot be undone). Nothing was reviewed again.", "",
                      f"The whole verdict is the check run {render.code_span(CHECK_NAME)} on this head. {where}".rstrip()])


def again_note(rnd: F.Round, fid: str) -> str:
    """Said of a finding found again after it was fixed: a credential put back is named again, not only counted."""
    return " (found again after it was fixed)" if fid in rnd.reopened else ""


def thread(title: str, sha: str, verdict_body: str, rnd: F.Round) -> str:
    """The thread's verdict comment: every finding of the pull request in its state at this head."""
    by_state = {state: [t for t in rnd.findings.values() if t.state == state] for state in (F.OPEN, F.FIXED, F.GONE)}
    new = set(rnd.new)
    lines = [f"## triage-lead verdict on this pull request: {title}", "",
             "Edited at each push (each head also gets its own review). A finding is reported once; those still "
             "open when the pull request is merged are filed as tech-debt issues.", ""]
    sections = ((F.OPEN, "Open", lambda t: " (new at this head)" if t.id in new else f" (since `{t.first_sha[:7]}`)"),
                (F.FIXED, "Fixed", lambda t: f" (fixed at `{t.last_sha[:7]}`)"),
                (F.GONE, "Gone: on files the pull request no longer changes", lambda t: ""))
    for state, heading, after in sections:
        if by_state[state]:
            lines += [f"**{heading}** ({len(by_state[state])}):", *listed(by_state[state], after), ""]
    lines.append(f"<details><summary>The verdict at `{sha[:12]}`</summary>\n\n{verdict_body}\n\n</details>")
    return render.clip("\n".join(lines))


def with_line_comments(body: str, comments: Iterable[dict[str, object]]) -> str:
    """A review's body with its line comments listed in it, for when GitHub refuses them on their lines."""
    return "\n".join([body, "", "**New findings on their lines**:", *(
        f"- {render.code_span(str(c['path']) + ':' + str(c['line']), 300)}: {str(c['body']).splitlines()[0]}"
        for c in comments)])


def debt_issue(t: F.Tracked, number: int, sha: str, *, closed: int | None = None) -> tuple[str, str]:
    """The tech-debt issue for a finding still open when its pull request was merged (its text and file untrusted).
    ``closed``: the issue filed for it before, closed as completed while the code still has it."""
    by = f"the deterministic check {render.code_span(t.rule, 80)}" if t.source == F.CHECK else "the model review"
    again = ([f"Filed again: #{closed} was closed as completed, but the code merged now still has it (close this "
              "one as not planned to stop it being filed again).", ""] if closed else [])
    body = "\n".join([*again, f"triage-lead's review of #{number} found this, and it was still open when the pull "
                      f"request was merged (at `{sha[:12]}`):", "", *listed([t], lambda _: ""), "",
                      f"Found by {by}; first reported at `{t.first_sha[:12]}`, last seen at `{t.last_sha[:12]}`."])
    return render.tech_debt_issue({"title": f"Tech debt: {one_line(t.text, 150)}", "body": body},
                                  run_link=f"#{number}", step_title="the review")
