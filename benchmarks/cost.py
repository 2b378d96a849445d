"""What a run costs: GitHub calls, model calls and tokens for each workflow, from the issue to ``/approve``.

For each of the seven workflows (issue labels devops, api, slow-query, bug, security, integration, epic)
one issue is opened and taken to the approval wait, then a maintainer comments ``/approve``. Counted:

* GitHub API calls from the sandbox's request log: reads (GET) and writes (POST/PATCH/PUT/DELETE)
  separately; installation-token and ``GET /app`` calls as ``auth``;
* model calls and tokens from FakeAnthropic's ``usage_log``: input (uncached), output, cache reads and
  cache writes; ``cache_share`` = cache_read / (input + cache_read + cache_creation);
* steps run = agent step attempts in the store (``steps`` rows), and writes per step;
* the run's cost as the bot itself books it (``runs.data.usage.cost_usd``).

Plus ``backend-feature + 1 rejection``: the first review answers REJECTED, so implementation and review
run twice (the target: cache share >= 60% there, <= 3 GitHub writes per step on average).

The scripted Team answers each step in one call (``--tool-turns 0``) unless told to make tool calls
first. FakeAnthropic caches every prefix by default (``min_cache_tokens=0``); the real API does not cache
a prefix under 1,024 tokens (more on some models). A second table re-runs the rejection case with tool
turns and that minimum, to show what the share depends on. Fresh fakes (a cold prompt cache) per row.

    python benchmarks/cost.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import _common as C

WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}


def github_counts(requests: list[Any]) -> dict[str, int]:
    auth = sum(1 for r in requests if r.path.endswith("/access_tokens") or r.path == "/app")
    reads = sum(1 for r in requests if r.method == "GET" and r.path != "/app")
    writes = sum(1 for r in requests if r.method in WRITE_METHODS and not r.path.endswith("/access_tokens"))
    return {"github_reads": reads, "github_writes": writes, "github_auth": auth}


def token_counts(usage_log: list[dict[str, Any]]) -> dict[str, Any]:
    sums = {k: sum(int(u.get(k) or 0) for u in usage_log) for k in (
        "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")}
    prompt = sums["input_tokens"] + sums["cache_read_input_tokens"] + sums["cache_creation_input_tokens"]
    return {"model_calls": len(usage_log), "input_tokens": sums["input_tokens"], "output_tokens": sums["output_tokens"],
            "cache_read_tokens": sums["cache_read_input_tokens"],
            "cache_write_tokens": sums["cache_creation_input_tokens"], "prompt_tokens": prompt,
            "cache_share": round(sums["cache_read_input_tokens"] / prompt, 3) if prompt else None}


async def one_run(label: str, *, rejections: int, tool_turns: int, min_cache_tokens: int, tmp: Path,
                  number: int = 42) -> dict[str, Any]:
    """One issue with ``label`` to the approval wait, then ``/approve``; everything it cost."""
    import aiohttp
    from aiohttp import web

    from bot.run.runtime import Runtime

    async with C.fakes(min_cache_tokens=min_cache_tokens, tool_turns=tool_turns) as (gh, fake, team, private):
        gh.set_permission(C.REPO, "maintainer", "maintain")
        team.script["REVIEW"] = [C.rejected() for _ in range(rejections)]
        db = tmp / f"{label}-{rejections}-{tool_turns}-{min_cache_tokens}.sqlite3"
        settings = C.bot_settings(gh, fake, private, f"sqlite:///{db}")
        rt = await Runtime(settings, github_max_wait=5.0, github_backoff=0.01, agent_options=C.AGENT_OPTIONS).start()
        runner = web.AppRunner(rt.web_app(), access_log=None)
        await runner.setup()
        port = C.free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with aiohttp.ClientSession() as http:
                async def deliver(event: str, payload: dict[str, Any]) -> str:
                    gh.seed_from_payload(payload)
                    body = json.dumps(payload).encode()
                    headers = C.webhook_headers(event, body)
                    async with http.post(f"http://127.0.0.1:{port}/webhook", data=body, headers=headers) as r:
                        if r.status != 202:
                            raise RuntimeError(f"{event}: {r.status} {await r.text()}")
                    await rt.jobs.drained(120)
                    return headers["X-GitHub-Delivery"]

                run_id = await deliver("issues", C.issue_payload(number, [label], title="Make the service better",
                                                                 body="Details in the thread."))
                record = await rt.store.load_run(run_id)
                waiting = record.state if record else None
                before_approve = len(gh.requests)
                await deliver("issue_comment", C.comment_payload(number, "/approve"))
                record = await rt.store.load_run(run_id)
                steps = await rt.store.steps_of(run_id)
                jobs = await rt.store.job_states()
        finally:
            await runner.cleanup()
            await rt.close()
        usage = (record.data.get("usage") if record else None) or {}
        counts = github_counts(gh.requests)
        after = github_counts(gh.requests[before_approve:])
        out: dict[str, Any] = {
            "bench": "cost", "label": label, "workflow": record.workflow if record else None,
            "case": C.LABELS[label] + (f" + {rejections} rejection" if rejections else ""),
            "tool_turns": tool_turns, "min_cache_tokens": min_cache_tokens,
            "state_before_approve": waiting, "final_state": record.state if record else None,
            "jobs_failed": jobs.get("failed", 0), "steps_run": len(steps),
            "steps_by_id": sorted(f"{s.step_id}:{s.iteration}" for s in steps),
            **counts, "github_writes_on_approve": after["github_writes"],
            "writes_by_kind": dict(sorted(Counter(w.kind for w in gh.writes).items(), key=lambda kv: -kv[1])),
            **token_counts(fake.usage_log),
            "cost_usd": round(float(usage.get("cost_usd", 0.0)), 4),
        }
        out["writes_per_step"] = round(out["github_writes"] / out["steps_run"], 2) if out["steps_run"] else None
        # The same without the /approve delivery (reaction, Git data API commit, draft PR, final edits).
        out["writes_per_step_before_approve"] = (round((out["github_writes"] - out["github_writes_on_approve"])
                                                       / out["steps_run"], 2) if out["steps_run"] else None)
        return out


async def main(args: argparse.Namespace) -> int:
    C.emit({"bench": "cost", "machine": C.machine(), "tool_turns": args.tool_turns})
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp:
        cases = [(label, 0) for label in C.LABELS] + [("api", 1)]
        for label, rejections in cases:
            rec = await one_run(label, rejections=rejections, tool_turns=args.tool_turns, min_cache_tokens=0,
                                tmp=Path(tmp))
            if rejections:
                rec["meets_cache_share_60"] = (rec["cache_share"] or 0) >= 0.6
            rec["meets_writes_per_step_3"] = rec["writes_per_step"] is not None and rec["writes_per_step"] <= 3
            C.emit(rec)
            rows.append(rec)
        total_writes = sum(r["github_writes"] for r in rows)
        total_steps = sum(r["steps_run"] for r in rows)
        C.emit({"bench": "cost", "summary": True, "writes": total_writes, "steps": total_steps,
                "writes_per_step_overall": round(total_writes / total_steps, 2) if total_steps else None})
        variants: list[dict[str, Any]] = []
        if args.variants:
            for tool_turns, min_cache in ((0, 0), (0, 1024), (2, 0), (2, 1024)):
                rec = await one_run("api", rejections=1, tool_turns=tool_turns, min_cache_tokens=min_cache,
                                    tmp=Path(tmp))
                rec["variant"] = True
                C.emit(rec)
                variants.append(rec)
    C.table(rows, ["case", "final_state", "steps_run", "github_reads", "github_writes", "github_auth",
                   "github_writes_on_approve", "writes_per_step", "writes_per_step_before_approve", "model_calls", "input_tokens", "output_tokens", "cache_read_tokens",
                   "cache_write_tokens", "cache_share", "cost_usd"],
            title=f"cost of one run, issue opened -> approval -> /approve (Team answers each step; "
                  f"{args.tool_turns} tool turns a step; fake caches any prefix)")
    if variants:
        C.table(variants, ["case", "tool_turns", "min_cache_tokens", "model_calls", "input_tokens", "cache_read_tokens",
                           "cache_write_tokens", "cache_share", "writes_per_step", "cost_usd"],
                title="what the cache share depends on (backend-feature + 1 rejection)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tool-turns", type=int, default=0, help="tool calls the Team makes before each answer")
    parser.add_argument("--no-variants", dest="variants", action="store_false",
                        help="skip the table of tool-turn / cache-minimum variants")
    sys.exit(asyncio.run(main(parser.parse_args())))
