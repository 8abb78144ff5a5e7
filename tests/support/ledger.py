"""Asking the ledger about a call directly, as the approval node would."""

from typing import Any

from hitl.checkpoints.ledger import Ledger


def request_call(ledger: Ledger, thread_id: str, call_id: str, **fields: Any) -> None:
    """Register one `send_email` call of alice's that needs review, may be approved or
    rejected and has no deadline, unless `fields` say otherwise (`args`, `tool`, ...)."""
    asked: dict[str, Any] = {
        "tool": "send_email",
        "args": {"recipient": f"{call_id}@x.org"},
        "requester": "alice",
        "needs_review": True,
        "allowed_decisions": ["approve", "reject"],
        "description": "",
        "expires_after": None,
    } | fields
    ledger.request(thread_id=thread_id, tool_call_id=call_id, interrupt_id=None, **asked)
