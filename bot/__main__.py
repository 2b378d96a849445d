"""Command line: ``serve``, ``worker``, ``setup``, ``replay``, ``validate``, ``triage``, ``redeliver``."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from bot import settings as settings_mod
from bot.logs import setup_logging
from bot.settings import SettingsError


def _fail(message: str) -> int:
    print(f"triage-lead: {message}", file=sys.stderr)
    return 2


def _logging(level: str) -> None:
    setup_logging(level)  # JSON lines when stderr is not a terminal, plain text when it is


def _env(args: argparse.Namespace) -> dict[str, str]:
    """The --env-file (default .env) under the real environment: a variable set in the environment wins."""
    from bot.setup import load_dotenv

    return {**load_dotenv(Path(args.env_file)), **os.environ}


async def _serve(settings: settings_mod.Settings) -> None:
    from bot.runtime import Runtime

    runtime = await Runtime(settings).start()
    try:
        runners = await runtime.listen()
    except BaseException:
        await runtime.close()
        raise
    # Listening already; load the agent side (about a second of imports) off the event loop meanwhile.
    asyncio.get_running_loop().run_in_executor(None, importlib.import_module, "bot.pipeline")
    logging.getLogger("bot").info("serving on port %d%s (GitHub API %s)", settings.port,
                                  "" if settings.metrics_port is None else f", /metrics on {settings.metrics_port}",
                                  settings.github_api_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()
        await runtime.close()


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        settings = settings_mod.load(_env(args), require_app=True)
    except SettingsError as exc:
        return _fail(str(exc))
    _logging(args.log_level or "INFO")
    try:
        asyncio.run(_serve(settings))
    except OSError as exc:
        return _fail(f"cannot serve on port {settings.port}: {exc.strerror}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    try:
        settings = settings_mod.load(_env(args), require_app=True)
    except SettingsError as exc:
        return _fail(str(exc))
    if settings.database_url.startswith("sqlite"):
        return _fail("on SQLite the jobs run inside `serve`; a separate worker needs DATABASE_URL=postgresql://...")
    if (args.concurrency is not None and args.concurrency < 1) or args.stalled_after <= 0:
        return _fail("--concurrency and --stalled-after must be positive")
    from bot.store import StoreUnavailable
    from bot.worker import run_worker

    _logging(args.log_level or "INFO")
    try:
        asyncio.run(run_worker(settings, args.concurrency or settings.job_concurrency,
                               stalled_after=args.stalled_after))
    except StoreUnavailable as exc:
        return _fail(f"cannot open the store: {exc}")
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    """Register the GitHub App from app.yml through GitHub's manifest flow and write its keys to --env-file."""
    from bot.setup import SetupError, default_manifest, github_web_url, run_setup

    try:
        settings = settings_mod.load(require_app=False)  # the environment only: the .env file is what this writes
    except SettingsError as exc:
        return _fail(str(exc))
    _logging(args.log_level or "WARNING")
    api_url = args.api_url or settings.github_api_url
    try:
        asyncio.run(run_setup(github_url=args.github_url or github_web_url(api_url), api_url=api_url, port=args.port,
                              env_path=Path(args.env_file), manifest_path=Path(args.manifest or default_manifest()),
                              open_browser=not args.no_browser, org=args.org, force=args.force,
                              webhook_url=args.webhook_url, name=args.name))
    except SetupError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot serve the set-up page on port {args.port}: {exc.strerror}")
    except KeyboardInterrupt:
        return _fail("set-up stopped before GitHub sent the App back; nothing was written")
    return 0


def _read_payload(path: Path) -> Any:
    """The JSON payload in ``path``, or a sentence saying why it cannot be read."""
    try:
        payload = json.loads(path.read_text())
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    except ValueError as exc:
        return f"{path} is not JSON: {exc}"
    return payload if isinstance(payload, dict) else f"{path} does not hold a JSON object"


def cmd_replay(args: argparse.Namespace) -> int:
    from bot.replay import event_name_for, replay, transcript

    path = Path(args.payload)
    payload = _read_payload(path)
    if isinstance(payload, str):
        return _fail(payload)
    try:
        settings = settings_mod.load(require_app=False)
    except SettingsError as exc:
        return _fail(str(exc))
    _logging(args.log_level or "WARNING")
    event = args.event or event_name_for(path)
    result = asyncio.run(replay(payload, event, settings=settings))
    print(transcript(result, event, str(path)))
    return 0 if result.status < 400 else 1


def cmd_validate(args: argparse.Namespace) -> int:
    """Check every workflow and agent file (CI runs this); exit 1 listing each problem."""
    from bot.catalog import DEFAULT_ROOT, validate_paths

    root = Path(args.root) if args.root else DEFAULT_ROOT
    problems = validate_paths(root)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {root}", file=sys.stderr)
        return 1
    print(f"{root}: all workflow and agent files are valid")
    return 0


def cmd_triage(args: argparse.Namespace) -> int:
    """The Lead's decision for a payload, as JSON, without posting anything."""
    from bot import events, triage
    from bot.catalog import load_catalog
    from bot.replay import event_name_for

    path = Path(args.payload)
    payload = _read_payload(path)
    if isinstance(payload, str):
        return _fail(payload)
    event = events.parse(args.event or event_name_for(path), payload, "triage-cli")
    if isinstance(event, (events.Ignored, events.Malformed)):
        print(json.dumps({"workflow": None, "reason": event.reason, "confidence": 0.0, "labels_used": []}, indent=2))
        return 0
    if not isinstance(event, (events.WorkItem, events.CiFailure)):
        return _fail(f"{event.event} events are not triaged")
    print(json.dumps(triage.decide(event, load_catalog()).to_json(), indent=2))
    return 0


async def _redeliver(settings: settings_mod.Settings, since: object, dry_run: bool) -> int:
    import aiohttp

    from bot.github.client import GitHubApp
    from bot.redeliver import redeliver

    async with aiohttp.ClientSession() as session:
        outcome = await redeliver(GitHubApp(settings, session), since, dry_run=dry_run)  # type: ignore[arg-type]
    verb = "would redeliver" if dry_run else "redelivered"
    for d in outcome.redelivered:
        print(f"{verb} {d['guid']} ({d.get('event')}.{d.get('action') or '-'}, {d.get('status')}, {d['delivered_at']})")
    print(f"{len(outcome.redelivered)} {verb}; {outcome.skipped} failed deliveries already redelivered")
    return 0


def cmd_redeliver(args: argparse.Namespace) -> int:
    from bot.redeliver import parse_since

    try:
        settings = settings_mod.load(_env(args), require_app=True)
        since = parse_since(args.since)
    except (SettingsError, ValueError) as exc:
        return _fail(str(exc))
    _logging(args.log_level or "WARNING")
    try:
        return asyncio.run(_redeliver(settings, since, args.dry_run))
    except Exception as exc:  # GitHub refused or is unreachable: one line, no traceback
        return _fail(f"could not list or redeliver deliveries: {type(exc).__name__}: {exc}")


async def _jobs(settings: settings_mod.Settings, retry: list[int], retry_all: bool, dismiss: bool = False) -> int:
    from bot.logs import add_secret, printable, scrub
    from bot.store import open_store

    for value in (settings.webhook_secret, settings.anthropic_api_key):  # errors stored before this redaction
        add_secret(value)

    store = await open_store(settings.database_url)
    try:
        failed = await store.failed_jobs(limit=1000)
        if not retry and not retry_all:
            for info in failed:
                error = printable(scrub(info.error.splitlines()[0]))[:160] if info.error else ""
                print(f"{info.job.id}\t{info.job.delivery_id}\t{info.job.event}\t{info.job.thread}\t"
                      f"{info.job.attempts} attempt(s)\t{error}")
            print(f"{len(failed)} failed job(s)" + ("; `python -m bot jobs retry ID` or `--all` runs them again"
                                                    if failed else ""))
            return 0
        wanted = [info.job.id for info in failed] if retry_all else retry
        act = store.dismiss_failed if dismiss else store.requeue_failed
        done = [job_id for job_id in wanted if await act(job_id)]
        for job_id in sorted(set(wanted) - set(done)):
            print(f"job {job_id} is not a failed job; left as it is", file=sys.stderr)
        if dismiss:
            print(f"{len(done)} job(s) dismissed (their payloads go at the next retention pass)")
        else:
            print(f"{len(done)} job(s) queued again" + (" (a running `serve` takes them within seconds)" if done else ""))
        return 0 if len(done) == len(set(wanted)) else 1
    finally:
        await store.close()


def cmd_jobs(args: argparse.Namespace) -> int:
    try:
        settings = settings_mod.load(_env(args), require_app=False)
    except SettingsError as exc:
        return _fail(str(exc))
    _logging(args.log_level or "WARNING")
    acting = args.action in ("retry", "dismiss")
    ids = args.ids if acting else []
    if acting and not ids and not args.all:
        return _fail(f"jobs {args.action} takes job ids, or --all")
    try:
        return asyncio.run(_jobs(settings, ids, acting and args.all, dismiss=args.action == "dismiss"))
    except Exception as exc:  # the store is unreachable: one line, no traceback
        return _fail(f"could not read the jobs: {type(exc).__name__}: {exc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot",
                                     description="triage-lead: a GitHub App that runs a team of LLM specialists")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default: INFO for serve, WARNING otherwise)")
    parser.add_argument("--env-file", default=".env", metavar="PATH",
                        help="KEY=value file that serve and worker read under the environment, and setup writes "
                             "(default: .env; a missing file is fine)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the GitHub App's webhook server and job runner")
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help="run jobs from a PostgreSQL store (the Procfile's worker process)")
    worker.add_argument("--concurrency", type=int, help="jobs run at once (default: TRIAGE_LEAD_JOB_CONCURRENCY)")
    worker.add_argument("--stalled-after", type=float, default=30.0, metavar="SECONDS",
                        help="a worker silent this long is dead and its jobs run again elsewhere (default: 30)")
    worker.set_defaults(func=cmd_worker)
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
    st.set_defaults(func=cmd_setup)
    rep = sub.add_parser("replay", help="push a webhook payload through the bot against the sandbox GitHub")
    rep.add_argument("payload", help="a payload file named <event>.<action>.json")
    rep.add_argument("--event", help="the X-GitHub-Event name, if the file name does not say it")
    rep.set_defaults(func=cmd_replay)
    red = sub.add_parser("redeliver", help="ask GitHub to redeliver the App's failed deliveries")
    red.add_argument("--since", default="1h", help="how far back: 30m, 1h, 2d (at most 3d; default 1h)")
    red.add_argument("--dry-run", action="store_true", help="list what would be redelivered")
    red.set_defaults(func=cmd_redeliver)
    jobs = sub.add_parser("jobs", help="list failed jobs; run them again (`jobs retry ID...|--all`) or let them go "
                                       "(`jobs dismiss ID...|--all`: their payloads are then pruned)")
    jobs.add_argument("action", nargs="?", choices=["list", "retry", "dismiss"], default="list")
    jobs.add_argument("ids", nargs="*", type=int, help="job ids to run again or dismiss")
    jobs.add_argument("--all", action="store_true", help="with retry or dismiss: every failed job")
    jobs.set_defaults(func=cmd_jobs)
    val = sub.add_parser("validate", help="check every workflow and agent file against its schema and the rules")
    val.add_argument("--root", help="a workflows/ folder (default: the one shipped with the bot)")
    val.set_defaults(func=cmd_validate)
    tri = sub.add_parser("triage", help="print the Lead's decision for a payload as JSON, posting nothing")
    tri.add_argument("payload", help="a payload file named <event>.<action>.json")
    tri.add_argument("--event", help="the X-GitHub-Event name, if the file name does not say it")
    tri.set_defaults(func=cmd_triage)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
