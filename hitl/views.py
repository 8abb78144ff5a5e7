"""What the service returns: plain data the CLI prints and `--json` serializes as is."""

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

Status = Literal["interrupted", "done", "incomplete"]


@dataclass(frozen=True)
class PendingApproval:
    """One tool call waiting for a person."""

    thread_id: str
    tool_call_id: str
    tool: str
    args: dict[str, Any]
    description: str
    allowed_decisions: list[str]
    interrupt_id: str
    since: str
    """When the thread paused for it (ISO 8601, UTC)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ThreadView:
    """A thread's status, conversation and pending approvals."""

    thread_id: str
    status: Status
    pending: list[PendingApproval] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    answer: str | None = None
    """The model's final answer, when the thread is done."""

    def to_json(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "status": self.status,
            "pending": [p.to_json() for p in self.pending],
            "messages": self.messages,
            "answer": self.answer,
        }


@dataclass(frozen=True)
class HistoryEntry:
    """One checkpoint of a thread, oldest first."""

    checkpoint_id: str
    step: int
    node: str
    """The node(s) whose writes produced this checkpoint, or `input`."""
    created_at: str
    pending: list[str]
    """Tool call IDs waiting for a decision at this checkpoint."""
    decided: dict[str, str]
    """Tool call ID → decision recorded in this step."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def message_to_json(message: BaseMessage) -> dict[str, Any]:
    """A message as JSON, with the fields a reviewer needs."""
    data: dict[str, Any] = {"type": message.type, "content": message.content}
    if isinstance(message, AIMessage) and message.tool_calls:
        data["tool_calls"] = [
            {"tool_call_id": c["id"], "tool": c["name"], "args": c["args"]}
            for c in message.tool_calls
        ]
    if isinstance(message, ToolMessage):
        data |= {
            "tool_call_id": message.tool_call_id,
            "tool": message.name,
            "status": message.status,
        }
    return data
