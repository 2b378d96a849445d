"""Structured CI data: check-run annotations and JUnit/xUnit reports from artifacts (stub)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.core.ci_output.records import Annotation, FailedCase


def useful_annotations(raw: Any) -> tuple[Annotation, ...]:
    """The annotations of a check run's ``/annotations`` answer worth reading (not the runner's exit-code one)."""
    return ()


def cases_from_zip(data: bytes) -> tuple[FailedCase, ...]:
    """Failed cases of the JUnit/xUnit XML files in an artifact's zip (hostile: capped)."""
    return ()


def cases_from_xml(data: bytes) -> tuple[FailedCase, ...]:
    """Failed cases of one JUnit/xUnit XML document."""
    return ()


def is_report_artifact(artifact: Mapping[str, Any]) -> bool:
    """Whether an artifact's listing entry looks like test reports worth downloading."""
    return False
