"""What a person has at a terminal → the event the Lead decides on, for a dry decision. Pure.

The server reads deliveries with :func:`bot.core.events.parse`, which refuses a payload without an
installation, on purpose. ``python -m bot triage`` is given other things: a webhook payload saved
under any file name, often without ``installation`` (GitHub's docs, a copied delivery), or the JSON
of ``gh issue view N --json title,body,labels`` / ``gh pr view N --json title,body,labels,files``.
This module places those shapes and builds the event; only the CLI uses it, so nothing here widens
what the webhook accepts. The Lead reads a title, body, labels and (for a PR) changed paths, so an
issue or PR is read leniently around those; a CI payload goes through :func:`events.parse` itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from bot.core.events import HANDLED, Actor, CiFailure, Ignored, Malformed, WorkItem, label_at_opening, parse

DRY_INSTALLATION = 0  # GitHub never assigns installation 0: a dry event names no installation
CI_EVENTS = ("check_run", "check_suite", "workflow_run")
# Keys of ``gh issue view`` / ``gh pr view`` JSON (and of a REST issue or pull) other than the title.
_ITEM_KEYS = frozenset({"body", "labels", "number", "url", "state", "author", "files", "user", "html_url"})
_PR_KEYS = frozenset({"files", "headRefName", "baseRefName", "headRefOid", "isDraft", "mergeable", "head"})
_URL_REPO = re.compile(r"https://github\.com/([A-Za-z0-9-]+/[A-Za-z0-9._-]+)/(issues|pull)/\d+")


class ShapeError(ValueError):
    """The input cannot be placed or lacks what the Lead reads; the message is one line for a person."""


@dataclass(frozen=True)
class Placed:
    """The event to decide on, the changed paths the input names, what it was read as, notes for the reader."""

    event: WorkItem | CiFailure
    paths: tuple[str, ...]
    form: str
    notes: tuple[str, ...] = ()


def infer_event(payload: Mapping[str, Any]) -> str | None:
    """The webhook event a payload's shape says it is (None when it says none)."""
    if "issue" in payload:
        return "issue_comment" if "comment" in payload else "issues"
    if "pull_request" in payload:
        return "pull_request_review_comment" if "comment" in payload else "pull_request"
    return next((name for name in CI_EVENTS if name in payload), None)


def place(payload: object, event: str | None = None) -> Placed | Ignored:
    """The event in ``payload`` for a dry decision; ``event`` (from --event or the file name) wins over the shape.

    Ignored when the bot would not act on it (an unknown event, a check that did not fail); ShapeError
    when it cannot be read as anything the Lead decides on.
    """
    if not isinstance(payload, Mapping):
        raise ShapeError("the input is not a JSON object")
    if "title" in payload or (infer_event(payload) is None and _ITEM_KEYS & set(payload)):
        return _from_item(payload, event)
    name = event or infer_event(payload)
    if name is None:
        raise ShapeError("cannot place this JSON: expected a webhook payload (an issue, pull_request, check_run, "
                         "check_suite or workflow_run key) or gh issue/pr view --json title,body,labels")
    if name in ("issues", "pull_request"):
        return _from_webhook(name, payload)
    if name in CI_EVENTS:
        return _from_ci(name, payload)
    if name in HANDLED or name == "pull_request_review_comment":
        raise ShapeError(f"{name} events are not triaged")
    return Ignored(f"event {name!r} is not one the bot acts on")


def _from_item(item: Mapping[str, Any], event: str | None) -> Placed:
    """``gh issue view`` / ``gh pr view`` JSON (or a REST issue or pull): the item itself, at the top level."""
    if event not in (None, "issues", "pull_request"):
        raise ShapeError(f"{event} payloads carry a '{event}' object; this is an issue or pull request")
    is_pr = event == "pull_request" or bool(_PR_KEYS & set(item)) or isinstance(item.get("pull_request"), Mapping) \
        or "/pull/" in str(item.get("url") or "")
    url = found.group(1) if (found := _URL_REPO.match(str(item.get("url") or item.get("html_url") or ""))) else ""
    paths = _paths(item)
    work = _work_item(item, "", "pull_request" if is_pr else "issues", "", url, is_pr)
    return Placed(work, paths, f"gh {'pr' if is_pr else 'issue'} view JSON")


def _from_webhook(name: str, payload: Mapping[str, Any]) -> Placed:
    """An issues or pull_request webhook payload, with or without an installation."""
    key = "issue" if name == "issues" else "pull_request"
    item = payload.get(key)
    if not isinstance(item, Mapping):
        raise ShapeError(f"{name} payloads carry an '{key}' object; this one has none")
    action = payload.get("action") if isinstance(payload.get("action"), str) else ""
    notes = []
    if action and action not in HANDLED[name]:
        notes.append(f"the bot does not act on {name}.{_printable(action)}; this is where the Lead would place its content")
    repo = payload.get("repository")
    full_name = repo.get("full_name") if isinstance(repo, Mapping) else None
    is_pr = name == "pull_request" or "pull_request" in item
    work = _work_item(item, f"{key}.", name, str(action), full_name if isinstance(full_name, str) else "", is_pr)
    if action == "labeled":  # who added which label: a person's steers, as it would on the server (triage._steered)
        work = _labeled(work, payload, item)
    installed = isinstance(payload.get("installation"), Mapping)
    return Placed(work, (), f"{name} webhook payload" + ("" if installed else " without an installation"),
                  tuple(notes))


def _labeled(work: WorkItem, payload: Mapping[str, Any], item: Mapping[str, Any]) -> WorkItem:
    label, sender = payload.get("label"), payload.get("sender")
    name = label.get("name") if isinstance(label, Mapping) else None
    login = sender.get("login") if isinstance(sender, Mapping) else None
    if not isinstance(name, str) or not isinstance(sender, Mapping) or not isinstance(login, str):
        return work
    return replace(work, added_label=name, sender=Actor(login, str(sender.get("type") or "User")),
                   label_at_opening=label_at_opening("labeled", payload, item))


def _from_ci(name: str, payload: Mapping[str, Any]) -> Placed | Ignored:
    """A CI payload, read by the server's own parser; a missing installation is the dry one."""
    installation = payload.get("installation")
    if not isinstance(installation, Mapping) or not isinstance(installation.get("id"), int):
        payload = {**payload, "installation": {"id": DRY_INSTALLATION}}
    event = parse(name, payload, "triage-cli")
    if isinstance(event, Malformed):
        raise ShapeError(event.reason)
    if isinstance(event, Ignored):
        return event
    if not isinstance(event, CiFailure):  # parse sends CI events to the CI parser only
        raise ShapeError(f"{name} events are not triaged")
    return Placed(event, (), f"{name} webhook payload")


def _work_item(item: Mapping[str, Any], where: str, event: str, action: str, repo: str, is_pr: bool) -> WorkItem:
    """The fields the Lead reads, checked; the rest (number, author) taken when present."""
    title = item.get("title")
    if title is None:
        raise ShapeError(f"no {where}title: the Lead reads it (for gh: --json title,body,labels)")
    if not isinstance(title, str):
        raise ShapeError(f"{where}title is not a string")
    body = item.get("body")
    if body is not None and not isinstance(body, str):
        raise ShapeError(f"{where}body is not a string")
    number = item.get("number")
    author = _author(item)
    return WorkItem(event=event, action=action, delivery_id="triage-cli", installation_id=DRY_INSTALLATION,
                    repo=repo, sender=author, number=number if isinstance(number, int) else 0, title=title,
                    body=body or "", labels=_labels(item, where), author=author, is_pull_request=is_pr,
                    draft=item.get("draft") is True or item.get("isDraft") is True)


def _author(item: Mapping[str, Any]) -> Actor:
    """``user`` (webhook, REST) or ``author`` (gh); an unknown author when neither names one."""
    who = item.get("user") or item.get("author")
    if not isinstance(who, Mapping) or not isinstance(who.get("login"), str):
        return Actor("unknown", "User")
    kind = who.get("type") if isinstance(who.get("type"), str) else "Bot" if who.get("is_bot") is True else "User"
    return Actor(who["login"], str(kind))


def _labels(item: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """Label names from ``[{"name": …}]`` (GitHub, gh) or plain strings."""
    raw = item.get("labels") or []
    if not isinstance(raw, list):
        raise ShapeError(f'{where}labels is not a list (expected [{{"name": ...}}])')
    names = [lab.get("name") if isinstance(lab, Mapping) else lab for lab in raw]
    if not all(isinstance(name, str) for name in names):
        raise ShapeError(f'{where}labels holds an entry without a name (expected [{{"name": ...}}])')
    return tuple(str(name) for name in names)


def _paths(item: Mapping[str, Any]) -> tuple[str, ...]:
    """Changed paths from gh pr view's ``files`` (``[{"path": …}]``; REST's ``filename`` or plain strings too)."""
    raw = item.get("files") or []
    if not isinstance(raw, list):
        raise ShapeError('files is not a list (expected [{"path": ...}])')
    paths = [f.get("path") or f.get("filename") if isinstance(f, Mapping) else f for f in raw]
    if not all(isinstance(p, str) for p in paths):
        raise ShapeError('files holds an entry without a path (expected [{"path": ...}])')
    return tuple(str(p) for p in paths)


def _printable(text: str) -> str:
    """`text` without control characters: a saved payload's escapes must not reach the terminal."""
    return "".join(ch for ch in text if ch.isprintable())[:100]
