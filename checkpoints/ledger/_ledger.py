"""The approvals ledger: one row per gated tool call, and the state machine that moves it.

It lives in the same database as the checkpoints (a SQLite file, or PostgreSQL), in tables of
its own (`hitl_*`). Every change is one write transaction (serialized: see
`checkpoints.database`) that updates a row with a compare-and-set on its status and appends
the matching audit entry, so the row and its audit trail are written together or not at all,
and the first of two concurrent decisions wins. A row goes from `request` through `decide`
(or `expire`) to `begin` and `finish` (or `abandon`, `unbegin`, `outcome_unknown` and
`reconcile`). The reads are in `_reads.py`, the thread leases in `_leases.py`.

The ledger is the source of truth for decisions and for tool execution; the graph's nodes
follow it (see `graph/nodes.py`), whichever runtime runs them.
"""

import json
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, overload

from hitl.checkpoints.database import (
    LOCK_WAIT_SECONDS,
    Cursor,
    PgConnection,
    PostgresOnly,
    Store,
    index_exists,
    schema_in_place,
    store_connection,
    table_exists,
)
from hitl.checkpoints.errors import (
    ArgsChanged,
    CallNotFound,
    DatabaseError,
    DatabaseReadOnly,
    LedgerTampered,
    NotPending,
    NotPermitted,
    NotReconcilable,
    SchemaMissing,
)
from hitl.checkpoints.ledger._audit import (
    DECISION_EVENTS,
    RULES_EVENTS,
    WHY_EVENTS,
    Link,
    append_entry,
    args_diff,
    disagreement,
    newest_of_each,
    newest_request,
    next_link,
    rules_disagreement,
    rules_of,
    run_args,
    why_disagreement,
)
from hitl.checkpoints.ledger._leases import (
    ThreadLeases,
    mark_done,
    mark_live,
    new_token,
    runner_alive,
)
from hitl.checkpoints.ledger._permits import refusal
from hitl.checkpoints.ledger._policy import PolicyChanges, reask_detail, reasks
from hitl.checkpoints.ledger._quorum import (
    cast_vote,
    clear_votes,
    counts_as_vote,
    refuse_unvoted,
)
from hitl.checkpoints.ledger._reads import Clock, LedgerReads, find_record, threads_of
from hitl.checkpoints.ledger._schema import (
    COLUMNS,
    INDEX_UPGRADES,
    MIGRATIONS,
    RETIRED_INDEXES,
    SCHEMA_VERSION,
    record_of,
    record_of_fields,
)
from hitl.checkpoints.ledger._standing import (
    APPROVED_EVENT,
    Remember,
    StandingApprovals,
    matching_standing,
    remember_approval,
)
from hitl.checkpoints.ledger._triage import ROLE_PREFIX, LedgerTriage
from hitl.checkpoints.records import (
    DECIDED_TO_RUN,
    NOT_YET_RUN,
    POLICY_ACTOR,
    STANDING_ACTOR_PREFIX,
    STATUS_OF_DECISION,
    ApprovalRecord,
    StandingApproval,
    Status,
    args_hash,
    canonical_json,
    digest,
    iso,
)

EXPIRY_ACTOR = "deadline"
"""`decided_by` of a call that a late decision found already past its deadline."""

SQLITE_RETURNING = sqlite3.sqlite_version_info >= (3, 35)
"""Whether this SQLite returns the rows a write wrote (`RETURNING`, since 3.35): else a written
row is read again."""
Registered = Literal["new", "changed", "kept"]
"""What registering a call did to its row: wrote it; asked about it again (or left a call that
already ran as it was); or found it as asked."""


@dataclass(frozen=True)
class Begin:
    """What the tools node may do with one approved call (see `Ledger.begin`)."""

    action: Literal["run", "done", "unknown", "busy", "ask"]
    record: ApprovalRecord | None


class Entry(NamedTuple):
    """The audit entry that records a change of a call's row (`Ledger._write_row`)."""

    event: str
    actor: str
    detail: dict[str, Any]


class _TurnBusy(Exception):
    """Rolls back a turn's `begin` when one of its calls is being executed elsewhere."""

    def __init__(self, begun: dict[str, Begin]) -> None:
        super().__init__()
        self.begun = begun


class Ledger(LedgerReads, ThreadLeases, PolicyChanges, LedgerTriage, StandingApprovals, Store):
    """The ledger on one database. Thread-safe.

    Its parts are mixins on one `Store` (the reads, the leases, what a policy change does,
    and here the state machine),
    not objects it delegates to: each part runs its transactions on the same connection
    with the same write lock, callers keep one object with one API, and each file holds one
    job. The parts share nothing but the store and `clock`.
    """

    def __init__(
        self,
        conn: sqlite3.Connection | PgConnection,
        *,
        path: str = "",
        clock: Clock = time.time,
        lock_wait: float = LOCK_WAIT_SECONDS,
    ) -> None:
        super().__init__(conn, path=path, lock_wait=lock_wait)
        self._attempts: dict[tuple[str, str], str] = {}  # calls this process is executing
        self.clock = clock

    def migrate(self) -> int:
        """Create or upgrade the ledger's tables; returns the schema version.

        Takes the write lock only when they are not current (opening the ledger then waits
        for no writer); read-only, it only checks that they are current (`INDEX_UPGRADES` not
        applied yet are no matter for a reader).
        """
        version = self.schema_version()  # first without the write lock: usually current
        if version == SCHEMA_VERSION and (self.read_only or self._read(_indexes_upgraded)):
            return version
        if self.read_only:
            problem = f"its ledger tables are at version {version}, not {SCHEMA_VERSION}"
            raise DatabaseReadOnly(self._path, RuntimeError(problem))

        def work(cur: Cursor) -> int:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS hitl_schema (id INTEGER PRIMARY KEY CHECK (id = 1), "
                "version INTEGER NOT NULL)"
            )
            row = cur.execute("SELECT version FROM hitl_schema").fetchone()
            version = row[0] if row else 0
            if version > SCHEMA_VERSION:
                raise DatabaseError(
                    self._path,
                    RuntimeError(
                        f"ledger schema {version} is newer than this program's "
                        f"({SCHEMA_VERSION}); upgrade hitl-approvals"
                    ),
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target]:
                    if self.on_postgres or not isinstance(statement, PostgresOnly):
                        cur.execute(statement)
            for statement in INDEX_UPGRADES:  # (each idempotent)
                cur.execute(statement)
            for name in RETIRED_INDEXES:
                cur.execute(f"DROP INDEX IF EXISTS {name}")
            cur.execute(
                "INSERT INTO hitl_schema (id, version) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                (SCHEMA_VERSION,),
            )
            return SCHEMA_VERSION

        return self._write(work)

    def schema_version(self) -> int:
        """The version of the ledger's tables in this file (0: not created)."""

        def work(cur: Cursor) -> int:
            if not table_exists(cur, "hitl_schema"):
                return 0
            row = cur.execute("SELECT version FROM hitl_schema").fetchone()
            return int(row[0]) if row else 0

        return self._read(work)

    # asking

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
    ) -> ApprovalRecord:
        """Register a call (idempotent) and return its row, decided or not.

        `committed_by`: the checkpointer of the run asking. If it is the saver this ledger
        carries (`carry`), a new call that waits for a person is registered in that saver's
        next commit, the interrupt's that asks about it, not in one of its own; the row
        returned is what that commit will write (previewed by a read: no write lock). Every
        other request is written now (a call that may run at once is looked up again before
        it starts).

        A row that exists with the same args is returned as is. One whose args differ and
        that has not run yet is asked about again with the new args (the earlier decision was
        for another action, and so were its quorum votes); a call that already ran keeps its
        row. `why` (the rule that matched, the policy's version) is recorded with the request.
        With `reask`, a row with the same args whose rule version differs from `why`'s is
        asked again under these rules if its tool may still run (`reasks`): the policy changed
        since it was asked. `remind_after` and `escalate_after` (seconds from now) are for the
        sweep (see `_triage.py`). A call needing review that an active standing approval
        covers is recorded approved in its creator's name (`approved_by_standing`), in the
        same transaction.
        """
        h = args_hash(dict(args))
        clock: list[float] = []  # read under the write lock; a preview's, in the commit too

        def registered(cur: Cursor, *, preview: bool = False) -> tuple[ApprovalRecord, Registered]:
            """The call's row once registered, and what that did to it. A `preview` reads
            only: a new call's row as it would be written, an existing one as it is."""
            if not clock:
                clock.append(self.clock())
            now = clock[0]
            row = find_record(cur, thread_id, tool_call_id)
            if (
                row is not None
                and row.args_hash == h
                and row.interrupt_id == interrupt_id
                and not (reask and reasks(row, why))
            ):
                return row, "kept"
            if preview and row is not None:
                return row, "changed"
            fields: dict[str, Any] = {
                "interrupt_id": interrupt_id,
                "tool": tool,
                "args": canonical_json(dict(args)),
                "args_hash": h,
                "requester": requester,
                "allowed_decisions": json.dumps(list(allowed_decisions)),
                "description": description,
                "requested_at": now,
                "expires_at": None if expires_after is None else now + expires_after,
                "on_expire": on_expire,
                "approvers": None if approvers is None else json.dumps(sorted(approvers)),
                "allow_self_approval": int(allow_self_approval),
                "decided_at": None,
                "decided_by": None,
                "decision": None,
                "reason": None,
                "approved_args_hash": None,
                "status": "pending",
                "applied": 0,
                "why": None if why is None else canonical_json(dict(why)),
                "quorum": quorum,
                "quorum_distinct_roles": int(quorum_distinct_roles),
                "reject_vetoes": int(reject_vetoes),
            } | _triage_fields(now, remind_after, escalate_after, escalate_to)
            rules = rules_of(fields)
            standing = None
            reasked = reask and row is not None and row.args_hash == h and reasks(row, why)
            asked = row is None or (row.args_hash != h and row.status in NOT_YET_RUN) or reasked
            if needs_review and asked:
                standing = matching_standing(
                    cur,
                    thread_id=thread_id,
                    tool=tool,
                    h=h,
                    # a re-ask keeps the row's requester, whoever resumed the thread
                    requester=row.requester if reasked and row is not None else requester,
                    rules=rules,
                    now=now,
                )
            if standing is not None:
                fields |= {
                    "status": "approved",
                    "decided_at": now,
                    "decided_by": f"{STANDING_ACTOR_PREFIX}{standing.id}",
                    "decision": canonical_json({"type": "approve"}),
                    "reason": f"standing approval {standing.id} by {standing.created_by}",
                    "approved_args_hash": h,
                    "expires_at": None,
                }
            if not needs_review:
                fields |= {
                    "status": "approved",
                    "decided_at": now,
                    "decided_by": POLICY_ACTOR,
                    "decision": canonical_json({"type": "approve"}),
                    "approved_args_hash": h,
                    "expires_at": None,
                } | _triage_fields(now, None, None, None)
            if row is None:
                detail = {"tool": tool, "args": dict(args), "args_hash": h}
                if fields["expires_at"] is not None:
                    detail["expires_at"] = fields["expires_at"]
                if needs_review:
                    detail["rules"] = rules
                if why is not None:
                    detail["why"] = dict(why)
                event = "requested" if needs_review else "approved_by_policy"
                if standing is not None:
                    event, detail = APPROVED_EVENT, detail | _standing_detail(standing)
                if preview:
                    return record_of_fields(thread_id, tool_call_id, fields), "new"
                entry = Entry(event, requester or "unknown", detail)
                return self._write_row(cur, thread_id, tool_call_id, fields, entry, new=True), "new"
            if row.args_hash != h and row.status in NOT_YET_RUN:
                clear_votes(cur, thread_id, tool_call_id)
                detail = {"args": args_diff(row.args, dict(args)), "args_hash": h}
                if needs_review:
                    detail["rules"] = rules
                if why is not None:
                    detail["why"] = dict(why)
                event = "re-requested" if needs_review else "approved_by_policy"
                if standing is not None:
                    event, detail = APPROVED_EVENT, detail | _standing_detail(standing)
                entry = Entry(event, POLICY_ACTOR, detail)
                return self._write_row(cur, thread_id, tool_call_id, fields, entry), "changed"
            if reasked:
                self._refuse_tampered(cur, row, why_too=True)  # its why decides: the chain's
                clear_votes(cur, thread_id, tool_call_id)  # cast under the rules it replaces
                detail = reask_detail(row, h, why)
                if needs_review:
                    detail["rules"] = rules
                event = "re-requested" if needs_review else "approved_by_policy"
                if standing is not None:
                    event, detail = APPROVED_EVENT, detail | _standing_detail(standing)
                entry = Entry(event, POLICY_ACTOR, detail)
                kept = fields | {"requester": row.requester}
                return self._write_row(cur, thread_id, tool_call_id, kept, entry), "changed"
            if row.args_hash == h and row.interrupt_id != interrupt_id:
                _update(cur, thread_id, tool_call_id, {"interrupt_id": interrupt_id})
            return _require(cur, thread_id, tool_call_id), "changed"

        def work(cur: Cursor) -> ApprovalRecord:
            return registered(cur)[0]

        carried = self._carrier is not None and committed_by is self._carrier
        if carried and needs_review:  # a read: no write lock taken, nothing rolled back
            record, did = self._read(lambda cur: registered(cur, preview=True))
            if did == "kept":
                return record
            if did == "new" and record.status == "pending":  # an interrupt asks next: its
                assert self._carrier is not None  # commit writes the row
                self._carrier.write_later(work)  # run again there, on what is there then
                return record
        return self._write(work)

    # deciding

    def decide(
        self,
        thread_id: str,
        decisions: Mapping[str, Mapping[str, Any]],
        *,
        actor: str,
        comment: str | None = None,
        seen_args_hashes: Mapping[str, str] | None = None,
        roles: Collection[str] = (),
        remember: Remember | None = None,
    ) -> list[ApprovalRecord]:
        """Record decisions (LangChain wire format) keyed by `tool_call_id`: all or none.

        Compare-and-set on `status = 'pending'`: the first decision for a call wins, any other
        raises `NotPending` with the recorded one. The policy saved with the call is enforced
        here (`NotPermitted`), whoever asks. With `seen_args_hashes`, a call whose args are not
        the ones the decider saw (it was asked about again since) raises `ArgsChanged`.

        A call whose rules ask for a quorum records an approval as a vote (`approval_vote`)
        and stays pending (returned as such) until the quorum's last vote decides it. With
        `remember`, each approval also creates a standing approval (see `_standing.py`).
        """

        def work(cur: Cursor) -> list[ApprovalRecord] | ApprovalRecord:
            now = self.clock()
            rows = {}
            for tool_call_id, decision in decisions.items():  # check all before writing any
                row = find_record(cur, thread_id, tool_call_id)
                if row is None:
                    raise CallNotFound(thread_id, tool_call_id, threads_of(cur, tool_call_id))
                if row.status != "pending":
                    raise NotPending(row)
                seen = (seen_args_hashes or {}).get(tool_call_id)
                if seen is not None and seen != row.args_hash:
                    raise ArgsChanged(row)
                self._refuse_tampered(cur, row)  # its rules say who may decide: the recorded ones
                _check_permitted(row, str(decision["type"]), actor, roles)
                refuse_unvoted(row, str(decision["type"]))
                if remember is not None and decision["type"] != "approve":
                    raise NotPermitted(
                        f"only an approval can be remembered, not {decision['type']}: "
                        "approve the call, or leave out the option to remember it"
                    )
                if remember is not None and row.quorum > 1:  # else a vote would drop it
                    raise NotPermitted(
                        f"calls of {row.tool} need {row.quorum} approvals: a standing approval "
                        "would let one person approve them. Approve without remembering it."
                    )
                rows[tool_call_id] = row
            # too late to let a call run: the deadline settles it, now, swept or not (a late
            # reject or respond is still recorded: not running a call is always safe)
            overdue = [
                row
                for cid, row in rows.items()
                if row.expires_at is not None
                and now >= row.expires_at
                and decisions[cid]["type"] in ("approve", "edit")
            ]
            if overdue:
                expired = [self._expire(cur, row, now, EXPIRY_ACTOR) for row in overdue]
                return expired[0]  # nothing else of the batch is recorded
            decided = []
            for tool_call_id, decision in decisions.items():
                row = rows[tool_call_id]
                kind = str(decision["type"])
                detail: dict[str, Any] = {"decision": kind}
                if counts_as_vote(row, kind):
                    votes = cast_vote(
                        cur, row, kind, actor=actor, roles=roles, now=now, audit=self._audit
                    )
                    if votes is None:  # not yet: the call waits for more votes
                        decided.append(row)
                        continue
                    detail["votes"] = [v.approver for v in votes]
                if remember is not None:
                    standing = remember_approval(
                        cur, row, remember, actor=actor, roles=roles, now=now
                    )
                    detail["standing_id"] = standing.id
                approved = run_args(row, decision)
                reason = decision.get("message") if kind in ("reject", "respond") else None
                fields = {
                    "status": STATUS_OF_DECISION[kind],
                    "decided_at": now,
                    "decided_by": actor,
                    "decision": canonical_json(dict(decision)),
                    "reason": comment or reason,
                    "approved_args_hash": None if approved is None else args_hash(approved),
                    "applied": 0,
                }
                if approved is not None:
                    detail["approved_args_hash"] = args_hash(approved)
                if reason:
                    detail["message"] = reason
                if comment:
                    detail["comment"] = comment
                if kind == "edit" and approved is not None:
                    detail["args"] = args_diff(row.args, approved)
                entry = Entry("decided", actor, detail)
                decided.append(self._write_row(cur, thread_id, tool_call_id, fields, entry))
            return decided

        outcome = self._write(work)
        if isinstance(outcome, ApprovalRecord):
            raise NotPending(outcome)  # committed: the expiry stands, the decision does not
        return outcome

    def answer_from_graph(
        self, thread_id: str, tool_call_id: str, decision: Mapping[str, Any], *, actor: str
    ) -> ApprovalRecord:
        """Record an answer given straight to the graph (Studio's resume); return the row.

        An answer the ledger refuses (already decided, not permitted) leaves the row as it is:
        the node then applies the recorded decision, or asks again.
        """
        try:
            return self.decide(thread_id, {tool_call_id: decision}, actor=actor)[0]
        except (NotPending, NotPermitted, CallNotFound) as refused:
            record = self.get(thread_id, tool_call_id)
            if record is None:  # not registered (or pruned meanwhile): nothing to answer
                raise refused from None
            return record

    def reconcile_from_graph(
        self, thread_id: str, tool_call_id: str, action: str, *, actor: str, result: str | None
    ) -> None:
        """Settle an unknown outcome from an answer given straight to the graph, if valid."""
        if action in ("retry", "mark_done", "skip"):
            with suppress(NotReconcilable, CallNotFound):
                self.reconcile(thread_id, tool_call_id, action, actor=actor, result=result)  # type: ignore[arg-type]

    def expire_overdue(self, *, actor: str) -> list[ApprovalRecord]:
        """Settle every pending call past its deadline with its `on_expire` decision.

        Compare-and-set like `decide`, so a person deciding at the same moment either wins
        (the call is not expired) or is refused.
        """

        def work(cur: Cursor) -> list[ApprovalRecord]:
            now = self.clock()
            overdue = [
                record_of(r)
                for r in cur.execute(
                    f"SELECT {COLUMNS} FROM hitl_approvals "
                    "WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= ?",
                    (now,),
                ).fetchall()
            ]
            # a row whose rules were changed by SQL (its on_expire, its deadline) is left
            # pending for `audit --verify` to name, not settled by what the forgery says
            return [
                self._expire(cur, row, now, actor)
                for row in overdue
                if rules_disagreement(row, newest_request(cur, row.thread_id, row.tool_call_id))
                is None
            ]

        return self._write(work)

    def _expire(self, cur: Cursor, row: ApprovalRecord, now: float, actor: str) -> ApprovalRecord:
        deadline = iso(row.expires_at)
        if row.on_expire == "approve":
            decision: dict[str, Any] = {"type": "approve"}
            approved: str | None = row.args_hash
        else:
            decision = {
                "type": "reject",
                "message": f"expired: nobody decided before the deadline ({deadline})",
            }
            approved = None
        _update(
            cur,
            row.thread_id,
            row.tool_call_id,
            {
                "status": "expired",
                "decided_at": now,
                "decided_by": actor,
                "decision": canonical_json(decision),
                "reason": f"deadline {deadline} passed",
                "approved_args_hash": approved,
                "applied": 0,
            },
        )
        detail = {"on_expire": row.on_expire, "deadline": row.expires_at}
        self._audit(
            cur,
            row.thread_id,
            "expired",
            actor,
            row.tool_call_id,
            detail | {"approved_args_hash": approved},
        )
        return _require(cur, row.thread_id, row.tool_call_id)

    # executing (the journal)

    def begin(
        self, thread_id: str, calls: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> dict[str, Begin]:
        """Journal the start of a turn's calls before they run, or say why one must not run.

        Per call, by `tool_call_id`: `run`: recorded as `running`, go ahead. `done`: it already
        finished; use the journaled result. `unknown`: an earlier attempt started and never
        finished (its process died); a person must settle it. `busy`: a live runner is
        executing it right now. `ask`: the args to run are not the approved ones (or nothing
        was approved): ask again. All or nothing: if one call is busy (or anything fails),
        no call of the turn is started, and those it would have started are `busy` too.
        """
        attempts = {cid: new_token() for cid, _ in calls}

        def work(cur: Cursor) -> dict[str, Begin]:
            begun = {
                cid: self._begin_one(cur, thread_id, cid, args_hash(dict(args)), attempts[cid])
                for cid, args in calls
            }
            if any(b.action == "busy" for b in begun.values()):
                raise _TurnBusy(begun)
            return begun

        for attempt in attempts.values():
            mark_live(attempt)  # before the commit: a concurrent begin must see it alive
        try:
            begun = self._write(work, carry=True)  # the steps that lead to the tool, too
        except BaseException as stopped:  # rolled back: nothing of the turn started
            for attempt in attempts.values():
                mark_done(attempt)
            if isinstance(stopped, _TurnBusy):  # a call it would have run must not run either
                return {
                    cid: Begin("busy", b.record) if b.action == "run" else b
                    for cid, b in stopped.begun.items()
                }
            raise
        for cid, b in begun.items():
            if b.action == "run":
                self._attempts[(thread_id, cid)] = attempts[cid]
            else:
                mark_done(attempts[cid])
        return begun

    def _begin_one(
        self, cur: Cursor, thread_id: str, tool_call_id: str, h: str, attempt: str
    ) -> Begin:
        row = find_record(cur, thread_id, tool_call_id)
        if row is None:
            return Begin("ask", None)
        self._refuse_tampered(cur, row)
        if row.status in ("succeeded", "failed"):
            return Begin("done", row)
        if row.status == "outcome_unknown":
            return Begin("unknown", row)
        if row.status == "running":
            if row.runner and runner_alive(cur, thread_id, row.runner):
                return Begin("busy", row)
            return Begin("unknown", self._mark_unknown(cur, row))
        if row.status in DECIDED_TO_RUN and row.approved_args_hash == h:
            fields = {"status": "running", "runner": attempt, "started_at": self.clock()}
            entry = Entry("tool_started", attempt, {"args_hash": h})
            return Begin("run", self._write_row(cur, thread_id, tool_call_id, fields, entry))
        return Begin("ask", row)

    def unbegin(self, thread_id: str, tool_call_id: str) -> None:
        """Undo `begin` for a call whose tool stopped before doing anything it could not
        redo (it raised an interrupt: LangGraph runs it again from the start on resume)."""
        runner = self._attempts.pop((thread_id, tool_call_id), None)
        if runner is None:
            return

        def work(cur: Cursor) -> None:
            row = find_record(cur, thread_id, tool_call_id)
            if row is None or row.status != "running" or row.runner != runner:
                return
            fields = {"status": _decided_status(cur, row), "runner": None, "started_at": None}
            _update(cur, thread_id, tool_call_id, fields)
            self._audit(cur, thread_id, "tool_paused", runner, tool_call_id, {})

        try:
            self._write(work)
        finally:
            mark_done(runner)

    def finish(self, thread_id: str, tool_call_id: str, *, ok: bool, result: str) -> None:
        """Journal the result of a call this process began; a replay gets it instead of a run.

        If it cannot be written (the database stayed locked), the attempt is left `running`
        with no live runner, so the call becomes `outcome_unknown`: nobody is told it failed.
        """
        runner = self._attempts.pop((thread_id, tool_call_id), None)
        if runner is None:
            return

        def work(cur: Cursor) -> None:
            status = "succeeded" if ok else "failed"
            fields = {
                "status": status,
                "finished_at": self.clock(),
                "result": result,
                "result_status": "success" if ok else "error",
            }
            entry = Entry(
                "tool_finished", runner, {"status": status, "result_digest": digest(result)}
            )
            still_ours = (" AND status = 'running' AND runner = ?", (runner,))  # else: recorded
            self._write_row(cur, thread_id, tool_call_id, fields, entry, only_if=still_ours)

        try:
            self._write(work)
        finally:
            mark_done(runner)

    def abandon(self, thread_id: str, tool_call_id: str) -> None:
        """Forget an attempt that ended without a result (the tool did not return)."""
        runner = self._attempts.pop((thread_id, tool_call_id), None)
        if runner is not None:
            mark_done(runner)

    def mark_orphaned_runs(self) -> list[ApprovalRecord]:
        """Record as `outcome_unknown` every `running` call whose runner is gone.

        Looks first without the write lock: usually nothing is running, or what runs has
        a live runner, and an inbox read should not wait behind writers for nothing. A
        read-only database shows its calls as recorded.
        """

        def any_orphaned(cur: Cursor) -> bool:
            return any(
                not (row[1] and runner_alive(cur, row[0], row[1]))
                for row in cur.execute(
                    "SELECT thread_id, runner FROM hitl_approvals WHERE status = 'running'"
                ).fetchall()
            )

        if self.read_only or not self._read(any_orphaned):
            return []

        def work(cur: Cursor) -> list[ApprovalRecord]:
            rows = [
                record_of(r)
                for r in cur.execute(
                    f"SELECT {COLUMNS} FROM hitl_approvals WHERE status = 'running'"
                ).fetchall()
            ]
            return [
                self._mark_unknown(cur, row)
                for row in rows
                if not (row.runner and runner_alive(cur, row.thread_id, row.runner))
            ]

        return self._write(work)

    def _refuse_tampered(self, cur: Cursor, row: ApprovalRecord, *, why_too: bool = False) -> None:
        """A row that contradicts its chain (or itself) would be asked about and approved again
        with the same answer, for ever, or run again: name it instead. `why_too` checks its
        `why` as well (when a policy change is judged by it)."""
        thread_id, tool_call_id = row.thread_id, row.tool_call_id
        pending = row.status == "pending"
        kinds: list[Sequence[str] | None] = [DECISION_EVENTS, None]  # (one statement)
        kinds += [RULES_EVENTS] if pending else []
        kinds += [WHY_EVENTS] if why_too else []
        newest, latest, *rest = newest_of_each(cur, thread_id, tool_call_id, kinds)
        problem = disagreement(row, newest, latest)
        if problem is None and pending:
            problem = rules_disagreement(row, rest[0])
        if problem is None and why_too:
            problem = why_disagreement(row, rest[-1])
        if problem is not None:
            raise LedgerTampered(thread_id, tool_call_id, problem)

    def reconcile(
        self,
        thread_id: str,
        tool_call_id: str,
        action: Literal["retry", "mark_done", "skip"],
        *,
        actor: str,
        result: str | None = None,
    ) -> ApprovalRecord:
        """Settle a call whose outcome is unknown: run it again, or record how it ended."""

        def work(cur: Cursor) -> ApprovalRecord:
            row = find_record(cur, thread_id, tool_call_id)
            if row is None:
                raise CallNotFound(thread_id, tool_call_id, threads_of(cur, tool_call_id))
            self._refuse_tampered(cur, row)  # a forged "unknown" would run a finished call
            if row.status != "outcome_unknown":
                raise NotReconcilable(row)
            now = self.clock()
            fields: dict[str, Any]
            if action == "retry":
                fields = {"status": _decided_status(cur, row), "runner": None, "started_at": None}
            elif action == "mark_done":
                text = result or f"Done (confirmed by {actor} after the outcome was unknown)."
                fields = {"status": "succeeded", "result": text, "result_status": "success"}
            else:
                text = (
                    f"Not run: {actor} skipped this call after an earlier attempt's outcome "
                    "was unknown."
                )
                fields = {"status": "failed", "result": text, "result_status": "error"}
            if action != "retry":
                fields["finished_at"] = now
            _update(cur, thread_id, tool_call_id, fields | {"applied": 0})
            detail: dict[str, Any] = {"action": action}
            if "result" in fields:
                detail["result_digest"] = digest(fields["result"])
            self._audit(cur, thread_id, "reconciled", actor, tool_call_id, detail)
            return _require(cur, thread_id, tool_call_id)

        return self._write(work)

    def _mark_unknown(self, cur: Cursor, row: ApprovalRecord) -> ApprovalRecord:
        _update(cur, row.thread_id, row.tool_call_id, {"status": "outcome_unknown"})
        self._audit(
            cur,
            row.thread_id,
            "outcome_unknown",
            "ledger",
            row.tool_call_id,
            {"runner": row.runner, "started_at": row.started_at},
        )
        return _require(cur, row.thread_id, row.tool_call_id)

    # applying: the thread's state has caught up with the decisions

    def mark_applied(
        self,
        thread_id: str,
        tool_call_ids: Iterable[str],
        *,
        at: Literal["now", "release"] = "now",
    ) -> None:
        """Record that the thread's state holds the decisions of these calls.

        Not synced to disk: a mark a crash loses only costs `sweep` a resume that finds
        nothing left to apply; the decisions themselves were synced when recorded. `at` says
        when it is written, for a caller that reads nothing of it before: `"now"`, or
        `"release"`, with the release of the thread's lease this process holds (now, if it
        holds none).
        """
        ids = sorted(set(tool_call_ids) & self.unapplied_calls(thread_id))
        if not ids:
            return
        statement = (
            f"UPDATE hitl_approvals SET applied = 1 WHERE thread_id = ? AND tool_call_id IN "
            f"({', '.join('?' for _ in ids)}) AND applied = 0 "
            "AND status NOT IN ('pending', 'outcome_unknown')"
        )
        work = lambda cur: cur.execute(statement, (thread_id, *ids))  # noqa: E731
        if not (at == "release" and self.at_release(thread_id, work)):
            self._write(work, durable=False)

    # the audit trail: every change appends its entry

    @overload
    def _write_row(
        self,
        cur: Cursor,
        thread_id: str,
        tool_call_id: str,
        fields: Mapping[str, Any],
        entry: Entry,
        *,
        new: bool = False,
    ) -> ApprovalRecord: ...

    @overload
    def _write_row(
        self,
        cur: Cursor,
        thread_id: str,
        tool_call_id: str,
        fields: Mapping[str, Any],
        entry: Entry,
        *,
        only_if: tuple[str, Sequence[Any]],
    ) -> ApprovalRecord | None: ...

    def _write_row(
        self,
        cur: Cursor,
        thread_id: str,
        tool_call_id: str,
        fields: Mapping[str, Any],
        entry: Entry,
        *,
        new: bool = False,
        only_if: tuple[str, Sequence[Any]] = ("", ()),
    ) -> ApprovalRecord | None:
        """Insert a call's row (`new`) or update it, and chain the `entry` that records the
        change: the row's `audit_seq` is set in the same statement, and the row comes back as
        written (one statement each, where a write, its `audit_seq` and a read took three).

        `only_if` (SQL after `AND`, and its parameters) is a condition the update also needs:
        None, and nothing chained, if the row no longer meets it.
        """
        link = next_link(cur, thread_id)
        written = {**fields, "audit_seq": link.seq}
        if new:
            columns = ["thread_id", "tool_call_id", *written]
            marks = ", ".join("?" for _ in columns)
            statement = f"INSERT INTO hitl_approvals ({', '.join(columns)}) VALUES ({marks})"
            params: tuple[Any, ...] = (thread_id, tool_call_id, *written.values())
        else:
            assignments = ", ".join(f"{column} = ?" for column in written)
            statement = (
                f"UPDATE hitl_approvals SET {assignments} "
                f"WHERE thread_id = ? AND tool_call_id = ?{only_if[0]}"
            )
            params = (*written.values(), thread_id, tool_call_id, *only_if[1])
        record: ApprovalRecord | None
        if isinstance(cur, sqlite3.Cursor) and not SQLITE_RETURNING:
            written_any = cur.execute(statement, params).rowcount
            record = find_record(cur, thread_id, tool_call_id) if written_any else None
        else:
            row = cur.execute(f"{statement} RETURNING {COLUMNS}", params).fetchone()
            record = None if row is None else record_of(row)
        if record is None:
            return None
        event, actor, detail = entry
        self._audit(cur, thread_id, event, actor, tool_call_id, detail, link=link)
        return record

    def _audit(
        self,
        cur: Cursor,
        thread_id: str,
        event: str,
        actor: str,
        tool_call_id: str | None,
        detail: dict[str, Any],
        *,
        link: Link | None = None,
    ) -> None:
        append_entry(
            cur,
            thread_id=thread_id,
            at=self.clock(),
            event=event,
            actor=actor,
            tool_call_id=tool_call_id,
            detail=detail,
            link=link,
        )


@contextmanager
def open_ledger(
    path: Path | str,
    *,
    clock: Clock = time.time,
    lock_wait: float = LOCK_WAIT_SECONDS,
    create: bool = True,
    read_only_ok: bool = False,
) -> Iterator[Ledger]:
    """Open (and create or migrate) the ledger in the database at `path` (file or URL); see
    `make_ledger`."""
    ledger = make_ledger(
        path, clock=clock, lock_wait=lock_wait, create=create, read_only_ok=read_only_ok
    )
    try:
        yield ledger
    finally:
        ledger.close()


def make_ledger(
    path: Path | str,
    *,
    clock: Clock = time.time,
    lock_wait: float = LOCK_WAIT_SECONDS,
    create: bool = True,
    read_only_ok: bool = False,
) -> Ledger:
    """A migrated ledger on `path`, open until `close()` (for long-lived runtimes).

    Without `create`, a database without the ledger's tables is refused (`SchemaMissing`), not
    given them; with `read_only_ok` (the caller only reads), a SQLite file this user may not
    write is opened read-only.
    """
    connection = store_connection(path, read_only_ok=read_only_ok)
    ledger = Ledger(connection, path=str(path), clock=clock, lock_wait=lock_wait)
    try:
        if not create and ledger.schema_version() == 0:
            raise SchemaMissing(path)
        ledger.migrate()
    except BaseException:
        ledger.close()
        raise
    return ledger


def _indexes_upgraded(cur: Cursor) -> bool:
    """Whether `INDEX_UPGRADES` and `RETIRED_INDEXES` would change nothing."""
    retired = any(index_exists(cur, name) for name in RETIRED_INDEXES)
    return not retired and schema_in_place(cur, INDEX_UPGRADES)


def _standing_detail(standing: StandingApproval) -> dict[str, Any]:
    """What an `approved_by_standing` entry adds: which standing approval, whose, its scope."""
    return {
        "standing_id": standing.id,
        "created_by": standing.created_by,
        "scope": standing.scope,
    }


def _decided_status(cur: Cursor, row: ApprovalRecord) -> Status:
    """The status a started call had before it started: what its decision made of it."""
    last = cur.execute(
        "SELECT event FROM hitl_audit WHERE thread_id = ? AND tool_call_id = ? "
        "AND event IN ('decided', 'expired', 'approved_by_policy', 'approved_by_standing') "
        "ORDER BY seq DESC LIMIT 1",
        (row.thread_id, row.tool_call_id),
    ).fetchone()
    if last is not None and last[0] == "expired":
        return "expired"
    return STATUS_OF_DECISION.get(row.decision_type or "", "approved")


def _triage_fields(
    now: float,
    remind_after: float | None,
    escalate_after: float | None,
    escalate_to: Sequence[str] | None,
) -> dict[str, Any]:
    """A (re-)requested call's reminder and escalation, none sent yet, and no snooze."""
    return {
        "remind_at": None if remind_after is None else now + remind_after,
        "escalate_at": None if escalate_after is None else now + escalate_after,
        "escalate_to": None if escalate_to is None else json.dumps(sorted(escalate_to)),
        "reminded_at": None,
        "escalated_at": None,
        "snoozed_until": None,
    }


def _require(cur: Cursor, thread_id: str, tool_call_id: str) -> ApprovalRecord:
    record = find_record(cur, thread_id, tool_call_id)
    assert record is not None
    return record


def _update(cur: Cursor, thread_id: str, tool_call_id: str, fields: Mapping[str, Any]) -> None:
    assignments = ", ".join(f"{column} = ?" for column in fields)
    cur.execute(
        f"UPDATE hitl_approvals SET {assignments} WHERE thread_id = ? AND tool_call_id = ?",
        (*fields.values(), thread_id, tool_call_id),
    )


def check_permitted(
    row: ApprovalRecord, kind: str, actor: str, roles: Collection[str] = ()
) -> None:
    """`NotPermitted` unless `actor` (with `roles`) may make a `kind` decision on `row`: the
    check `decide` makes, for a caller that must know before (a decision link is made only
    for a person who may approve with it)."""
    _check_permitted(row, kind, actor, roles)


def _check_permitted(
    row: ApprovalRecord, kind: str, actor: str, roles: Collection[str] = ()
) -> None:
    """Whether `actor` (with `roles`) may make this decision under the call's rules."""
    problem = refusal(
        tool=row.tool,
        kind=kind,
        actor=actor,
        roles=roles,
        approvers=row.approvers,
        allow_self_approval=row.allow_self_approval,
        requester=row.requester,
    )
    if problem is not None:
        raise NotPermitted(problem)


__all__ = [
    "EXPIRY_ACTOR",
    "ROLE_PREFIX",
    "Begin",
    "Ledger",
    "check_permitted",
    "make_ledger",
    "open_ledger",
]
