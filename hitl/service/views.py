"""What the service returns: plain data the CLI prints and `--json` serializes as is."""

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from hitl.checkpoints.ledger import ThreadStatus, ThreadSummary, runner_process
from hitl.checkpoints.records import (
    ApprovalRecord,
    Vote,
    iso,
    quorum_progress,
)
from hitl.checkpoints.stores import Run
from hitl.service.errors import MessagesOutOfRange

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

Status = Literal["interrupted", "done", "incomplete"]

MESSAGES_PAGE = 20
"""How many of the newest messages a thread's view carries unless asked for another page."""
MAX_MESSAGES_PAGE = 10_000
"""The largest page of messages a front end asks for."""


@dataclass(frozen=True)
class EveryPending:
    """One answer for every call of the thread that waits for a decision."""

    answer: object


@dataclass(frozen=True)
class Sent:
    """A message accepted for a thread; `run` is the queued run that carries it (None: it
    ran in this process)."""

    thread_id: str
    run: Run | None


@dataclass(frozen=True)
class Decided:
    """What a decision recorded, and the queued run that applies it (None: applied here)."""

    thread_id: str
    records: list[ApprovalRecord]
    run: Run | None


@dataclass(frozen=True)
class Reconciled:
    """How a call of unknown outcome was settled, and the queued run that continues."""

    record: ApprovalRecord
    run: Run | None


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
    assignee: str | None = None
    """Who should look at it (a name or `role:NAME`): `hitl assign`; not a permission."""
    snoozed_until: str | None = None
    """Hidden from the default inbox until then (ISO 8601, UTC); it still expires."""
    escalated_at: str | None = None
    """When it was escalated (its `escalate_to` may decide it since)."""
    quorum: int = 1
    """How many distinct people must approve it; the call stays pending until then."""
    approvals: list[str] = field(default_factory=list)
    """Who approved it so far (a quorum call): "1 of 2 approvals: alice"."""
    rejections: list[str] = field(default_factory=list)
    """Who rejected it so far (a quorum call whose rejects do not veto)."""

    @classmethod
    def of(cls, record: ApprovalRecord, votes: Sequence[Vote] = ()) -> "PendingApproval":
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
            assignee=record.assignee,
            snoozed_until=iso(record.snoozed_until),
            escalated_at=iso(record.escalated_at),
            quorum=record.quorum,
            approvals=[v.approver for v in votes if v.vote == "approve"],
            rejections=[v.approver for v in votes if v.vote == "reject"],
        )

    @property
    def progress(self) -> str | None:
        """ "1 of 2 approvals: alice" for a quorum call; None for others."""
        if self.quorum <= 1:
            return None
        return quorum_progress(self.quorum, self.approvals, self.rejections)

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
class ThreadEntry:
    """One thread in the list of threads."""

    thread_id: str
    status: ThreadStatus
    """`waiting` (a call waits for a person), `running` (a run is queued or running) or
    `finished` (neither: done, or stopped before its end)."""
    waiting: int
    """How many of its calls wait for a person."""
    updated_at: str | None
    """When its newest checkpoint was written (ISO 8601, UTC)."""

    @classmethod
    def of(cls, summary: ThreadSummary) -> "ThreadEntry":
        return cls(summary.thread_id, summary.status, summary.waiting, iso(summary.updated_at))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ThreadPage:
    """One page of the list of threads, newest activity first."""

    threads: list[ThreadEntry]
    total: int
    """How many threads match the filter and search in all."""
    offset: int
    limit: int

    def to_json(self) -> dict[str, Any]:
        return {
            "threads": [t.to_json() for t in self.threads],
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
        }


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
    reminded: list[ApprovalRecord] = field(default_factory=list)
    """Calls this sweep sent their reminder for (`approval.reminder`)."""
    escalated: list[ApprovalRecord] = field(default_factory=list)
    """Calls this sweep escalated (`approval.escalated`): their `escalate_to` may decide."""

    def to_json(self) -> dict[str, Any]:
        return {
            "expired": [r.to_json() for r in self.expired],
            "orphaned": [r.to_json() for r in self.orphaned],
            "resumed": self.resumed,
            "busy": self.busy,
            "failed": self.failed,
            "queued": self.queued,
            "reminded": [r.to_json() for r in self.reminded],
            "escalated": [r.to_json() for r in self.escalated],
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
            reminded=[ApprovalRecord.from_json(r) for r in data.get("reminded", [])],
            escalated=[ApprovalRecord.from_json(r) for r in data.get("escalated", [])],
        )


@dataclass(frozen=True)
class ThreadView:
    """A thread's status, a page of its conversation (the newest, unless asked for an older
    one) and its pending approvals."""

    thread_id: str
    status: Status
    pending: list[PendingApproval] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    """A page of the conversation, oldest first: the newest `MESSAGES_PAGE` by default."""
    answer: str | None = None
    """The model's final answer, when the thread is done."""
    messages_total: int = 0
    """How many messages the whole conversation holds."""
    messages_next_before: int | None = None
    """The position of the page's first message: pass it as `before` for the page before
    this one; None when the page starts the conversation."""

    def to_json(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "status": self.status,
            "pending": [p.to_json() for p in self.pending],
            "messages": self.messages,
            "answer": self.answer,
            "messages_total": self.messages_total,
            "messages_next_before": self.messages_next_before,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ThreadView":
        return cls(
            thread_id=data["thread_id"],
            status=data["status"],
            pending=[PendingApproval.from_json(p) for p in data["pending"]],
            messages=data["messages"],
            answer=data["answer"],
            messages_total=data.get("messages_total", len(data["messages"])),
            messages_next_before=data.get("messages_next_before"),
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


def actor_label(actor: str) -> str:
    """Who an audit entry names, for a person to read: a runner token (`host~id:pid:…`, which
    the JSON keeps) as `tool runner (process PID on HOST)`; a name as it is."""
    process = runner_process(actor)
    if process is None:
        return actor
    return f"tool runner (process {process.pid} on {process.host})"


def message_to_json(message: "BaseMessage") -> dict[str, Any]:
    """A message as JSON, with the fields a reviewer needs: `content` as it was sent (a string
    or content blocks) and `text`, its text alone, for display."""
    from langchain_core.messages import AIMessage, ToolMessage  # not for a view without messages

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


def page_of_messages(
    thread_id: str, total: int, count: int = MESSAGES_PAGE, before: int | None = None
) -> range:
    """The positions of the page of `count` messages before position `before` (the newest,
    without it) of a conversation of `total`; `MessagesOutOfRange` for a page it lacks."""
    if count < 1 or (before is not None and not 1 <= before <= total):
        raise MessagesOutOfRange(thread_id, total, count, before)
    stop = total if before is None else before
    return range(max(0, stop - count), stop)


def thread_view(
    thread_id: str,
    status: Status,
    messages: list[dict[str, Any]],
    waiting: list[ApprovalRecord],
    votes: Mapping[str, Sequence[Vote]] | None = None,
    *,
    page: range | None = None,
    total: int | None = None,
    newest: dict[str, Any] | None = None,
) -> ThreadView:
    """The view of a thread from a page of its messages as JSON (`message_to_json`), at the
    positions `page` of a conversation of `total` (default: the whole conversation), and its
    calls that need a person, in the order of the model's turn where the page shows it (not
    the order its concurrent approval tasks registered in). `newest`, the conversation's last
    message, gives the answer when the page does not end with it."""
    page = range(len(messages)) if page is None else page
    total = page.stop if total is None else total
    last = newest if page.stop < total else messages[-1] if messages else None
    answer = (
        str(last["text"])
        if status == "done"
        and last is not None
        and last["type"] in ("ai", "AIMessageChunk")
        and not last.get("tool_calls")
        else None
    )
    position = {
        call["tool_call_id"]: n
        for n, call in enumerate(c for m in messages for c in m.get("tool_calls", []))
    }
    waiting = sorted(waiting, key=lambda r: position.get(r.tool_call_id, len(position)))
    return ThreadView(
        thread_id=thread_id,
        status=status,
        pending=[PendingApproval.of(r, (votes or {}).get(r.tool_call_id, ())) for r in waiting],
        messages=messages,
        answer=answer,
        messages_total=total,
        messages_next_before=page.start or None,
    )


def stored_message_to_json(fields: dict[str, Any]) -> dict[str, Any]:
    """`message_to_json` of a message of LangChain's four classes, from its stored fields,
    without building it (its `text` as LangChain's `BaseMessage.text` computes it)."""
    content = fields["content"]
    data: dict[str, Any] = {"type": fields["type"], "content": content, "text": _text(content)}
    if fields["type"] == "ai" and fields.get("tool_calls"):
        data["tool_calls"] = [
            {"tool_call_id": c["id"], "tool": c["name"], "args": c["args"]}
            for c in fields["tool_calls"]
        ]
    if fields["type"] == "tool":
        data |= {
            "tool_call_id": fields["tool_call_id"],
            "tool": fields.get("name"),
            "status": fields.get("status", "success"),
        }
    return data


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        block if isinstance(block, str) else block["text"]
        for block in content
        if isinstance(block, str)
        or (block.get("type") == "text" and isinstance(block.get("text"), str))
    )
