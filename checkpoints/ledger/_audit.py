"""The audit trail's hash chain: how a link is hashed, and how a chain is checked.

Each thread has its own chain; entry N stores the hash of entry N-1 and its own hash over
both, so altering or deleting an entry breaks every later link. Deleting the newest entries
cannot be seen from the chain alone: the ledger cross-checks it against the approvals table,
and `AuditReport.heads` can be anchored elsewhere.
"""

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from hitl.checkpoints.database import Cursor, PgCursor, notify
from hitl.checkpoints.ledger._schema import AUDIT_COLUMNS, audit_entry_of
from hitl.checkpoints.records import AuditEntry, AuditReport, BrokenLink, canonical_json

GENESIS = "0" * 64


Linked = tuple[str, int, float, str, str, str | None, dict[str, Any]]
"""What a link hashes: thread_id, seq, at, event, actor, tool_call_id, detail."""


def link_hash(prev_hash: str, linked: Linked) -> str:
    """The hash of one entry, chained to the previous one."""
    thread_id, seq, at, event, actor, tool_call_id, detail = linked
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
        linked = (e.thread_id, e.seq, e.at, e.event, e.actor, e.tool_call_id, e.detail)
        recomputed = link_hash(prev, linked)
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


def append_entry(
    cur: Cursor,
    *,
    thread_id: str,
    at: float,
    event: str,
    actor: str,
    tool_call_id: str | None,
    detail: dict[str, Any],
) -> None:
    """Chain one entry to the thread's newest, inside the caller's write transaction."""
    head = cur.execute(
        "SELECT seq, hash FROM hitl_audit WHERE thread_id = ? ORDER BY seq DESC LIMIT 1",
        (thread_id,),
    ).fetchone()
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    detail = json.loads(canonical_json(detail))  # what is hashed is what is read back
    entry_hash = link_hash(prev, (thread_id, seq, at, event, actor, tool_call_id, detail))
    cur.execute(
        f"INSERT INTO hitl_audit ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (thread_id, seq, at, event, actor, tool_call_id, canonical_json(detail), prev, entry_hash),
    )
    if tool_call_id is not None:  # lets verification see a chain whose newest entries are gone
        cur.execute(
            "UPDATE hitl_approvals SET audit_seq = ? WHERE thread_id = ? AND tool_call_id = ?",
            (seq, thread_id, tool_call_id),
        )
    if isinstance(cur, PgCursor):  # inbox streams of every process hear it at the commit
        notify(cur, "audit")


def read_trail(cur: Cursor, thread_id: str) -> list[AuditEntry]:
    """A thread's entries, oldest first."""
    rows = cur.execute(
        f"SELECT {AUDIT_COLUMNS} FROM hitl_audit WHERE thread_id = ? ORDER BY seq", (thread_id,)
    ).fetchall()
    return [audit_entry_of(r) for r in rows]


DECISION_EVENTS = ("requested", "re-requested", "approved_by_policy", "decided", "expired")
"""The events after which a call may (or may not) run: the newest one says which args."""


def chain_approves(cur: Cursor, thread_id: str, tool_call_id: str, args_hash: str) -> bool:
    """Whether the call's newest decision in the audit trail lets `args_hash` run."""
    marks = ", ".join("?" for _ in DECISION_EVENTS)
    row = cur.execute(
        f"SELECT event, detail FROM hitl_audit WHERE thread_id = ? AND tool_call_id = ? "
        f"AND event IN ({marks}) ORDER BY seq DESC LIMIT 1",
        (thread_id, tool_call_id, *DECISION_EVENTS),
    ).fetchone()
    if row is None:
        return False
    event, detail = row[0], json.loads(row[1])
    key = "args_hash" if event == "approved_by_policy" else "approved_args_hash"
    return event in ("approved_by_policy", "decided", "expired") and detail.get(key) == args_hash


def verify_all(cur: Cursor) -> AuditReport:
    """Check every thread's chain, that no chain ends before its calls' newest entry, and
    that every call allowed to run has that approval in its chain."""
    rows = cur.execute(f"SELECT {AUDIT_COLUMNS} FROM hitl_audit ORDER BY thread_id, seq").fetchall()
    by_thread: dict[str, list[AuditEntry]] = {}
    for r in rows:
        by_thread.setdefault(r[0], []).append(audit_entry_of(r))
    expected: dict[str, int] = dict(
        cur.execute(
            "SELECT thread_id, MAX(audit_seq) FROM hitl_approvals GROUP BY thread_id"
        ).fetchall()
    )
    broken = []
    for thread_id in sorted(by_thread.keys() | expected.keys()):
        entries = by_thread.get(thread_id, [])
        link = first_broken_link(entries)
        newest = entries[-1].seq if entries else 0
        if link is None and newest < expected.get(thread_id, 0):
            problem = "the chain ends early: newer entries were deleted"
            link = BrokenLink(thread_id, newest + 1, problem)
        if link is None:
            link = _unrecorded_approval(cur, thread_id)
        if link is not None:
            broken.append(link)
    heads = {thread_id: entries[-1].hash for thread_id, entries in by_thread.items()}
    return AuditReport(threads=len(by_thread), entries=len(rows), broken=broken, heads=heads)


def _unrecorded_approval(cur: Cursor, thread_id: str) -> BrokenLink | None:
    """A call whose row lets it run (or says it ran) without the approval in the chain."""
    rows = cur.execute(
        "SELECT tool_call_id, approved_args_hash, status FROM hitl_approvals "
        "WHERE thread_id = ? AND (approved_args_hash IS NOT NULL OR status IN "
        "('running', 'succeeded', 'failed', 'outcome_unknown'))",
        (thread_id,),
    ).fetchall()
    for tool_call_id, approved, status in rows:
        if approved is None or not chain_approves(cur, thread_id, tool_call_id, approved):
            return BrokenLink(
                thread_id,
                0,
                f"call {tool_call_id} is {status} but the chain records no approval of its "
                "arguments: the approvals table was changed outside this program",
            )
    return None
