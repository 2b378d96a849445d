"""Checks and Actions in the sandbox GitHub's model: check suites and runs (with annotations), workflow
runs and their jobs (each job also a check run with the same id, as on GitHub), job logs (a ``None`` log has
expired: 410) and a run's artifacts (zip bytes, a listed size that may differ from them, expiry)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from .apps import AppsState
from .base import WEB, Repo, custom_invalid, invalid, iso, node_id, public

CHECK_STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
CONCLUSIONS = ("action_required", "cancelled", "timed_out", "failure", "neutral", "skipped", "stale", "success")
ANNOTATION_KEYS = ("path", "start_line", "end_line", "start_column", "end_column", "annotation_level", "title",
                   "message", "raw_details")


class ChecksState(AppsState):
    """Check suites and runs, workflow runs and jobs, as CI (or another App) would leave them."""

    def _suite(self, repo: Repo, head_sha: str, suite_id: int | None = None, head_branch: str | None = None) -> dict:
        """The given suite, else this app's suite for ``head_sha`` (created on demand)."""
        if suite_id in repo.check_suites:
            return repo.check_suites[suite_id]
        if suite_id is None and (s := next((s for s in repo.check_suites.values() if s["head_sha"] == head_sha), None)):
            return s
        sid = self._new_id(suite_id)
        repo.check_suites[sid] = {
            "id": sid, "node_id": node_id("CS", sid), "head_branch": head_branch, "head_sha": head_sha,
            "status": "queued", "conclusion": None, "url": f"{repo.api}/check-suites/{sid}", "before": None,
            "after": head_sha, "pull_requests": [], "app": self.app_info, "created_at": iso(), "updated_at": iso(),
            "check_runs_url": f"{repo.api}/check-suites/{sid}/check-runs", "head_commit": {"id": head_sha}}
        return repo.check_suites[sid]

    def _pushed(self, repo: Repo, head_sha: str, head_branch: str | None) -> None:
        """CI runs on a pushed commit: a commit this repository does not know yet becomes the newest of its branch
        (the branch's tree, under the given sha), so asking GitHub whether it is on the branch says it is. A
        commit already known (a fork's, a pull request's) is left where it is."""
        key = f"refs/heads/{head_branch or repo.data['default_branch']}"
        if head_sha in self._objects or not re.fullmatch(r"[0-9a-f]{40}", head_sha) or key not in repo.refs:
            return
        parent = repo.refs[key]
        self._objects[head_sha] = self._objects[parent] | {"parents": [parent], "message": "Pushed"}
        repo.refs[key] = head_sha

    def suite_json(self, repo: Repo, suite: dict) -> dict:
        """Status/conclusion derived from the suite's runs, worst conclusion first, as GitHub does."""
        d = public(suite) | {"repository": self.repo_json(repo, brief=True)}
        runs = [r for r in repo.check_runs.values() if r["check_suite"]["id"] == suite["id"]]
        d["latest_check_runs_count"] = len(runs)
        if runs:
            done = all(r["status"] == "completed" for r in runs)
            d["status"] = "completed" if done else "in_progress"
            d["conclusion"] = min((r["conclusion"] or "success" for r in runs), key=CONCLUSIONS.index) if done else None
        return d

    def make_check_run(self, repo: Repo, data: dict, *, id: int | None = None, suite_id: int | None = None,
                       head_branch: str | None = None) -> dict:
        """Create a check run from a POST body (name, head_sha, status, conclusion, output...)."""
        for f in ("name", "head_sha"):
            if not data.get(f):
                raise invalid("CheckRun", f)
        rid, suite = self._new_id(id), self._suite(repo, data["head_sha"], suite_id, head_branch)
        run = repo.check_runs[rid] = {
            "id": rid, "node_id": node_id("CR", rid), "head_sha": data["head_sha"], "name": data["name"],
            "external_id": "", "url": f"{repo.api}/check-runs/{rid}", "html_url": f"{WEB}/{repo.full_name}/runs/{rid}",
            "details_url": None, "status": "queued", "conclusion": None, "started_at": iso(), "completed_at": None,
            "check_suite": {"id": suite["id"]}, "app": data.get("app") or self.app_info, "pull_requests": [],
            "__annotations": [],
            "output": {"title": None, "summary": None, "text": None, "annotations_count": 0,
                       "annotations_url": f"{repo.api}/check-runs/{rid}/annotations"}}
        self.update_check_run(repo, run, data | {"status": data.get("status") or "queued"})
        return run

    def update_check_run(self, repo: Repo, run: dict, data: dict) -> None:
        if data.get("status") not in (None, *CHECK_STATUSES):
            raise invalid("CheckRun", "status", "invalid")
        if data.get("conclusion") not in (None, *CONCLUSIONS):
            raise invalid("CheckRun", "conclusion", "invalid")
        if data.get("status") == "completed" and not (data.get("conclusion") or run["conclusion"]):
            raise custom_invalid("CheckRun", "Conclusion must be provided when status is completed")
        run.update({k: data[k] for k in ("name", "details_url", "external_id", "status", "started_at") if k in data})
        if data.get("conclusion"):
            run["conclusion"], run["status"] = data["conclusion"], "completed"
        if run["status"] == "completed":
            run["completed_at"] = data.get("completed_at") or run["completed_at"] or iso()
        out = data.get("output") or {}
        run["output"].update({k: out[k] for k in ("title", "summary", "text") if k in out})
        run["__annotations"] += [{k: a.get(k) for k in ANNOTATION_KEYS}
                                 | {"blob_href": f"{WEB}/{repo.full_name}/blob/{run['head_sha']}/{a.get('path')}"}
                                 for a in out.get("annotations", [])]
        run["output"]["annotations_count"] = len(run["__annotations"])

    def add_check_run(self, full_name: str, *, name: str = "ci", head_sha: str | None = None,
                      status: str = "completed", conclusion: str | None = "failure", output: dict | None = None,
                      check_suite_id: int | None = None, id: int | None = None, head_branch: str | None = None,
                      details_url: str | None = None, external_id: str = "", app: dict | None = None) -> dict:
        """A check run as CI (or, with ``app``, another GitHub App) would create it."""
        repo = self.repo(full_name)
        if head_sha:
            self._pushed(repo, head_sha, head_branch)
        data = {"name": name, "head_sha": head_sha or self.branch_sha(repo, None), "status": status,
                "conclusion": conclusion if status == "completed" else None, "output": output or {},
                "details_url": details_url, "external_id": external_id, "app": app}
        return public(self.make_check_run(repo, data, id=id, suite_id=check_suite_id, head_branch=head_branch))

    def add_workflow_run(self, full_name: str, *, name: str = "CI", head_sha: str | None = None,
                         head_branch: str | None = None, status: str = "completed", conclusion: str | None = "failure",
                         event: str = "push", jobs: list[dict] | None = None, id: int | None = None,
                         check_suite_id: int | None = None, pull_requests: Iterable[int] = (),
                         path: str = ".github/workflows/ci.yml") -> dict:
        """A workflow run; each job ({name, conclusion, log, status?, steps?, id?}) is also a check run with the
        same id, as on GitHub, so a check_run event's id works as a job id."""
        repo = self.repo(full_name)
        head_branch = head_branch or repo.data["default_branch"]
        head_sha = head_sha or self.resolve(repo, head_branch) or self.branch_sha(repo, None)
        self._pushed(repo, head_sha, head_branch)
        rid, suite = self._new_id(id), self._suite(repo, head_sha, check_suite_id, head_branch)
        # One workflow per file, as on GitHub: its runs share the workflow's id.
        workflow_id = next((r["workflow_id"] for r in repo.runs.values() if r["path"] == path), None) or self._new_id()
        url = f"{repo.api}/actions/runs/{rid}"
        run = repo.runs[rid] = {
            "id": rid, "name": name, "node_id": node_id("WFR", rid), "head_branch": head_branch, "head_sha": head_sha,
            "path": path, "display_title": name, "run_number": len(repo.runs) + 1, "run_attempt": 1, "event": event,
            "status": status, "conclusion": conclusion, "check_suite_id": suite["id"], "url": url,
            "workflow_id": workflow_id, "workflow_url": f"{repo.api}/actions/workflows/{workflow_id}",
            "html_url": f"{WEB}/{repo.full_name}/actions/runs/{rid}", "created_at": iso(), "updated_at": iso(),
            "pull_requests": [{"number": n, "url": f"{repo.api}/pulls/{n}"} for n in pull_requests],
            "jobs_url": url + "/jobs", "logs_url": url + "/logs", "artifacts_url": url + "/artifacts",
            "check_suite_url": f"{repo.api}/check-suites/{suite['id']}", "cancel_url": url + "/cancel",
            "rerun_url": url + "/rerun", "actor": self.user("octocat"),
            "head_repository": self.repo_json(repo, brief=True),
            "head_commit": {"id": head_sha}, "repository": self.repo_json(repo, brief=True), "__artifacts": []}
        for j in jobs or []:
            self._add_job(repo, run, j)
        return public(run)

    def add_artifact(self, full_name: str, run_id: int, name: str, data: bytes, *, size_in_bytes: int | None = None,
                     expired: bool = False, id: int | None = None) -> dict:
        """An artifact a run uploaded: its zip `data`, listed with `size_in_bytes` (default: the true size; GitHub's
        listing and the download can disagree) and `expired` (its download then answers 410)."""
        repo = self.repo(full_name)
        run, aid = repo.runs[run_id], self._new_id(id)
        expires = datetime.now(UTC) + (timedelta(days=-1) if expired else timedelta(days=90))
        artifact = {"id": aid, "node_id": node_id("AR", aid), "name": name,
                    "size_in_bytes": len(data) if size_in_bytes is None else size_in_bytes,
                    "url": f"{repo.api}/actions/artifacts/{aid}",
                    "archive_download_url": f"{repo.api}/actions/artifacts/{aid}/zip", "expired": expired,
                    "created_at": iso(), "updated_at": iso(), "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "digest": None, "workflow_run": {"id": run["id"], "repository_id": repo.data["id"],
                                                     "head_repository_id": repo.data["id"],
                                                     "head_branch": run["head_branch"], "head_sha": run["head_sha"]},
                    "__data": data}
        run["__artifacts"].append(artifact)
        return public(artifact)

    def find_artifact(self, repo: Repo, artifact_id: int) -> dict | None:
        return next((a for r in repo.runs.values() for a in r.get("__artifacts", []) if a["id"] == artifact_id), None)

    def _add_job(self, repo: Repo, run: dict, j: dict) -> dict:
        """One job ({name, conclusion, log, status?, steps?, id?, annotations?, output?}); a ``None`` log has
        expired (410), ``annotations`` and ``output`` go on its check run as a reporter would put them."""
        status = j.get("status") or "completed"
        conc = (j.get("conclusion") or "success") if status == "completed" else None
        output = (j.get("output") or {}) | {"annotations": j.get("annotations") or []}
        cr = self.make_check_run(repo, {"name": j["name"], "head_sha": run["head_sha"], "status": status,
                                        "conclusion": conc, "output": output},
                                 id=j.get("id"), suite_id=run["check_suite_id"])
        steps = j.get("steps") or [
            {"name": "Set up job", "status": "completed", "conclusion": "success", "number": 1},
            {"name": f"Run {j['name']}", "status": status, "conclusion": conc, "number": 2}]
        repo.jobs[cr["id"]] = {
            "id": cr["id"], "run_id": run["id"], "run_url": run["url"], "node_id": node_id("CJ", cr["id"]),
            "head_sha": run["head_sha"], "head_branch": run["head_branch"],
            "url": f"{repo.api}/actions/jobs/{cr['id']}",
            "html_url": f"{run['html_url']}/job/{cr['id']}", "check_run_url": cr["url"], "status": status,
            "conclusion": conc, "started_at": iso(), "completed_at": iso() if conc else None, "name": j["name"],
            "steps": steps, "labels": ["ubuntu-latest"], "workflow_name": run["name"], "__log": j.get("log", ""),
            "created_at": run["created_at"], "runner_id": 1, "runner_name": "GitHub Actions 1", "runner_group_id": 2,
            "runner_group_name": "GitHub Actions"}
        return repo.jobs[cr["id"]]
