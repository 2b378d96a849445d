"""The dashboard issue (issue 17, point 1): one issue per repository, edited in place, listing what the bot is
doing and what waits on people, with a checkbox for each thing a person can do about it. Pure: records in,
Markdown out; Markdown in, ticks out.

Each checkbox line ends with a hidden id (``<!-- box:approve:RUN:ARG:HEAD -->``) naming the action and the run
(or failed job) it is for. A tick is a box unticked before an edit and ticked after it (GitHub's
``changes.body.from`` against the body): only the id at the end of a checkbox line counts, never the line's
text, and only a box that was there before the edit (a line someone adds already ticked is nobody's tick).
Everything people or models wrote (titles, options, errors) goes into code spans or one-line prose, and the
GitHub client defuses the whole body once more on its way out.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from bot.core.defuse import ZWSP, clip
from bot.core.texts import code_span, one_line

TITLE = "triage-lead dashboard"
# The job a tick becomes, queued on its run's thread (one job at a time per thread, as a comment's command is).
# Never a GitHub event: the webhook ignores any event it does not act on, so no delivery can claim this name.
TICK_EVENT = "triage-lead.dashboard-tick"
ACTIONS = ("approve", "cancel", "retry")
_TOKEN = r"[A-Za-z0-9_.#/-]"
_KEY = re.compile(rf"(approve|cancel|retry):({_TOKEN}{{1,100}}):([a-z0-9]{{0,10}}):([0-9a-f]{{0,40}})")
# A checkbox list item (any depth) whose line ends with a box id: GitHub's task-list toggle flips the [ ] only.
_BOX = re.compile(r"^[ \t]*[-*+][ \t]+\[([ xX])\][ \t].*<!-- box:([A-Za-z0-9_.#/:-]+) -->[ \t]*$", re.M)


@dataclass(frozen=True)
class Box:
    """What ticking one checkbox asks for: ``/approve ARG``, ``/cancel`` or ``/retry``, for one run or job."""

    action: str  # approve | cancel | retry
    target: str  # a run's id, or "job-N" for a failed job
    arg: str = ""  # approve: an escalation's option number, or "budget"
    # approve of a run waiting for approval: the commit the approval is for; of an escalation's option: which
    # escalation of the run it is (how many were decided before it, in hex; none for the first), so an option
    # ticked twice, or from a page left open, never picks an option of a later escalation
    head: str = ""

    @property
    def key(self) -> str:
        return f"{self.action}:{self.target}:{self.arg}:{self.head}"

    @property
    def job(self) -> int | None:
        """The failed job a retry box is for (None: a run's box)."""
        return int(self.target[4:]) if re.fullmatch(r"job-\d{1,18}", self.target) else None

    @classmethod
    def parse(cls, key: str) -> Box | None:
        m = _KEY.fullmatch(key)
        return cls(*m.groups()) if m else None


@dataclass(frozen=True)
class RunLine:
    """One unfinished run as the dashboard shows it."""

    run_id: str
    number: int | None
    state: str  # running | waiting | escalated | budget | another non-final state | unreadable
    workflow: str = ""
    title: str = ""  # the issue's or pull request's title: untrusted
    at_work: tuple[tuple[str, str], ...] = ()  # (step title, agent) for each step at work
    waiting: str = ""  # the step waiting for approval
    head: str = ""  # the commit an approval would be for
    options: tuple[str, ...] = ()  # an escalation's options, in order (``/approve N`` picks N)
    issue: str = ""  # what the escalation is about
    decided: int = 0  # how many escalations of the run were decided before this one (its boxes name it)


@dataclass(frozen=True)
class FailedLine:
    job_id: int
    number: int | None
    event: str
    error: str  # the cause, redacted when it was stored


@dataclass(frozen=True)
class Board:
    runs: tuple[RunLine, ...] = ()
    failed: tuple[FailedLine, ...] = ()
    not_author: bool = False  # the repository asks that a pull request's author not approve the change to it


def boxes(body: str | None) -> dict[str, bool]:
    """Each box id in ``body`` and whether it is ticked (a repeated id: ticked if any of its lines is)."""
    found: dict[str, bool] = {}
    for m in _BOX.finditer((body or "").replace("\r\n", "\n")):
        if Box.parse(m.group(2)) is not None:
            found[m.group(2)] = found.get(m.group(2), False) or m.group(1) != " "
    return found


def ticks(before: str | None, after: str) -> list[Box]:
    """The boxes an edit ticked: unticked in ``before``, ticked in ``after``, in the order they appear."""
    was = boxes(before)
    return [box for key, ticked in boxes(after).items()
            if ticked and was.get(key) is False and (box := Box.parse(key)) is not None]


def _prose(text: str, limit: int) -> str:
    """Untrusted prose (an option, an escalation's reason) on one line, with no HTML of its own: nothing in it
    can open a comment that hides the line's box id or another line, and no control or invisible character (a
    right-to-left override would draw the words after it backwards, over the box's own text)."""
    return one_line("".join(c if c.isprintable() else " " for c in text), limit).replace("<", "&lt;")


def _where(number: int | None) -> str:
    return f"#{number}" if number else "the default branch"


def _run_boxes(run: RunLine) -> list[tuple[Box, str]]:
    if run.state == "waiting":
        head = f" at {code_span(run.head[:7], 20)}" if run.head else ""
        boxes_ = [(Box("approve", run.run_id, head=run.head), f"**Approve** the change{head}")]
    elif run.state == "escalated":
        which = f"{run.decided:x}" if run.decided else ""
        boxes_ = [(Box("approve", run.run_id, arg=str(n), head=which), f"**Option {n}:** {_prose(title, 200)}")
                  for n, title in enumerate(run.options[:9], 1)]
    elif run.state == "budget":
        boxes_ = [(Box("approve", run.run_id, arg="budget"), "**Approve the budget** (within the operator's ceilings)")]
    else:
        boxes_ = []
    return [*boxes_, (Box("cancel", run.run_id), "**Cancel** this run")]


def offered(run: RunLine) -> set[str]:
    """The ids of the boxes the dashboard shows for ``run`` as it stands: a tick acts only on one of these, so a box
    shown for another state of the run (an option of an escalation since decided, an approval since given, a
    budget wait since lifted) or written in by hand (an approval without its commit) does nothing."""
    return {box.key for box, _ in _run_boxes(run)}


def _run_head(run: RunLine, not_author: bool) -> str:
    name = f"{code_span(run.workflow, 60)} on {_where(run.number)}" + (f" {code_span(run.title, 80)}" if run.title
                                                                       else "")
    if run.state == "unreadable":
        return f"- {name}: its stored state cannot be read; it can only be cancelled"
    if run.state == "waiting":
        who = "someone with write access" + (" other than the pull request's author" if not_author else "")
        return f"- {name}: **{_prose(run.waiting, 100)}** waits for approval; {who} may approve"
    if run.state == "escalated":
        return f"- {name}: waits for a decision: {_prose(run.issue, 300)}"
    if run.state == "budget":
        return f"- {name}: its estimated cost exceeds what is left of the budget; someone with write access may let it go on"
    work = ", ".join(f"{code_span(agent, 60)} on {_prose(step, 100)}" for step, agent in run.at_work)
    return f"- {name}: {_prose(run.state, 30)}" + (f"; at work: {work}" if work else "")


def _checkbox(box: Box, text: str, ticked: Collection[str]) -> str:
    return f"  - [{'x' if box.key in ticked else ' '}] {text} <!-- box:{box.key} -->"


SECTIONS = (("waiting", "Waiting for approval"), ("escalated", "Escalated: waiting for a decision"),
            ("budget", "Blocked by budget"), ("running", "In progress"))


def render(board: Board, ticked: Collection[str] = ()) -> str:
    """The dashboard's body (its marker is added by the writer); ``ticked``: box ids shown ticked (a person's
    ticks the bot has not acted on yet, kept through its edit)."""
    out = [f"### {TITLE}", "",
           "_Kept up to date by the bot (at most one edit a minute). Tick a box to act: it does what the comment "
           "command does on the thread, with the same checks (write access needed)._"]
    for state, heading in SECTIONS:
        runs = [r for r in board.runs if r.state == state or (state == "running" and r.state not in dict(SECTIONS))]
        out += ["", f"#### {heading} ({len(runs)})", ""]
        for run in runs:
            out.append(_run_head(run, board.not_author))
            out += [_checkbox(box, text, ticked) for box, text in _run_boxes(run)]
        if not runs:
            out.append("_None._")
    out += ["", f"#### Failed jobs ({len(board.failed)})", ""]
    for job in board.failed:
        box = Box("retry", f"job-{job.job_id}")
        out.append(f"- job {job.job_id} ({code_span(job.event, 40)}) on {_where(job.number)}: "
                   f"{code_span(job.error, 200)}")
        out.append(_checkbox(box, f"**Retry** job {job.job_id}", ticked))
    if not board.failed:
        out.append("_None._")
    return _cut("\n".join(out), 60_000)


def _cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` at a line's end, never inside a line: half a box line would leave its id's HTML
    comment (or a title's code span) open, hiding or swallowing what follows, the dashboard's marker included."""
    if len(text) <= limit:
        return text
    note = "\n\n_…cut: more than GitHub shows in one issue; the rest is listed once these are done._"
    return clip(text[:max(0, text.rfind("\n", 0, limit - len(note)))] + note, limit)


# The one reply to an edit's ticks holds each tick's answer, each after a hidden line of its own (an answer may be
# several paragraphs: the engine's replies to one command, joined by blank lines): kept to a screen or so. Over it
# the oldest answers go first, whole, and a line says how many: the newest (why the latest tick did what it did) stays.
NOTE_LIMIT = 6_000
ANSWER = "<!-- tick-answer -->"  # kept by the client's defusing (no marker of the bot's, no tag, no link)
_LEFT_OUT = re.compile(r"_(\d{1,9}) earlier answers? to this edit's ticks (?:is|are) left out\._")


def as_written(text: str) -> str:
    """The bot's text as it wrote it, from GitHub's copy of it: the GitHub client defuses every write (a zero-width
    space after the @ of a mention, ...), so the copy never equals the text it was written from."""
    return text.replace(ZWSP, "")


def answers_in(said: str) -> tuple[int, list[str]]:
    """(how many answers the reply says it left out, the answers it holds, oldest first) of a reply :func:`reply`
    wrote (``said``: GitHub's copy, without its marker). Written before the answers had their separator, each
    paragraph was an answer."""
    head, *answers = said.split(ANSWER)
    paragraphs = [p.strip() for p in head.strip().split("\n\n") if p.strip()]
    gone = int(m.group(1)) if paragraphs and (m := _LEFT_OUT.fullmatch(paragraphs[0])) else 0
    return gone, [*paragraphs[1 if gone else 0:], *(a.strip() for a in answers if a.strip())]


def reply(said: str, answer: str) -> str | None:
    """The dashboard's reply to an edit's ticks (``said``: what it says now, without its marker; "" for none yet)
    with ``answer`` added; None when it says that already. Never over ``NOTE_LIMIT``: earlier answers are left out
    whole, oldest first (a cut inside one would leave its code span open), and the reply says how many."""
    gone, answers = answers_in(said)
    # Untrusted text the answer quotes cannot hold a separator: only the bot's own split the reply into answers.
    answer = clip(answer.replace(ANSWER, ANSWER.replace("--", "-" + ZWSP + "-")), NOTE_LIMIT - 100).strip()
    if as_written(answer) in {as_written(a) for a in answers}:
        return None
    answers.append(answer)  # the 100 characters kept: the line saying how many were left out, and a separator
    while len(answers) > 1 and len(_reply_text(gone, answers)) > NOTE_LIMIT:
        answers.pop(0)
        gone += 1
    return _reply_text(gone, answers)


def _reply_text(gone: int, answers: list[str]) -> str:
    head = [f"_{gone} earlier answer{'s' if gone > 1 else ''} to this edit's ticks "
            f"{'are' if gone > 1 else 'is'} left out._"] if gone else []
    return "\n\n".join([*head, *(f"{ANSWER}\n{a}" for a in answers)])


def refused(login: str, role: str) -> str:
    """The note to someone who ticked a box without write access: what happened, and what they can do."""
    return (f"{code_span(login, 60)}: ticking a box on this dashboard needs write, maintain or admin access to this "
            f"repository (yours is {code_span(role, 20)}), so I've unticked it and done nothing. `/status` and "
            "`/help` on a thread are open to everyone.")


def gone(box: Box, run: RunLine) -> str:
    """Why a box was not applied: the run does not offer it now (it was for another state of the run, or someone
    wrote it in)."""
    what = {"approve": "an approval" if not box.arg else "a budget approval" if box.arg == "budget"
            else f"option {box.arg} of an escalation"}.get(box.action, box.action)
    return (f"That box ({what}) is no longer one the dashboard offers for this run (it is {code_span(run.state, 20)} "
            "now), so it was not applied. Tick a box the dashboard shows now if it still stands.")


def stale(box: Box, head: str | None) -> str:
    """Why an approval box was not applied: it was for a commit that is no longer the run's."""
    now = f"is now at {code_span((head or '')[:7], 20)}" if head else "has moved on"
    return (f"That box approved the change at {code_span(box.head[:7], 20)}; the run {now}, so it was not applied. "
            "Approve again from the dashboard's new box if the change still stands.")


def nothing_named(box: Box) -> str:
    """Why a box did nothing: it names no run or failed job of this repository (written in, or another's)."""
    return f"That box names no run or job of this repository: {code_span(_line(box), 40)} did nothing."


def ended(box: Box) -> str:
    """Why a box did nothing: the run it was for has ended."""
    return f"The run that box was for has ended; {code_span(_line(box), 40)} did nothing."


def requeued(job_id: int, queued: bool) -> str:
    """A Retry box's answer: its failed job queued again (or by an earlier tick already)."""
    return f"Job {job_id} is queued again." if queued else f"Job {job_id} was queued again already."


def not_failed(job_id: int, state: str | None) -> str:
    """Why a Retry box did nothing: its job is no longer a failed one (``state``: what it is now; None, gone)."""
    return (f"Job {job_id} is no longer a failed job ({code_span(state or 'gone', 20)}), so it was not queued "
            "again.")


def not_applied(job_id: int) -> str:
    """Why a Retry box did nothing: its job was a command that never applied, which must not apply later to
    whatever the run is by then (an old approval approving today's head)."""
    return (f"Job {job_id} was a command that did not apply: it is not run again later, when the run may have moved "
            "on. Give the command again (comment it, or tick its box) if it still stands.")


def _line(box: Box) -> str:
    return f"/{box.action}" + (f" {box.arg}" if box.arg else "")
