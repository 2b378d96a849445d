"""Structured CI data: check-run annotations and JUnit/xUnit reports from workflow artifacts.

Both arrive from GitHub as data someone else wrote: annotations from any App or problem matcher, artifacts from
whatever a workflow (a fork's pull request included) uploaded. Nothing here raises on bad input: a wrong type, a
malformed or hostile document (an entity bomb, a zip bomb, too many entries) reads as nothing, and every count
and size is capped. Zips are read in memory only; no entry name ever becomes a path on disk.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree
from junitparser import Error, Failure, TestCase

from bot.core.ci_output.records import TRAILER, Annotation, FailedCase

MAX_ANNOTATIONS = 50  # GitHub pages annotations by 50; one page is what a reader gets
MAX_CASES = 100  # failed cases kept from one artifact (or one document)
MAX_ARTIFACT_BYTES = 10 * 2**20  # compressed, as the artifact listing's size_in_bytes says (and as downloaded)
MAX_ENTRIES = 200  # entries of one artifact zip; a report upload has a few dozen files, a bomb thousands
MAX_ENTRY_BYTES = 4 * 2**20  # uncompressed, per XML entry
MAX_TOTAL_BYTES = 32 * 2**20  # uncompressed, all XML entries of one zip together
_CLIP = 300  # characters of a case's name or message
_CLIP_ANNOTATION = 1000

_RUNNER_PATH = ".github"  # the path GitHub gives annotations the runner itself writes
_REPORT_NAME = re.compile(r"(?i)junit|xunit|nunit|trx|surefire|failsafe|test[-_. ]?(?:results?|reports?)|"
                          r"(?:^|[-_. ])(?:results?|reports?)(?:$|[-_. ])")
_NOT_REPORT = re.compile(r"(?i)coverage|lcov|cobertura|benchmark|html")
# What a zip member may hold besides its bytes: a broken or unsupported archive says so with any of these.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError, ValueError, OSError)
# What one hostile case element may make the parsing of it raise (a bad attribute, a shape junitparser did not
# expect): that case is skipped, the report's other cases still read.
_CASE_ERRORS = (ValueError, TypeError, AttributeError)
_NATIVE = {"test-case": "Failed", "test": "Fail"}  # NUnit 3's and xUnit v2's own elements, and their failed result
_LINE = re.compile(r"[0-9]{1,9}")  # ASCII digits only: "²".isdigit() is true, int("²") raises


# ---------------------------------------------------------------- annotations

def _text(value: object, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _line(value: object) -> int | None:
    # bool is an int to Python, never a line number to GitHub
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _annotation(raw: Mapping[str, Any]) -> Annotation | None:
    path, level = _text(raw.get("path"), _CLIP), _text(raw.get("annotation_level"), 20)
    message, title = _text(raw.get("message"), _CLIP_ANNOTATION), _text(raw.get("title"), _CLIP)
    if not (message.strip() or title.strip()):
        return None
    if path == _RUNNER_PATH and (level != "failure" or TRAILER.match(message.strip())):
        # The runner's exit-code trailer, and its notices and warnings (deprecated Node versions, image
        # migrations): never the failure. Its other failures ("The operation was canceled.", "exceeded the
        # maximum execution time", "lost communication with the server") are kept: they name infrastructure.
        return None
    return Annotation(path=path, start_line=_line(raw.get("start_line")), level=level, title=title, message=message)


def useful_annotations(raw: Any) -> tuple[Annotation, ...]:
    """The annotations of a check run's ``/annotations`` answer worth reading (not the runner's exit-code one),
    at most :data:`MAX_ANNOTATIONS`; an answer of another shape has none."""
    if not isinstance(raw, list):
        return ()
    found = (_annotation(a) for a in raw if isinstance(a, Mapping))
    kept = [a for a in found if a is not None]
    return tuple(kept[:MAX_ANNOTATIONS])


# ---------------------------------------------------------------- JUnit / xUnit XML

def case_name(classname: str, name: str) -> str:
    """How a failed case is named: ``classname.name`` (pytest: ``tests.test_x.test_y``; Surefire:
    ``com.x.FooTest.testBar``), or the name alone when there is no class or the name already holds it
    (jest-junit repeats the describe block in both)."""
    classname, name = _visible(classname).strip(), _visible(name).strip()
    if not classname or name.startswith(classname):
        return name[:_CLIP]
    return f"{classname}.{name}"[:_CLIP] if name else classname[:_CLIP]


def _visible(text: str) -> str:
    """`text` without control and format characters (bidi overrides and isolates, zero-width ones): a name
    ``tests\u202egnp.exe`` would show as another one in a title."""
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf"))


def _message(result: Failure | Error) -> str:
    text = result.message or next((ln.strip() for ln in (result.text or "").splitlines() if ln.strip()), "")
    return " ".join(text.split())[:_CLIP]


def _case(elem: Element) -> FailedCase | None:
    case = TestCase.fromelem(elem)  # type: ignore[no-untyped-call]  # junitparser leaves this one untyped
    failed = [r for r in case.result if isinstance(r, Failure | Error)]  # skipped cases are not failures
    if not failed:
        return None
    name = case_name(elem.get("classname") or "", elem.get("name") or "")
    line = elem.get("line") or ""
    return FailedCase(name=name or "(unnamed test)", message=_message(failed[0]),
                      file=(elem.get("file") or "")[:_CLIP] or None, line=int(line) if _LINE.fullmatch(line) else None)


def _parse(data: bytes) -> Element | None:
    """The document's root, parsed by defusedxml: entity declarations (billion laughs) and external entities
    are refused, as is anything not well formed."""
    try:
        root = defusedxml.ElementTree.fromstring(data)
    except (ParseError, defusedxml.DefusedXmlException, ValueError, RecursionError):
        return None
    return root if isinstance(root, Element) else None


def _native_case(elem: Element) -> FailedCase | None:
    """A failed case of NUnit 3's own format (``<test-case result="Failed" fullname=…>``) or xUnit v2's
    (``<test result="Fail" name=…>``), each with its ``<failure><message>``."""
    if elem.get("result") != _NATIVE[elem.tag]:  # NUnit: Passed, Skipped, Inconclusive; xUnit: Pass, Skip, NotRun
        return None
    failure = elem.find("failure")
    text = (failure.findtext("message") or "") if failure is not None else ""
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    name = case_name("", elem.get("fullname") or elem.get("name") or "")
    return FailedCase(name=name or "(unnamed test)", message=first[:_CLIP])


def _failed_cases(root: Element) -> Iterator[FailedCase]:
    # Every case, however deep: JUnit roots are <testsuites> or <testsuite>, and some tools nest suites; NUnit
    # 3 nests <test-suite>s in a <test-run>, xUnit v2 <collection>s in <assemblies>.
    for elem in root.iter():
        try:
            case = _case(elem) if elem.tag == "testcase" else _native_case(elem) if elem.tag in _NATIVE else None
        except _CASE_ERRORS:  # one hostile case is skipped, not the report
            continue
        if case is not None:
            yield case


def cases_from_xml(data: bytes) -> tuple[FailedCase, ...]:
    """Failed or errored cases of one JUnit XML document, or of NUnit 3's or xUnit v2's own (not skipped ones),
    at most :data:`MAX_CASES`; a malformed or hostile document has none."""
    root = _parse(data)
    if root is None:
        return ()
    found: list[FailedCase] = []
    for case in _failed_cases(root):
        found.append(case)
        if len(found) >= MAX_CASES:
            break
    return tuple(found)


# ---------------------------------------------------------------- artifacts

def _entry_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes | None:
    """An entry's bytes, read with a bound: a header may lie about the size, the read cannot."""
    limit = min(MAX_ENTRY_BYTES, budget)
    if info.file_size > limit:
        return None
    try:
        with archive.open(info) as member:
            data = member.read(limit + 1)
    except _ZIP_ERRORS:
        return None
    return data if len(data) <= limit else None


def _xml_entries(data: bytes) -> Iterator[bytes]:
    """The bytes of each ``*.xml`` entry of the zip `data`, within the caps; nothing for a non-zip or a zip of
    too many entries."""
    if len(data) > MAX_ARTIFACT_BYTES:
        return
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except _ZIP_ERRORS:
        return
    if len(entries) > MAX_ENTRIES:
        return
    budget = MAX_TOTAL_BYTES
    for info in entries:
        if info.is_dir() or not info.filename.lower().endswith(".xml"):
            continue
        body = _entry_bytes(archive, info, budget)
        if body is not None:
            budget -= len(body)
            yield body
        if budget <= 0:
            return


def cases_from_zip(data: bytes) -> tuple[FailedCase, ...]:
    """Failed cases of the JUnit/xUnit XML files in an artifact's zip, at most :data:`MAX_CASES`. The zip is
    hostile (a fork's pull request uploads what it likes): too large, too many entries, or not a zip gives
    nothing; an entry too large (by its header or by what it really inflates to) is skipped."""
    found: list[FailedCase] = []
    for body in _xml_entries(data):
        found += cases_from_xml(body)
        if len(found) >= MAX_CASES:
            break
    return tuple(found[:MAX_CASES])


def is_report_artifact(artifact: Mapping[str, Any]) -> bool:
    """Whether an artifact's listing entry looks like test reports worth downloading: a report-like name (not
    coverage), not expired, and a known size within :data:`MAX_ARTIFACT_BYTES`."""
    name, size = artifact.get("name"), artifact.get("size_in_bytes")
    if not isinstance(name, str) or artifact.get("expired") is not False:
        return False
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_ARTIFACT_BYTES:
        return False
    return bool(_REPORT_NAME.search(name)) and not _NOT_REPORT.search(name)
