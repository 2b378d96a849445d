"""Checks and Actions routes of the sandbox GitHub: check runs (created and edited by the App), suites,
annotations, workflow runs (of the repository or of one workflow), jobs, job logs and artifacts (both a
redirect to an unauthenticated download URL; an expired one answers 410)."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from ..github_state import ApiError
from .handlers import HEX40, REPO, Handlers, R, Route


class CheckRoutes(Handlers):
    """Check runs and suites, workflow runs, jobs and their logs."""

    def check_routes(self) -> list[Route]:
        cr, run, job, t = "{check_run_id:\\d+}", "{run_id:\\d+}", "{job_id:\\d+}", "token"
        return [
            ("GET", f"/_sandbox/logs/{{owner}}/{{repo}}/{job}", self.h_log_download, None),
            ("GET", "/_sandbox/artifacts/{owner}/{repo}/{artifact_id:\\d+}", self.h_artifact_download, None),
            ("POST", f"{R}/check-runs", self.h_create_check_run, t),
            ("GET", f"{R}/check-runs/{cr}", self.h_check_run, t),
            ("PATCH", f"{R}/check-runs/{cr}", self.h_check_run, t),
            ("GET", f"{R}/check-runs/{cr}/annotations", lambda rq: self._page(
                rq, self._get(rq[REPO].check_runs, self._num(rq, "check_run_id"))["__annotations"]), t),
            ("GET", f"{R}/check-suites/{{check_suite_id:\\d+}}", lambda rq: self.suite_json(
                rq[REPO], self._get(rq[REPO].check_suites, self._num(rq, "check_suite_id"))), t),
            ("GET", f"{R}/check-suites/{{check_suite_id:\\d+}}/check-runs", self.h_check_runs, t),
            ("GET", f"{R}/commits/{{ref}}/check-runs", self.h_check_runs, t),
            ("GET", f"{R}/actions/runs", self.h_runs, t),
            ("GET", f"{R}/actions/runs/{run}", lambda rq: self._get(rq[REPO].runs, self._num(rq, "run_id")), t),
            ("GET", f"{R}/actions/runs/{run}/jobs", self.h_jobs, t),
            ("GET", f"{R}/actions/runs/{run}/artifacts", self.h_artifacts, t),
            ("GET", f"{R}/actions/artifacts/{{artifact_id:\\d+}}/{{archive_format}}", self.h_artifact_zip, t),
            ("GET", f"{R}/actions/workflows/{{workflow_id}}/runs", self.h_runs, t),
            ("GET", f"{R}/actions/jobs/{job}", lambda rq: self._get(rq[REPO].jobs, self._num(rq, "job_id")), t),
            ("GET", f"{R}/actions/jobs/{job}/logs", self.h_job_logs, t),
        ]

    def h_create_check_run(self, rq: web.Request) -> Any:
        repo, b = rq[REPO], self._body(rq)
        run = self.make_check_run(repo, b)
        self._write("check_run", repo, None, b | {"id": run["id"]})
        return run, 201

    def h_check_run(self, rq: web.Request) -> Any:
        repo = rq[REPO]
        run = self._get(repo.check_runs, self._num(rq, "check_run_id"))
        if rq.method == "PATCH":
            self.update_check_run(repo, run, b := self._body(rq))
            self._write("check_run_edit", repo, None, b | {"id": run["id"]})
        return run

    def h_check_runs(self, rq: web.Request) -> Any:
        """Check runs of a suite, or of a commit ref; check_name and status filters."""
        repo, q = rq[REPO], rq.query
        if "check_suite_id" in rq.match_info:
            sid = self._get(repo.check_suites, self._num(rq, "check_suite_id"))["id"]

            def match(r: dict) -> bool:
                return bool(r["check_suite"]["id"] == sid)
        else:
            ref = rq.match_info["ref"]
            if (sha := self.resolve(repo, ref) or (ref if HEX40.fullmatch(ref) else None)) is None:
                raise ApiError(422, f"No commit found for SHA: {ref}")

            def match(r: dict) -> bool:
                return bool(r["head_sha"] == sha)
        runs = [r for r in sorted(repo.check_runs.values(), key=lambda r: r["id"], reverse=True) if match(r)
                and q.get("check_name", r["name"]) == r["name"] and q.get("status", r["status"]) == r["status"]]
        return self._page(rq, runs, key="check_runs")

    def h_runs(self, rq: web.Request) -> Any:
        """The repository's runs, or one workflow's (by id or file name), newest first, with GitHub's filters."""
        repo, q = rq[REPO], rq.query
        workflow = rq.match_info.get("workflow_id")
        runs = [r for r in sorted(repo.runs.values(), key=lambda r: r["id"], reverse=True)
                if all(q.get(k, r[f]) == r[f] for k, f in (("branch", "head_branch"), ("event", "event"),
                                                          ("head_sha", "head_sha")))
                and q.get("status") in (None, r["status"], r["conclusion"])
                and q.get("check_suite_id") in (None, str(r["check_suite_id"]))
                and workflow in (None, str(r["workflow_id"]), r["path"].rsplit("/", 1)[-1])]
        if workflow is not None and not runs and not any(
                workflow in (str(r["workflow_id"]), r["path"].rsplit("/", 1)[-1]) for r in repo.runs.values()):
            raise ApiError(404)  # an unknown workflow, not one without matching runs
        return self._page(rq, runs, key="workflow_runs")

    def h_artifacts(self, rq: web.Request) -> Any:
        run = self._get(rq[REPO].runs, self._num(rq, "run_id"))
        found = [a for a in run["__artifacts"] if rq.query.get("name", a["name"]) == a["name"]]
        return self._page(rq, found, key="artifacts")

    def h_artifact_zip(self, rq: web.Request) -> Any:
        """302 to a short-lived download URL; 410 once the artifact has expired, as GitHub does."""
        repo = rq[REPO]
        artifact = self._must(self.find_artifact(repo, self._num(rq, "artifact_id")))
        if rq.match_info["archive_format"] != "zip":
            raise ApiError(404)
        if artifact["expired"]:
            raise ApiError(410, "Artifact has expired")
        url = f"{rq.scheme}://{rq.host}/_sandbox/artifacts/{repo.full_name}/{artifact['id']}?sig={secrets.token_hex(8)}"
        return web.Response(status=302, headers={"Location": url})

    def h_artifact_download(self, rq: web.Request) -> Any:
        repo = self._get(self._repos, f"{rq.match_info['owner']}/{rq.match_info['repo']}".lower())
        artifact = self._must(self.find_artifact(repo, self._num(rq, "artifact_id")))
        return web.Response(body=artifact["__data"], content_type="application/zip")

    def h_jobs(self, rq: web.Request) -> Any:
        repo = rq[REPO]
        rid = self._get(repo.runs, self._num(rq, "run_id"))["id"]
        return self._page(rq, [j for j in repo.jobs.values() if j["run_id"] == rid], key="jobs")

    def h_job_logs(self, rq: web.Request) -> Any:
        """302 to an unauthenticated, short-lived download URL, as GitHub does."""
        repo = rq[REPO]
        job = self._get(repo.jobs, self._num(rq, "job_id"))
        if job["__log"] is None:  # logs expire (90 days by default, less by the repository's settings)
            raise ApiError(410, "Gone")
        url = f"{rq.scheme}://{rq.host}/_sandbox/logs/{repo.full_name}/{job['id']}?sig={secrets.token_hex(8)}"
        return web.Response(status=302, headers={"Location": url})

    def h_log_download(self, rq: web.Request) -> Any:
        repo = self._get(self._repos, f"{rq.match_info['owner']}/{rq.match_info['repo']}".lower())
        log = self._get(repo.jobs, self._num(rq, "job_id"))["__log"]  # bytes: a log GitHub cannot decode either
        return web.Response(body=log if isinstance(log, bytes) else log.encode(), content_type="text/plain",
                            charset="utf-8")
