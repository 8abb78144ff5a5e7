"""The audit trail's hash chain: how a link is hashed, and how a chain is checked.

Each thread has its own chain; entry N stores the hash of entry N-1 and its own hash over
both, so altering or deleting an entry breaks every later link. Deleting the newest entries
cannot be seen from the chain alone: the ledger cross-checks it against the approvals table,
and `AuditReport.heads` can be anchored elsewhere.
"""

import hashlib
from collections.abc import Iterable
from typing import Any

from checkpoints.records import AuditEntry, BrokenLink, canonical_json

GENESIS = "0" * 64


def link_hash(
    prev_hash: str,
    *,
    thread_id: str,
    seq: int,
    at: float,
    event: str,
    actor: str,
    tool_call_id: str | None,
    detail: dict[str, Any],
) -> str:
    """The hash of one entry, chained to the previous one."""
    body = canonical_json([thread_id, seq, repr(at), event, actor, tool_call_id, detail])
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def first_broken_link(entries: Iterable[AuditEntry]) -> BrokenLink | None:
    """Walk one thread's entries (ordered by `seq`) and report the first that does not verify."""
    expected_seq, prev = 1, GENESIS
    for e in entries:
        if e.seq != expected_seq:
            return BrokenLink(e.thread_id, expected_seq, f"entry {expected_seq} is missing")
        if e.prev_hash != prev:
            return BrokenLink(e.thread_id, e.seq, "does not chain to the entry before it")
        recomputed = link_hash(
            prev,
            thread_id=e.thread_id,
            seq=e.seq,
            at=e.at,
            event=e.event,
            actor=e.actor,
            tool_call_id=e.tool_call_id,
            detail=e.detail,
        )
        if recomputed != e.hash:
            return BrokenLink(e.thread_id, e.seq, "was altered (its hash does not match)")
        expected_seq, prev = e.seq + 1, e.hash
    return None


def args_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What an edit changed: `{key: {"from": old, "to": new}}`, missing sides omitted."""
    diff: dict[str, Any] = {}
    for key in sorted(before.keys() | after.keys()):
        if before.get(key, _MISSING) != after.get(key, _MISSING):
            change = {}
            if key in before:
                change["from"] = before[key]
            if key in after:
                change["to"] = after[key]
            diff[key] = change
    return diff


_MISSING = object()
