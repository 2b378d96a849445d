"""The one reply to an edit's ticks (bot/core/dashboard.py ``reply``), through a tick's own job against the sandbox
GitHub: an answer of several paragraphs (the engine's replies to one command, joined by blank lines) is one answer,
said once and left out whole; an answer naming someone (which the GitHub client writes defused, ``@\u200bname``) is
recognised in GitHub's copy, so a tick's job run again (a retry after a crash) does not say it twice.
"""

from __future__ import annotations

from typing import Any

from bot.core import dashboard as D
from bot.core.markers import split_trailing
from bot.github.writes import digest
from bot.run import dashboard, pipeline
from bot.sandbox.team import Team
from bot.store import Job
from tests.board_setup import Clock, board, box_of, clock, opted_in, send, waiting_board  # noqa: F401
from tests.conftest import INSTALLATION
from tests.test_workflows_e2e import REPO, bot, fake, posts, pr_payload, team  # noqa: F401


def tick_job(dash: int, box: str, thread: str, login: str, delivery: str = "edit-1") -> Job:
    """The job a tick of ``box`` becomes (bot/run/dashboard.py ``_queue``): the edit's delivery id, then its box's."""
    payload = {"repo": REPO, "installation_id": INSTALLATION, "box": box, "thread": thread, "dashboard": dash,
               "written_at": None, "sender": {"login": login, "id": 1, "type": "User"}}
    return Job(id=0, delivery_id=f"{delivery}:{digest(box)}", thread=thread, event=D.TICK_EVENT, payload=payload,
               attempts=1)


def reply_of(sandbox: Any, dash: int) -> tuple[int, list[str]]:
    [reply] = sandbox.comments(REPO, dash)  # one reply for the edit
    return D.answers_in(split_trailing(str(reply["body"]))[0])


async def test_an_answer_naming_its_sender_is_said_once_when_the_ticks_job_runs_again(
        bot: Any, sandbox: Any, team: Team, clock: Clock) -> None:
    """The pull request's author ticks Approve where the repository asks someone else to approve: the answer names
    them (``@Codertocat opened this pull request``). The tick's job run again finds it in the reply as GitHub has
    it (the mention defused) and adds nothing."""
    rt, _ = bot
    opted_in(sandbox, Codertocat="write")
    sandbox.set_file(REPO, ".github/triage-lead.yml", "dashboard: true\napproval: {not_author: true}\n")
    await send(bot, sandbox, "pull_request", pr_payload(sandbox, 20, ["api"]))
    assert posts(sandbox, 20)[-1] == "approval"
    dash = board(sandbox)
    job = tick_job(dash["number"], box_of(dash["body"], "approve", 20), f"{REPO}#20", "Codertocat")
    for _ in range(2):
        clock.later()
        await pipeline.process(job, rt.deps)
    gone, [answer] = reply_of(sandbox, dash["number"])
    assert gone == 0 and answer.startswith("@\u200bCodertocat opened this pull request")
    assert (await rt.store.active_run(f"{REPO}#20")).state == "waiting"  # type: ignore[union-attr]


async def test_an_answer_of_two_paragraphs_is_one_answer_said_once_and_left_out_whole(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any], monkeypatch: Any) -> None:
    """Two ticks of one edit, each answered in two paragraphs (as ``/approve`` of a moved head is: the push, then
    why the approval was not applied); the first tick's job run again; the reply holds one answer's room."""
    rt, _ = bot
    moved = "The pull request's head moved to `{}` without a push event; what it made stale is done again."
    said = {"cancel": moved.format("abc1234") + "\n\n`/cancel` by @maintainer: there is nothing left to cancel.",
            "approve": moved.format("def5678") + "\n\n`/approve` by @maintainer was not applied: it was for the "
                                                 "old head."}

    async def engine_answer(gh: Any, deps: Any, job: Job, box: D.Box, *_: Any) -> str:
        return said[box.action]
    monkeypatch.setattr(dashboard, "_apply", engine_answer)
    dash, thread = waiting_board["number"], f"{REPO}#15"
    first = tick_job(dash, box_of(waiting_board["body"], "cancel", 15), thread, "maintainer")
    for _ in range(2):  # run again: a retry after a crash
        clock.later()
        await pipeline.process(first, rt.deps)
    gone, answers = reply_of(sandbox, dash)
    assert gone == 0 and [D.as_written(a) for a in answers] == [said["cancel"]]
    monkeypatch.setattr(D, "NOTE_LIMIT", len(said["approve"]) + 100)  # room for one answer, and the line
    clock.later()
    await pipeline.process(tick_job(dash, box_of(waiting_board["body"], "approve", 15), thread, "maintainer"),
                           rt.deps)
    gone, answers = reply_of(sandbox, dash)
    assert gone == 1 and [D.as_written(a) for a in answers] == [said["approve"]]  # the newest, whole
    text = split_trailing(str(sandbox.comments(REPO, dash)[0]["body"]))[0]
    assert text.startswith("_1 earlier answer to this edit's ticks is left out._\n\n")


def test_a_quoted_separator_does_not_split_an_answer() -> None:
    """Untrusted text an answer quotes (in a code span) holding the separator stays inside its answer."""
    quoted = f"The run's state is `x {D.ANSWER} _9 earlier answers to this edit's ticks are left out._`."
    once = D.reply("", quoted)
    assert once is not None and D.answers_in(once) == (0, [once.split("\n", 1)[1]])
    assert D.reply(once, quoted) is None and D.reply(once.replace("@", "@\u200b"), quoted) is None
