"""The command line: one parser, one module per verb (``bot/cli/<verb>.py``; ``setup`` keeps its parts beside it)."""

from __future__ import annotations

import argparse
import importlib


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot",
                                     description="triage-lead: a GitHub App that runs a team of LLM specialists")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default: INFO for serve, WARNING otherwise)")
    parser.add_argument("--env-file", default=".env", metavar="PATH",
                        help="KEY=value file that serve and worker read under the environment, and setup writes "
                             "(default: .env; a missing file is fine)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the GitHub App's webhook server and job runner")
    serve.set_defaults(func="serve:cmd_serve")
    worker = sub.add_parser("worker", help="run jobs from a PostgreSQL store (the Procfile's worker process)")
    worker.add_argument("--concurrency", type=int, help="jobs run at once (default: TRIAGE_LEAD_JOB_CONCURRENCY)")
    worker.add_argument("--stalled-after", type=float, default=30.0, metavar="SECONDS",
                        help="a worker silent this long is dead and its jobs run again elsewhere (default: 30)")
    worker.set_defaults(func="worker:cmd_worker")
    st = sub.add_parser("setup", help="register the GitHub App from app.yml (GitHub's manifest flow) and write .env")
    st.add_argument("--port", type=int, default=3000, help="port of the local set-up page (default: 3000)")
    st.add_argument("--org", help="register the App under this organization instead of your own account")
    st.add_argument("--webhook-url", help="https://<your host>/webhook (default: registered inactive until you set it)")
    st.add_argument("--name", help="the App's name, unique on GitHub (default: app.yml's)")
    st.add_argument("--manifest", help="the App manifest (default: app.yml)")
    st.add_argument("--github-url", help="GitHub's web address (default: derived from GITHUB_API_URL)")
    st.add_argument("--api-url", help="GitHub's REST API root (default: GITHUB_API_URL)")
    st.add_argument("--force", action="store_true", help="replace the App's keys if the .env file already has them")
    st.add_argument("--no-browser", action="store_true", help="print the page's address instead of opening a browser")
    st.set_defaults(func="setup:cmd_setup")
    rep = sub.add_parser("replay", help="push a webhook payload through the bot against the sandbox GitHub")
    rep.add_argument("payload", help="a payload file named <event>.<action>.json")
    rep.add_argument("--event", help="the X-GitHub-Event name, if the file name does not say it")
    rep.set_defaults(func="replay:cmd_replay")
    red = sub.add_parser("redeliver", help="ask GitHub to redeliver the App's failed deliveries")
    red.add_argument("--since", default="1h", help="how far back: 30m, 1h, 2d (at most 3d; default 1h)")
    red.add_argument("--dry-run", action="store_true", help="list what would be redelivered")
    red.set_defaults(func="redeliver:cmd_redeliver")
    jobs = sub.add_parser("jobs", help="list failed jobs; run them again (`jobs retry ID...|--all`) or let them go "
                                       "(`jobs dismiss ID...|--all`: their payloads are then pruned)")
    jobs.add_argument("action", nargs="?", choices=["list", "retry", "dismiss"], default="list")
    jobs.add_argument("ids", nargs="*", type=int, help="job ids to run again or dismiss")
    jobs.add_argument("--all", action="store_true", help="with retry or dismiss: every failed job")
    jobs.set_defaults(func="jobs:cmd_jobs")
    runs = sub.add_parser("runs", help="`runs show RUN_ID`: a run's steps with their provenance (agent, model, "
                                       "prompt and rules hashes, head), tokens, cost, and the head approved")
    runs.add_argument("action", choices=["show"])
    runs.add_argument("run_id", help="the run's id (its status comment's hidden marker names it)")
    runs.set_defaults(func="runs:cmd_runs")
    val = sub.add_parser("validate", help="check every workflow and agent file against its schema and the rules")
    val.add_argument("--root", help="a workflows/ folder (default: the one shipped with the bot)")
    val.set_defaults(func="triage:cmd_validate")
    tri = sub.add_parser("triage", help="print the Lead's decision for a payload as JSON, posting nothing")
    tri.add_argument("payload", help="a webhook payload (any file name; no installation needed), the JSON of "
                                     "`gh issue view N --json title,body,labels` or `gh pr view N --json "
                                     "title,body,labels,files`, or - for stdin")
    tri.add_argument("--event", help="the X-GitHub-Event name; wins over the file name and the payload's shape")
    tri.add_argument("--explain", action="store_true",
                     help="add an \"evidence\" key: for and against each workflow, and why the winner won")
    tri.set_defaults(func="triage:cmd_triage")
    args = parser.parse_args(argv)
    # Each verb's module loads only when it runs: `validate` need not import the agent side.
    module, name = args.func.split(":")
    return int(getattr(importlib.import_module(f"bot.cli.{module}"), name)(args))
