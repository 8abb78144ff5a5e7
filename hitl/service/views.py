"""What the service returns: plain data the CLI prints and `--json` serializes as is."""

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from hitl.checkpoints.records import ApprovalRecord, iso

Status = Literal["interrupted", "done", "incomplete"]


@dataclass(frozen=True)
class PendingApproval:
    """One tool call waiting for a person: a decision to make, or an unknown outcome."""

    thread_id: str
    tool_call_id: str
    tool: str
    args: dict[str, Any]
    args_hash: str
    description: str
    allowed_decisions: list[str]
    interrupt_id: str | None
    status: str
    """`pending` (decide it) or `outcome_unknown` (settle it with `hitl reconcile`)."""
    requester: str | None
    requested_at: str
    """When the call was asked about (ISO 8601, UTC)."""
    expires_at: str | None
    """When `hitl sweep` settles it if nobody decides (ISO 8601, UTC)."""

    @classmethod
    def of(cls, record: ApprovalRecord) -> "PendingApproval":
        return cls(
            thread_id=record.thread_id,
            tool_call_id=record.tool_call_id,
            tool=record.tool,
            args=record.args,
            args_hash=record.args_hash,
            description=record.description,
            allowed_decisions=record.allowed_decisions,
            interrupt_id=record.interrupt_id,
            status=record.status,
            requester=record.requester,
            requested_at=iso(record.requested_at) or "",
            expires_at=iso(record.expires_at),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PendingApproval":
        return cls(**data)


@dataclass(frozen=True)
class InboxPage:
    """One page of the inbox."""

    items: list[PendingApproval]
    total: int
    """How many approvals match the filters in all."""
    offset: int
    limit: int

    def to_json(self) -> dict[str, Any]:
        return {
            "pending": [p.to_json() for p in self.items],
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "InboxPage":
        return cls(
            items=[PendingApproval.from_json(p) for p in data["pending"]],
            total=data["total"],
            offset=data["offset"],
            limit=data["limit"],
        )


@dataclass(frozen=True)
class SweepReport:
    """What one `hitl sweep` settled."""

    expired: list[ApprovalRecord]
    orphaned: list[ApprovalRecord]
    """Calls whose runner died mid-call, now `outcome_unknown`."""
    resumed: list[str]
    busy: list[str]
    """Threads another process was running; a later sweep looks again."""
    failed: dict[str, str] = field(default_factory=dict)
    """Thread ID → why resuming it failed (the others were still swept)."""
    queued: list[str] = field(default_factory=list)
    """Threads the HTTP service queued runs to resume (its workers run them)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "expired": [r.to_json() for r in self.expired],
            "orphaned": [r.to_json() for r in self.orphaned],
            "resumed": self.resumed,
            "busy": self.busy,
            "failed": self.failed,
            "queued": self.queued,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SweepReport":
        return cls(
            expired=[ApprovalRecord.from_json(r) for r in data["expired"]],
            orphaned=[ApprovalRecord.from_json(r) for r in data["orphaned"]],
            resumed=data["resumed"],
            busy=data["busy"],
            failed=data["failed"],
            queued=data.get("queued", []),
        )


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

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ThreadView":
        return cls(
            thread_id=data["thread_id"],
            status=data["status"],
            pending=[PendingApproval.from_json(p) for p in data["pending"]],
            messages=data["messages"],
            answer=data["answer"],
        )


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

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "HistoryEntry":
        return cls(**data)


def message_to_json(message: BaseMessage) -> dict[str, Any]:
    """A message as JSON, with the fields a reviewer needs: `content` as it was sent (a string
    or content blocks) and `text`, its text alone, for display."""
    data: dict[str, Any] = {"type": message.type, "content": message.content, "text": message.text}
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
