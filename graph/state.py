"""What the gates record in a graph's state: each tool call's review."""

from typing import (
    Any,
    Literal,
    NotRequired,  # pydantic needs these on Python < 3.12
)

from typing_extensions import TypedDict

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


def runs_tool(review: Review) -> bool:
    """Whether this review lets the tool run (as opposed to answering in its place)."""
    return review["decision"] in ("auto", "approve", "edit")
