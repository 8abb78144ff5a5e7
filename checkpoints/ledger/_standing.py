"""Standing approvals: a decision turned into a rule. Calls of a tool within its scope (the
tool; its exact args; a requester; a thread) are approved in its creator's name, without
asking, until it expires or is revoked.

It is matched by `Ledger.request` in the same transaction that registers a call needing
review, so a revocation or an expiry is either before the call (which then waits for a
person) or after it (the call stays approved). It only approves what its creator could
approve by hand, under the rules of the call being asked about: a policy that no longer
names the creator among the approvers, forbids self-approval of their own call, or asks
for a quorum, is not bypassed. Creating or revoking one is recorded in the audit chain of
the thread of the call it came from (`source_thread_id`).
"""

import json
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from hitl.checkpoints.database import Cursor, Store
from hitl.checkpoints.errors import InvalidStanding, NotPermitted, StandingNotFound
from hitl.checkpoints.ledger._audit import append_entry, newest_request, rules_of
from hitl.checkpoints.ledger._permits import refusal
from hitl.checkpoints.ledger._reads import Clock, find_record
from hitl.checkpoints.records import ApprovalRecord, StandingApproval, args_hash

STANDING_COLUMNS = (
    "id, tool, args_hash, requester, thread_id, created_by, created_roles, created_at, "
    "expires_at, revoked_at, revoked_by, source_thread_id, source_tool_call_id"
)
CREATED_EVENT, REVOKED_EVENT, APPROVED_EVENT = (
    "standing_created",
    "standing_revoked",
    "approved_by_standing",
)
_SOURCES_LOOKED_AT = 50  # newest calls of a tool searched for the rules it was asked under
MAX_STANDING_DAYS = 3650
"""The longest a standing approval may stand: it must expire (longer is "for ever", and past
year 9999 its expiry has no date to show)."""


@dataclass(frozen=True)
class Remember:
    """ "Approve and remember": the standing approval an approval creates, scoped to the tool,
    narrowed to what is set here."""

    expires_after: float
    """Seconds until it expires."""
    args: bool = False
    """Only calls with exactly the approved call's args."""
    requester: bool = False
    """Only calls asked for by the approved call's requester."""
    thread: bool = False
    """Only calls of the approved call's thread."""


def remember_approval(
    cur: Cursor,
    row: ApprovalRecord,
    wish: Remember,
    *,
    actor: str,
    roles: Collection[str],
    now: float,
) -> StandingApproval:
    """The standing approval an approval of `row` by `actor` creates (same transaction)."""
    return create_standing(
        cur,
        row,
        rules_of(row),
        actor=actor,
        roles=roles,
        now=now,
        expires_after=wish.expires_after,
        h=row.args_hash if wish.args else None,
        requester=row.requester if wish.requester else None,
        thread_id=row.thread_id if wish.thread else None,
    )


def standing_of(row: tuple[Any, ...]) -> StandingApproval:
    """A `hitl_standing` row (selected as `STANDING_COLUMNS`) as a standing approval."""
    (
        sid, tool, h, requester, thread_id, created_by, roles, created_at, expires_at,
        revoked_at, revoked_by, source_thread_id, source_tool_call_id,
    ) = row  # fmt: skip
    return StandingApproval(
        id=sid,
        tool=tool,
        args_hash=h,
        requester=requester,
        thread_id=thread_id,
        created_by=created_by,
        created_roles=json.loads(roles),
        created_at=created_at,
        expires_at=expires_at,
        revoked_at=revoked_at,
        revoked_by=revoked_by,
        source_thread_id=source_thread_id,
        source_tool_call_id=source_tool_call_id,
    )


def matching_standing(
    cur: Cursor,
    *,
    thread_id: str,
    tool: str,
    h: str,
    requester: str | None,
    rules: Mapping[str, Any],
    now: float,
) -> StandingApproval | None:
    """The oldest active standing approval whose scope covers this call and whose creator
    may approve it under `rules` (the call's, as `rules_of` gives them); None: ask a person."""
    rows = cur.execute(
        f"SELECT {STANDING_COLUMNS} FROM hitl_standing WHERE tool = ? AND revoked_at IS NULL "
        "AND expires_at > ? AND (args_hash IS NULL OR args_hash = ?) "
        "AND (requester IS NULL OR requester = ?) AND (thread_id IS NULL OR thread_id = ?) "
        "ORDER BY created_at, id",
        (tool, now, h, requester, thread_id),
    ).fetchall()
    for standing in map(standing_of, rows):
        if _why_not(standing.created_by, standing.created_roles, rules, requester) is None:
            return standing
    return None


def _why_not(
    creator: str, roles: Collection[str], rules: Mapping[str, Any], requester: str | None
) -> str | None:
    """Why `creator` may not approve calls under `rules` without being asked (None: they may)."""
    if int(rules.get("quorum") or 1) > 1:
        return (
            f"its calls need {rules['quorum']} approvals: a standing approval would let one "
            "person approve them"
        )
    if "approve" not in rules.get("allowed_decisions", ()):
        return "its policy does not allow approving its calls"
    return refusal(
        tool="this tool",
        kind="approve",
        actor=creator,
        roles=roles,
        approvers=rules.get("approvers"),
        allow_self_approval=bool(rules.get("allow_self_approval", True)),
        requester=requester,
    )


class StandingApprovals(Store):
    """Creating, listing and revoking standing approvals (a part of `Ledger`)."""

    clock: Clock

    def allow(
        self,
        tool: str,
        *,
        actor: str,
        expires_after: float,
        roles: Collection[str] = (),
        args: Mapping[str, Any] | None = None,
        requester: str | None = None,
        thread_id: str | None = None,
    ) -> StandingApproval:
        """Create a standing approval for calls of `tool` (within the scope given), as `actor`.

        The rules checked are those recorded with the tool's newest call asked about (its
        `requested` entry): `actor` must be one who may approve it, and the tool must not ask
        for a quorum. `InvalidStanding` if no call of `tool` was ever asked about.
        """

        def work(cur: Cursor) -> StandingApproval:
            source, rules = _newest_rules(cur, tool)
            return create_standing(
                cur,
                source,
                rules,
                actor=actor,
                roles=roles,
                now=self.clock(),
                expires_after=expires_after,
                h=None if args is None else args_hash(dict(args)),
                requester=requester,
                thread_id=thread_id,
            )

        return self._write(work)

    def standing_approvals(self, *, include_inactive: bool = False) -> list[StandingApproval]:
        """Standing approvals, newest first: the active ones, or all."""
        where = "" if include_inactive else "WHERE revoked_at IS NULL AND expires_at > ?"
        params = () if include_inactive else (self.clock(),)

        def work(cur: Cursor) -> list[StandingApproval]:
            rows = cur.execute(
                f"SELECT {STANDING_COLUMNS} FROM hitl_standing {where} "
                "ORDER BY created_at DESC, id",
                params,
            ).fetchall()
            return [standing_of(r) for r in rows]

        return self._read(work)

    def revoke_standing(self, standing_id: str, *, actor: str) -> StandingApproval:
        """Revoke a standing approval: calls asked about from now on wait for a person (those
        it approved stay approved). Anyone may revoke one: asking a person is always safe."""

        def work(cur: Cursor) -> StandingApproval:
            now = self.clock()
            changed = cur.execute(
                "UPDATE hitl_standing SET revoked_at = ?, revoked_by = ? "
                "WHERE id = ? AND revoked_at IS NULL",
                (now, actor, standing_id),
            ).rowcount
            found = cur.execute(
                f"SELECT {STANDING_COLUMNS} FROM hitl_standing WHERE id = ?", (standing_id,)
            ).fetchone()
            if not changed or found is None:
                said = "no standing approval has this ID" if found is None else "it is revoked"
                raise StandingNotFound(
                    f"cannot revoke standing approval {standing_id!r}: {said}. "
                    "See `hitl allow list --all`."
                )
            standing = standing_of(found)
            append_entry(
                cur,
                thread_id=standing.source_thread_id,
                at=now,
                event=REVOKED_EVENT,
                actor=actor,
                tool_call_id=None,
                detail={"standing_id": standing.id, "scope": standing.scope},
            )
            return standing

        return self._write(work)


def create_standing(
    cur: Cursor,
    source: ApprovalRecord,
    rules: Mapping[str, Any],
    *,
    actor: str,
    roles: Collection[str],
    now: float,
    expires_after: float,
    h: str | None,
    requester: str | None,
    thread_id: str | None,
) -> StandingApproval:
    """Write one standing approval derived from `source` (a call of its tool, asked about
    under `rules`) and its `standing_created` entry, in the caller's transaction."""
    if not expires_after > 0:
        raise InvalidStanding(
            f"a standing approval needs a positive expiry (got {expires_after!r} seconds): "
            "give one such as --expires-in 7d"
        )
    if expires_after > MAX_STANDING_DAYS * 86_400:
        raise InvalidStanding(
            f"a standing approval stands for at most {MAX_STANDING_DAYS} days (got "
            f"{expires_after:g} seconds): give a shorter expiry, and revoke it when done"
        )
    # scoped to the creator's own calls, a tool without self-approval is refused here; else
    # each call the creator asked for is refused when matched
    problem = _why_not(actor, roles, rules, requester)
    if problem is not None:
        raise NotPermitted(
            f"{actor!r} may not create a standing approval for {source.tool}: {problem}"
        )
    standing = StandingApproval(
        id=f"sa_{secrets.token_hex(6)}",
        tool=source.tool,
        args_hash=h,
        requester=requester,
        thread_id=thread_id,
        created_by=actor,
        created_roles=sorted(roles),
        created_at=now,
        expires_at=now + expires_after,
        revoked_at=None,
        revoked_by=None,
        source_thread_id=source.thread_id,
        source_tool_call_id=source.tool_call_id,
    )
    cur.execute(
        f"INSERT INTO hitl_standing ({STANDING_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            standing.id,
            standing.tool,
            standing.args_hash,
            standing.requester,
            standing.thread_id,
            standing.created_by,
            json.dumps(standing.created_roles),
            standing.created_at,
            standing.expires_at,
            None,
            None,
            standing.source_thread_id,
            standing.source_tool_call_id,
        ),
    )
    append_entry(
        cur,
        thread_id=source.thread_id,
        at=now,
        event=CREATED_EVENT,
        actor=actor,
        tool_call_id=None,
        detail={
            "standing_id": standing.id,
            "scope": standing.scope,
            "expires_at": standing.expires_at,
            "from_call": source.tool_call_id,
        },
    )
    return standing


def _newest_rules(cur: Cursor, tool: str) -> tuple[ApprovalRecord, dict[str, Any]]:
    """The tool's newest call asked about, and the rules its request entry records."""
    found = cur.execute(
        "SELECT thread_id, tool_call_id FROM hitl_approvals WHERE tool = ? "
        "ORDER BY requested_at DESC LIMIT ?",
        (tool, _SOURCES_LOOKED_AT),
    ).fetchall()
    for thread_id, tool_call_id in found:
        asked = newest_request(cur, thread_id, tool_call_id)
        rules = asked.detail.get("rules") if asked is not None else None
        record = find_record(cur, thread_id, tool_call_id)
        if isinstance(rules, dict) and record is not None:
            return record, rules
    raise InvalidStanding(
        f"no call of {tool!r} was asked about yet, so its rules (who may approve it) are "
        "unknown: approve one of its calls with --remember instead, or check the tool's name "
        "(`hitl pending`, `hitl history`)."
    )
