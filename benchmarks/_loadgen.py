"""The aiohttp load generator for ingress.py (used when ``wrk`` is not installed, or with --loadgen aiohttp).

Closed loop: ``--connections`` workers, each posting the next pre-signed body with a fresh delivery id as
soon as its previous answer arrived, for ``--duration`` seconds. Prints one JSON line with the counts and
latency percentiles. Runs in its own process so its CPU is not the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time

import aiohttp


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))] if ordered else 0.0


async def main(args: argparse.Namespace) -> None:
    bodies = []
    with open(args.bodies, encoding="utf-8") as f:
        for line in f:
            sig, body = line.rstrip("\n").split("\t", 1)
            bodies.append((sig, body.encode()))
    counter = itertools.count(1)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    connector = aiohttp.TCPConnector(limit=args.connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        deadline = time.monotonic() + args.duration

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                n = next(counter)
                sig, body = bodies[n % len(bodies)]
                headers = {"Content-Type": "application/json", "X-GitHub-Event": "issues",
                           "X-GitHub-Delivery": f"{args.prefix}-{n}", "X-Hub-Signature-256": sig,
                           "User-Agent": "GitHub-Hookshot/bench"}
                t0 = time.perf_counter()
                try:
                    async with http.post(args.url, data=body, headers=headers) as r:
                        await r.read()
                        status = r.status
                except (TimeoutError, aiohttp.ClientError):
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(args.connections)))
        elapsed = time.monotonic() - started
    us = [x * 1e6 for x in latencies]
    print(json.dumps({"requests": len(latencies), "duration_us": int(elapsed * 1e6), "accepted": statuses.get(202, 0),
                      "other": sum(v for k, v in statuses.items() if k != 202), "statuses": statuses,
                      "p50_us": pct(us, 50), "p90_us": pct(us, 90), "p99_us": pct(us, 99),
                      "max_us": max(us, default=0.0), "mean_us": sum(us) / len(us) if us else 0.0,
                      "errors": errors}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--bodies", required=True, help="a file of 'signature<TAB>body' lines")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--prefix", default="bench")
    asyncio.run(main(parser.parse_args()))
