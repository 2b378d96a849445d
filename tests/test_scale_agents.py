"""What is the same for every model call of a step kind is built once (issue 16): the result schema, which the
prompt carries as text and the validator checks (one validator per schema, see ``schemas.validation_error``)."""

from __future__ import annotations

from bot.agents.runner import _result_schema
from bot.agents.schemas import result_schema


def test_a_step_kinds_result_schema_is_built_once_and_is_the_kinds_schema() -> None:
    schema = _result_schema("review", ())
    assert _result_schema("review", ()) is schema  # the same object: built once
    assert schema == result_schema("review")
    flagged = _result_schema("review", (("breaking", "the change breaks an API"),))
    assert flagged == result_schema("review", {"breaking": "the change breaks an API"}) != schema
    assert _result_schema("analyze", ()) == result_schema("analyze")
