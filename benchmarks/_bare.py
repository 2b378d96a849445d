"""The baseline for ingress.py: an aiohttp app whose ``POST /webhook`` only reads the body and answers 202.

Run the same way ``serve`` runs its app (AppRunner, no access log, uvloop's event loop when installed), so
the ratio between the two is the cost of what the bot does per delivery: HMAC check, JSON parse, typed
event, store transaction, log line. ``--asyncio`` runs it on asyncio's own loop instead.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiohttp import web


async def webhook(request: web.Request) -> web.Response:
    await request.read()  # the bot must read the body to check its signature; so does the baseline
    return web.json_response({"status": "accepted"}, status=202)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def main(port: int) -> None:
    app = web.Application(client_max_size=25 * 1024 * 1024)
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    try:
        import uvloop

        factory = None if "--asyncio" in sys.argv else uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main(int(sys.argv[1])))
