"""Applying a reviewer's decision to a tool call: pure logic."""

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolCall
from langchain_core.tools import StructuredTool
from pydantic import ValidationError

from hitl.graph.decisions import (
    ALL_DECISIONS,
    DecisionSchemas,
    answer_text,
    apply_decision,
    normalize,
)
from hitl.graph.demo_tools import count_emails, make_send_email
from hitl.graph.errors import DecisionNotAllowedError

CALL = ToolCall(
    name="send_email", args={"message": "hi", "recipient": "a@b.c"}, id="call_1", type="tool_call"
)


@pytest.fixture
def schemas(tmp_path: Any) -> DecisionSchemas:
    return DecisionSchemas([count_emails, make_send_email(tmp_path / "outbox")])


def test_approve_runs_the_call_with_the_model_args() -> None:
    review = apply_decision(CALL, {"type": "approve"}, ALL_DECISIONS)
    assert review["decision"] == "approve" and review["args"] == CALL["args"]


def test_edit_runs_with_the_new_args_only() -> None:
    edit = {
        "type": "edit",
        "edited_action": {"name": "send_email", "args": {"message": "x", "recipient": "d@e.f"}},
    }
    review = apply_decision(CALL, edit, ALL_DECISIONS)  # type: ignore[arg-type]
    assert review["args"] == {"message": "x", "recipient": "d@e.f"}


def test_reject_without_reason_still_tells_the_model_why_not() -> None:
    review = apply_decision(CALL, {"type": "reject"}, ALL_DECISIONS)
    assert "NOT run" in answer_text(review) and "no reason given" in answer_text(review)


def test_respond_message_is_the_answer() -> None:
    review = apply_decision(CALL, {"type": "respond", "message": "done by hand"}, ALL_DECISIONS)
    assert answer_text(review) == "done by hand"


def test_a_decision_outside_the_allowed_list_is_refused() -> None:
    with pytest.raises(DecisionNotAllowedError, match="respond"):
        apply_decision(CALL, {"type": "respond", "message": "x"}, ("approve", "reject"))


def test_shorthands_expand_and_garbage_is_refused() -> None:
    assert normalize("approve") == {"type": "approve"}
    assert normalize("reject") == {"type": "reject"}
    with pytest.raises(DecisionNotAllowedError):
        normalize("maybe")


def test_an_edit_may_not_switch_tools(schemas: DecisionSchemas) -> None:
    edit = {"type": "edit", "edited_action": {"name": "count_emails", "args": {"last_n_days": 1}}}
    with pytest.raises(ValidationError, match=r"edited_action\.name"):
        schemas.validate("send_email", ALL_DECISIONS, edit)


def test_edit_args_are_checked_against_the_tools_own_schema(schemas: DecisionSchemas) -> None:
    edit = {"type": "edit", "edited_action": {"name": "send_email", "args": {"message": "x"}}}
    with pytest.raises(ValidationError) as error:
        schemas.validate("send_email", ALL_DECISIONS, edit)
    assert [e["loc"] for e in error.value.errors()] == [("edited_action", "args", "recipient")]


def json_schema_tool() -> StructuredTool:
    """A tool described by a JSON schema, as MCP tools are."""
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "body": {"type": "string"}},
        "required": ["title"],
    }
    return StructuredTool(
        name="add_note", description="Add a note.", args_schema=schema, func=lambda **_: "ok"
    )


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("send_email", {"recipient": "a@b.c", "message": "hi", "cc": "z"}),
        ("add_note", {"title": "t", "cc": "z"}),
    ],
    ids=["pydantic model", "JSON schema"],
)
def test_an_edit_with_an_argument_the_tool_does_not_declare_is_refused_naming_it(
    tmp_path: Path, tool: str, args: dict[str, Any]
) -> None:
    schemas = DecisionSchemas([make_send_email(tmp_path / "outbox"), json_schema_tool()])
    edit = {"type": "edit", "edited_action": {"name": tool, "args": args}}

    with pytest.raises(ValidationError) as error:
        schemas.validate(tool, ALL_DECISIONS, edit)

    [problem] = error.value.errors()
    assert problem["loc"] == ("edited_action", "args")
    assert f"{tool} takes no argument 'cc'" in problem["msg"]
    assert schemas.args_json_schema(tool)["additionalProperties"] is False


def test_the_published_schema_offers_only_allowed_decisions(schemas: DecisionSchemas) -> None:
    from pydantic import TypeAdapter

    schema = TypeAdapter(schemas.for_call("send_email", ("approve", "reject"))).json_schema()
    text = str(schema)
    assert "RejectDecision" in text and "EditDecision" not in text and "Respond" not in text
