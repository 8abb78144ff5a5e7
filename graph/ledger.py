"""The ledger as the graph sees it: the port its nodes call (implemented in `checkpoints/`).

The nodes follow the ledger, never the other way round: a decision recorded there is the one
that is applied, and a call journaled as started is never started again without a person.
What stops a run on the ledger's word (`CallInProgress`, `JournalUnavailable`) is in
`errors.py`.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

POLICY_ACTOR = "policy"
"""Who a record says decided a call the policy let through (`checkpoints.records` writes it)."""


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
    @property
    def description(self) -> str: ...
    @property
    def requester(self) -> str | None: ...
    @property
    def allowed_decisions(self) -> list[str]: ...
    @property
    def why(self) -> dict[str, Any] | None: ...


class BeginResult(Protocol):
    """The journal's answer to "may this call start now?"."""

    @property
    def action(self) -> str: ...
    @property
    def record(self) -> LedgerRecord | None: ...


class ApprovalLedger(Protocol):
    """The operations the `approval` and `tools` nodes need."""

    def get(self, thread_id: str, tool_call_id: str) -> LedgerRecord | None: ...

    def latest_requester(self, thread_id: str) -> str | None: ...

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
        why: Mapping[str, Any] | None = None,
        reask: bool = False,
        remind_after: float | None = None,
        escalate_after: float | None = None,
        escalate_to: Sequence[str] | None = None,
        quorum: int = 1,
        quorum_distinct_roles: bool = False,
        reject_vetoes: bool = True,
        committed_by: object | None = None,
    ) -> LedgerRecord: ...

    def keep_recorded_rules(
        self, thread_id: str, tool_call_id: str, *, current: Mapping[str, Any]
    ) -> LedgerRecord | None: ...

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
