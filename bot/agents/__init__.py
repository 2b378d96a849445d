"""The specialists: an agent runtime the engine calls for each workflow step.

``AgentRuntime.run(AgentRequest) -> AgentOutcome`` runs one step with the agent's prompt and read-only
tools on the Anthropic Messages API, or the deterministic offline backend when no model is configured.
Results are validated against the step kind's schema (``schemas``), reviews pass the deterministic
gate (``gate``), and every string is cleaned for GitHub (``sanitize``) before it is returned.
"""

from bot.agents.gate import Finding, apply_gate, check
from bot.agents.models import Budget, ModelMap, Usage
from bot.agents.request import AgentOutcome, AgentRequest, RepoContext
from bot.agents.runner import AgentRuntime
from bot.agents.schemas import result_schema
from bot.core.sanitize import clean_for_github, fence

__all__ = ["AgentOutcome", "AgentRequest", "AgentRuntime", "Budget", "Finding", "ModelMap", "RepoContext", "Usage",
           "apply_gate", "check", "clean_for_github", "fence", "result_schema"]
