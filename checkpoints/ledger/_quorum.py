"""Quorum: a call whose rules ask for N distinct approvers stays pending, collecting one vote
per person in `hitl_votes`, until the N-th approval; the same write transaction then records
the decision, so however many processes vote at once the call is approved once.

A vote counts for the args the call was asked about: asking again with other args clears the
votes (`clear_votes`), and the audit trail keeps each vote as an `approval_vote` entry, which
a vote row must agree with to be counted.
"""

import json
from collections.abc import Callable, Collection
from typing import Any, Literal

from hitl.checkpoints.database import Cursor
from hitl.checkpoints.errors import AlreadyVoted, LedgerTampered, NotPermitted
from hitl.checkpoints.ledger._audit import REQUEST_EVENTS, newest_request
from hitl.checkpoints.records import ApprovalRecord, Vote, quorum_progress

Audit = Callable[[Cursor, str, str, str, str | None, dict[str, Any]], None]
"""`Ledger._audit`: append one entry to a thread's chain in the caller's transaction."""
VOTE_EVENT = "approval_vote"


def counts_as_vote(row: ApprovalRecord, kind: str) -> bool:
    """Whether this decision on this call is a vote rather than a decision: an approval of a
    quorum call, or a reject of one whose rejects do not veto."""
    if row.quorum <= 1:
        return False
    return kind == "approve" or (kind == "reject" and not row.reject_vetoes)


def refuse_unvoted(row: ApprovalRecord, kind: str) -> None:
    """An edit or a respond would let one person decide what a quorum must agree on."""
    if row.quorum > 1 and kind in ("edit", "respond"):
        raise NotPermitted(
            f"calls of {row.tool} need {row.quorum} approvals: one person may not {kind} "
            "them. Approve (your vote counts towards the quorum) or reject."
        )


def votes_of(cur: Cursor, thread_id: str, tool_call_id: str) -> list[Vote]:
    """The votes on a call's current args, oldest first."""
    rows = cur.execute(
        "SELECT approver, role, vote, at FROM hitl_votes WHERE thread_id = ? "
        "AND tool_call_id = ? ORDER BY at, approver",
        (thread_id, tool_call_id),
    ).fetchall()
    return [Vote(approver=a, role=r, vote=v, at=at) for a, r, v, at in rows]


def clear_votes(cur: Cursor, thread_id: str, tool_call_id: str) -> None:
    """The call is asked about again (other args): earlier votes were for another action."""
    cur.execute(
        "DELETE FROM hitl_votes WHERE thread_id = ? AND tool_call_id = ?",
        (thread_id, tool_call_id),
    )


def cast_vote(
    cur: Cursor,
    row: ApprovalRecord,
    kind: str,
    *,
    actor: str,
    roles: Collection[str],
    now: float,
    audit: Audit,
) -> list[Vote] | None:
    """Record `actor`'s vote on a pending quorum call; the votes that decide it if this one
    reaches the quorum (the caller then records the decision), else None.

    Refused (`AlreadyVoted`) if `actor` voted already, or (`NotPermitted`) if the quorum needs
    distinct roles and none of `actor`'s is still missing.
    """
    vote: Literal["approve", "reject"] = "approve" if kind == "approve" else "reject"
    votes = votes_of(cur, row.thread_id, row.tool_call_id)
    _refuse_forged(cur, row, votes)
    if any(v.approver == actor for v in votes):
        raise AlreadyVoted(
            f"{actor!r} already voted on this call ({progress(row, votes)}): one person, one "
            "vote. Another approver must approve it."
        )
    role = _role_for(row, vote, votes, actor, roles)
    cur.execute(
        "INSERT INTO hitl_votes (thread_id, tool_call_id, args_hash, approver, role, vote, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (row.thread_id, row.tool_call_id, row.args_hash, actor, role, vote, now),
    )
    votes = [*votes, Vote(approver=actor, role=role, vote=vote, at=now)]
    same = [v for v in votes if v.vote == vote]
    detail: dict[str, Any] = {
        "vote": vote,
        "args_hash": row.args_hash,
        "votes": len(same),
        "quorum": row.quorum,
    }
    if role is not None:
        detail["role"] = role
    audit(cur, row.thread_id, VOTE_EVENT, actor, row.tool_call_id, detail)
    return same if len(same) >= row.quorum else None


def progress(row: ApprovalRecord, votes: list[Vote]) -> str:
    """ "1 of 2 approvals: alice" (and the rejects, if rejects do not veto)."""
    return quorum_progress(
        row.quorum,
        [v.approver for v in votes if v.vote == "approve"],
        [v.approver for v in votes if v.vote == "reject"],
    )


def _role_for(
    row: ApprovalRecord, vote: str, votes: list[Vote], actor: str, roles: Collection[str]
) -> str | None:
    """The role this approval is counted for: one no earlier approval came from."""
    if not row.quorum_distinct_roles or vote != "approve":
        return None
    if not roles:
        raise NotPermitted(
            f"calls of {row.tool} need approvals from {row.quorum} distinct roles and "
            f"{actor!r} acts with none: approve with a token that has a role."
        )
    taken = {v.role for v in votes if v.vote == "approve"}
    free = sorted(set(roles) - taken)
    if not free:
        raise NotPermitted(
            f"calls of {row.tool} need approvals from {row.quorum} distinct roles and "
            f"{actor!r}'s ({', '.join(sorted(roles))}) already approved it "
            f"({progress(row, votes)}): someone of another role must approve."
        )
    return free[0]


def _refuse_forged(cur: Cursor, row: ApprovalRecord, votes: list[Vote]) -> None:
    """Votes written by SQL would reach a quorum nobody gave: each must match an
    `approval_vote` entry of the chain since the call was last asked about."""
    # since it was last asked about: a re-request clears the votes, an escalation does not
    asked = newest_request(cur, row.thread_id, row.tool_call_id, REQUEST_EVENTS)
    since = asked.seq if asked is not None else 0
    chained = {
        (actor, json.loads(detail).get("vote"))
        for actor, detail in cur.execute(
            "SELECT actor, detail FROM hitl_audit WHERE thread_id = ? AND tool_call_id = ? "
            "AND event = ? AND seq > ?",
            (row.thread_id, row.tool_call_id, VOTE_EVENT, since),
        ).fetchall()
    }
    if {(v.approver, v.vote) for v in votes} != chained:
        raise LedgerTampered(
            row.thread_id, row.tool_call_id, "holds votes its audit trail does not record"
        )
