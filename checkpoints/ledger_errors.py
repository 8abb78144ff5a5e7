"""What the ledger refuses, as exceptions that carry what the caller needs to explain it."""

from collections.abc import Sequence

from checkpoints.records import ApprovalRecord


class LedgerError(Exception):
    """A request the ledger refuses; nothing was written."""


class CallNotFound(LedgerError):
    """No approval for this call in this thread (maybe in another one)."""

    def __init__(self, thread_id: str, tool_call_id: str, elsewhere: Sequence[str]) -> None:
        super().__init__(thread_id, tool_call_id)
        self.thread_id, self.tool_call_id, self.elsewhere = thread_id, tool_call_id, elsewhere


class NotPending(LedgerError):
    """The call was already decided (or settled); carries the recorded row."""

    def __init__(self, record: ApprovalRecord) -> None:
        super().__init__(record.thread_id, record.tool_call_id, record.status)
        self.record = record


class NotPermitted(LedgerError):
    """The policy saved with the call forbids this actor's decision."""


class NotReconcilable(LedgerError):
    """Only a call whose outcome is unknown can be reconciled."""

    def __init__(self, record: ApprovalRecord) -> None:
        super().__init__(record.thread_id, record.tool_call_id, record.status)
        self.record = record


class ThreadBusy(LedgerError):
    """Another live runner holds the thread's lease for longer than we may wait."""

    def __init__(self, thread_id: str, holder: str) -> None:
        super().__init__(thread_id, holder)
        self.thread_id, self.holder = thread_id, holder


class LedgerTampered(LedgerError):
    """A row says a call may run, but its audit trail does not record that approval."""

    def __init__(self, thread_id: str, tool_call_id: str) -> None:
        super().__init__(
            f"the ledger says tool call {tool_call_id!r} of thread {thread_id!r} was approved, "
            "but its audit trail records no such approval: the database was changed outside "
            "this program. Nothing was run. Check it with `hitl audit --verify`."
        )
        self.thread_id, self.tool_call_id = thread_id, tool_call_id


class ArgsChanged(LedgerError):
    """The call was asked about again with other args since the decider looked at it."""

    def __init__(self, record: ApprovalRecord) -> None:
        super().__init__(record.thread_id, record.tool_call_id, record.args_hash)
        self.record = record
