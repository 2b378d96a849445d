"""What is the same for every model call of a step kind is built once (issue 16): the result schema and the
``output_config`` format made from it."""

from __future__ import annotations

import anthropic

from bot.agents.runner import _result_format
from bot.agents.schemas import result_schema


def test_a_step_kinds_output_format_is_built_once_and_is_what_the_api_is_given() -> None:
    schema, fmt = _result_format("review", ())
    assert _result_format("review", ())[1] is fmt  # the same object: built once
    assert schema == result_schema("review")
    assert fmt == {"type": "json_schema", "schema": anthropic.transform_schema(result_schema("review"))}
    flagged, flagged_fmt = _result_format("review", (("breaking", "the change breaks an API"),))
    assert flagged == result_schema("review", {"breaking": "the change breaks an API"}) != schema
    assert flagged_fmt != fmt and _result_format("analyze", ())[0] == result_schema("analyze")
