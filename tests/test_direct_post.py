"""The model calls' direct path (bot/agents/calls.py ``DirectPost``) against an HTTP server answering as the API
may: a compressed error reply is read as the SDK's own error (retried, its retry-after honoured), and the proxy the
environment names is the one used."""

from __future__ import annotations

import gzip
import json
from typing import Any

import anthropic
import pytest
from aiohttp import web

from bot.agents.calls import DirectPost, _env_proxy

OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


async def test_a_compressed_error_reply_is_the_sdks_error_with_its_headers(aiohttp_server: Any) -> None:
    async def messages(request: web.Request) -> web.Response:
        body = gzip.compress(json.dumps(OVERLOADED).encode())
        return web.Response(status=529, body=body, headers={"Content-Encoding": "gzip", "retry-after": "7",
                                                            "request-id": "req_1",
                                                            "Content-Type": "application/json"})
    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    server = await aiohttp_server(app)
    client = anthropic.AsyncAnthropic(base_url=str(server.make_url("")), api_key="sk-ant-test", max_retries=0)
    direct = DirectPost(client)
    try:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await direct.post(b'{"model": "m"}', 5.0)
    finally:
        await direct.close()
        await client.close()
    assert caught.value.status_code == 529 and caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body == OVERLOADED  # read once, decoded once


def test_the_proxy_is_the_one_the_environment_names_for_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert _env_proxy("https://api.anthropic.com/v1/messages") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert _env_proxy("https://api.anthropic.com/v1/messages") == "http://proxy.internal:3128"
    monkeypatch.setenv("NO_PROXY", "api.anthropic.com")
    assert _env_proxy("https://api.anthropic.com/v1/messages") is None
