"""Triage: assign and snooze a pending call, decide a selection of calls at once."""

import time
from typing import Any

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError

from hitl.server.api.bodies import Assign, Bulk, Snooze
from hitl.server.api.common import AsApprover, assignees
from hitl.service.bulk import Target, decide_all, select
from hitl.service.timespec import parse_moment
from hitl.service.workflow import InboxQuery

router = APIRouter()


@router.post("/approvals/{thread_id}/{tool_call_id}/assign", tags=["triage"])
def assign(thread_id: str, tool_call_id: str, body: Assign, act: AsApprover) -> dict[str, Any]:
    """Assign a pending call to a person or role (`me`: yourself); not a decision."""
    assignee = act.who.name if body.assignee == "me" else body.assignee
    record = act.service.assign(
        thread_id, tool_call_id, assignee, actor=act.who.name, roles=act.who.roles
    )
    return record.to_json()


@router.post("/approvals/{thread_id}/{tool_call_id}/snooze", tags=["triage"])
def snooze(thread_id: str, tool_call_id: str, body: Snooze, act: AsApprover) -> dict[str, Any]:
    """Hide a pending call from the default inbox until a time; it still expires."""
    until = None
    if body.until is not None:
        try:
            until = parse_moment(body.until, time.time())
        except ValueError as e:
            problem = {"type": "value_error", "loc": ("body", "until"), "msg": str(e)}
            raise RequestValidationError([problem | {"input": body.until}]) from None
    record = act.service.snooze(
        thread_id, tool_call_id, until, actor=act.who.name, roles=act.who.roles
    )
    return record.to_json()


@router.post("/approvals/bulk", tags=["triage"])
def bulk(body: Bulk, act: AsApprover) -> dict[str, Any]:
    """Approve or reject several calls, each on its own (its rules, its one-wins): the
    answer says per call whether it was decided, or why not."""
    if body.calls is not None:
        targets = [Target(c.thread_id, c.call, c.args_hash) for c in body.calls]
    else:
        assert body.filter is not None
        f = body.filter
        query = InboxQuery(
            tool=f.tool,
            thread_id=f.thread_id,
            requester=f.requester,
            assigned_to=assignees(f.assigned_to, act.who),
            snoozed="show" if f.include_snoozed else "hide",
        )
        targets = select(act.service, query)
    answer: dict[str, Any] = {"type": body.decision}
    if body.decision == "reject" and body.reason:
        answer["message"] = body.reason
    report = decide_all(
        act.service, targets, answer, actor=act.who.name, roles=act.who.roles, comment=body.comment
    )
    return report.to_json()
