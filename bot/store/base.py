"""What the store keeps, independent of the database behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class StoreUnavailable(Exception):
    """The database cannot be reached or written; the webhook answers 503 so GitHub records a failure."""


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str  # X-GitHub-Delivery
    event: str
    action: str
    installation_id: int | None
    repo: str
    thread: str  # events of one thread are processed one at a time, in order
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    delivery_id: str
    thread: str
    event: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class Posted:
    """Something the bot created on GitHub, found again by its hidden marker."""

    marker: str
    repo: str
    kind: str  # "comment", "issue", ...
    github_id: int
    number: int | None = None
    url: str | None = None
