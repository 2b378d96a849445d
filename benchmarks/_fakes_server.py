"""The sandbox GitHub and FakeAnthropic (with the scripted Team) in a process of their own.

runs_at_scale.py uses it so the fakes' CPU is not charged to the bot's event loop. Prints one JSON line
(``github_url``, ``anthropic_url``, ``control_url``, ``private_key``) once listening; stops on SIGTERM.
The control app answers ``GET /stats`` (FakeAnthropic's in-flight peak and counts, GitHub request counts),
``POST /reset`` (zero them) and ``POST /seed?first=N&count=M&label=L`` (create issues #N.. with label L).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


async def main(args: argparse.Namespace) -> None:
    async with C.fakes(delay=args.delay, min_cache_tokens=args.min_cache_tokens) as (gh, fake, team, private):
        async def stats(request: web.Request) -> web.Response:
            writes = sum(1 for r in gh.requests if r.method in ("POST", "PATCH", "PUT", "DELETE"))
            return web.json_response({"max_in_flight": fake.max_in_flight, "in_flight": fake.in_flight,
                                      "model_calls": len(fake.requests), "github_requests": len(gh.requests),
                                      "github_writes": writes, "team_calls": len(team.calls),
                                      "app_jwt_calls": sum(1 for r in gh.requests if r.auth_kind == "jwt")})

        async def reset(request: web.Request) -> web.Response:
            fake.max_in_flight = fake.in_flight
            fake.requests.clear()
            fake.usage_log.clear()
            gh.requests.clear()
            team.calls.clear()
            return web.json_response({"ok": True})

        async def seed(request: web.Request) -> web.Response:
            first, count = int(request.query["first"]), int(request.query["count"])
            installations = int(request.query.get("installations", 0))
            for number in range(first, first + count):
                p = C.issue_payload(number, [request.query.get("label", "api")])
                gh.seed_from_payload(C.spread(p, number % installations) if installations else p)
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_get("/stats", stats)
        app.router.add_post("/reset", reset)
        app.router.add_post("/seed", seed)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = C.free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print(json.dumps({"github_url": gh.url, "anthropic_url": fake.url, "control_url": f"http://127.0.0.1:{port}",
                          "private_key": private}), flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.5)
    parser.add_argument("--min-cache-tokens", type=int, default=0)
    asyncio.run(main(parser.parse_args()))
