"""Domain errors: each says what happened and what to do next.

The CLI maps them to exit codes (`EXIT_CODES` in `hitl.cli`); a later HTTP layer maps them to
status codes. Raised before anything is written, so a refused request leaves the database as it was.
"""

from collections.abc import Sequence


class HitlError(Exception):
    """Base class of every error a user can cause."""


class ThreadNotFound(HitlError):
    def __init__(self, thread_id: str) -> None:
        super().__init__(
            f"no thread {thread_id!r} in this database. "
            "List threads waiting for a decision with `hitl pending`, or check --db / HITL_DB."
        )


class NothingPending(HitlError):
    def __init__(self, thread_id: str, status: str) -> None:
        super().__init__(
            f"thread {thread_id!r} has no pending approval (status: {status}); "
            f"nothing to decide. See `hitl show {thread_id}`."
        )


class UnknownToolCall(HitlError):
    def __init__(self, thread_id: str, tool_call_id: str, pending: Sequence[str]) -> None:
        listed = ", ".join(pending) or "none"
        super().__init__(
            f"thread {thread_id!r} has no tool call {tool_call_id!r}; pending calls: {listed}."
        )


class AlreadyDecided(HitlError):
    def __init__(self, thread_id: str, tool_call_id: str, decision: str) -> None:
        super().__init__(
            f"tool call {tool_call_id!r} of thread {thread_id!r} was already decided "
            f"({decision}); a decision cannot be changed. See `hitl history {thread_id}`."
        )


class DecisionNotAllowed(HitlError):
    def __init__(self, tool: str, decision: str, allowed: Sequence[str]) -> None:
        super().__init__(
            f"{decision!r} is not allowed for {tool}; allowed decisions: {', '.join(allowed)}."
        )


class InvalidDecision(HitlError):
    """An answer that does not fit the call's response schema (an invalid edit, mostly)."""

    def __init__(self, tool_call_id: str, problems: str) -> None:
        super().__init__(f"invalid decision for tool call {tool_call_id!r}: {problems}")


class PendingApprovalsExist(HitlError):
    def __init__(self, thread_id: str, pending: Sequence[str]) -> None:
        super().__init__(
            f"thread {thread_id!r} is waiting for decisions on {', '.join(pending)}; "
            "decide them first (hitl approve/reject/edit/respond), or pass --cancel-pending "
            "to reject them and continue with the new message."
        )


class InvalidSettings(HitlError):
    """A setting (model, tools, policy, database) that cannot be used."""
