"""Structured CI data read without trusting it: check-run annotations as GitHub returns them (the runner's
exit-code trailer dropped), and JUnit/xUnit reports from hostile artifact zips (bombs, lies, junk: nothing)."""

from __future__ import annotations

import io
import struct
import zipfile
from typing import Any

import pytest

from bot.core.ci_output import reports
from bot.core.ci_output.records import Annotation, FailedCase
from bot.core.ci_output.reports import cases_from_xml, cases_from_zip, is_report_artifact, useful_annotations

TRAILER = {"path": ".github", "start_line": 17, "end_line": 17, "start_column": None, "end_column": None,
           "annotation_level": "failure", "title": "", "message": "Process completed with exit code 1.",
           "raw_details": None, "blob_href": "https://github.com/o/r/blob/abc/.github"}
PYTEST_NOTE = {"path": "tests/test_api.py", "start_line": 42, "annotation_level": "failure",
               "title": "test_create", "message": "AssertionError: 500 != 201"}

JUNIT = b"""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="2" skipped="1" tests="5">
  <testcase classname="tests.test_api" name="test_create" time="0.01">
    <failure message="AssertionError: 500 != 201">def test_create():\n&gt; assert 500 == 201</failure>
  </testcase>
  <testcase classname="tests.test_api" name="test_list" time="0.01"/>
  <testcase classname="tests.test_db" name="test_connect">
    <error>
      sqlalchemy.exc.OperationalError: could not connect
      Traceback follows</error>
  </testcase>
  <testcase classname="tests.test_db" name="test_slow"><skipped message="slow"/></testcase>
  <testcase classname="com.example.FooTest" name="testBar" file="src/test/FooTest.java" line="31">
    <failure type="java.lang.AssertionError"/>
  </testcase>
</testsuite></testsuites>"""

ENTITY_BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>
<testsuite><testcase name="&lol2;"><failure message="&lol2;"/></testcase></testsuite>"""
EXTERNAL = b"""<?xml version="1.0"?><!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<testsuite><testcase name="t"><failure message="&x;"/></testcase></testsuite>"""


def zipped(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def failing_suite(n: int, prefix: str = "t") -> bytes:
    cases = "".join(f'<testcase classname="c" name="{prefix}{i}"><failure message="m"/></testcase>' for i in range(n))
    return f"<testsuite>{cases}</testsuite>".encode()


# ---------------------------------------------------------------- annotations

def test_annotations_drop_the_runners_exit_code_trailer_and_keep_the_reporters() -> None:
    found = useful_annotations([TRAILER, PYTEST_NOTE])
    assert found == (Annotation(path="tests/test_api.py", start_line=42, level="failure", title="test_create",
                                message="AssertionError: 500 != 201"),)


def test_runner_notices_are_noise_but_a_cancellation_is_kept_for_the_infrastructure_reading() -> None:
    deprecated = {"path": ".github", "annotation_level": "warning",
                  "message": "Node.js 16 actions are deprecated. Please update the following actions: x/y@v1"}
    cancelled = {"path": ".github", "annotation_level": "failure", "message": "The operation was canceled."}
    assert [a.message for a in useful_annotations([deprecated, cancelled, TRAILER])] == ["The operation was canceled."]


def test_annotations_tolerate_what_github_or_another_app_may_send() -> None:
    odd: list[Any] = [None, "text", 7, {"message": None, "title": None}, {},
                      {"path": None, "start_line": True, "annotation_level": 3, "title": ["x"], "message": "kept"},
                      {"path": "a.py", "start_line": "12", "message": "line as a string"},
                      {"path": "b.py", "start_line": -1, "message": "x" * 5000}]
    found = useful_annotations(odd)
    assert [(a.path, a.start_line, a.level, a.title) for a in found] == [("", None, "", ""), ("a.py", None, "", ""),
                                                                          ("b.py", None, "", "")]
    assert len(found[2].message) == 1000
    assert useful_annotations(None) == useful_annotations({"message": "not a list"}) == useful_annotations("x") == ()


def test_annotations_are_capped_at_one_page() -> None:
    many = [{"path": f"f{i}.py", "start_line": 1, "annotation_level": "failure", "message": f"e{i}"} for i in range(70)]
    found = useful_annotations(many)
    assert len(found) == 50 and found[-1].message == "e49"


# ---------------------------------------------------------------- JUnit XML

def test_junit_failures_and_errors_are_read_and_skips_and_passes_are_not() -> None:
    assert cases_from_xml(JUNIT) == (
        FailedCase(name="tests.test_api.test_create", message="AssertionError: 500 != 201"),
        FailedCase(name="tests.test_db.test_connect", message="sqlalchemy.exc.OperationalError: could not connect"),
        FailedCase(name="com.example.FooTest.testBar", message="", file="src/test/FooTest.java", line=31))


def test_a_lone_testsuite_root_nested_suites_and_names_that_repeat_the_class() -> None:
    jest = (b'<testsuites><testsuite name="outer"><testsuite name="inner">'
            b'<testcase classname="Bar when clicked" name="Bar when clicked fills">'
            b'<failure>expect(received).toBe(expected)\n\nExpected: 1</failure></testcase>'
            b'<testcase name="no class"><failure message="' + b"m" * 900 + b'"/></testcase>'
            b'</testsuite></testsuite></testsuites>')
    found = cases_from_xml(jest)
    assert [c.name for c in found] == ["Bar when clicked fills", "no class"]
    assert found[0].message == "expect(received).toBe(expected)" and len(found[1].message) == 300


def test_failed_cases_are_capped() -> None:
    assert len(cases_from_xml(failing_suite(150))) == reports.MAX_CASES == 100


@pytest.mark.parametrize("data", [ENTITY_BOMB, EXTERNAL, b"<testsuite><testcase", b"", b"\xff\xfe\x00junk",
                                  b"<html><body>not a report</body></html>", b"<?xml version='1.0'?>"])
def test_malformed_or_hostile_xml_gives_nothing_and_raises_nothing(data: bytes) -> None:
    assert cases_from_xml(data) == ()


def test_entities_are_refused_by_defusedxml_not_merely_unused() -> None:
    # Without defusedxml the standard parser expands internal entities: the bomb's case would be read.
    small = b'<!DOCTYPE t [<!ENTITY e "expanded">]><testsuite><testcase name="&e;"><failure/></testcase></testsuite>'
    assert cases_from_xml(small) == ()


# ---------------------------------------------------------------- artifact zips

def test_a_zip_of_reports_is_read_entry_by_entry_and_only_xml_entries() -> None:
    data = zipped({"reports/": b"", "reports/TEST-api.xml": JUNIT, "reports/extra.XML": failing_suite(1, "x"),
                   "reports/junit.txt": failing_suite(1, "txt"), "../../etc/evil.xml": failing_suite(1, "evil")})
    names = [c.name for c in cases_from_zip(data)]
    assert names == ["tests.test_api.test_create", "tests.test_db.test_connect", "com.example.FooTest.testBar",
                     "c.x0", "c.evil0"]  # a path-like name is only a name: nothing is written to disk


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04 not really", JUNIT, b"\x00" * 1000])
def test_not_a_zip_gives_nothing(data: bytes) -> None:
    assert cases_from_zip(data) == ()


def test_a_zip_of_too_many_entries_is_refused_whole() -> None:
    many = {f"r/{i}.xml": failing_suite(1, f"t{i}-") for i in range(reports.MAX_ENTRIES + 1)}
    assert cases_from_zip(zipped(many)) == ()
    many.pop("r/0.xml")
    assert len(cases_from_zip(zipped(many))) == reports.MAX_CASES  # at the cap it is read


def test_a_zip_bomb_entry_is_not_inflated() -> None:
    # A well-formed report padded past the cap: read whole or cut at the cap, it would still name "bomb0".
    bomb = failing_suite(1, "bomb") + b" " * (reports.MAX_ENTRY_BYTES + 10)
    data = zipped({"bomb.xml": bomb, "ok.xml": failing_suite(1, "ok")})
    assert len(data) < 100_000  # a few kilobytes that inflate past the cap
    assert [c.name for c in cases_from_zip(data)] == ["c.ok0"]


def test_an_entry_whose_header_lies_about_its_size_gives_nothing() -> None:
    data = bytearray(zipped({"lie.xml": failing_suite(500, "lie")}))
    struct.pack_into("<I", data, 22, 40)  # the local header's uncompressed size
    struct.pack_into("<I", data, data.find(b"PK\x01\x02") + 24, 40)  # and the central directory's
    assert cases_from_zip(bytes(data)) == ()


def test_the_entries_together_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = failing_suite(1, "0-")
    monkeypatch.setattr(reports, "MAX_TOTAL_BYTES", 2 * len(entry) + 1)
    data = zipped({f"{i}.xml": failing_suite(1, f"{i}-") for i in range(5)})
    assert [c.name for c in cases_from_zip(data)] == ["c.0-0", "c.1-0"]


def test_an_artifact_over_the_size_cap_is_not_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    data = zipped({"a.xml": JUNIT})
    monkeypatch.setattr(reports, "MAX_ARTIFACT_BYTES", len(data) - 1)
    assert cases_from_zip(data) == ()


# ---------------------------------------------------------------- which artifacts

def artifact(name: str, size: Any = 1234, expired: Any = False) -> dict[str, Any]:
    return {"id": 1, "name": name, "size_in_bytes": size, "expired": expired}


@pytest.mark.parametrize("name", ["junit-results", "test-results", "Test Reports (3.12)", "surefire-reports",
                                  "xunit", "nunit-output", "trx", "pytest-results.xml", "results"])
def test_report_like_artifacts_are_chosen(name: str) -> None:
    assert is_report_artifact(artifact(name))


@pytest.mark.parametrize("entry", [artifact("dist"), artifact("coverage-report"), artifact("wheels-linux"),
                                   artifact("test-results", expired=True), artifact("test-results", expired=None),
                                   artifact("test-results", size=reports.MAX_ARTIFACT_BYTES + 1),
                                   artifact("test-results", size=0), artifact("test-results", size=None),
                                   artifact("test-results", size="12"), artifact("test-results", size=True),
                                   {"id": 1, "size_in_bytes": 10, "expired": False}, artifact(None)])  # type: ignore[arg-type]
def test_other_expired_unsized_or_oversized_artifacts_are_not(entry: dict[str, Any]) -> None:
    assert not is_report_artifact(entry)
