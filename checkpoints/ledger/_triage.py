"""Triage of pending calls: reminders and escalation (sent by the sweep), assignment, snooze.

None of these decides a call. Each is still a ledger change like the others: one write
transaction that updates the row with a compare-and-set and appends the matching audit entry
(`reminded`, `escalated`, `assigned`, `snoozed`). The compare-and-set on `reminded_at` /
`escalated_at` is what makes the sweep send each reminder and escalation once, however many
processes sweep at the same moment; webhooks follow from the audit entries.

Escalation widens who may decide: the escalation targets join the call's approvers, and the
`escalated` entry records the call's new rules (`rules_of`), which the tamper check then holds
the row to (`_audit.RULES_EVENTS`). A call that anyone may decide (no approvers) stays so.
Assigning and snoozing are allowed to whoever may approve the call (an approver by name or
role, anyone if it names none) and to admins.
"""

import json
from collections.abc import Callable, Collection
from typing import Any

from hitl.checkpoints.database import Cursor, Store
from hitl.checkpoints.errors import CallNotFound, NotPending, NotPermitted
from hitl.checkpoints.ledger._audit import (
    append_entry,
    newest_request,
    rules_disagreement,
    rules_of,
)
from hitl.checkpoints.ledger._reads import find_record, threads_of
from hitl.checkpoints.ledger._schema import COLUMNS, record_of
from hitl.checkpoints.records import ApprovalRecord, iso

ROLE_PREFIX = "role:"
"""An approver entry `role:NAME` admits everyone acting with that role (HTTP tokens)."""
ADMIN_ROLE = "admin"
"""The role that may assign and snooze any call."""


class LedgerTriage(Store):
    """Reminders, escalation, assignment and snooze (a part of `Ledger`, which sets `clock`)."""

    clock: Callable[[], float]

    def remind_due(self, *, actor: str) -> list[ApprovalRecord]:
        """Record one reminder for each pending call past its `remind_at` (and not snoozed);
        returns the calls reminded by this call, none twice across processes."""
        where = (
            "status = 'pending' AND reminded_at IS NULL AND remind_at IS NOT NULL "
            "AND remind_at <= ? AND (snoozed_until IS NULL OR snoozed_until <= ?)"
        )

        def work(cur: Cursor) -> list[ApprovalRecord]:
            now = self.clock()
            reminded = []
            for row in _rows(cur, where, (now, now)):
                if not _claim(cur, row, "reminded_at", now, {}):
                    continue  # another sweep sent it
                detail: dict[str, Any] = {"remind_at": row.remind_at, "expires_at": row.expires_at}
                if row.assignee is not None:
                    detail["assignee"] = row.assignee
                self._entry(cur, row, "reminded", actor, detail)
                reminded.append(_require(cur, row))
            return reminded

        return self._write(work)

    def escalate_due(self, *, actor: str) -> list[ApprovalRecord]:
        """Escalate each pending call past its `escalate_at`: its `escalate_to` may decide it
        from now on. Returns the calls escalated by this call, none twice across processes.

        A row whose rules were changed by SQL is left alone, for `audit --verify` to name.
        """
        where = (
            "status = 'pending' AND escalated_at IS NULL AND escalate_at IS NOT NULL "
            "AND escalate_at <= ?"
        )

        def work(cur: Cursor) -> list[ApprovalRecord]:
            now = self.clock()
            escalated = []
            for row in _rows(cur, where, (now,)):
                request = newest_request(cur, row.thread_id, row.tool_call_id)
                if rules_disagreement(row, request) is not None:
                    continue
                targets = sorted(row.escalate_to or [])
                widened = None if row.approvers is None else sorted({*row.approvers, *targets})
                change = {"approvers": None if widened is None else json.dumps(widened)}
                if not _claim(cur, row, "escalated_at", now, change):
                    continue
                after = _require(cur, row)
                added = sorted(set(widened or []) - set(row.approvers or []))
                detail = {
                    "escalate_to": targets,
                    "approvers_added": added,
                    "rules": rules_of(after),
                }
                self._entry(cur, row, "escalated", actor, detail)
                escalated.append(_require(cur, row))
            return escalated

        return self._write(work)

    def assign(
        self,
        thread_id: str,
        tool_call_id: str,
        assignee: str | None,
        *,
        actor: str,
        roles: Collection[str] = (),
    ) -> ApprovalRecord:
        """Assign a pending call to a person or `role:NAME` (None: unassign it)."""

        def work(cur: Cursor) -> ApprovalRecord:
            row = _pending(cur, thread_id, tool_call_id)
            _check_may_triage(row, "assign", actor, roles)
            if not _claim(cur, row, "assignee", assignee, {}, compare=row.assignee):
                raise NotPending(_require(cur, row))  # unreachable under the write lock
            detail = {"assignee": assignee, "previous": row.assignee}
            self._entry(cur, row, "assigned", actor, detail)
            return _require(cur, row)

        return self._write(work)

    def snooze(
        self,
        thread_id: str,
        tool_call_id: str,
        until: float | None,
        *,
        actor: str,
        roles: Collection[str] = (),
    ) -> ApprovalRecord:
        """Hide a pending call from the default inbox until `until` (None: show it again).

        It stays pending and still expires on its deadline; its reminder waits for the end
        of the snooze, its escalation does not.
        """

        def work(cur: Cursor) -> ApprovalRecord:
            row = _pending(cur, thread_id, tool_call_id)
            _check_may_triage(row, "snooze", actor, roles)
            now = self.clock()
            if until is not None and until <= now:
                raise ValueError(
                    f"cannot snooze until {iso(until)}: that is not in the future; "
                    "give a later time, or unsnooze the call"
                )
            if not _claim(cur, row, "snoozed_until", until, {}, compare=row.snoozed_until):
                raise NotPending(_require(cur, row))  # unreachable under the write lock
            detail = {"until": until, "expires_at": row.expires_at}
            self._entry(cur, row, "snoozed" if until is not None else "unsnoozed", actor, detail)
            return _require(cur, row)

        return self._write(work)

    def _entry(
        self, cur: Cursor, row: ApprovalRecord, event: str, actor: str, detail: dict[str, Any]
    ) -> None:
        append_entry(
            cur,
            thread_id=row.thread_id,
            at=self.clock(),
            event=event,
            actor=actor,
            tool_call_id=row.tool_call_id,
            detail=detail,
        )


_UNSET = object()


def _claim(
    cur: Cursor,
    row: ApprovalRecord,
    column: str,
    value: object,
    also: dict[str, Any],
    *,
    compare: object = _UNSET,
) -> bool:
    """Compare-and-set `column` on a still-pending row: from NULL (or from `compare`) to
    `value`, with `also`; whether this transaction won."""
    sets = {column: value, **also}
    assignments = ", ".join(f"{c} = ?" for c in sets)
    expected = None if compare is _UNSET else compare
    condition = f"{column} IS NULL" if expected is None else f"{column} = ?"
    params: tuple[Any, ...] = (*sets.values(), row.thread_id, row.tool_call_id)
    if expected is not None:
        params += (expected,)
    changed = cur.execute(
        f"UPDATE hitl_approvals SET {assignments} WHERE thread_id = ? AND tool_call_id = ? "
        f"AND status = 'pending' AND {condition}",
        params,
    ).rowcount
    return bool(changed)


def _rows(cur: Cursor, where: str, params: tuple[Any, ...]) -> list[ApprovalRecord]:
    return [
        record_of(r)
        for r in cur.execute(f"SELECT {COLUMNS} FROM hitl_approvals WHERE {where}", params)
    ]


def _pending(cur: Cursor, thread_id: str, tool_call_id: str) -> ApprovalRecord:
    row = find_record(cur, thread_id, tool_call_id)
    if row is None:
        raise CallNotFound(thread_id, tool_call_id, threads_of(cur, tool_call_id))
    if row.status != "pending":
        raise NotPending(row)
    return row


def _require(cur: Cursor, row: ApprovalRecord) -> ApprovalRecord:
    found = find_record(cur, row.thread_id, row.tool_call_id)
    assert found is not None
    return found


def _check_may_triage(row: ApprovalRecord, what: str, actor: str, roles: Collection[str]) -> None:
    """Who may assign or snooze a call: whoever may approve it, and admins."""
    names = {actor, *(f"{ROLE_PREFIX}{r}" for r in roles)}
    if row.approvers is None or names & set(row.approvers) or ADMIN_ROLE in roles:
        return
    raise NotPermitted(
        f"{actor!r} may not {what} calls of {row.tool}: only its approvers "
        f"({', '.join(row.approvers) or 'nobody'}) and admins may."
    )
