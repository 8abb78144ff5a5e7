"""The audit trail's hash chain: how a link is hashed, and how a chain is checked.

Each thread has its own chain; entry N stores the hash of entry N-1 and its own hash over
both, so altering or deleting an entry breaks every later link. Deleting the newest entries
cannot be seen from the chain alone: the ledger cross-checks it against the approvals table,
and `AuditReport.heads` can be anchored elsewhere.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hitl.checkpoints.database import Cursor, PgCursor, execute_later, notify
from hitl.checkpoints.ledger._schema import AUDIT_COLUMNS, COLUMNS, audit_entry_of, record_of
from hitl.checkpoints.records import (
    STARTED,
    STATUS_OF_DECISION,
    ApprovalRecord,
    AuditEntry,
    AuditReport,
    BrokenLink,
    args_hash,
    canonical_json,
)

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


@dataclass(frozen=True)
class Link:
    """Where a thread's next entry goes: its `seq`, and the hash it chains to."""

    seq: int
    prev_hash: str


def next_link(cur: Cursor, thread_id: str) -> Link:
    """The place of the thread's next entry, read inside the caller's write transaction."""
    head = cur.execute(
        "SELECT seq, hash FROM hitl_audit WHERE thread_id = ? ORDER BY seq DESC LIMIT 1",
        (thread_id,),
    ).fetchone()
    return Link(head[0] + 1, head[1]) if head else Link(1, GENESIS)


def append_entry(
    cur: Cursor,
    *,
    thread_id: str,
    at: float,
    event: str,
    actor: str,
    tool_call_id: str | None,
    detail: dict[str, Any],
    link: Link | None = None,
) -> None:
    """Chain one entry to the thread's newest, inside the caller's write transaction.

    With `link` (`next_link`, read in this transaction), the caller has set the call's row's
    `audit_seq` to `link.seq` in its own write of the row; else it is set here.
    """
    if link is None:
        link = next_link(cur, thread_id)
        if tool_call_id is not None:  # lets verification see a chain whose newest entries are gone
            cur.execute(
                "UPDATE hitl_approvals SET audit_seq = ? WHERE thread_id = ? AND tool_call_id = ?",
                (link.seq, thread_id, tool_call_id),
            )
    seq, prev = link.seq, link.prev_hash
    detail = json.loads(canonical_json(detail))  # what is hashed is what is read back
    entry_hash = link_hash(prev, (thread_id, seq, at, event, actor, tool_call_id, detail))
    execute_later(  # (PostgreSQL: with the next statement, or the COMMIT)
        cur,
        f"INSERT INTO hitl_audit ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (thread_id, seq, at, event, actor, tool_call_id, canonical_json(detail), prev, entry_hash),
    )
    if isinstance(cur, PgCursor):  # inbox streams of every process hear it at the commit
        notify(cur, "audit")


def read_trail(cur: Cursor, thread_id: str) -> list[AuditEntry]:
    """A thread's entries, oldest first."""
    rows = cur.execute(
        f"SELECT {AUDIT_COLUMNS} FROM hitl_audit WHERE thread_id = ? ORDER BY seq", (thread_id,)
    ).fetchall()
    return [audit_entry_of(r) for r in rows]


AUTO_APPROVALS = ("approved_by_policy", "approved_by_standing")
"""The events that record a call approved without asking anyone (their `args_hash` runs)."""
DECISION_EVENTS = ("requested", "re-requested", *AUTO_APPROVALS, "decided", "expired")
"""The events after which a call may (or may not) run: the newest one says which args."""


def newest_among(
    cur: Cursor, thread_id: str, tool_call_id: str, events: Sequence[str]
) -> AuditEntry | None:
    """The call's newest entry whose event is one of `events`."""
    return newest_of_each(cur, thread_id, tool_call_id, [events])[0]


def newest_of_each(
    cur: Cursor, thread_id: str, tool_call_id: str, kinds: Sequence[Sequence[str] | None]
) -> list[AuditEntry | None]:
    """For each of `kinds` (event names; None: any event), the call's newest entry of that
    kind: one statement, however many kinds (on PostgreSQL, one round trip)."""
    selects, params = [], []
    for i, events in enumerate(kinds):
        among = "" if events is None else f" AND event IN ({', '.join('?' for _ in events)})"
        selects.append(
            f"SELECT * FROM (SELECT {i} AS kind, {AUDIT_COLUMNS} FROM hitl_audit WHERE "
            f"thread_id = ? AND tool_call_id = ?{among} ORDER BY seq DESC LIMIT 1) AS newest_{i}"
        )
        params += [thread_id, tool_call_id, *(events or ())]
    found: list[AuditEntry | None] = [None] * len(kinds)
    for row in cur.execute(" UNION ALL ".join(selects), params).fetchall():
        found[row[0]] = audit_entry_of(row[1:])
    return found


JOURNAL_EVENTS = ("tool_started", "tool_paused", "tool_finished", "outcome_unknown", "reconciled")
"""The events of a call's runs: the newest one, if newer than its decision, says its status."""


REQUEST_EVENTS = ("requested", "re-requested")
"""The events that ask a person about a call, under the rules recorded with them (`rules_of`)."""


def rules_of(row: Mapping[str, Any] | ApprovalRecord) -> dict[str, Any]:
    """Who may decide a call and what its deadline does, as its request entry records them: a
    row whose rules were changed by SQL would let another person decide, or let the sweep
    approve what was to be rejected."""

    def get(key: str) -> Any:
        return row.get(key) if isinstance(row, Mapping) else getattr(row, key)

    allowed, approvers = get("allowed_decisions"), get("approvers")
    escalate_to = get("escalate_to")
    if isinstance(allowed, str):  # a row's columns, as stored
        allowed = json.loads(allowed)
    if isinstance(approvers, str):
        approvers = json.loads(approvers)
    if isinstance(escalate_to, str):
        escalate_to = json.loads(escalate_to)
    return {
        "allowed_decisions": list(allowed),
        "approvers": None if approvers is None else sorted(approvers),
        "allow_self_approval": bool(get("allow_self_approval")),
        "expires_at": get("expires_at"),
        "on_expire": get("on_expire"),
        "escalate_at": get("escalate_at"),
        "escalate_to": None if escalate_to is None else sorted(escalate_to),
        "quorum": int(get("quorum") or 1),
        "quorum_distinct_roles": bool(get("quorum_distinct_roles")),
        "reject_vetoes": bool(True if get("reject_vetoes") is None else get("reject_vetoes")),
    }


RULES_EVENTS = (*REQUEST_EVENTS, "escalated")
"""The events that record a pending call's rules: its request, or an escalation that widened
who may decide it (the rules it recorded are the ones the row must hold from then on)."""


def newest_request(
    cur: Cursor, thread_id: str, tool_call_id: str, events: Sequence[str] = RULES_EVENTS
) -> AuditEntry | None:
    """The call's newest `RULES_EVENTS` entry: the rules its row must still hold. With
    `events=REQUEST_EVENTS`, the newest time it was asked about (an escalation asks nothing)."""
    return newest_among(cur, thread_id, tool_call_id, events)


def rules_disagreement(row: ApprovalRecord, request: AuditEntry | None) -> str | None:
    """Which of a call's rules its row holds otherwise than its request entry recorded; None
    if they agree (or the entry predates recording them)."""
    recorded = request.detail.get("rules") if request is not None else None
    if not isinstance(recorded, dict):
        return None
    held = rules_of(row)
    changed = sorted(k for k in recorded if recorded[k] != held.get(k))
    if not changed:
        return None
    return f"holds other rules ({', '.join(changed)}) than it was asked under"


WHY_EVENTS = ("requested", "re-requested", *AUTO_APPROVALS)
"""The events that record why a call was asked or let through (`detail["why"]`): the newest
one is what the row's `why` must hold. A standing approval's entry records the `why` of the
request it answered."""


def why_disagreement(row: ApprovalRecord, entry: AuditEntry | None) -> str | None:
    """How a row's `why` (which the gate compares with its policy) differs from the one its
    newest `WHY_EVENTS` entry recorded; None if they agree."""
    recorded = entry.detail.get("why") if entry is not None else None
    if recorded == row.why:
        return None
    return "holds another reason it was asked (why: rule, policy version) than it was asked with"


def approved_by(entry: AuditEntry | None) -> str | None:
    """The args hash a call's newest decision lets run (None: none may run)."""
    if entry is None or entry.event not in (*AUTO_APPROVALS, "decided", "expired"):
        return None
    key = "args_hash" if entry.event in AUTO_APPROVALS else "approved_args_hash"
    approved = entry.detail.get(key)
    return None if approved is None else str(approved)


def run_args(row: ApprovalRecord, decision: Mapping[str, Any]) -> dict[str, Any] | None:
    """The args a decision lets the call run with (None: it does not run)."""
    kind = decision["type"]
    if kind == "approve":
        return row.args
    if kind == "edit":
        return dict(decision["edited_action"]["args"])
    return None


def disagreement(
    row: ApprovalRecord, newest: AuditEntry | None, latest: AuditEntry | None
) -> str | None:
    """How a call's row contradicts its audit trail (its newest entry among `DECISION_EVENTS`,
    and its newest entry of any event: `newest_of_each`), or itself; None if args, status,
    decision and approved args all agree.

    The row is what the gates act on; a row that contradicts itself would have a call asked
    about and approved again for ever, and one set back from a finished status would run
    again, so `Ledger.begin` and `Ledger.reconcile` refuse it.
    """
    if args_hash(row.args) != row.args_hash:
        return "holds other arguments than the ones it was asked about"
    approved = approved_by(newest)
    if (row.approved_args_hash is not None or row.status in STARTED) and (
        row.approved_args_hash is None or row.approved_args_hash != approved
    ):
        return f"is {row.status} but the chain records no approval of its arguments"
    kind, statuses, said = _made_of(newest, latest)
    if row.status not in statuses or row.decision_type != kind:
        decided = f" ({row.decision_type})" if row.decision_type else ""
        return f"is {row.status}{decided} but the chain says {said}"
    if approved is not None and _hash_of_run(row) != approved:
        return "would run other arguments than the chain records as approved"
    return None


def _made_of(
    entry: AuditEntry | None, latest: AuditEntry | None
) -> tuple[str | None, set[str], str]:
    """The decision type, the status a row may have after `entry` (its newest decision) and
    `latest` (its newest entry), and what they say."""
    ran = _status_of_run(latest) if approved_by(entry) is not None else None
    if ran is not None:
        said = _RUN_SAYS[ran]
    if entry is None or entry.event in ("requested", "re-requested"):
        return None, {"pending"}, "nobody has decided yet"
    if entry.event == "approved_by_policy":
        return "approve", {ran or "approved"}, said if ran else "the policy approved it"
    if entry.event == "approved_by_standing":
        standing = entry.detail.get("standing_id")
        return "approve", {ran or "approved"}, said if ran else f"standing approval {standing}"
    if entry.event == "expired":
        kind = "approve" if approved_by(entry) is not None else "reject"
        return kind, {ran or "expired"}, said if ran else f"it expired ({kind})"
    kind = str(entry.detail.get("decision"))
    status = STATUS_OF_DECISION.get(kind, kind)
    return kind, {ran or status}, said if ran else f"it was {status} by {entry.actor}"


_RUN_SAYS = {
    "running": "its tool was started",
    "succeeded": "its tool succeeded",
    "failed": "its tool failed",
    "outcome_unknown": "its tool's outcome is unknown",
}


def _status_of_run(latest: AuditEntry | None) -> str | None:
    """The status a call's newest entry gives it, if it is about a run (None: a paused or
    retried run, or none since the decision, leaves the status the decision gave)."""
    if latest is None or latest.event not in JOURNAL_EVENTS:
        return None
    if latest.event == "tool_started":
        return "running"
    if latest.event == "tool_finished":
        return str(latest.detail.get("status"))
    if latest.event == "outcome_unknown":
        return "outcome_unknown"
    action = latest.detail.get("action")
    if latest.event == "reconciled" and action in ("mark_done", "skip"):
        return "succeeded" if action == "mark_done" else "failed"
    return None


def _hash_of_run(row: ApprovalRecord) -> str | None:
    try:
        args = None if row.decision is None else run_args(row, row.decision)
    except (KeyError, TypeError):  # an edit without its args
        return None
    return None if args is None else args_hash(args)


def verify_all(cur: Cursor) -> AuditReport:
    """Check every thread's chain, that no chain ends before its calls' newest entry, and
    that every call's row agrees with its newest decision in the chain."""
    rows = cur.execute(f"SELECT {AUDIT_COLUMNS} FROM hitl_audit ORDER BY thread_id, seq").fetchall()
    by_thread: dict[str, list[AuditEntry]] = {}
    for r in rows:
        by_thread.setdefault(r[0], []).append(audit_entry_of(r))
    calls: dict[str, list[ApprovalRecord]] = {}
    for r in cur.execute(f"SELECT {COLUMNS} FROM hitl_approvals ORDER BY thread_id").fetchall():
        calls.setdefault(r[0], []).append(record_of(r))
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
            link = _contradicted_row(entries, calls.get(thread_id, []))
        if link is not None:
            broken.append(link)
    heads = {thread_id: entries[-1].hash for thread_id, entries in by_thread.items()}
    return AuditReport(threads=len(by_thread), entries=len(rows), broken=broken, heads=heads)


def _contradicted_row(
    entries: list[AuditEntry], records: list[ApprovalRecord]
) -> BrokenLink | None:
    """The first call of a thread whose row contradicts its chain (`disagreement`)."""
    decisions = {e.tool_call_id: e for e in entries if e.event in DECISION_EVENTS}  # newest wins
    requests = {e.tool_call_id: e for e in entries if e.event in RULES_EVENTS}
    whys = {e.tool_call_id: e for e in entries if e.event in WHY_EVENTS}
    latest = {e.tool_call_id: e for e in entries}
    for record in records:
        cid = record.tool_call_id
        problem = disagreement(record, decisions.get(cid), latest.get(cid))
        if problem is None and record.status == "pending":  # the rules of who decides, and how
            problem = rules_disagreement(record, requests.get(cid))
        if problem is None:
            problem = why_disagreement(record, whys.get(cid))
        if problem is not None:
            return BrokenLink(
                record.thread_id,
                0,
                f"call {record.tool_call_id} {problem}: the approvals table was changed "
                "outside this program",
            )
    return None
