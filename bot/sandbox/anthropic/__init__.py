"""A local HTTP server that speaks Anthropic's Messages API.

Tests and benchmarks point the real ``anthropic.AsyncAnthropic(base_url=fake.url)`` at it, so the
SDK's own request building, response parsing, error classes and retries are exercised, while the
replies, faults, latency and prompt-cache accounting stay scripted and deterministic.

``server`` is the HTTP side and the scripting a test drives (``FakeAnthropic``), ``replies`` the
scripted turns (``Reply``), ``validate`` the real API's 400s and error types, ``cache`` the token
estimate and prompt-cache accounting, ``web_search`` the server-side web search tool (results, citations,
``max_uses``, its usage count).
"""

from .replies import Reply, ReplyLike, Responder
from .server import FakeAnthropic
from .validate import FakeAPIError

__all__ = ["FakeAnthropic", "Reply", "FakeAPIError", "ReplyLike", "Responder"]
