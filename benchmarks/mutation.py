"""Mutation testing of the modules where a silent change costs most: how many small changes the tests catch.

For each module, mutmut (3.x) writes every mutant of its functions (an operator swapped, a constant changed,
an argument dropped, ...) and runs the tests that matter for that module against each one. A mutant is
*killed* when a test fails, *survives* when they all pass, and has *no tests* when none of those tests
calls the function it lives in. The score is

    killed ÷ (all − skipped)

so a mutant that no test reaches counts as a survivor, and a timeout is shown but not counted as killed.
(mutmut 3 reports "skipped" only for mutants it was told not to run; lines marked ``# pragma: no mutate``
make no mutant at all.) The target is 85% for each module.

Each module runs in its own folder, ``.mutation/<module>/`` (links to bot/, tests/, fixtures/, workflows/,
pyproject.toml, and mutmut's ``mutants/`` copy), with mutmut's ``only_mutate`` narrowed to that one file and
its tests narrowed to the files in ``MODULES`` below: one module's run neither invalidates nor waits on
another's. Every run starts from scratch (mutmut keeps a survivor's verdict even when a new test would
now kill it); ``--report`` prints the last run's figures again without running anything.

Not part of CI, and pytest never collects it (``testpaths = ["tests"]``; ``.mutation/`` is hidden).
Shared settings are ``[tool.mutmut]`` in pyproject.toml. Install mutmut with ``pip install -e '.[mutation]'``.

    nice -n 19 python benchmarks/mutation.py                      # all six modules (~?? min on 2 cores)
    nice -n 19 python benchmarks/mutation.py commands events      # some of them
    python benchmarks/mutation.py commands --report --survivors   # the last run again, with each survivor's diff
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common as C

ROOT = C.ROOT
WORK = ROOT / ".mutation"
LINKED = ("bot", "tests", "fixtures", "workflows", "app.yml", "pyproject.toml")
TARGET = 85.0

# module → (its file, the tests that matter for it): globs or pytest node ids; a kill-test file that does not
# exist yet is simply left out. Chosen for speed: the tests that call the module directly or through one thin
# layer, not the whole suite (~4 min, times hundreds of mutants).
MODULES: dict[str, tuple[str, list[str]]] = {
    "commands": ("bot/core/commands.py", ["tests/test_kills_commands.py", "tests/test_fuzz.py"]),
    "gate": ("bot/agents/gate.py", ["tests/test_kills_gate.py", "tests/test_agents_gate.py",
                                    "tests/test_agents_offline.py", "tests/test_agents_runner.py"]),
    # The direct tests only: the end-to-end files reach writes too, but cost minutes per mutant on two cores.
    "writes": ("bot/github/writes.py", ["tests/test_kills_writes.py"]),
    "server": ("bot/web/server.py", ["tests/test_kills_server.py", "tests/test_webhook.py", "tests/test_metrics.py"]),
    "events": ("bot/core/events.py", ["tests/test_kills_events.py", "tests/test_events.py", "tests/test_fuzz.py"]),
    "engine": ("bot/core/engine.py", ["tests/test_kills_engine.py", "tests/test_engine.py"]),
    "run_records": ("bot/core/run_records.py", ["tests/test_kills_engine.py", "tests/test_engine.py"]),
}

# What mutmut's exit codes mean (mutmut.stats.status_by_exit_code), folded into the columns printed here.
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no_tests", 33: "no_tests", 34: "skipped",
          36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", None: "not_checked"}
COLUMNS = ["module", "all", "skipped", "killed", "survived", "no_tests", "timeout", "other", "score_%", "met",
           "tests", "wall_s"]

# Run inside a module's folder: mutmut's own configuration (pyproject's [tool.mutmut]) with the module's file
# and tests put in, then either mutmut's `run` or the diffs of the mutants named in the job. This and
# `verdicts` lean on mutmut 3's configuration object and its .meta files: hence the pin `mutmut>=3.8,<4`.
_INSIDE = r"""
import json, sys
from mutmut import configuration
cfg = configuration.config()
job = json.loads(sys.argv[1])
cfg.only_mutate = [job["path"]]
cfg.pytest_add_cli_args_test_selection = job["tests"]
if job["do"] == "run":
    from mutmut.__main__ import cli
    cli(["run", "--max-children", str(job["max_children"])])
else:
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    print(json.dumps({name: get_diff_for_mutant(name, path=job["path"]) for name in job["names"]}))
"""


def folder(module: str) -> Path:
    return WORK / module


def tests_for(module: str) -> list[str]:
    found: list[str] = []
    for pattern in MODULES[module][1]:
        path, sep, test = pattern.partition("::")  # a single test (tests/test_x.py::test_y) is kept as given
        found += sorted(str(Path(p).relative_to(ROOT)) + sep + test for p in glob.glob(str(ROOT / path)))
    return list(dict.fromkeys(found))


def prepare(module: str) -> Path:
    """A fresh folder for the module: links to the project, no mutants from an earlier run."""
    where = folder(module)
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    for name in LINKED:
        (where / name).symlink_to(os.path.relpath(ROOT / name, where))
    return where


def inside(module: str, job: dict[str, Any], **kw: Any) -> subprocess.CompletedProcess[str]:
    tests = tests_for(module)
    if not tests:  # an empty selection would make mutmut run the whole suite for every mutant
        raise SystemExit(f"{module}: none of its tests exist: {', '.join(MODULES[module][1])}")
    job = {"path": MODULES[module][0], "tests": tests, **job}
    return subprocess.run([sys.executable, "-c", _INSIDE, json.dumps(job)], cwd=folder(module), text=True, **kw)


def run(module: str, max_children: int, verbose: bool) -> None:
    """mutmut's run for one module, from scratch; its wall time and, if it failed, why, beside its results."""
    where = prepare(module)
    t0 = time.monotonic()
    with (where / "mutmut.log").open("w") as log:
        done = inside(module, {"do": "run", "max_children": max_children},
                      stdout=None if verbose else log, stderr=subprocess.STDOUT)
    (where / "wall_s").write_text(f"{time.monotonic() - t0:.1f}\n")
    if done.returncode != 0:
        # Most often a selected test fails without any mutant ("Failed to run clean test"): fix that first.
        lines = [ln for ln in (where / "mutmut.log").read_text(errors="replace").splitlines() if ln.strip()]
        why = f"mutmut exited with {done.returncode}: {lines[-1][-200:] if lines else ''} (log: {where / 'mutmut.log'})"
        (where / "error").write_text(why + "\n")
        print(f"{module}: {why}", file=sys.stderr)


def verdicts(module: str) -> dict[str, str]:
    """Each mutant's name → status, from mutmut's record of the module's last run."""
    meta = folder(module) / "mutants" / (MODULES[module][0] + ".meta")
    if not meta.exists():
        return {}
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    return {name: STATUS.get(code, "other") for name, code in codes.items()}


def figures(module: str) -> dict[str, Any]:
    v = verdicts(module)
    row: dict[str, Any] = {"module": module, "all": len(v)}
    for status in ("skipped", "killed", "survived", "no_tests", "timeout", "not_checked"):
        row[status] = sum(1 for s in v.values() if s == status)
    row["other"] = sum(1 for s in v.values() if s == "other") + row.pop("not_checked")
    counted = row["all"] - row["skipped"]
    row["score_%"] = round(100 * row["killed"] / counted, 1) if counted else None
    row["met"] = row["score_%"] is not None and row["score_%"] >= TARGET
    wall, error = folder(module) / "wall_s", folder(module) / "error"
    row["wall_s"] = float(wall.read_text()) if wall.exists() else None
    row["tests"] = " ".join(Path(t).name for t in tests_for(module))
    if error.exists():
        row["error"] = error.read_text().strip()
    return row


def survivors(module: str) -> None:
    """Every mutant not killed (survived, no tests, timeout, other), with its diff, for someone to classify."""
    left = {name: s for name, s in verdicts(module).items() if s not in ("killed", "skipped")}
    if not left:
        return
    done = inside(module, {"do": "diff", "names": sorted(left)}, capture_output=True)
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return
    diffs = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\n## {module}: {len(left)} not killed\n")
    for name in sorted(left):
        print(f"### {name} ({left[name]})\n```diff\n{diffs[name]}\n```")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", metavar="module", help=f"any of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--report", action="store_true", help="print the last run's figures; run nothing")
    parser.add_argument("--survivors", action="store_true", help="also list every mutant not killed, with its diff")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2, help="mutants run at once")
    parser.add_argument("-v", "--verbose", action="store_true", help="mutmut's own output on the terminal")
    args = parser.parse_args()
    modules = args.modules or list(MODULES)
    if unknown := [m for m in modules if m not in MODULES]:
        parser.error(f"unknown module(s) {', '.join(unknown)}: choose from {', '.join(MODULES)}")
    try:
        import mutmut  # noqa: F401
    except ImportError:
        print("mutmut is not installed: pip install -e '.[mutation]'", file=sys.stderr)
        return 2
    C.emit({"bench": "mutation", "machine": C.machine(), "mutmut": _version("mutmut"), "modules": modules})
    rows = []
    for module in modules:
        if not args.report:
            run(module, args.max_children, args.verbose)
        row = figures(module)
        C.emit({"bench": "mutation", **row})
        rows.append(row)
    total: dict[str, Any] = {"module": "total"}
    for key in ("all", "skipped", "killed", "survived", "no_tests", "timeout", "other"):
        total[key] = sum(r[key] for r in rows)
    counted = total["all"] - total["skipped"]
    total["score_%"] = round(100 * total["killed"] / counted, 1) if counted else None
    total["wall_s"] = sum(r["wall_s"] or 0 for r in rows)
    C.table(rows + [total], COLUMNS, title=f"Mutation score: killed ÷ (all − skipped), target {TARGET:.0f}% each")
    if args.survivors:
        for module in modules:
            survivors(module)
    return 0 if all(r["met"] for r in rows) else 1


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    sys.exit(main())
