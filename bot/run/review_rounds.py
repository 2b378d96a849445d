"""A head's round of findings (issue 17, point 2): the pull request's findings carried across from the last
reviewed head to this one, and the review texts that round gives (bot/core/review_texts.py). What the files changed
between the two heads (GitHub's compare) decides whether a model finding nobody repeated is fixed; a renamed file
takes its findings along. bot/run/pull_review.py decides each head's verdict and posts it."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from gidgethub.abc import GitHubAPI

from bot.agents.gate import Finding
from bot.core import findings as F
from bot.core import review_texts as T
from bot.run.compare import changed_between
from bot.store import Store

if TYPE_CHECKING:  # pull_review imports this module: the type only, never at run time
    from bot.run.pull_review import Verdict

MAX_INLINE = 20  # review comments on lines per review (the rest in its body)


def seen(checks: list[Finding], review: dict[str, Any] | None) -> list[F.Seen]:
    """This head's findings: the deterministic checks', then the model's critical findings and warnings (those the
    gate merged into its review are the checks' own, not the model's)."""
    out = [F.Seen(F.CHECK, f.rule or f.criterion, f.severity, f.text, f.path, f.line, f.anchor) for f in checks]
    texts, spots = {f.item()["text"] for f in checks}, {(f.path, f.line) for f in checks if f.path}
    for key, severity in (("critical", "critical"), ("warnings", "warning")):
        for i in (review or {}).get(key) or []:
            if not isinstance(i, dict) or not isinstance(i.get("text"), str) or i["text"] in texts:
                continue
            path = i["path"] if isinstance(i.get("path"), str) and i["path"] else None
            line = i["line"] if type(i.get("line")) is int and i["line"] > 0 else None
            if (path, line) not in spots:
                out.append(F.Seen(F.MODEL, f"model:{severity}", severity, i["text"], path, line))
    return out


async def converged(gh: GitHubAPI, store: Store, repo: str, number: int, verdict: Verdict, files: list[dict[str, Any]],
                    checks: list[Finding], review: dict[str, Any] | None, unread: list[str], listed_all: bool) -> Verdict:
    """``verdict`` with the pull request's findings carried across from the last reviewed head: what the files
    changed since that head (GitHub's compare) decides whether a model finding nobody repeated is fixed, and a file
    renamed (since that head, or from the base as the pull request's files list it) takes its findings along."""
    verdict = replace(verdict, unread=list(unread) or None, unlisted=None if listed_all else True, read_known=True)
    before = await store.load_findings(repo, number)
    earlier = F.load(before.findings) if before else {}
    changed, moved = (await changed_between(gh, repo, before.sha, verdict.sha) if before and earlier
                      else (None, {}))
    renamed, code = F.renames(files) | moved, F.hunks(files)
    changed = _paths(files) - F.untouched(earlier, code) if changed is None else changed  # no compare: F.untouched
    rnd = F.converge(earlier, F.identify(seen(checks, review), code, renamed), verdict.sha, changed=changed,
                     paths=_paths(files), model_ran=review is not None, unread=frozenset(unread),
                     listed_all=listed_all, renamed=renamed)
    return with_round(verdict, rnd, code)


def _paths(files: list[dict[str, Any]]) -> set[str]:
    return {str(f.get("filename")) for f in files if F.present(f)}


async def revisit(gh: GitHubAPI, store: Store, repo: str, number: int, verdict: Verdict) -> Verdict | None:
    """``verdict``, a head judged before and now the head again (a force-push back to it, A → B → A), with the
    findings in the state its code gives them: those open at it open again, those only later heads had closed as
    a new head's review would close them, none in a file the checks did not read at it. None: nothing to put back."""
    before = await store.load_findings(repo, number)
    if before is None or not before.findings or not verdict.note:
        return None
    files = [f async for f in gh.getiter(f"/repos/{repo}/pulls/{number}/files?per_page=100")]
    changed, moved = await changed_between(gh, repo, before.sha, verdict.sha)
    renamed = F.renames(files) | moved
    earlier, code = F.load(before.findings), F.hunks(files)
    changed = _paths(files) - F.untouched(earlier, code) if changed is None else changed  # no compare: F.untouched
    now = F.lineage(earlier, (t for t in F.load(verdict.findings).values() if t.state == F.OPEN), renamed)
    # A verdict stored before reads were recorded: what its checks read is unknown, so no file counts as read.
    unread = set(verdict.unread or ()) if verdict.read_known else {renamed.get(t.path, t.path) for t in
                                                                    earlier.values() if t.path}
    rnd = F.converge(earlier, now, verdict.sha, changed=changed, paths=_paths(files), model_ran=True,
                     unread=frozenset(unread), listed_all=verdict.read_known and not verdict.unlisted,
                     renamed=renamed)
    return with_round(verdict, rnd, code)


def with_round(verdict: Verdict, rnd: F.Round, code: dict[str, dict[int, str]]) -> Verdict:
    """The verdict's review text, inline comments and thread comment for one head's round of findings. Only a new
    finding, or one found again after it was fixed (a credential put back is named again, not only counted), is
    reported in the review: on its line when the diff shows that line (else GitHub's 422), else in the body."""
    comments: list[dict[str, Any]] = []
    outside: list[F.Tracked] = []
    for t in (rnd.findings[fid] for fid in [*rnd.new, *rnd.reopened]):
        if t.path and t.line in code.get(t.path, {}) and len(comments) < MAX_INLINE:
            comments.append({"path": t.path, "line": t.line, "side": "RIGHT",
                             "body": T.inline(t) + T.again_note(rnd, t.id)})
        else:
            outside.append(t)
    return replace(verdict, note=T.note(verdict.title, rnd, len(comments), outside), comments=comments,
                   thread=T.thread(verdict.title, verdict.sha, verdict.body, rnd),
                   findings={fid: t.as_dict() for fid, t in F.kept(rnd.findings).items()})
