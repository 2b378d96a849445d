"""A failing test named by its stack frame, for a pasted assertion with no runner line around it.

People often paste only the exception and its trace: JUnit or TestNG (``org.opentest4j.AssertionFailedError: …
at com.x.FooTest.testBar(FooTest.java:85)``), or a .NET test copied from a CI service's test tab
(``Assert.Equal() Failure`` then ``at Ns.FooTests.Bar() in …``, the word ``at`` localised when the machine is:
``en``, ``bei``, ``à``). The test is the first frame, below an assertion error, in a class named like a test
(``…Test``, ``…Tests``, ``…IT``): the assertion libraries' own frames are not. An async .NET test runs in a
compiler-generated state machine (C# ``<Bar>d__12.MoveNext()``, VB ``VB$StateMachine_106_Bar.MoveNext()``):
the test is the method it was generated from. Read only when no framework named a test: a runner's own line,
when there is one, names it better.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

FRAMES = 12  # frames read below the assertion: the test's own frame comes right after the library's few
_ASSERTION = re.compile(r"^\s*(?:Caused by: )?(?:(?:[a-z]\w*\.)+(?:\w+\.)*(?:AssertionError|AssertionFailedError"
                        r"|ComparisonFailure|MultipleFailuresError)\b|Assert\.\w+\(\) Failure\b"
                        r"|(?:Xunit\.Sdk|NUnit\.Framework|Microsoft\.VisualStudio\.TestTools\.UnitTesting)\.\w+"
                        r"(?:Exception|Failure)\b)")
# `at [loader//]pkg.Class.method(File.java:12)`; Gradle's workers prefix the frame with `app//`
_FRAME = re.compile(r"^\s*at (?:[\w.-]+//)?(?P<name>(?:[a-z_]\w*\.)+[A-Z]\w*(?:Tests?|IT)\.\w+)\(")
# `at Ns.Class.Method(args) in file:line N`, `at` in the machine's language; or its async state machine
_DOTNET_FRAME = re.compile(r"^\s+\S{1,3} (?P<cls>(?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*Tests?)\."
                           r"(?:VB\$StateMachine_\d+_(?P<vb>\w+)\.MoveNext|<(?P<cs>\w+)>d__\d+\.MoveNext|(?P<name>\w+))\(")


def asserting_frame(lines: Sequence[str]) -> list[str]:
    """``[pkg.Class.method]`` of the first test frame below the first assertion error in `lines`, else ``[]``."""
    start = next((i for i, line in enumerate(lines) if _ASSERTION.match(line)), None)
    if start is None:
        return []
    for line in lines[start + 1:start + 1 + FRAMES]:
        if frame := _FRAME.match(line):
            return [frame["name"]]
        if dotnet := _DOTNET_FRAME.match(line):
            return [f"{dotnet['cls']}.{dotnet['vb'] or dotnet['cs'] or dotnet['name']}"]
    return []
