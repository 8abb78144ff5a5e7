"""What a policy change does to a call asked under the earlier policy (a part of `Ledger`).

Each request records why it was asked (`why`: the rule that matched, the version of that rule
and of the whole policy). When a gate with another version of the call's rule meets a call
whose tool may still run, it either re-asks it under its rules (`Ledger.request(reask=True)`:
a `re-requested` or `approved_by_policy` entry with the new rules and `why`, the earlier
decision void) or applies the recorded decision (`keep_recorded_rules`: a `policy_changed`
entry says so, once per version). A decision that does not run the tool (reject, respond, an
expiry that rejects) stands under any policy: not running a call is always safe.
"""

import json
from collections.abc import Mapping
from typing import Any

from hitl.checkpoints.database import Cursor, Store
from hitl.checkpoints.ledger._reads import Clock, find_record
from hitl.checkpoints.records import DECIDED_TO_RUN, POLICY_ACTOR, ApprovalRecord

POLICY_CHANGED = "policy_changed"
"""The audit event of a decision applied under the rules it was asked under, although the
gate's policy for its tool has changed since (`on_policy_change="keep"`)."""


def rule_version(why: Mapping[str, Any] | None) -> str | None:
    """The version of the tool's rule a `why` records (None: not recorded)."""
    version = None if why is None else why.get("rule_version")
    return None if version is None else str(version)


def reasks(row: ApprovalRecord, why: Mapping[str, Any] | None) -> bool:
    """Whether a gate whose rule for this call is `why`'s must not simply apply the row: the
    rule changed since the call was asked (both versions known), and its tool may still run
    (it waits, or a decision lets it run and it has not started)."""
    recorded, current = rule_version(row.why), rule_version(why)
    if recorded is None or current is None or recorded == current:
        return False
    return row.status == "pending" or (
        row.status in DECIDED_TO_RUN and row.approved_args_hash is not None
    )


def reask_detail(row: ApprovalRecord, h: str, why: Mapping[str, Any] | None) -> dict[str, Any]:
    """The audit detail of a call asked again because the policy changed."""
    detail: dict[str, Any] = {
        "args_hash": h,
        "reason": POLICY_CHANGED,
        "why": None if why is None else dict(why),
        "recorded_why": row.why,
    }
    if row.status != "pending":
        detail["voided"] = {"decision": row.decision_type, "decided_by": row.decided_by}
    return detail


class PolicyChanges(Store):
    """Applying a decision under the rules it was asked under (`Ledger` sets `clock` and the
    methods it shares with its other parts)."""

    clock: Clock

    def keep_recorded_rules(
        self, thread_id: str, tool_call_id: str, *, current: Mapping[str, Any]
    ) -> ApprovalRecord | None:
        """Record (once per version) that this call is applied under the rules it was asked
        under although the gate's rule for it is now `current` (a `why`); return its row.

        Looks first without the write lock: after the first time, every replay finds it done.
        """

        def due(cur: Cursor) -> tuple[ApprovalRecord | None, bool]:
            row = find_record(cur, thread_id, tool_call_id)
            return row, row is not None and reasks(row, current) and not _kept(cur, row, current)

        row, todo = self._read(due)
        if not todo:
            return row

        def work(cur: Cursor) -> ApprovalRecord | None:
            row, todo = due(cur)
            if row is None or not todo:
                return row
            self._refuse_tampered(cur, row, why_too=True)  # its why decides: the chain's
            detail = {"on_policy_change": "keep", "recorded_why": row.why, "why": dict(current)}
            self._audit(cur, thread_id, POLICY_CHANGED, POLICY_ACTOR, tool_call_id, detail)
            return find_record(cur, thread_id, tool_call_id)

        return self._write(work)

    # shared with the ledger's other parts (defined by `Ledger`)

    def _refuse_tampered(self, cur: Cursor, row: ApprovalRecord, *, why_too: bool = False) -> None:
        raise NotImplementedError

    def _audit(
        self,
        cur: Cursor,
        thread_id: str,
        event: str,
        actor: str,
        tool_call_id: str | None,
        detail: dict[str, Any],
    ) -> None:
        raise NotImplementedError


def _kept(cur: Cursor, row: ApprovalRecord, current: Mapping[str, Any]) -> bool:
    """Whether the newest `policy_changed` entry already records keeping this call, as it is
    now, under `current`."""
    found = cur.execute(
        "SELECT detail FROM hitl_audit WHERE thread_id = ? AND tool_call_id = ? AND event = ? "
        "ORDER BY seq DESC LIMIT 1",
        (row.thread_id, row.tool_call_id, POLICY_CHANGED),
    ).fetchone()
    if found is None:
        return False
    try:
        detail = json.loads(found[0])
    except (TypeError, json.JSONDecodeError):
        return False
    same_row = detail.get("recorded_why") == row.why  # not a keep of an earlier re-ask
    return same_row and rule_version(detail.get("why")) == rule_version(current)
