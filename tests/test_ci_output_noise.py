"""Lines a failed log shares with the same job's green runs are noise (issue 15, point 5).

The set has no green logs, so each pair here is built from a real failed log: the green run is the same
output as it looks when the failing part passes, with its durations, ids and paths changed the way they
change between runs. The shared lines must be noise and the failing lines must not.
"""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest

from bot.core.ci_output import noise
from bot.core.ci_output.clean import clean_lines
from bot.core.ci_output.errors import root_error
from bot.core.ci_output.noise import noise_lines, normalise

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "ci_logs"

# ctest-sailfish-simple-test as a green run: both tests pass, other durations.
SAILFISH_GREEN = """[root@RXZQ01 sailfish]# make test
Running tests...
/usr/bin/ctest --force-new-ctest-process
Test project /root/sailfish
    Start 1: unit_tests
1/2 Test #1: unit_tests .......................   Passed   21.02 sec
    Start 2: simple_test
2/2 Test #2: simple_test ......................   Passed    0.02 sec

100% tests passed, 0 tests failed out of 2

Total Test time (real) =  21.05 sec
[root@RXZQ01 sailfish]#
"""


def test_a_real_logs_lines_shared_with_its_green_run_are_noise_and_its_failing_lines_are_not() -> None:
    red = clean_lines((BENCH / "ctest-sailfish-simple-test.log").read_text(encoding="utf-8"))
    found = noise_lines(red, (SAILFISH_GREEN,))
    failing = {i for i, line in enumerate(red) if "Failed" in line or "FAILED" in line or "simple_test (" in line
               or "CTest" in line or "错误" in line}
    shared = {i for i, line in enumerate(red) if line.strip()} - failing
    assert {red[i] for i in failing} >= {"2/2 Test #2: simple_test ......................***Failed    0.01 sec",
                                         "make: *** [test] 错误 8"}
    assert found == shared  # the durations differ (23.59 against 21.02 sec): normalised away
    root = root_error(red, found)
    assert root is not None and "***Failed" in root.line


def _job(step_ms: int, run_id: str, sha: str, tail: str) -> str:
    """A GitHub Actions pytest job log: setup that varies only in ids and times, then the tests."""
    return "\n".join([
        "##[group]Run actions/checkout@v4", "Syncing repository: octo-org/app",
        f"HEAD is now at {sha[:7]} Merge {sha} into {sha[8:15]}", "##[endgroup]",
        f"Downloading https://files.pythonhosted.org/packages/{run_id}/pytest-8.3.{step_ms % 9}-py3-none-any.whl",
        f"Successfully installed pytest-8.3.{step_ms % 9} pluggy-1.5.0",
        "Error: optional plugin 'xdist' not installed, running serially",  # alarming, yet every green run says it
        f"cache dir /tmp/pytest-of-runner/pytest-{run_id}", "collected 120 items", "",
        "tests/test_api.py ........................................ [ 33%]",
        tail]) + "\n"


GREEN_TAIL = "tests/test_db.py ............................................ [100%]\n\n{n} passed in {t}s"
RED_TAIL = """tests/test_db.py ......F..................................... [100%]

=================================== FAILURES ===================================
_________________________________ test_insert __________________________________

    def test_insert(db):
>       assert db.insert(row) == 1
E       assert 0 == 1

tests/test_db.py:44: AssertionError
=========================== short test summary info ============================
FAILED tests/test_db.py::test_insert - assert 0 == 1
1 failed, 119 passed in 3.92s"""


def test_an_error_looking_line_green_runs_print_is_noise_and_the_root_error_passes_it() -> None:
    greens = tuple(_job(ms, str(9000 + ms), sha, GREEN_TAIL.format(n=120, t=f"3.{ms}"))
                   for ms, sha in ((412, "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"),
                                   (388, "0f1e2d3c4b5a69788796a5b4c3d2e1f001234567")))
    red = clean_lines(_job(455, "9455", "4e1c0a9f00112233445566778899aabbccddeeff", RED_TAIL))
    found = noise_lines(red, greens)
    plugin = red.index("Error: optional plugin 'xdist' not installed, running serially")
    assert plugin in found and set(range(plugin)) - {3} <= found  # setup, ids and times aside
    for failing in ("E       assert 0 == 1", "FAILED tests/test_db.py::test_insert - assert 0 == 1",
                    "_________________________________ test_insert __________________________________"):
        assert red.index(failing) not in found
    without = root_error(red)
    assert without is not None and without.line_number == plugin + 1  # what it would quote without green runs
    root = root_error(red, found)
    assert root is not None and root.line == "E       assert 0 == 1"


def test_a_new_message_of_a_logger_green_runs_use_is_not_noise() -> None:
    """The mining similarity: two green lines of four tokens with two alike stay two templates, so the failed
    run's new message from the same logger matches neither (at 0.5 they would merge into
    ``ERROR app.worker <*> <*>`` and swallow it)."""
    green = "ERROR app.worker retry scheduled\nERROR app.worker job done\n"
    red = ["ERROR app.worker database unreachable", "ERROR app.worker retry scheduled"]
    assert noise_lines(red, (green,)) == frozenset({1})


def test_the_same_line_about_another_item_is_noise() -> None:
    """The other side of the similarity: green runs' downloads of two packages make one template, so a
    download only the failed run made is noise too (at 0.8 the two would stay apart and it would not be)."""
    green = "Downloading foo-1.2.whl (12 kB)\nDownloading bar-3.0.whl (4 kB)\n"
    assert noise_lines(["Downloading baz-2.0.whl (7 kB)"], (green,)) == frozenset({0})


def test_what_varies_between_runs_is_normalised() -> None:
    one = normalise("2026-01-01T10:00:00Z job 4f9c2ab1 took 3.2s in /tmp/tmpa1b2/x.py on v1.2.3 (17 items) 10:00:01")
    two = normalise("2026-03-09T22:41:07Z job 0b7d1e99 took 815ms in /tmp/tmpzz9q/x.py on v1.2.4 (3 items) 22:41:08")
    assert one == two
    assert normalise("src/app.ts:58:14 error") != normalise("src/app.ts:58:14 warning")


@pytest.mark.parametrize("greens", [(), ("",), (None, b"bytes", 3)])
def test_no_usable_green_logs_means_no_noise(greens: tuple[str, ...]) -> None:
    assert noise_lines(["error: x", "ok"], greens) == frozenset()


def test_nothing_is_kept_between_calls() -> None:
    assert noise_lines(["Compiling foo v1.0.0"], ("Compiling foo v0.9.0\n",)) == frozenset({0})
    assert noise_lines(["Compiling foo v1.0.0"], ("something else entirely\n",)) == frozenset()


# ---- bounds ------------------------------------------------------------------------------------------------

def test_only_the_last_lines_of_the_failed_log_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(noise, "MAX_LINES", 10)
    red = ["shared line"] + [f"unrelated line number {'x' * i}" for i in range(15)] + ["shared line"]
    assert noise_lines(red, ("shared line\n",)) == frozenset({16})


def test_green_logs_are_mined_up_to_a_share_of_the_cap_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(noise, "MAX_GREEN_LINES", 100)
    filler = "\n".join(f"step {w}" for w in _words(60))
    late = filler + "\n" + filler + "\nlate shared line\n"  # line 121 of the first green log: past its share
    early = "early shared line\n" + filler
    assert noise_lines(["late shared line", "early shared line"], (late, early)) == frozenset({1})


def test_mining_stops_at_the_template_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Green logs of nothing but distinct lines (a file listing, a dump) teach no template worth keeping and
    would make every later line cost a scan of all of them."""
    monkeypatch.setattr(noise, "MAX_TEMPLATES", 50)
    varied = "\n".join(" ".join(_words(5, seed=i)) for i in range(80)) + "\nshared line at the end\n"
    assert noise_lines(["shared line at the end"], (varied,)) == frozenset()


def test_a_huge_hostile_pair_stays_bounded() -> None:
    green = "\n".join(" ".join(_words(12, seed=i)) for i in range(3000)) + "\n" + "z" * 2_000_000
    red = clean_lines(green + "\n" + "\n".join(["E   assert False"] * 1000))
    found = noise_lines(red, (green,))
    assert all(i >= len(red) - noise.MAX_LINES for i in found)
    assert not any(red[i] == "E   assert False" for i in found)


def _words(n: int, seed: int = 0) -> list[str]:
    rnd = random.Random(seed)
    return ["".join(rnd.choice(string.ascii_lowercase) for _ in range(8)) for _ in range(n)]
