"""The ledger as the graph sees it: the port its nodes call (implemented in `checkpoints/`).

The nodes follow the ledger, never the other way round: a decision recorded there is the one
that is applied, and a call journaled as started is never started again without a person.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class LedgerRecord(Protocol):
    """What the nodes read of one call's row."""

    @property
    def status(self) -> str: ...
    @property
    def args(self) -> dict[str, Any]: ...
    @property
    def decision(self) -> dict[str, Any] | None: ...
    @property
    def decided_by(self) -> str | None: ...
    @property
    def requested_at(self) -> float: ...
    @property
    def expires_at(self) -> float | None: ...
    @property
    def result(self) -> str | None: ...
    @property
    def result_status(self) -> str | None: ...


class BeginResult(Protocol):
    """The journal's answer to "may this call start now?"."""

    @property
    def action(self) -> str: ...
    @property
    def record(self) -> LedgerRecord | None: ...


class ApprovalLedger(Protocol):
    """The operations the `approval` and `tools` nodes need."""

    def request(
        self,
        *,
        thread_id: str,
        tool_call_id: str,
        interrupt_id: str | None,
        tool: str,
        args: Mapping[str, Any],
        requester: str | None,
        needs_review: bool,
        allowed_decisions: Sequence[str],
        description: str,
        expires_after: float | None = None,
        on_expire: str = "reject",
        approvers: Sequence[str] | None = None,
        allow_self_approval: bool = True,
    ) -> LedgerRecord: ...

    def answer_from_graph(
        self, thread_id: str, tool_call_id: str, decision: Mapping[str, Any], *, actor: str
    ) -> LedgerRecord: ...

    def begin(
        self, thread_id: str, calls: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> Mapping[str, BeginResult]: ...

    def unbegin(self, thread_id: str, tool_call_id: str) -> None: ...

    def finish(self, thread_id: str, tool_call_id: str, *, ok: bool, result: str) -> None: ...

    def abandon(self, thread_id: str, tool_call_id: str) -> None: ...

    def reconcile_from_graph(
        self, thread_id: str, tool_call_id: str, action: str, *, actor: str, result: str | None
    ) -> None: ...


class CallInProgress(RuntimeError):
    """A live runner elsewhere is executing this call right now; this run must not touch it."""

    def __init__(self, tool_call_id: str) -> None:
        super().__init__(
            f"tool call {tool_call_id!r} is being executed by another live process right now; "
            "this run stops without running it. Try again when that run has finished."
        )


class JournalUnavailable(BaseException):
    """A tool's result could not be journaled: the run must stop, not report a tool failure.

    A `BaseException`, because `ToolNode` turns every `Exception` raised around a tool into an
    error message for the model, which would tell it a tool that ran had failed.
    """

    def __init__(self, tool_call_id: str, cause: BaseException) -> None:
        super().__init__(
            f"tool call {tool_call_id!r} ran, but its result could not be recorded ({cause}); "
            "the run stops and the call will be listed as outcome_unknown for a person."
        )
