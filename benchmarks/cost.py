"""What a run costs: GitHub calls, model calls and tokens for each workflow, from the issue to ``/approve``.

For each of the seven workflows (issue labels devops, api, slow-query, bug, security, integration, epic)
one issue is opened and taken to the approval wait, then a maintainer comments ``/approve``. Counted:

* GitHub API calls from the sandbox's request log: reads (GET) and writes (POST/PATCH/PUT/DELETE)
  separately; installation-token and ``GET /app`` calls as ``auth``;
* model calls and tokens from FakeAnthropic's ``usage_log``: input (uncached), output, cache reads and
  cache writes; ``cache_share`` = cache_read / (input + cache_read + cache_creation);
* steps run = agent step attempts in the store (``steps`` rows), and writes per step;
* the run's cost as the bot itself books it (``runs.data.usage.cost_usd``);
* beside it, the estimate the bot can make before the run (``bot/core/estimate.py``), from the same tree and issue:
  the prompt's parts sized by the bot's own prompt builders, the files the issue names sized from the tree; the
  ratio real / estimate, and whether it is within 1.5x (the rejection row is compared with the estimate plus what
  one rejection adds, since the benchmark forces one).

Plus ``backend-feature + 1 rejection``: the first review answers REJECTED, so implementation and review
run twice (the targets: cache share >= 60% there, <= 3 GitHub writes per step including the approval PR).

What is real here: the repository is this project's own tree (every text file under the checkout, read from
disk now, in one commit); the issue names real files; the agents run on their catalog tiers, whose models
FakeAnthropic caches by the real rules (each model's minimum cacheable length, see
``bot/sandbox/anthropic/cache.py``). The specialists (``Specialists``) act as agents do: an agent whose prompt
has no repository overview first lists the root and reads the README, then every agent reads its task's files
(real files, through its tools, in one turn of parallel calls), then answers; an implementation returns a real
file changed in full. Fresh fakes (a cold prompt cache) per row.

    python benchmarks/cost.py                # the seven workflows and the rejection case
    python benchmarks/cost.py --variants     # and what the cache share depends on
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import _common as C

WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}


SKIP_DIRS = {"__pycache__", ".git", "node_modules"}
MAX_FILE_BYTES = 200_000
OVERVIEW_MARK = "## Repository overview"  # what bot/agents/prompts.py heads the overview block with
ISSUE_TITLE = "Fewer GitHub writes per step: the status comment is edited after every step"
ISSUE_BODY = """The status comment is edited after every agent step, and each step also posts its own comment, so a run
of seven steps makes more than twenty writes before the approval pull request. GitHub's secondary rate limits
count writes, and a busy installation hits them.

Where it happens:
- `bot/run/executor.py` performs each step's actions and posts the step output, then edits the status comment;
- `bot/github/writes.py` upserts comments by marker (`upsert_comment`);
- `bot/core/render.py` renders the status comment and the step outputs.

Proposal: edit the status comment only when the run changes state or waits for a person, and fold each step's
output into the status comment instead of a comment of its own. Keep a visible trace of every step (never
silent), and keep the idempotency markers.

Acceptance: at most 3 writes per step including the approval pull request; no change to what people see on a
rejection or an escalation."""
TASK_FILES = {  # what each kind of step reads for this issue, besides what its prompt lacks
    "triage": [], "approval": [], "context": ["bot/core/render.py"],
    "analyze": ["bot/run/executor.py", "bot/core/render.py"], "validate": ["bot/run/executor.py"],
    "implement": ["bot/github/writes.py", "bot/run/executor.py"], "review": ["bot/github/writes.py"],
}
CHANGED = "bot/github/writes.py"


def project_files() -> dict[str, str]:
    """This checkout's text files (path -> text), as a repository would hold them: no caches, no binaries."""
    files: dict[str, str] = {}
    for path in sorted(C.ROOT.rglob("*")):
        rel = path.relative_to(C.ROOT)
        if (not path.is_file() or any(p in SKIP_DIRS or p.endswith(".egg-info") for p in rel.parts)
                or path.stat().st_size > MAX_FILE_BYTES):
            continue
        try:
            files[rel.as_posix()] = path.read_text("utf-8")
        except UnicodeDecodeError:
            continue
    return files


def seed_project(gh: Any, files: dict[str, str]) -> str:
    """Commit ``files`` as the sandbox repository's default branch in one commit; its sha."""
    repo = gh.repo(C.REPO)
    branch = f"refs/heads/{repo.data['default_branch']}"
    flat = {path: ("100644", "blob", gh.put_blob(text.encode())) for path, text in files.items()}
    sha: str = gh.put_commit(gh.build_tree(flat), [repo.refs[branch]], "The project as it is on disk",
                             {"name": "Bench", "email": "bench@example.com"})
    repo.refs[branch] = sha
    return sha


class TreeReader:
    """``files`` as the agent runtime's RepoReader answers the overview's reads (the tree, then two files)."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    async def tree(self, ref: str) -> dict[str, Any]:
        return {"tree": [{"path": p, "type": "blob", "size": len(t.encode())} for p, t in self.files.items()]}

    async def contents(self, path: str, ref: str | None = None) -> dict[str, Any]:
        import base64

        return {"path": path, "encoding": "base64", "content": base64.b64encode(self.files[path].encode()).decode()}


async def bot_estimate(label: str, files: dict[str, str], sha: str, rejections: int) -> tuple[Any, float]:
    """The estimate the bot makes before the run (bot/agents/sizing.py, as bot/run/runs.py's start_run calls it),
    and the figure compared: plus ``rejections`` loops."""
    from bot.agents import sizing
    from bot.agents.request import RepoContext
    from bot.agents.tools import read_overview
    from bot.core.catalog import load_catalog

    catalog = load_catalog()
    overview = await read_overview(TreeReader(files), sha)  # type: ignore[arg-type]
    context = RepoContext(C.REPO, 42, False, sha, "main", ISSUE_TITLE, ISSUE_BODY)
    est = sizing.estimate(catalog.workflows[C.LABELS[label]], catalog.agents, C.REPO, overview, context)
    return est, est.cost_with(rejections=rejections)


def changed_files(files: dict[str, str]) -> list[dict[str, str]]:
    """An implementation as a model returns one: a real file in full with a small change, and a new test."""
    old = files[CHANGED]
    new = old.replace("async def upsert_comment(", "async def upsert_comment(  # one write per state change\n", 1)
    test = ("from bot.github.writes import upsert_comment\n\n\n"
            "def test_upsert_comment_is_importable() -> None:\n    assert callable(upsert_comment)\n")
    return [{"path": CHANGED, "content": new, "reason": "write the status comment once per state change"},
            {"path": "tests/test_writes_per_step.py", "content": test, "reason": "a test of the change"}]


class Specialists:
    """Answers every agent call as an agent would (see the module's doc), through the shared Team for results.

    ``explore``: None explores only when the prompt has no repository overview; True always (the variant where
    agents re-read what their prompt already holds)."""

    def __init__(self, team: Any, changes: list[dict[str, str]], explore: bool | None = None) -> None:
        self.team, self.changes, self.explore = team, changes, explore
        team.fake.responder = self.respond

    def plan(self, kind: str, text: str) -> list[list[tuple[str, dict[str, Any]]]]:
        """The tool turns of one step: parallel calls per turn."""
        turns = []
        if self.explore or (self.explore is None and OVERVIEW_MARK not in text):
            turns.append([("list_directory", {"path": ""}), ("read_file", {"path": "README.md"})])
        if TASK_FILES.get(kind):
            turns.append([("read_file", {"path": path}) for path in TASK_FILES[kind]])
        return turns

    async def respond(self, request: dict[str, Any]) -> Any:
        first = request["messages"][0]["content"]
        text = first if isinstance(first, str) else "\n".join(b.get("text", "") for b in first)
        m = C.STEP.search(text)
        kind = m.group(2) if m else ""
        turn = (len(request["messages"]) - 1) // 2
        plan = self.plan(kind, text) if request.get("tools") else []
        if turn < len(plan) and (request.get("tool_choice") or {}).get("type") != "none":
            return C.Reply.tool_uses(*plan[turn])
        answer = await self.team.respond(request)
        if kind == "implement" and isinstance(answer, dict) and answer.get("changes"):
            answer = {**answer, "changes": self.changes}
        return answer


def github_counts(requests: list[Any]) -> dict[str, int]:
    auth = sum(1 for r in requests if r.path.endswith("/access_tokens") or r.path == "/app")
    reads = sum(1 for r in requests if r.method == "GET" and r.path != "/app")
    writes = sum(1 for r in requests if r.method in WRITE_METHODS and not r.path.endswith("/access_tokens"))
    not_modified = sum(1 for r in requests if r.method == "GET" and r.status == 304)  # free of the rate limit
    return {"github_reads": reads, "github_reads_304": not_modified, "github_writes": writes, "github_auth": auth}


def token_counts(usage_log: list[dict[str, Any]]) -> dict[str, Any]:
    sums = {k: sum(int(u.get(k) or 0) for u in usage_log) for k in (
        "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")}
    prompt = sums["input_tokens"] + sums["cache_read_input_tokens"] + sums["cache_creation_input_tokens"]
    return {"model_calls": len(usage_log), "input_tokens": sums["input_tokens"], "output_tokens": sums["output_tokens"],
            "cache_read_tokens": sums["cache_read_input_tokens"],
            "cache_write_tokens": sums["cache_creation_input_tokens"], "prompt_tokens": prompt,
            "cache_share": round(sums["cache_read_input_tokens"] / prompt, 3) if prompt else None}


async def one_run(label: str, *, rejections: int, files: dict[str, str], tmp: Path, explore: bool | None = None,
                  min_cache_tokens: int | None = None, number: int = 42) -> dict[str, Any]:
    """One issue with ``label`` to the approval wait, then ``/approve``; everything it cost."""
    import aiohttp
    from aiohttp import web

    from bot.run.runtime import Runtime

    async with C.fakes(min_cache_tokens=min_cache_tokens) as (gh, fake, team, private):
        gh.set_permission(C.REPO, "maintainer", "maintain")
        sha = seed_project(gh, files)
        est, estimated = await bot_estimate(label, files, sha, rejections)
        Specialists(team, changed_files(files), explore)
        team.script["REVIEW"] = [C.rejected() for _ in range(rejections)]
        db = tmp / f"{label}-{rejections}-{explore}-{min_cache_tokens}.sqlite3"
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

                run_id = await deliver("issues", C.issue_payload(number, [label], title=ISSUE_TITLE, body=ISSUE_BODY))
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
            "explore": {None: "when needed", True: "always"}[explore],
            "min_cache_tokens": "per model" if min_cache_tokens is None else min_cache_tokens,
            "state_before_approve": waiting, "final_state": record.state if record else None,
            "jobs_failed": jobs.get("failed", 0), "steps_run": len(steps),
            "steps_by_id": sorted(f"{s.step_id}:{s.iteration}" for s in steps),
            "models": dict(Counter(r.get("model") for r in fake.requests if r.get("_status") == 200)),
            **counts, "github_writes_on_approve": after["github_writes"],
            "writes_by_kind": dict(sorted(Counter(w.kind for w in gh.writes).items(), key=lambda kv: -kv[1])),
            **token_counts(fake.usage_log),
            "cost_usd": round(float(usage.get("cost_usd", 0.0)), 4),
        }
        out |= {"estimate_usd": round(estimated, 4), "estimate_expected_usd": round(est.cost_usd, 4),
                "estimate_rejection_usd": round(est.rejection_usd, 4),
                "estimate_tokens": dataclasses.asdict(est.tokens_with(rejections)),
                "estimate_calls": sum(s.calls for s in est.steps) + rejections * sum(s.calls for s in est.rejection_steps),
                "estimate_assumptions": list(est.assumptions)}
        out["real_over_estimate"] = round(out["cost_usd"] / estimated, 3) if estimated else None
        out["within_1_5"] = out["real_over_estimate"] is not None and 1 / 1.5 <= out["real_over_estimate"] <= 1.5
        out["writes_per_step"] = round(out["github_writes"] / out["steps_run"], 2) if out["steps_run"] else None
        # The same without the /approve delivery (reaction, Git data API commit, draft PR, final edits).
        out["writes_per_step_before_approve"] = (round((out["github_writes"] - out["github_writes_on_approve"])
                                                       / out["steps_run"], 2) if out["steps_run"] else None)
        return out


async def main(args: argparse.Namespace) -> int:
    files = project_files()
    C.emit({"bench": "cost", "machine": C.machine(), "repository_files": len(files),
            "repository_bytes": sum(len(t.encode()) for t in files.values())})
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp:
        cases = [(label, 0) for label in C.LABELS] + [("api", 1)]
        for label, rejections in cases:
            rec = await one_run(label, rejections=rejections, files=files, tmp=Path(tmp))
            if rejections:
                rec["meets_cache_share_60"] = (rec["cache_share"] or 0) >= 0.6
            rec["meets_writes_per_step_3"] = rec["writes_per_step"] is not None and rec["writes_per_step"] <= 3
            C.emit(rec)
            rows.append(rec)
        total_writes = sum(r["github_writes"] for r in rows)
        total_steps = sum(r["steps_run"] for r in rows)
        C.emit({"bench": "cost", "summary": True, "writes": total_writes, "steps": total_steps,
                "writes_per_step_overall": round(total_writes / total_steps, 2) if total_steps else None,
                "cost_usd_all": round(sum(r["cost_usd"] for r in rows), 4),
                "real_over_estimate": {r["case"]: r["real_over_estimate"] for r in rows},
                "all_within_1_5": all(r["within_1_5"] for r in rows)})
        variants: list[dict[str, Any]] = []
        if args.variants:
            for explore, minimum in ((True, None), (None, 0)):
                rec = await one_run("api", rejections=1, files=files, tmp=Path(tmp), explore=explore,
                                    min_cache_tokens=minimum)
                rec["variant"] = True
                C.emit(rec)
                variants.append(rec)
    C.table(rows, ["case", "final_state", "steps_run", "github_reads", "github_reads_304", "github_writes", "github_auth",
                   "github_writes_on_approve", "writes_per_step", "writes_per_step_before_approve", "model_calls",
                   "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cache_share",
                   "cost_usd"],
            title=f"cost of one run on this project's own tree ({len(files)} files), issue opened -> approval -> "
                  "/approve (real tiers, each model's real minimum cacheable length)")
    C.table([{**r, **{f"est_{k}": v for k, v in r["estimate_tokens"].items()}} for r in rows],
            ["case", "model_calls", "estimate_calls", "cache_write_tokens", "est_cache_write", "cache_read_tokens",
             "est_cache_read", "input_tokens", "est_input", "output_tokens", "est_output", "cost_usd", "estimate_usd",
             "real_over_estimate", "within_1_5"],
            title="the estimate made before the run beside the real cost (real / estimate within 1.5x either way; the "
                  "rejection row against the estimate plus one rejection)")
    if variants:
        C.table(variants, ["case", "explore", "min_cache_tokens", "model_calls", "input_tokens", "cache_read_tokens",
                           "cache_write_tokens", "cache_share", "cost_usd"],
                title="what the cache share depends on (backend-feature + 1 rejection): agents that re-read the "
                      "root and README although the prompt holds them; a fake that caches any prefix")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", action="store_true", help="also the table of what the cache share depends on")
    sys.exit(asyncio.run(main(parser.parse_args())))
