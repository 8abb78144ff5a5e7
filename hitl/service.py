"""The approval service: start and continue threads, list and decide approvals, by thread ID.

Every decision is checked against what is pending *now* (never a client-chosen checkpoint)
before anything is written: an unknown thread, nothing pending, an unknown or already decided
call, a decision the tool does not allow, or an invalid edit raise a `HitlError` and leave the
database untouched. Runs use `durability="sync"`, so the checkpoint holding a decision is on
disk before the approved tool starts.
"""

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StateSnapshot
from pydantic import ValidationError

from checkpoints.locks import ThreadLocks
from checkpoints.sqlite import BatchingSqliteSaver, list_thread_ids
from graph.decisions import DecisionNotAllowedError, DecisionSchemas, DecisionType
from hitl.errors import (
    AlreadyDecided,
    DecisionNotAllowed,
    InvalidDecision,
    NothingPending,
    PendingApprovalsExist,
    ThreadNotFound,
    UnknownToolCall,
)
from hitl.views import HistoryEntry, PendingApproval, Status, ThreadView, message_to_json

CANCELLED_REASON = "cancelled: the user sent a new message instead of deciding"
# LangGraph's strict resume: a resume naming an interrupt that is not pending is refused
_STRICT_RESUME = "__pregel_strict_resume"


class ApprovalService:
    """The operations of the CLI (and later the HTTP API) on one graph and one database."""

    def __init__(
        self,
        graph: CompiledStateGraph[Any],
        saver: BatchingSqliteSaver,
        schemas: DecisionSchemas,
        locks: ThreadLocks,
    ) -> None:
        self._graph = graph
        self._saver = saver
        self._schemas = schemas
        self._locks = locks

    # reading

    def show(self, thread_id: str) -> ThreadView:
        """The thread's status, messages, pending approvals and final answer."""
        return _view(thread_id, self._snapshot(thread_id))

    def pending(self) -> list[PendingApproval]:
        """Every pending approval in the database, oldest first."""
        found: list[PendingApproval] = []
        for thread_id in list_thread_ids(self._saver):
            found.extend(_pending(thread_id, self._graph.get_state(_config(thread_id))))
        return sorted(found, key=lambda p: p.since)

    def history(self, thread_id: str) -> list[HistoryEntry]:
        """The thread's checkpoints, oldest first, with what was pending or decided at each."""
        self._snapshot(thread_id)
        snapshots = list(reversed(list(self._graph.get_state_history(_config(thread_id)))))
        entries: list[HistoryEntry] = []
        previous: StateSnapshot | None = None
        for snap in snapshots:
            reviews = snap.values.get("reviews", {}) if snap.values else {}
            before = previous.values.get("reviews", {}) if previous and previous.values else {}
            metadata = snap.metadata or {}
            entries.append(
                HistoryEntry(
                    checkpoint_id=str(snap.config["configurable"]["checkpoint_id"]),
                    step=int(metadata.get("step", -1)),
                    node=", ".join(previous.next) if previous and previous.next else "input",
                    created_at=str(snap.created_at),
                    pending=[p.tool_call_id for p in _pending(thread_id, snap)],
                    decided={cid: r["decision"] for cid, r in reviews.items() if cid not in before},
                )
            )
            previous = snap
        return entries

    # acting

    def run(
        self, prompt: str, thread_id: str | None = None, *, cancel_pending: bool = False
    ) -> ThreadView:
        """Send a user message to a new thread, or to an existing one that is not waiting."""
        thread_id = thread_id or str(uuid.uuid4())
        with self._locks.hold(thread_id):
            return self._run_locked(prompt, thread_id, cancel_pending)

    def _run_locked(self, prompt: str, thread_id: str, cancel_pending: bool) -> ThreadView:
        snapshot = self._graph.get_state(_config(thread_id))
        if pending := _pending(thread_id, snapshot):
            if not cancel_pending:
                raise PendingApprovalsExist(thread_id, [p.tool_call_id for p in pending])
            self._resume(
                thread_id,
                {p.interrupt_id: {"type": "reject", "message": CANCELLED_REASON} for p in pending},
            )
        self._invoke({"messages": [HumanMessage(prompt)]}, thread_id)
        return self.show(thread_id)

    def decide(self, thread_id: str, answers: Mapping[str, object]) -> ThreadView:
        """Apply decisions keyed by `tool_call_id`; any subset of the pending calls, one run.

        Holds the thread's lock from reading what is pending to the end of the run, so a
        concurrent decision in another process sees this one and is refused.
        """
        with self._locks.hold(thread_id):
            return self._decide_locked(thread_id, answers)

    def _decide_locked(self, thread_id: str, answers: Mapping[str, object]) -> ThreadView:
        snapshot = self._snapshot(thread_id)
        pending = {p.tool_call_id: p for p in _pending(thread_id, snapshot)}
        reviews = snapshot.values.get("reviews", {})
        resume: dict[str, Any] = {}
        for tool_call_id, answer in answers.items():
            if tool_call_id in reviews:
                raise AlreadyDecided(thread_id, tool_call_id, reviews[tool_call_id]["decision"])
            if not pending:
                raise NothingPending(thread_id, _status(snapshot))
            if tool_call_id not in pending:
                raise UnknownToolCall(thread_id, tool_call_id, sorted(pending))
            call = pending[tool_call_id]
            allowed = cast(Sequence[DecisionType], call.allowed_decisions)
            try:
                decision = self._schemas.validate(call.tool, allowed, answer)
            except DecisionNotAllowedError:
                raise DecisionNotAllowed(call.tool, _kind(answer), allowed) from None
            except ValidationError as e:
                raise InvalidDecision(tool_call_id, _describe(e)) from None
            resume[call.interrupt_id] = decision
        if not resume:
            raise NothingPending(thread_id, _status(snapshot))
        self._resume(thread_id, resume)
        return self.show(thread_id)

    def edit(self, thread_id: str, tool_call_id: str, args: Mapping[str, Any]) -> ThreadView:
        """Run a pending call with `args` instead of the model's (same tool, validated first)."""
        with self._locks.hold(thread_id):
            pending = _pending(thread_id, self._snapshot(thread_id))
            tool = next((p.tool for p in pending if p.tool_call_id == tool_call_id), "")
            edit = {"type": "edit", "edited_action": {"name": tool, "args": dict(args)}}
            return self._decide_locked(thread_id, {tool_call_id: edit})

    def decide_all(self, thread_id: str, answer: object) -> ThreadView:
        """Apply one answer (approve, or reject with a reason) to every pending call."""
        with self._locks.hold(thread_id):
            snapshot = self._snapshot(thread_id)
            pending = _pending(thread_id, snapshot)
            if not pending:
                raise NothingPending(thread_id, _status(snapshot))
            return self._decide_locked(thread_id, {p.tool_call_id: answer for p in pending})

    # plumbing

    def _snapshot(self, thread_id: str) -> StateSnapshot:
        if self._saver.get_tuple(_config(thread_id)) is None:
            raise ThreadNotFound(thread_id)
        return self._graph.get_state(_config(thread_id))

    def _resume(self, thread_id: str, resume: dict[str, Any]) -> None:
        self._invoke(Command(resume=resume), thread_id, strict=True)

    def _invoke(self, payload: Any, thread_id: str, *, strict: bool = False) -> None:
        config = _config(thread_id)
        if strict:
            config["configurable"][_STRICT_RESUME] = True
        try:
            self._graph.invoke(payload, config, durability="sync")
        finally:
            self._saver.flush()


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def _status(snapshot: StateSnapshot) -> Status:
    if snapshot.interrupts:
        return "interrupted"
    return "incomplete" if snapshot.next else "done"


def _pending(thread_id: str, snapshot: StateSnapshot) -> list[PendingApproval]:
    found = []
    for task in snapshot.tasks:
        for intr in task.interrupts:
            value = intr.value
            if not (isinstance(value, dict) and value.get("type") == "tool_approval"):
                continue
            found.append(
                PendingApproval(
                    thread_id=thread_id,
                    tool_call_id=value["tool_call_id"],
                    tool=value["name"],
                    args=value["args"],
                    description=value["description"],
                    allowed_decisions=list(value["allowed_decisions"]),
                    interrupt_id=intr.id,
                    since=str(snapshot.created_at),
                )
            )
    return found


def _view(thread_id: str, snapshot: StateSnapshot) -> ThreadView:
    messages = snapshot.values.get("messages", []) if snapshot.values else []
    status = _status(snapshot)
    last = messages[-1] if messages else None
    answer = (
        str(last.content)
        if status == "done" and isinstance(last, AIMessage) and not last.tool_calls
        else None
    )
    return ThreadView(
        thread_id=thread_id,
        status=status,
        pending=_pending(thread_id, snapshot),
        messages=[message_to_json(m) for m in messages],
        answer=answer,
    )


def _kind(answer: object) -> str:
    return str(answer.get("type")) if isinstance(answer, dict) else str(answer)


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'decision'}: {e['msg']}" for e in error.errors()
    )
