"""What the engine (bot/core/engine.py) reads and writes: the run record, the signals that move it and the
actions it asks for. Plain data: a run is stored as ``to_dict()`` after every step and read back with
``from_dict``; signals and actions are frozen records the executor builds and performs; an escalation offers
the options :func:`escalation_options` lists. ``bot.core.engine`` re-exports the records (callers import them
from there).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypedDict

from bot.core.workflow import Workflow

# Run states. BUDGET: the run's estimate is more than a budget has left, so it waits for `/approve budget` before
# its first model call (the dashboard lists such runs as blocked by budget).
RUNNING, WAITING, ESCALATED, DONE, CANCELLED = "running", "waiting", "escalated", "done", "cancelled"
BUDGET = "budget"
# Step states.
PENDING, ACTIVE, FINISHED, SKIPPED, FAILED = "pending", "running", "done", "skipped", "failed"

# The spec's five escalation triggers, plus the two ways a run can stop that the spec implies:
# a person asking (/escalate) and a step that could not produce a usable result.
TRIGGERS = {
    "conflicting-requirements": "Conflicting requirements",
    "security-vs-speed": "Security vs. speed trade-off",
    "breaking-change": "Breaking change",
    "repeated-rejections": "Multiple review rejections",
    "out-of-scope": "Out of scope",
    "requested": "Escalation requested",
}


# ---- signals -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Start:
    """The run begins. ``short``: the budget its estimate does not fit in (checked before its first model call,
    by the executor's side, which reads the ledger): the run then waits in BUDGET instead of starting."""

    short: BudgetShort | None = None


@dataclass(frozen=True)
class AgentDone:
    step: str
    iteration: int
    result: dict[str, Any]


@dataclass(frozen=True)
class AgentFailed:
    step: str
    iteration: int
    error: str
    kind: str = "api-error"  # no-model | invalid-result | budget | api-error


@dataclass(frozen=True)
class Command:
    name: str  # approve | escalate | cancel | retry
    actor: str
    option: int | None = None
    reason: str = ""
    head_sha: str | None = None  # the pull request's head when the command ran (asked of GitHub, not the event)
    moved: tuple[str, ...] | None = None  # when that head is not the run's: the files changed since (None: unknown)
    written_at: float | None = None  # when the command's comment was written (GitHub's clock; None: unknown)
    # The pull request's updated_at, read with head_sha: when that head is not the run's, the latest it can have
    # landed (an upper bound: an /approve written before it was written for older code, or must be given again).
    head_at: float | None = None


@dataclass(frozen=True)
class HeadMoved:
    """New commits on the pull request. ``paths``: the files they change (None when GitHub could not say, e.g.
    after a force-push); ``own``: the commit is this run's own delivered fix, which makes nothing stale."""

    sha: str
    paths: tuple[str, ...] | None = None
    own: bool = False
    at: float | None = None  # when the push landed (GitHub's clock; None: unknown)


@dataclass(frozen=True)
class DeliveryRefused:
    """The approved change could not be committed as a fast-forward: the branch moved to ``sha`` meanwhile."""

    sha: str


Signal = Start | AgentDone | AgentFailed | Command | HeadMoved | DeliveryRefused


# ---- actions -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunAgent:
    step: str
    iteration: int
    agent: str


@dataclass(frozen=True)
class PostStep:
    step: str
    iteration: int


@dataclass(frozen=True)
class PostSkip:
    step: str


@dataclass(frozen=True)
class PostVerdict:
    step: str
    iteration: int


@dataclass(frozen=True)
class FileTechDebt:
    step: str
    iteration: int


@dataclass(frozen=True)
class FileTasks:
    step: str


@dataclass(frozen=True)
class Escalate:
    pass


@dataclass(frozen=True)
class ResolveEscalation:
    pass


@dataclass(frozen=True)
class AskApproval:
    step: str


@dataclass(frozen=True)
class Finish:
    """The run is done: open the approved change (if any) and post the Lead's closing summary."""


@dataclass(frozen=True)
class ReviewPull:
    """Judge the pull request itself at its head (``sha`` names the push that asked; the head is read anew):
    its own verdict, posted as the PR review and the check run, never mixed with the workflow's gate."""

    sha: str


@dataclass(frozen=True)
class Reply:
    """A short answer on the thread to a command that changed nothing."""

    text: str


Action = (RunAgent | PostStep | PostSkip | PostVerdict | FileTechDebt | FileTasks | Escalate
          | ResolveEscalation | AskApproval | Finish | ReviewPull | Reply)


# ---- the run record ------------------------------------------------------------------------

class Option(TypedDict):
    """A choice an escalation offers, and what ``/approve N`` picking it does."""

    title: str
    tradeoff: str
    action: str  # continue | retry | stop | decide


class Escalation(TypedDict):
    """A run waiting for a person's decision, in the spec's escalation format."""

    trigger: str  # a key of TRIGGERS
    stage: str  # the step it stopped at
    issue: str
    options: list[Option]
    recommendation: str
    blocking: str
    failure: str | None  # the kind of AgentFailed that caused it, if one did


class BudgetShort(TypedDict):
    """A run's estimate against the budget it does not fit in, as the status comment and ``/approve budget``
    tell it: tokens throughout."""

    budget: str  # run | installation | repository: the run's own budget, or today's of either
    by_repo: bool  # the repository's config set that limit (below the operator's): /approve budget lifts it
    estimate: int  # the run's expected tokens
    left: int  # what that budget has left
    operator_left: int  # what the operator's ceilings (per run, per installation and day) leave: never lifted


# A waiting run's budget, by BudgetShort's ``budget``, as the status comment and the replies name it.
BUDGET_NAMES = {"run": "this run's token budget", "installation": "this installation's token budget for today",
                "repository": "this repository's token budget for today"}


class BudgetApproval(TypedDict):
    by: str  # who commented /approve budget: the repository's own limits no longer bind this run


class Approval(TypedDict):
    by: str
    head_sha: str | None  # the commit the approval is for


class Decision(TypedDict):
    """An escalation a person resolved, for the closing summary and the project context."""

    stage: str
    trigger: str | None
    option: int | None  # the option chosen (None: a plain /retry)
    by: str
    choice: str


def escalation_options(trigger: str, proposal: dict[str, Any] | None, failure: str | None) -> list[Option]:
    """The choices an escalation offers (a model's own, when it proposed some), each mapping to what
    ``/approve N`` does; the engine escalates with them."""
    stop: Option = {"title": "Stop this workflow",
                    "tradeoff": "Nothing more is done; the thread stays open for people.", "action": "stop"}
    if trigger == "repeated-rejections":
        return [{"title": "Accept the change with the reviewer's open findings",
                 "tradeoff": "Ships known issues; they are filed as tech-debt follow-ups.", "action": "continue"},
                {"title": "Give the implementer another round of review iterations",
                 "tradeoff": "More time and tokens; the reviewer's findings go back as feedback.", "action": "retry"},
                stop]
    if trigger == "requested":
        return [{"title": "Resume where the workflow stopped", "tradeoff": "The step in progress runs again.",
                 "action": "retry"}, stop]
    if proposal and isinstance(proposal.get("options"), list) and proposal["options"]:
        picked: list[Option] = [
            {"title": str(o.get("title", "")), "tradeoff": str(o.get("tradeoff", "")), "action": "decide"}
            for o in proposal["options"] if isinstance(o, dict)]
        return picked + [stop]
    retry: Option = {"title": "Run the step again", "action": "retry",
                     "tradeoff": "Worth it once the cause is fixed (a model configured, a budget raised)."
                     if failure in ("no-model", "budget") else "Costs another attempt; the result may differ."}
    skip: Option = {"title": "Skip this step and continue", "action": "continue",
                    "tradeoff": "Later steps run without this step's output."}
    return [retry, skip, stop]


@dataclass
class StepState:
    status: str = PENDING
    iteration: int = 0
    agent: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    feedback: dict[str, Any] | None = None  # the review that sent this step back


@dataclass
class Run:
    id: str
    workflow: str
    state: str = RUNNING
    steps: dict[str, StepState] = field(default_factory=dict)
    rejections: int = 0
    escalation: Escalation | None = None
    approval: Approval | None = None
    decisions: list[Decision] = field(default_factory=list)
    # The commit the run reads and builds on: the PR's head (it follows pushes), else the default branch's
    # head when the run started. An approved change is committed on it, never on whatever is newest.
    head_sha: str | None = None
    on_pull: bool = False  # the run is about a pull request: the PR itself is judged at each head
    stale_from: str | None = None  # a push made this implement step's change stale while a decision was pending
    # When the head the run follows was pushed (GitHub's clock), when a push event said: an /approve written
    # before it was written for an older head, whenever it is delivered.
    head_since: float | None = None
    budget: BudgetShort | None = None  # why the run waits (or waited) in BUDGET
    budget_approval: BudgetApproval | None = None

    @classmethod
    def new(cls, run_id: str, workflow: Workflow, head_sha: str | None = None, on_pull: bool = False) -> Run:
        return cls(id=run_id, workflow=workflow.name, steps={s.id: StepState() for s in workflow.steps},
                   head_sha=head_sha, on_pull=on_pull)

    # Keys a run leaves out while they are None: unknown, as in every run stored before they were kept, so such a
    # run has the same shape as those (tests and tools read it). Every serialiser of a run honours it.
    OPTIONAL_KEYS: ClassVar[tuple[str, ...]] = ("head_since", "budget", "budget_approval")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in _plain(self).items() if v is not None or k not in self.OPTIONAL_KEYS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        data = dict(data)
        data["steps"] = {k: StepState(**v) for k, v in data.get("steps", {}).items()}
        return cls(**data)

    def flags(self) -> dict[str, dict[str, Any]]:
        """Each finished step's ``flags``: what conditional steps and routes read."""
        return {sid: (st.result or {}).get("flags") or {} for sid, st in self.steps.items() if st.result}

    def running(self) -> list[str]:
        return [sid for sid, st in self.steps.items() if st.status == ACTIVE]


_ATOMS = (str, int, float, bool, type(None))
# Per record type, its fields' names: ``dataclasses.fields`` walks the class on every call.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` of a run, made without its per-value ``copy.deepcopy`` of strings and numbers (which
    return themselves) and its per-record walk of the class's fields: the same new dicts and lists, every leaf
    copied as asdict copies it (issue 16: a run's first save and every whole save encode the whole run)."""
    if isinstance(value, _ATOMS):
        return value
    kind = type(value)
    names = _FIELD_NAMES.get(kind)
    if names is None and hasattr(kind, "__dataclass_fields__"):
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(value))
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if kind is list:
        return [_plain(v) for v in value]
    if kind is dict:
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple, rebuilt as asdict rebuilds it
        return kind(*[_plain(v) for v in value])
    if isinstance(value, (list, tuple)):
        return kind(_plain(v) for v in value)
    if isinstance(value, dict):
        return kind((_plain(k), _plain(v)) for k, v in value.items())
    return copy.deepcopy(value)
