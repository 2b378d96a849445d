"""What the engine hands the agent runtime, and what it gets back: plain, frozen, serialisable data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.agents.models import Usage

if TYPE_CHECKING:
    from bot.core import catalog

ERROR_KINDS = ("no-model", "invalid-result", "budget", "api-error")


@dataclass(frozen=True)
class RepoContext:
    """What the agent works on. `title` and `body` are untrusted; the runtime re-reads them by number.

    `ci`, for CI failures: {"source": "check_run"|"check_suite"|"workflow_run", "id", "name", "head_sha",
    "summary"}.
    """

    repo: str
    number: int | None
    is_pull_request: bool
    head_sha: str | None
    default_branch: str
    title: str
    body: str
    ci: dict | None = None


@dataclass(frozen=True)
class RepoOverview:
    """The repository as every step of a run sees it first, at one commit: its file paths and the README and
    CONTRIBUTING texts (each bounded, None when the repository has none). Untrusted, like any repository text.

    The same for every step and agent of a run (and for runs at the same commit), so it heads the prompt's
    cached prefix; see ``bot/agents/prompts.py``.
    """

    commit: str  # the commit it was read at (a branch name when the run names no commit)
    paths: tuple[str, ...]
    truncated: bool = False  # GitHub listed only part of a very large tree
    readme: tuple[str, str] | None = None  # (path, text)
    contributing: tuple[str, str] | None = None
    sizes: tuple[int, ...] = ()  # each path's size in bytes as the tree gives it (0 unknown): for the estimate


@dataclass(frozen=True)
class AgentRequest:
    """One step of one run for one agent.

    `inputs`: earlier steps' results by step id. `feedback`: on a re-run after a REJECTED review, that
    review's result. `flags_wanted`: flag name -> description, from the step's ``sets``.
    """

    run_id: str
    step_id: str
    iteration: int
    agent: catalog.Agent
    step: catalog.Step
    task: str
    inputs: Mapping[str, dict]
    feedback: dict | None
    context: RepoContext
    flags_wanted: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentOutcome:
    """A validated, cleaned result, or None with a sentence for people and an `error_kind` for the engine.

    `offline` is true when no model ran (the deterministic backend produced or refused the result).
    """

    result: dict[str, Any] | None
    usage: Usage
    error: str | None = None
    error_kind: str | None = None
    offline: bool = False

    @property
    def ok(self) -> bool:
        return self.result is not None
