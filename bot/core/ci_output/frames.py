"""A failing test named by its stack frame, for a pasted JUnit or TestNG assertion with no runner line around it.

People often paste only the exception and its trace (``org.opentest4j.AssertionFailedError: … at
com.x.FooTest.testBar(FooTest.java:85)``). The test is the first frame, below an assertion error, in a class
named like a test (``…Test``, ``…Tests``, ``…IT``): the assertion libraries' own frames are not. Read only when
no framework named a test: a runner's own line, when there is one, names it better.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

FRAMES = 12  # frames read below the assertion: the test's own frame comes right after the library's few
_ASSERTION = re.compile(r"^\s*(?:Caused by: )?(?:[a-z]\w*\.)+(?:\w+\.)*(?:AssertionError|AssertionFailedError"
                        r"|ComparisonFailure|MultipleFailuresError)\b")
# `at [loader//]pkg.Class.method(File.java:12)`; Gradle's workers prefix the frame with `app//`
_FRAME = re.compile(r"^\s*at (?:[\w.-]+//)?(?P<name>(?:[a-z_]\w*\.)+[A-Z]\w*(?:Tests?|IT)\.\w+)\(")


def asserting_frame(lines: Sequence[str]) -> list[str]:
    """``[pkg.Class.method]`` of the first test frame below the first assertion error in `lines`, else ``[]``."""
    start = next((i for i, line in enumerate(lines) if _ASSERTION.match(line)), None)
    if start is None:
        return []
    for line in lines[start + 1:start + 1 + FRAMES]:
        if frame := _FRAME.match(line):
            return [frame["name"]]
    return []
