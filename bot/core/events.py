"""Webhook payloads → typed events. Pure: no I/O, no clock.

Only the events and actions the bot acts on become events; everything else is an
:class:`Ignored` with a reason, on purpose. A payload that claims to be an event we act on but
does not have its shape is a :class:`Malformed`, so the server can answer 400 and say why.

Long because every event the bot acts on is parsed here, each beside the shape checks they all share.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict, TypeVar, overload

from bot.core.markers import marker, trailing

# The (event, action) pairs the bot acts on; None means "no action field" or "any action".
HANDLED: dict[str, frozenset[str]] = {
    "issues": frozenset({"opened", "labeled", "reopened", "edited"}),  # edited: the dashboard's ticks only
    "issue_comment": frozenset({"created", "edited"}),
    # closed: a merge files what is open; closed unmerged and reopened only move its findings' retention
    "pull_request": frozenset({"opened", "synchronize", "labeled", "ready_for_review", "closed", "reopened"}),
    "check_run": frozenset({"completed"}),
    "check_suite": frozenset({"completed"}),
    "workflow_run": frozenset({"completed"}),
    "installation": frozenset({"created", "deleted", "suspend", "unsuspend", "new_permissions_accepted"}),
}
CI_FAILED = frozenset({"failure", "timed_out"})
CiSource = Literal["check_run", "check_suite", "workflow_run"]


@dataclass(frozen=True, slots=True)
class Actor:
    login: str
    type: str  # "User", "Bot" or "Organization" — GitHub's account type, never guessed from a suffix
    # GitHub's account id: a login can be renamed, the id stays. Not part of equality (a login names the actor).
    id: int | None = field(default=None, compare=False)

    @property
    def is_bot(self) -> bool:
        return self.type == "Bot"


@dataclass(frozen=True, slots=True)
class Base:
    event: str
    action: str
    delivery_id: str
    installation_id: int
    repo: str  # "owner/name"
    sender: Actor

    @property
    def thread(self) -> str:
        """What events are serialised on: one issue/PR (a CI failure: its PR), or the repository for CI on a
        branch without a pull request."""
        number = getattr(self, "number", None) or next(iter(getattr(self, "pull_numbers", ())), None)
        return f"{self.repo}#{number}" if number else self.repo


@dataclass(frozen=True, slots=True)
class WorkItem(Base):
    """An issue or pull request that may start (or re-steer) a workflow."""

    number: int
    title: str
    body: str
    labels: tuple[str, ...]
    author: Actor
    is_pull_request: bool = False
    head_sha: str | None = None
    head_ref: str | None = None
    head_repo: str | None = None  # differs from ``repo`` for pull requests from forks
    base_sha: str | None = None  # the base branch's commit the pull request was compared with
    draft: bool = False
    added_label: str | None = None  # for action "labeled"
    # For "labeled": an outside author's own label, which only their issue template can set (GitHub sends
    # "labeled" for those too). It is part of the opening, not a person steering the bot.
    label_at_opening: bool = False
    # A pull request's updated_at (epoch seconds, GitHub's clock): on "synchronize", when the push landed.
    updated_at: float | None = None
    default_branch: str | None = None  # the repository's, as the delivery says (spares a read per run)

    @property
    def from_fork(self) -> bool:
        return self.is_pull_request and self.head_repo is not None and self.head_repo != self.repo


@dataclass(frozen=True, slots=True)
class Comment(Base):
    """A comment on an issue or PR: may carry commands."""

    number: int
    comment_id: int
    body: str
    author: Actor
    is_pull_request: bool = False
    previous_body: str | None = None  # for "edited": only new commands count
    # When the comment's text was written (epoch seconds, GitHub's clock): created_at, or updated_at for an edit.
    written_at: float | None = None
    default_branch: str | None = None  # the repository's, as the delivery says (spares a read for its config)


@dataclass(frozen=True, slots=True)
class CiFailure(Base):
    """A failed check run, check suite or workflow run."""

    source: CiSource
    ci_id: int
    name: str
    conclusion: str
    head_sha: str
    head_branch: str | None
    default_branch: str | None
    pull_numbers: tuple[int, ...] = ()
    summary: str = ""
    details_url: str | None = None
    app_slug: str | None = None
    head_repo: str | None = None  # a workflow run's head repository (check runs and suites do not say)


@dataclass(frozen=True, slots=True)
class DashboardEdit(Base):
    """An edit of an issue whose text ends with the dashboard's marker: the ticks people made on it. Anyone can
    end their own issue with that marker, so the handler acts only on an issue the bot itself opened."""

    number: int
    body: str
    previous_body: str | None  # changes.body.from: None when the edit did not touch the body (a title, say)
    author: Actor  # the issue's author


@dataclass(frozen=True, slots=True)
class PullMerged(Base):
    """A pull request merged (``pull_request.closed`` with ``merged: true``); closed unmerged is a PullClosed."""

    number: int
    head_sha: str
    merge_commit_sha: str | None
    base_ref: str | None


@dataclass(frozen=True, slots=True)
class PullClosed(Base):
    """A pull request closed without a merge (``pull_request.closed``, ``merged: false``) or reopened
    (``pull_request.reopened``): its kept findings wait for no merge while it is closed (retention)."""

    number: int
    closed_at: float | None  # GitHub's pull_request.closed_at; None for a reopening
    # GitHub's pull_request.updated_at (a close's closed_at where it is unreadable): a close or reopen delivered
    # late (a redelivery, a retried job) is told from a later one by it. None when neither can be read.
    updated_at: float | None = None
    head_sha: str = ""  # "" when the payload has none

    @property
    def reopened(self) -> bool:
        return self.action == "reopened"


@dataclass(frozen=True, slots=True)
class Installation(Base):
    repos: tuple[str, ...] = field(default_factory=tuple)


Event = WorkItem | Comment | CiFailure | Installation | DashboardEdit | PullMerged | PullClosed


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str


@dataclass(frozen=True, slots=True)
class CiSuccess(Ignored):
    """A check run that succeeded. Ignored like any success, except by the one handler that asks: when the bot
    posted about a failure of the same check at the same commit, that failure was flaky. GitHub sends a success
    for every check of every push, so the server enqueues one only when :func:`failure_seen` was recorded."""

    event: str
    action: str
    delivery_id: str
    installation_id: int
    repo: str
    ci_id: int
    name: str
    head_sha: str
    pull_numbers: tuple[int, ...] = ()
    details_url: str | None = None
    app_slug: str | None = None  # the App that created the check run: another App may use the same name

    @property
    def thread(self) -> str:
        return f"{self.repo}#{self.pull_numbers[0]}" if self.pull_numbers else self.repo


def failure_seen(repo: str, name: str, sha: str, *, app: str | None = None) -> str:
    """The store key recorded when the bot posted about check `name` failing at `sha` (hashed: a check's name
    is free text, and a marker takes simple tokens only). With `app` (the slug of the App that created the
    check run: unique, and GitHub sets it, no App can claim another's), a success matches only a failure of
    the same App's check; without it, the key matches a check of that name of any App: the server's cheap
    test of whether a success is worth a job at all, which the job then asks again with the App."""
    parts = (repo.lower(), name, sha) if app is None else (repo.lower(), name, sha, f"app:{app}")
    key = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:24]  # a lone surrogate too
    return marker("ci-failed", key)


class _Shape(Exception):
    """Raised inside the parser when a field has the wrong type; becomes Malformed."""


_T = TypeVar("_T", str, int)


@functools.cache
def _parts(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def _at(obj: object, path: str, *, optional: bool) -> object:
    """The value at dotted ``path`` (None when absent and ``optional``); _Shape when absent otherwise."""
    value = obj
    for part in _parts(path):
        # A parsed payload's objects are dicts: the exact type test first spares the ABC check (a third of
        # the webhook's parse time).
        step = value.get(part) if type(value) is dict or isinstance(value, Mapping) else None
        if step is None:
            if optional:
                return None
            raise _Shape(f"missing {path}")
        value = step
    return value


@overload
def _get(obj: object, path: str, kind: type[_T]) -> _T: ...
@overload
def _get(obj: object, path: str, kind: type[_T], *, optional: Literal[True]) -> _T | None: ...
def _get(obj: object, path: str, kind: type[_T], *, optional: bool = False) -> _T | None:
    """The string or integer at ``path``; _Shape when it is missing (unless ``optional``) or of another type."""
    value = _at(obj, path, optional=optional)
    if value is None:
        return None
    # bool is an int in Python; GitHub ids are never booleans.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Shape(f"{path} has the wrong type")
    return value


def _text_or_none(obj: object, path: str) -> str | None:
    """The string at ``path``, or None when it is missing or of another type: for fields the bot only shows or
    orders by, where a wrong type must not refuse the whole delivery."""
    value = _at(obj, path, optional=True)
    return value if isinstance(value, str) else None


def _object(obj: object, path: str) -> Mapping[str, Any]:
    """The JSON object at ``path``; _Shape when it is missing or not an object."""
    value = _at(obj, path, optional=False)
    if not isinstance(value, Mapping):
        raise _Shape(f"{path} has the wrong type")
    return value


def _actor(obj: object, path: str) -> Actor:
    return Actor(login=_get(obj, f"{path}.login", str), type=_get(obj, f"{path}.type", str, optional=True) or "User",
                 id=_get(obj, f"{path}.id", int, optional=True))


def _labels(issue: Mapping[str, Any]) -> tuple[str, ...]:
    raw = issue.get("labels") or []
    if not isinstance(raw, list):
        raise _Shape("labels has the wrong type")
    return tuple(lab["name"] for lab in raw if isinstance(lab, Mapping) and isinstance(lab.get("name"), str))


def parse(event: str, payload: object, delivery_id: str) -> Event | Ignored | Malformed:
    """Turn one delivery into an event, or say why it is ignored or malformed."""
    if not isinstance(payload, Mapping):
        return Malformed("payload is not a JSON object")
    action = payload.get("action")
    if event not in HANDLED:
        return Ignored(f"event {event!r} is not one the bot acts on")
    if not isinstance(action, str):
        return Malformed("missing action")
    if action not in HANDLED[event]:
        return Ignored(f"{event}.{action} is not an action the bot acts on")
    installation = payload.get("installation")
    if not isinstance(installation, Mapping) or not isinstance(installation.get("id"), int):
        return Ignored("no installation in the payload (not sent to a GitHub App)")
    try:
        return _PARSERS[event](event, action, payload, delivery_id)
    except _Shape as exc:
        return Malformed(f"{event}.{action}: {exc}")


_FULL_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")


def _repo(p: Mapping[str, Any]) -> str:
    """``owner/name`` as GitHub spells repositories; anything else names no repository."""
    name = _get(p, "repository.full_name", str)
    if not _FULL_NAME.fullmatch(name) or name.endswith("/.") or name.endswith("/.."):
        raise _Shape("repository.full_name is not owner/name")
    return name


class _BaseFields(TypedDict):
    """What every event carries (see :class:`Base`)."""

    event: str
    action: str
    delivery_id: str
    installation_id: int
    repo: str
    sender: Actor


def _base(event: str, action: str, p: Mapping[str, Any], delivery_id: str) -> _BaseFields:
    return {
        "event": event,
        "action": action,
        "delivery_id": delivery_id,
        "installation_id": _get(p, "installation.id", int),
        "repo": _repo(p),
        "sender": _actor(p, "sender"),
    }


def _issue(event: str, action: str, p: Mapping[str, Any], delivery_id: str) -> WorkItem | DashboardEdit | Ignored:
    issue = _object(p, "issue")
    if action == "edited":
        return _dashboard_edit(event, action, p, delivery_id)
    return WorkItem(
        **_base(event, action, p, delivery_id),
        number=_get(p, "issue.number", int),
        title=_get(p, "issue.title", str),
        body=_get(p, "issue.body", str, optional=True) or "",
        labels=_labels(issue),
        author=_actor(p, "issue.user"),
        is_pull_request="pull_request" in issue,
        added_label=_get(p, "label.name", str, optional=True),
        label_at_opening=label_at_opening(action, p, issue),
        default_branch=branch_name(_get(p, "repository.default_branch", str, optional=True)),
    )


# Who may label an issue by hand: people with triage access. Anyone else's label arrives only from the issue
# template, as the item is opened (GitHub sends "labeled" for those too).
MAINTAINERS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})


def label_at_opening(action: str, p: Mapping[str, Any], item: Mapping[str, Any]) -> bool:
    """Whether a "labeled" delivery is an outside author's own label, i.e. one their template set (see WorkItem)."""
    if action != "labeled":
        return False
    sender, author = p.get("sender"), item.get("user")
    ids = [who.get("id") if isinstance(who, Mapping) else None for who in (sender, author)]
    return isinstance(ids[0], int) and ids[0] == ids[1] and item.get("author_association") not in MAINTAINERS


def _dashboard_edit(event: str, action: str, p: Mapping[str, Any], delivery_id: str) -> DashboardEdit | Ignored:
    """Only a dashboard's edits are stored: GitHub sends issues.edited for every edit of every issue."""
    body = _get(p, "issue.body", str, optional=True) or ""
    if not (trailing(body) or "").startswith("dashboard"):
        return Ignored("issues.edited of an issue that is not a dashboard")
    if _get(p, "issue.user.type", str, optional=True) != "Bot":  # anyone can end their own issue with the marker
        return Ignored("issues.edited of an issue with a dashboard's marker that no App opened")
    return DashboardEdit(**_base(event, action, p, delivery_id), number=_get(p, "issue.number", int), body=body,
                         previous_body=_get(p, "changes.body.from", str, optional=True),
                         author=_actor(p, "issue.user"))


def _merged(event: str, action: str, p: Mapping[str, Any], delivery_id: str) -> PullMerged | PullClosed:
    """Merged when ``merged`` says so, or says nothing (null or missing: GitHub's schema allows it) while
    ``merged_at`` is a time: taken for a close unmerged, its open findings would never be filed. merge_commit_sha
    and base.ref are only shown, so one of another type is read as none, never a reason to drop the merge."""
    merged = _get(p, "pull_request.merged", bool, optional=True)
    if not (merged or (merged is None and _time(p, "pull_request.merged_at") is not None)):
        return _closed(event, action, p, delivery_id)
    return PullMerged(**_base(event, action, p, delivery_id), number=_get(p, "pull_request.number", int),
                      head_sha=_get(p, "pull_request.head.sha", str),
                      merge_commit_sha=_text_or_none(p, "pull_request.merge_commit_sha"),
                      base_ref=_text_or_none(p, "pull_request.base.ref"))


def _closed(event: str, action: str, p: Mapping[str, Any], delivery_id: str) -> PullClosed:
    """Only the number must be there: the times and head are read leniently (null, missing or not a time: None),
    and the store then orders the change safely (bot/store/base.py: close_findings)."""
    closed_at = None if action == "reopened" else _time(p, "pull_request.closed_at")
    return PullClosed(**_base(event, action, p, delivery_id), number=_get(p, "pull_request.number", int),
                      closed_at=closed_at, updated_at=_time(p, "pull_request.updated_at") or closed_at,
                      head_sha=_text_or_none(p, "pull_request.head.sha") or "")


def _pull(event: str, action: str, p: Mapping[str, Any], delivery_id: str) -> WorkItem | PullMerged | PullClosed:
    pr = _object(p, "pull_request")
    if action == "closed":
        return _merged(event, action, p, delivery_id)
    if action == "reopened":
        return _closed(event, action, p, delivery_id)
    return WorkItem(
        **_base(event, action, p, delivery_id),
        number=_get(p, "pull_request.number", int),
        title=_get(p, "pull_request.title", str),
        body=_get(p, "pull_request.body", str, optional=True) or "",
        labels=_labels(pr),
        author=_actor(p, "pull_request.user"),
        is_pull_request=True,
        head_sha=_get(p, "pull_request.head.sha", str),
        head_ref=_get(p, "pull_request.head.ref", str),
        head_repo=_get(p, "pull_request.head.repo.full_name", str, optional=True),
        base_sha=_get(p, "pull_request.base.sha", str, optional=True),
        draft=bool(pr.get("draft")),
        added_label=_get(p, "label.name", str, optional=True),
        label_at_opening=label_at_opening(action, p, pr),
        updated_at=_time(p, "pull_request.updated_at"),
        default_branch=branch_name(_get(p, "repository.default_branch", str, optional=True)),
    )


def _comment(event: str, action: str, p: Mapping[str, Any], delivery_id: str) -> Comment:
    issue = _object(p, "issue")
    previous = _get(p, "changes.body.from", str, optional=True)
    return Comment(
        **_base(event, action, p, delivery_id),
        number=_get(p, "issue.number", int),
        comment_id=_get(p, "comment.id", int),
        body=_get(p, "comment.body", str, optional=True) or "",
        author=_actor(p, "comment.user"),
        is_pull_request="pull_request" in issue,
        previous_body=previous,
        written_at=_time(p, "comment.updated_at" if action == "edited" else "comment.created_at"),
        default_branch=branch_name(_get(p, "repository.default_branch", str, optional=True)),
    )


# What no branch name can hold (git check-ref-format): "..", "@{", a control character, a space, one of ~^:?*[
# or a backslash, an empty or dot-led component, one ending ".lock", a leading or trailing "/" or a trailing ".".
_BAD_BRANCH = re.compile(r"\.\.|@\{|[\x00-\x20\x7f~^:?*\[\\]|//|^/|/$|\.$|(^|/)\.|\.lock(/|$)")


def branch_name(name: str | None) -> str | None:
    """``name`` if it can be a branch's name, else None. A delivery's default branch goes into request paths
    (``git/ref/heads/<name>``, where ``..`` segments would climb to another endpoint) and a model's prompt; one that
    no branch can have (``refs/...`` too: a name, not a ref) is not trusted, and GitHub is asked for the repository's."""
    if not name or len(name.encode()) > 255 or name == "@" or name.startswith("refs/") or _BAD_BRANCH.search(name):
        return None
    return name


def _time(p: Mapping[str, Any], path: str) -> float | None:
    return github_time(_at(p, path, optional=True))


def github_time(value: object) -> float | None:
    """An ISO 8601 time of GitHub's as epoch seconds; None when absent or not a time (it only ever narrows
    what a command may do, so an unreadable one is no reason to refuse the delivery)."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _pull_numbers(obj: Mapping[str, Any]) -> tuple[int, ...]:
    raw = obj.get("pull_requests") or []
    if not isinstance(raw, list):
        raise _Shape("pull_requests has the wrong type")
    return tuple(pr["number"] for pr in raw if isinstance(pr, Mapping) and isinstance(pr.get("number"), int)
                 and not isinstance(pr["number"], bool))  # bool is an int in Python; a fuzzer's false was /pulls/False


def _success(event: str, action: str, p: Mapping[str, Any], delivery_id: str) -> CiSuccess | Ignored:
    """A successful check run, or (its fields of another shape) a plain Ignored: a success is never worth a 400."""
    why = "check_run concluded success: nothing failed"
    try:
        return CiSuccess(why, event=event, action=action, delivery_id=delivery_id,
                         installation_id=_get(p, "installation.id", int), repo=_repo(p),
                         ci_id=_get(p, "check_run.id", int), name=_get(p, "check_run.name", str),
                         head_sha=_get(p, "check_run.head_sha", str), pull_numbers=_pull_numbers(_object(p, event)),
                         details_url=_get(p, "check_run.details_url", str, optional=True)
                         or _get(p, "check_run.html_url", str, optional=True),
                         app_slug=_get(p, "check_run.app.slug", str, optional=True))
    except _Shape:
        return Ignored(why)


def _ci(event: str, action: str, p: Mapping[str, Any], delivery_id: str) -> CiFailure | Ignored:
    obj = _object(p, event)
    conclusion = _get(p, f"{event}.conclusion", str, optional=True)
    if conclusion == "success" and event == "check_run":
        return _success(event, action, p, delivery_id)
    if conclusion is None or conclusion not in CI_FAILED:
        return Ignored(f"{event} concluded {conclusion or 'without a conclusion'}: nothing failed")
    source: CiSource
    if event == "check_run":
        source, name = "check_run", _get(p, f"{event}.name", str)
        suite = found if isinstance(found := obj.get("check_suite"), Mapping) else {}
        head_branch = _get(suite, "head_branch", str, optional=True)
        output = found if isinstance(found := obj.get("output"), Mapping) else {}
        summary = "\n".join(str(output[k]) for k in ("title", "summary") if isinstance(output.get(k), str))
    elif event == "check_suite":
        source, name = "check_suite", _get(p, f"{event}.app.name", str, optional=True) or "check suite"
        head_branch = _get(p, f"{event}.head_branch", str, optional=True)
        summary = ""
    else:  # workflow_run: _PARSERS sends no other event here
        source, name = "workflow_run", _get(p, f"{event}.name", str)
        head_branch = _get(p, f"{event}.head_branch", str, optional=True)
        summary = ""
    return CiFailure(
        **_base(event, action, p, delivery_id),
        source=source,
        ci_id=_get(p, f"{event}.id", int),
        name=name,
        conclusion=conclusion,
        head_sha=_get(p, f"{event}.head_sha", str),
        head_branch=head_branch,
        default_branch=branch_name(_get(p, "repository.default_branch", str, optional=True)),
        pull_numbers=_pull_numbers(obj),
        summary=summary,
        details_url=_get(p, f"{event}.details_url", str, optional=True) or _get(p, f"{event}.html_url", str, optional=True),
        app_slug=_get(p, f"{event}.app.slug", str, optional=True),
        head_repo=_get(p, f"{event}.head_repository.full_name", str, optional=True),
    )


def _installation(event: str, action: str, p: Mapping[str, Any], delivery_id: str) -> Installation:
    repos = p.get("repositories") or []
    names = tuple(r["full_name"] for r in repos
                  if isinstance(r, Mapping) and isinstance(r.get("full_name"), str)) if isinstance(repos, list) else ()
    account = _get(p, "installation.account.login", str, optional=True) or ""
    return Installation(
        event=event,
        action=action,
        delivery_id=delivery_id,
        installation_id=_get(p, "installation.id", int),
        repo=account,
        sender=_actor(p, "sender"),
        repos=names,
    )


_PARSERS: dict[str, Callable[[str, str, Mapping[str, Any], str], Event | Ignored]] = {
    "issues": _issue,
    "issue_comment": _comment,
    "pull_request": _pull,
    "check_run": _ci,
    "check_suite": _ci,
    "workflow_run": _ci,
    "installation": _installation,
}


def is_self_or_foreign_bot(event: Event, bot_login: str | None, allowlist: frozenset[str]) -> bool:
    """True when the actor is this bot or another bot not on the allow-list.

    The bot must never react to its own comments (loops), and other bots only when an operator
    allow-lists them. CI events come from GitHub itself and are never filtered here.
    """
    if isinstance(event, CiFailure):  # the bot's own failing check (the gate's REJECTED) is not an outage
        return bool(bot_login and event.app_slug and f"{event.app_slug}[bot]".lower() == bot_login.lower())
    if isinstance(event, (Installation, PullMerged, PullClosed)):  # whoever merged, closed or reopened
        return False
    if isinstance(event, WorkItem) and event.action == "synchronize":
        return False  # new commits make a pending approval stale whoever pushed them (dependabot, actions, us)
    actor = event.sender  # who made this delivery: on an edited comment the editor, not the comment's author
    if bot_login and actor.login.lower() == bot_login.lower():
        return True
    return actor.is_bot and actor.login.lower() not in allowlist
