"""The graph's state: the conversation and each tool call's review."""

from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,  # pydantic needs these on Python < 3.12
)

from langchain_core.messages import AnyMessage, ToolCall
from typing_extensions import TypedDict

from hitl.graph.message_log import MessageLogChannel

ReviewKind = Literal["auto", "approve", "edit", "reject", "respond"]


class Review(TypedDict):
    """What was decided about one tool call, keyed by its `tool_call_id` in the state."""

    tool_call_id: str
    """The model's ID for the call."""
    name: str
    """The tool the call asks for."""
    decision: ReviewKind
    """`auto` when the policy let the call through without asking anyone."""
    args: dict[str, Any]
    """The arguments the tool runs with: the model's, or the reviewer's edit."""
    message: NotRequired[str]
    """The reviewer's reason (reject) or the answer given in place of the tool (respond)."""
    decided_by: NotRequired[str]
    """Who decided, as recorded in the ledger (`policy` for an automatic approval)."""
    expired: NotRequired[bool]
    """True when nobody decided before the deadline and the policy's `on_expire` applied."""


def merge_reviews(left: dict[str, Review], right: dict[str, Review]) -> dict[str, Review]:
    """Keep every review; a later one for the same call replaces the earlier."""
    return {**left, **right}


class State(TypedDict):
    """The conversation, plus the review of each tool call of the model's latest turn."""

    messages: Annotated[list[AnyMessage], MessageLogChannel]
    """`add_messages` semantics, but stored once per message, not once per checkpoint."""
    reviews: NotRequired[Annotated[dict[str, Review], merge_reviews]]
    """Reset when the model starts a new turn of tool calls, so a checkpoint stays small."""
    requester: NotRequired[str]
    """Who sent the latest message: recorded with every approval it leads to."""


class ApprovalTask(TypedDict):
    """The input of one `approval` task, sent by `route_after_agent` and saved with the step.

    The policy's verdict travels with the call, so a resume in another process, with another
    policy loaded, still asks (or not) exactly as the first process decided.
    """

    tool_call: ToolCall
    needs_review: bool
    allowed_decisions: list[str]
    description: str
    requester: NotRequired[str | None]
    expires_after: NotRequired[float | None]
    """Seconds a person has to decide (None: no deadline)."""
    on_expire: NotRequired[str]
    approvers: NotRequired[list[str] | None]
    allow_self_approval: NotRequired[bool]


def runs_tool(review: Review) -> bool:
    """Whether this review lets the tool run (as opposed to answering in its place)."""
    return review["decision"] in ("auto", "approve", "edit")
