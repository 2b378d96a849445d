"""One Messages API call, with the retries, timeout and concurrency limit this App owns.

The SDK client is built with ``max_retries=0``: retrying here lets us honour ``retry-after`` with a
cap, back off with jitter across concurrent runs, and never retry a spend or billing limit, where
every retry is another refusal. Failures become `ApiFailure` carrying a sentence a person can act on.

The SDK is not imported with this module: it takes a second to import (four on a loaded machine), and a
delivery that needs no model (most of them) must not wait for it. ``LazyClient`` imports it on a thread.
The runtime's calls (through ``LazyClient``) are sent by ``DirectPost``: the SDK client's URL, headers and
errors on one aiohttp session, without the SDK's per-request building; a client passed as it is goes through
the SDK's own ``post``.
"""

from __future__ import annotations

import asyncio
import email.utils
import gc
import importlib
import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import anthropic

log = logging.getLogger(__name__)
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
_BILLING = re.compile(r"(?i)spend(?:ing)? limit|billing|credit (?:balance|limit)|credits? (?:is|are) too low|"
                      r"usage limit|quota|payment")


# Budgets reserve a call's input before it is made, from its request alone. The tokenizer averages about four
# characters of English per token and three and a half of code; three errs high, and non-ASCII text is
# counted as JSON escapes it (six characters each) since such text splits into more tokens per character.
CHARS_PER_TOKEN = 3


def input_estimate(request: Mapping[str, Any] | str) -> int:
    """An upper estimate of the input tokens (cached or not) a ``messages.create`` request will be billed; the
    request as data, or as the JSON text :func:`encode` makes of it (the same count)."""
    text = request if isinstance(request, str) else json.dumps(request, default=str)
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def encode(request: Mapping[str, Any]) -> str:
    """A ``messages.create`` request as the JSON text sent: made once per call, for the budget's estimate and
    the body alike (non-ASCII escaped, as the estimate counts it)."""
    return json.dumps(request)


def reply_of(raw: bytes) -> dict[str, Any]:
    """A Messages API reply as the JSON the API sent, checked for what the agent runtime reads: ``content``, a
    list of blocks each with a ``type``, and ``usage``. The SDK's response models are not built for it: the
    blocks go back to the API as they came (issue 16: the models cost a fifth of the event loop's time)."""
    try:
        reply = json.loads(raw)
    except ValueError as e:
        raise ApiFailure(f"The Anthropic API call failed (its reply is not JSON: {str(e)[:200]}).") from None
    content = reply.get("content") if isinstance(reply, dict) else None
    usage = reply.get("usage") if isinstance(reply, dict) else None
    if (not isinstance(content, list) or not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in content)
            or not isinstance(usage, dict) or not all(_count(usage.get(k)) for k in USAGE_COUNTS)
            or not _server_counts(usage.get("server_tool_use"))):
        # Answered, so maybe billed: the call's reservation stays counted in full (unanswered), never settled at 0.
        raise ApiFailure("The Anthropic API call failed (its reply is not a message with content and usage).",
                         unanswered=1)
    return reply


USAGE_COUNTS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def _server_counts(value: Any) -> bool:
    """``usage.server_tool_use`` as the API gives it: absent, or an object whose ``web_search_requests`` (the one
    count billed here) is a count when present. Its other members are not read, so whatever the API adds there
    later does not turn every researcher's reply into a failure."""
    return value is None or (isinstance(value, dict) and _count(value.get("web_search_requests")))


def _count(value: Any) -> bool:
    """A token count as the API gives one: a whole number, not negative (a cache count may be absent or null)."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


JSON = {"Content-Type": "application/json"}


class ApiFailure(Exception):
    """The call failed for good; `str(exc)` is a plain sentence for people. ``unanswered``: attempts that timed
    out or lost their connection, which the API may have served (and billed) all the same."""

    def __init__(self, message: str, unanswered: int = 0) -> None:
        super().__init__(message)
        self.unanswered = unanswered


def _detail(e: anthropic.APIStatusError) -> str:
    body: dict[str, Any] = e.body if isinstance(e.body, dict) else {}
    raw_err = body.get("error")
    err: dict[str, Any] = raw_err if isinstance(raw_err, dict) else body
    kind, message = err.get("type", ""), err.get("message") or e.message
    return f"{e.status_code} {kind}: {str(message)[:200]}".replace("  ", " ")


def is_billing_error(e: anthropic.APIStatusError) -> bool:
    """A spend, billing or credit limit: 402, or a 400/403/429 whose message says so."""
    return e.status_code == 402 or (e.status_code in (400, 403, 429) and bool(_BILLING.search(_detail(e))))


def retry_after(headers: Any) -> float | None:
    """Seconds the API asked us to wait (``retry-after-ms`` or ``retry-after``, seconds or an HTTP date)."""
    if headers is None:
        return None
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000)
    except ValueError:
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, when.timestamp() - time.time()) if when else None


class LazyClient:
    """The model client, made on first use: the SDK is imported on a thread (the event loop keeps answering
    deliveries meanwhile), then ``make`` builds the client on the loop. ``start`` begins the import early."""

    def __init__(self, make: Callable[[], anthropic.AsyncAnthropic], api_key: str | None = None) -> None:
        self._make = make
        self.api_key = api_key  # redacted from results like the real client's (see AgentRuntime.run)
        self._imported: asyncio.Future[Any] | None = None
        self._client: anthropic.AsyncAnthropic | None = None
        self.direct: DirectPost | None = None  # made with the client: how every call is sent
        self._closed = False

    def start(self) -> asyncio.Future[Any]:
        if self._imported is None:
            self._imported = asyncio.get_running_loop().run_in_executor(None, importlib.import_module, "anthropic")
            self._imported.add_done_callback(_freeze)
        return self._imported

    async def get(self) -> anthropic.AsyncAnthropic:
        if self._client is None:
            await asyncio.shield(self.start())  # one import for every caller; a cancelled caller leaves it be
            if self._closed:
                raise ApiFailure("The bot is shutting down; the model was not called.")
            if self._client is None:  # another caller may have made it while this one waited
                self._client = self._make()
                self.direct = DirectPost(self._client)
        return self._client

    async def close(self) -> None:
        self._closed = True
        try:
            if self._client is not None:
                await self._client.close()
        finally:
            if self.direct is not None:
                await self.direct.close()

    def is_closed(self) -> bool:
        return self._closed


class DirectPost:
    """``POST /v1/messages`` on one aiohttp session, with the URL and headers the SDK client would send, its
    failures raised as the SDK's own errors (``APIStatusError`` built by the client from the reply,
    ``APITimeoutError``, ``APIConnectionError``), so ``ModelCaller`` handles them as before. The SDK's request
    path built a request object, its headers and URL anew for every call through two HTTP layers: about three
    quarters of a model call's CPU on the event loop (issue 16). Headers are read once, when the client is made."""

    def __init__(self, client: anthropic.AsyncAnthropic) -> None:
        import aiohttp

        self._client = client
        # The SDK joins the base URL's path and the endpoint's (``_prepare_url``): the same here.
        self.url = str(client.base_url).rstrip("/") + "/v1/messages"
        self.headers = {k: v for k, v in client.default_headers.items() if isinstance(v, str)}
        self.headers.update({**JSON, "x-stainless-retry-count": "0"})
        # The SDK's connection limit (DEFAULT_CONNECTION_LIMITS). Redirects are not followed (the SDK's transport
        # follows them; an API answer that redirects is an error here, never a request resent elsewhere). The
        # proxy the environment names for the API's host, read once; not aiohttp's trust_env, which also reads
        # ~/.netrc on a thread before every call and fails the call when it holds an entry for the host.
        self.proxy = _env_proxy(self.url)
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))

    async def post(self, body: bytes, timeout: float) -> bytes:
        import aiohttp
        import anthropic

        headers = {**self.headers, "x-stainless-timeout": str(timeout)}
        try:
            async with self._session.post(self.url, data=body, headers=headers, allow_redirects=False, proxy=self.proxy,
                                          timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                raw = await resp.read()
                if 200 <= resp.status < 300:
                    return raw
                # aiohttp has already decoded a compressed body: its encoding and length headers no longer
                # describe `raw` (httpx2 would decode it a second time and fail outside the SDK's errors).
                status = resp.status
                reply_headers = [(k, v) for k, v in resp.headers.items() if k.lower() not in _DECODED]
        except (TimeoutError, aiohttp.ClientError) as e:
            request = self._request()
            if isinstance(e, TimeoutError):  # aiohttp's own timeouts are TimeoutErrors too
                raise anthropic.APITimeoutError(request=request) from None
            raise anthropic.APIConnectionError(request=request) from None
        import httpx2  # the SDK's HTTP types (a dependency of the SDK): errors carry its response

        reply = httpx2.Response(status, headers=reply_headers, content=raw, request=self._request())
        raise self._client._make_status_error_from_response(reply)

    def _request(self) -> Any:
        import httpx2

        return httpx2.Request("POST", self.url)

    async def close(self) -> None:
        await self._session.close()


_DECODED = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def _env_proxy(url: str) -> str | None:
    """The proxy the environment (HTTPS_PROXY, NO_PROXY, ...) names for `url`, as the SDK's transport reads it."""
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(url)
    if parts.hostname and proxy_bypass(parts.hostname):
        return None
    return getproxies().get(parts.scheme) or None


_FROZEN: set[str] = set()


def freeze_once(what: str) -> None:
    """After a big import (``what``: the pipeline, the SDK), once per process: move what the process holds now
    (tens of thousands of long-lived objects) out of the cycle collector's generations. Every full collection
    would otherwise walk them again: 200 runs at once made a dozen of those, ~160 ms of the loop each (issue 16).
    Garbage is still freed by reference counting; only a cycle that is garbage already at this moment stays."""
    if what not in _FROZEN:
        _FROZEN.add(what)
        gc.freeze()


def _freeze(_: object) -> None:
    freeze_once("anthropic")


async def resolve(client: anthropic.AsyncAnthropic | LazyClient) -> anthropic.AsyncAnthropic:
    return await client.get() if isinstance(client, LazyClient) else client


class ModelCaller:
    """``messages.create`` with retries on 429/5xx/529/connection errors, a per-call timeout and a
    semaphore bounding calls in flight across runs."""

    def __init__(self, client: anthropic.AsyncAnthropic | LazyClient, *, attempts: int = 4, retry_base: float = 1.0,
                 max_retry_wait: float = 60.0, timeout: float = 120.0,
                 concurrency: asyncio.Semaphore | None = None) -> None:
        self.client = client
        self.attempts = max(1, attempts)
        self.retry_base = retry_base
        self.max_retry_wait = max_retry_wait
        self.timeout = timeout
        self.concurrency = concurrency

    def _backoff(self, attempt: int) -> float:
        return min(self.retry_base * 2 ** (attempt - 1), self.max_retry_wait) * random.uniform(0.5, 1.0)

    async def _post(self, client: anthropic.AsyncAnthropic, body: bytes) -> bytes:
        direct = self.client.direct if isinstance(self.client, LazyClient) else None
        if direct is not None:
            return await direct.post(body, self.timeout)
        # A client given as it is (tests, benchmarks): the SDK's own request path, its transport and its errors;
        # the body sent as encoded, the reply read as sent. What ``messages.create`` adds on top (a walk copying
        # the whole request, response models) is left out.
        return await client.post("/v1/messages", cast_to=bytes, content=body,
                                 options={"headers": JSON, "timeout": self.timeout})

    async def _once(self, client: anthropic.AsyncAnthropic, body: bytes) -> bytes:
        if self.concurrency is None:
            return await self._post(client, body)
        async with self.concurrency:
            return await self._post(client, body)

    async def create(self, **kwargs: Any) -> dict[str, Any]:
        """The API's reply to a ``messages.create`` request (as JSON data), or ApiFailure once retrying cannot
        help."""
        return await self.send(encode(kwargs))

    async def send(self, request: str) -> dict[str, Any]:
        """``create`` for a request encoded already (:func:`encode`)."""
        client = await resolve(self.client)
        import anthropic  # imported by now (a client exists): a dictionary look-up, not an import

        body = request.encode()
        unanswered = 0
        for attempt in range(1, self.attempts + 1):
            try:
                return reply_of(await self._once(client, body))
            except anthropic.APIStatusError as e:
                if is_billing_error(e):
                    raise ApiFailure(f"The Anthropic API refused the call because of a spend or billing limit "
                                     f"({_detail(e)}); it was not retried. Raise the limit or wait for it to "
                                     "reset, then retry the step.") from None
                if e.status_code == 401:
                    raise ApiFailure("The Anthropic API rejected the API key (401); check ANTHROPIC_API_KEY.") from None
                if e.status_code not in RETRY_STATUSES:
                    raise ApiFailure(f"The Anthropic API rejected the request ({_detail(e)}).") from None
                asked = retry_after(e.response.headers)
                if asked is not None and asked > self.max_retry_wait:
                    raise ApiFailure(f"The Anthropic API asked to wait {asked:.0f} s ({_detail(e)}), longer than "
                                     f"the {self.max_retry_wait:.0f} s this App waits; retry the step later.") from None
                wait, last = (asked if asked is not None else self._backoff(attempt)), _detail(e)
            except anthropic.APIConnectionError as e:  # includes timeouts
                wait = self._backoff(attempt)
                last = "timed out" if isinstance(e, anthropic.APITimeoutError) else "could not connect"
                unanswered += 1
            except anthropic.APIError as e:  # e.g. a reply the SDK could not parse
                raise ApiFailure(f"The Anthropic API call failed ({type(e).__name__}: {str(e)[:200]}).") from None
            if attempt == self.attempts:
                break
            log.warning("anthropic call failed (%s); retry %d/%d in %.2fs", last, attempt, self.attempts - 1, wait)
            await asyncio.sleep(wait)
        raise ApiFailure(f"The Anthropic API was unavailable after {self.attempts} attempts (last: {last}).",
                         unanswered)
