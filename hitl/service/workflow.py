"""The approval service: start and continue threads, list and decide approvals, by thread ID.

Deciding is a compare-and-set in the ledger (the first valid decision wins, whoever else
answers at the same moment), checked before anything is written: an unknown thread or call,
nothing pending, an already decided call, a decision the tool or the policy does not allow,
or an invalid edit raise a domain error (`errors.DOMAIN_ERRORS`) and leave the database
untouched. The thread is then resumed under its lease, so only one process runs it at a time;
the graph's nodes apply what the ledger recorded and journal every tool call (see
`checkpoints/ledger.py`).
"""

import itertools
import json
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal, Protocol, cast

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StateSnapshot
from pydantic import ValidationError

from hitl.checkpoints.errors import CallNotFound, DatabaseBusy, NotPending, ThreadBusy
from hitl.checkpoints.ledger import MAX_OFFSET as MAX_OFFSET  # the inbox's largest offset
from hitl.checkpoints.ledger import ROLE_PREFIX, Ledger
from hitl.checkpoints.ledger import InboxQuery as InboxQuery  # the inbox's query, for front ends
from hitl.checkpoints.ledger import Remember as Remember  # "approve and remember", for front ends
from hitl.checkpoints.ledger import ThreadFilter as ThreadFilter  # the thread list's filter
from hitl.checkpoints.ledger import ThreadQuery as ThreadQuery  # and query, likewise
from hitl.checkpoints.records import (
    NEEDS_A_PERSON,
    ApprovalRecord,
    AuditEntry,
    AuditReport,
    StandingApproval,
    Vote,
    iso,
)
from hitl.checkpoints.savers import Saver
from hitl.checkpoints.stores import Run
from hitl.graph.decisions import DecisionSchemas, DecisionType
from hitl.graph.errors import (
    CallInProgress,
    DecisionNotAllowedError,
    JournalUnavailable,
    ModelConfigError,
)
from hitl.graph.gate import REQUESTER_KEY, current_turn
from hitl.graph.message_log import MessageHistory
from hitl.service.errors import (
    AlreadyDecided,
    Busy,
    DecisionNotAllowed,
    InvalidDecision,
    InvalidSettings,
    InvalidStanding,
    InvalidTriage,
    NothingPending,
    NotPermitted,
    PendingApprovalsExist,
    ThreadExists,
    ThreadNotFound,
    UnknownCheckpoint,
    UnknownToolCall,
)
from hitl.service.reading import by_call, read_inbox, read_threads, votes_of_quorum_calls
from hitl.service.thread_ids import check_thread_id
from hitl.service.views import (
    MESSAGES_PAGE,
    HistoryEntry,
    InboxPage,
    Status,
    SweepReport,
    ThreadPage,
    ThreadView,
    message_to_json,
    page_of_messages,
    thread_view,
)
from hitl.service.views import Decided as Decided  # what `decide` returns, for front ends
from hitl.service.views import EveryPending as EveryPending
from hitl.service.views import Reconciled as Reconciled
from hitl.service.views import Sent as Sent

CANCELLED_REASON = "cancelled: the user sent a new message instead of deciding"
SWEEP_ACTOR = "hitl sweep"
MAX_SNOOZE_SECONDS = 366 * 86400.0
"""The longest snooze: a call is put off, not forgotten."""
ReconcileAction = Literal["retry", "mark_done", "skip"]
Observer = Callable[[str, Callable[[], dict[str, Any]]], None]
"""Called with (thread_id, update) after each step of a run; `update()` gives what the nodes
changed, as JSON (built only if the observer asks: nobody may be listening)."""


class MovesOn(Protocol):
    """How a thread moves on once the ledger holds what it needs (a decision, a settled
    call) or a message arrives: run in this process (`RunHere`, the CLI), or queued for a
    worker (the HTTP service's). The composition root chooses; the rules stay in the service.
    """

    def resume(
        self, service: "ApprovalService", thread_id: str, *, actor: str, after: str | None
    ) -> Run | None:
        """Continue the thread from its last checkpoint; `after` names what was recorded
        first, if anything."""
        ...

    def send(
        self,
        service: "ApprovalService",
        thread_id: str,
        prompts: list[str],
        *,
        actor: str,
        cancel_pending: bool,
    ) -> Run | None:
        """Run the thread on these user messages."""
        ...

    def has_queued_run(self, thread_id: str) -> bool:
        """Whether a run of the thread waits in a queue (its first one may not have run)."""
        ...


class RunHere:
    """Move threads on in this process, before the call returns (the CLI's way)."""

    def resume(
        self, service: "ApprovalService", thread_id: str, *, actor: str, after: str | None
    ) -> None:
        try:
            service.resume(thread_id)
        except Busy as e:
            if after is None:
                raise
            raise Busy(
                f"your {after} was recorded, but {e} The thread continues when that run "
                f"ends, or with `hitl resume {thread_id}` / `hitl sweep`."
            ) from None

    def send(
        self,
        service: "ApprovalService",
        thread_id: str,
        prompts: list[str],
        *,
        actor: str,
        cancel_pending: bool,
    ) -> None:
        service.run(prompts, thread_id, actor=actor, cancel_pending=cancel_pending)

    def has_queued_run(self, thread_id: str) -> bool:
        return False


class ApprovalService:
    """Every operation of every front end on one graph and one database."""

    def __init__(
        self,
        graph: CompiledStateGraph[Any],
        saver: Saver,
        schemas: DecisionSchemas,
        ledger: Ledger,
        *,
        moves_on: "MovesOn | None" = None,
        observer: Observer | None = None,
    ) -> None:
        self._moves_on: MovesOn = moves_on or RunHere()
        self._graph = graph
        self._saver = saver
        self._schemas = schemas
        self._ledger = ledger
        self._observer = observer

    # reading

    def show(
        self, thread_id: str, *, messages: int = MESSAGES_PAGE, before: int | None = None
    ) -> ThreadView:
        """The thread's status, pending approvals, final answer and a page of its messages:
        the newest `messages`, or those before position `before` (to page back).

        Of a stored conversation it reads the page and the newest message only, however long
        the thread: a front end that shows the thread after each step costs what the step does.
        """
        snapshot = self._snapshot(thread_id)
        waiting = self._waiting(thread_id)
        votes = by_call(votes_of_quorum_calls(self._ledger, waiting))
        status, values = _status(snapshot), snapshot.values or {}
        return _view(thread_id, status, values, waiting, votes, messages, before)

    def pending(self, query: InboxQuery | None = None) -> InboxPage:
        """One page of the approvals that need a person, from the ledger's index only.

        A call whose runner died mid-call is recorded as `outcome_unknown` first, so it shows.
        """
        return read_inbox(self._ledger, query)

    def list_threads(self, query: ThreadQuery | None = None) -> ThreadPage:
        """One page of every thread, newest activity first, with its status: from indexes
        (the checkpoints' keys, the ledger, the run queue), never reading a checkpoint."""
        return read_threads(self._ledger, query)

    def history(
        self, thread_id: str, *, limit: int | None = None, before: str | None = None
    ) -> list[HistoryEntry]:
        """The thread's checkpoints, oldest first, with what was pending or decided at each:
        all of them, or the newest `limit` (older than checkpoint `before`, to page back).

        A page reads `limit + 1` checkpoints (the extra one tells what the first changed),
        in a fixed number of queries, however long the thread.
        """
        self._snapshot(thread_id)
        older_than: RunnableConfig | None = None
        if before is not None:
            older_than = {"configurable": {"thread_id": thread_id, "checkpoint_id": before}}
            if self._saver.get_tuple(older_than) is None:
                raise UnknownCheckpoint(thread_id, before)
        fetched = list(
            self._graph.get_state_history(
                _config(thread_id), before=older_than, limit=None if limit is None else limit + 1
            )
        )
        snapshots = list(reversed(fetched))  # oldest first
        previous: StateSnapshot | None = None
        if limit is not None and len(fetched) > limit:
            previous, snapshots = snapshots[0], snapshots[1:]
        entries: list[HistoryEntry] = []
        for snap in snapshots:
            reviews = _review_map(snap.values)
            before_reviews = _review_map(previous.values) if previous else {}
            metadata = snap.metadata or {}
            entries.append(
                HistoryEntry(
                    checkpoint_id=str(snap.config["configurable"]["checkpoint_id"]),
                    step=int(metadata.get("step", -1)),
                    node=", ".join(previous.next) if previous and previous.next else "input",
                    created_at=str(snap.created_at),
                    pending=_interrupted_calls(snap),
                    decided={
                        cid: r["decision"]
                        for cid, r in reviews.items()
                        if cid not in before_reviews
                    },
                )
            )
            previous = snap
        return entries

    def audit(self, thread_id: str) -> list[AuditEntry]:
        """The thread's audit trail, oldest first."""
        entries = self._ledger.audit_trail(thread_id)
        if not entries:
            self._snapshot(thread_id)  # ThreadNotFound for an unknown thread
        return entries

    def export_audit(self, thread_id: str | None = None) -> Iterator[AuditEntry]:
        """Every audit entry (or one thread's), in chain order, read a page at a time."""
        entries = self._ledger.export_audit(thread_id)
        first = next(entries, None)
        if first is None and thread_id is not None:
            self._snapshot(thread_id)  # ThreadNotFound for an unknown thread
        return itertools.chain([] if first is None else [first], entries)

    def verify_audit(self) -> AuditReport:
        """Check every thread's hash chain."""
        return self._ledger.verify_audit()

    # acting

    def run(
        self,
        prompt: str | Sequence[str],
        thread_id: str | None = None,
        *,
        actor: str,
        cancel_pending: bool = False,
        message_id: str | None = None,
    ) -> ThreadView:
        """Run a user message (or several) on a new thread, or on an existing one that is not
        waiting, in this process (`send` is the front ends' way in; a `MovesOn` calls this).

        `actor` is recorded as the requester of every approval the message leads to. With
        `message_id` the messages get IDs derived from it, so a runner that died mid-run can
        tell (`has_message`) whether its input was already saved.
        """
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        _check_message(prompts, actor)
        thread_id = thread_id or str(uuid.uuid4())
        ids = [None] * len(prompts) if message_id is None else _message_ids(message_id, prompts)
        with self._lease(thread_id):
            waiting = self.check_can_send(thread_id, cancel_pending=cancel_pending)
            if waiting:
                cancel = {"type": "reject", "message": CANCELLED_REASON}
                with _translated(thread_id):
                    self._ledger.decide(
                        thread_id, {r.tool_call_id: cancel for r in waiting}, actor=actor
                    )
                self._invoke(None, thread_id)
            elif _unfinished(self._graph.get_state(_config(thread_id))):
                self._invoke(None, thread_id)  # finish what an earlier run left (a lost resume)
                if still := [r.tool_call_id for r in self._waiting(thread_id)]:
                    raise PendingApprovalsExist(thread_id, still)
            messages = [HumanMessage(p, id=i) for p, i in zip(prompts, ids, strict=True)]
            end = self._invoke(
                {"messages": messages, "requester": actor}, thread_id, requester=actor
            )
            return self._view_at(end)  # under the lease: what the run left, nothing since

    def check_can_send(self, thread_id: str, *, cancel_pending: bool) -> list[ApprovalRecord]:
        """The calls a new message would cancel; `PendingApprovalsExist` if it may not."""
        waiting = self._waiting(thread_id)
        if unknown := [r.tool_call_id for r in waiting if r.status == "outcome_unknown"]:
            raise PendingApprovalsExist(thread_id, unknown, outcome_unknown=True)
        if waiting and not cancel_pending:
            raise PendingApprovalsExist(thread_id, [r.tool_call_id for r in waiting])
        return waiting

    def has_message(self, thread_id: str, message_id: str) -> bool:
        """Whether the thread's saved state holds the messages sent with `message_id`."""
        values = self._graph.get_state(_config(thread_id)).values or {}
        first = _message_ids(message_id, [""])[0]
        messages = values.get("messages", [])
        if isinstance(messages, MessageHistory):  # an index lookup, not a read of them all
            return bool(messages.depths_of([first]))
        return any(m.id == first for m in messages)

    def exists(self, thread_id: str) -> bool:
        """Whether the thread has a checkpoint."""
        return self._graph.get_state(_config(thread_id)).created_at is not None

    # deciding: the one path of every front end

    def send(
        self,
        prompts: str | Sequence[str],
        thread_id: str | None = None,
        *,
        actor: str,
        cancel_pending: bool = False,
        expect: Literal["any", "new", "existing"] = "any",
    ) -> Sent:
        """Send a user message (or several) to a thread, which then moves on (see `MovesOn`).

        `expect="new"` refuses a thread that exists or has a queued first run
        (`ThreadExists`); `"existing"` refuses one that has neither (`ThreadNotFound`) or
        waits for decisions (`PendingApprovalsExist`, unless `cancel_pending`).
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        _check_message(prompts, actor)
        if thread_id is not None and expect != "existing":
            if not self._known(thread_id):
                check_thread_id(thread_id)
            elif expect == "new":
                raise ThreadExists(thread_id)
        if thread_id is not None and expect == "existing":
            if self.exists(thread_id):
                self.check_can_send(thread_id, cancel_pending=cancel_pending)
            elif not self._moves_on.has_queued_run(thread_id):
                raise ThreadNotFound(thread_id)
            # else its first run is still queued: that run checks when it runs
        thread_id = thread_id or str(uuid.uuid4())
        run = self._moves_on.send(
            self, thread_id, prompts, actor=actor, cancel_pending=cancel_pending
        )
        return Sent(thread_id, run)

    def decide(
        self,
        thread_id: str,
        answers: "Mapping[str, object] | EveryPending",
        *,
        actor: str,
        comment: str | None = None,
        seen_args_hashes: Mapping[str, str] | None = None,
        roles: Collection[str] = (),
        remember: Remember | None = None,
    ) -> Decided:
        """Record decisions keyed by `tool_call_id` (any subset of the pending calls), or one
        answer for `EveryPending` call, then move the thread on (see `MovesOn`).

        All or none: if one answer is refused, none is recorded, and nothing runs; nor if the
        thread's checkpoint is one this program refuses to load. The ledger's
        compare-and-set makes the first valid decision win. `seen_args_hashes` binds each
        decision to the args the decider saw; `roles` are the decider's roles, for policies
        that name `role:NAME` among a tool's approvers. A decision that comes too late for an
        expired call is refused, and the thread moves on so the model learns it expired.
        An approval of a quorum call is a vote: the thread moves on only once a call is
        decided. `remember` turns each approval into a standing approval.
        """
        if not _is_utf8(actor + (comment or "")):
            raise InvalidDecision("(the actor or comment)", _NOT_UTF8)
        if actor.startswith(ROLE_PREFIX):  # else `--as role:admin` would pass for any admin
            raise NotPermitted(f"{actor!r} names a role, not a person; decide under your own name")
        asked: dict[str, ApprovalRecord] = {}  # read just now, pending
        if isinstance(answers, EveryPending):
            asked = {r.tool_call_id: r for r in self._every_pending(thread_id)}
            answers = dict.fromkeys(asked, answers.answer)
        decisions = {
            cid: self._validated(thread_id, cid, a, asked.get(cid)) for cid, a in answers.items()
        }
        if not decisions:
            raise NothingPending(thread_id, self._status(thread_id))
        self._saver.get_tuple(_config(thread_id))  # a checkpoint we refuse to load: record nothing
        try:
            with _translated(thread_id, self._ledger):
                records = self._ledger.decide(
                    thread_id,
                    decisions,
                    actor=actor,
                    comment=comment,
                    seen_args_hashes=seen_args_hashes,
                    roles=roles,
                    remember=remember,
                )
        except AlreadyDecided as refused:
            if refused.status == "expired":  # too late: let the model learn it expired, now
                with suppress(Busy):
                    self._moves_on.resume(self, thread_id, actor=actor, after="decision")
            raise
        if all(r.status == "pending" for r in records):  # votes only: nothing to apply yet
            return Decided(thread_id, records, None)
        return Decided(
            thread_id,
            records,
            self._moves_on.resume(self, thread_id, actor=actor, after="decision"),
        )

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
        """Create a standing approval for calls of `tool` (narrowed to exactly `args`, to
        `requester`'s calls, to `thread_id`), checked against the rules recorded with the
        tool's newest call asked about (see `Ledger.allow`)."""
        if actor.startswith(ROLE_PREFIX):
            raise NotPermitted(f"{actor!r} names a role, not a person; act under your own name")
        scope = [tool, requester or "", thread_id or "", json.dumps(args, ensure_ascii=False)]
        if not all(_is_utf8(text) for text in scope):
            raise InvalidStanding(f"the standing approval's scope: {_NOT_UTF8}")
        return self._ledger.allow(
            tool,
            actor=actor,
            roles=roles,
            expires_after=expires_after,
            args=args,
            requester=requester,
            thread_id=thread_id,
        )

    def standing_approvals(self, *, include_inactive: bool = False) -> list[StandingApproval]:
        """The active standing approvals (or all, revoked and expired too), newest first."""
        return self._ledger.standing_approvals(include_inactive=include_inactive)

    def revoke_standing(self, standing_id: str, *, actor: str) -> StandingApproval:
        """Revoke a standing approval: calls asked about from now on wait for a person."""
        return self._ledger.revoke_standing(standing_id, actor=actor)

    def reconcile(
        self,
        thread_id: str,
        tool_call_id: str,
        action: ReconcileAction,
        *,
        actor: str,
        result: str | None = None,
    ) -> Reconciled:
        """Settle a call whose outcome is unknown (run it again, or record how it ended),
        then move the thread on."""
        self._snapshot(thread_id)
        with _translated(thread_id, self._ledger):
            record = self._ledger.reconcile(
                thread_id, tool_call_id, action, actor=actor, result=result
            )
        return Reconciled(
            record, self._moves_on.resume(self, thread_id, actor=actor, after="reconcile")
        )

    def continue_thread(self, thread_id: str, *, actor: str) -> Run | None:
        """Move a thread on from its last checkpoint (after a crash, a lost resume)."""
        self._snapshot(thread_id)
        return self._moves_on.resume(self, thread_id, actor=actor, after=None)

    def edit_answer(self, thread_id: str, tool_call_id: str, args: Mapping[str, Any]) -> object:
        """The `edit` answer that runs a pending call with `args` (its tool, unchanged)."""
        record = self._pending_record(thread_id, tool_call_id)
        return {"type": "edit", "edited_action": {"name": record.tool, "args": dict(args)}}

    def call_record(self, thread_id: str, tool_call_id: str) -> ApprovalRecord:
        """The ledger's row of one call, whatever its status."""
        record = self._ledger.get(thread_id, tool_call_id)
        if record is None:
            self._snapshot(thread_id)
            raise UnknownToolCall(
                thread_id,
                tool_call_id,
                [r.tool_call_id for r in self._waiting(thread_id)],
                self._ledger.threads_of_call(tool_call_id),
            )
        return record

    def votes(self, thread_id: str, tool_call_id: str) -> list[Vote]:
        """The votes on a pending quorum call, oldest first (none for other calls)."""
        return self._ledger.votes(thread_id, tool_call_id)

    def thread_records(self, thread_id: str) -> list[ApprovalRecord]:
        """Every call of the thread the ledger knows, decided or not."""
        return self._ledger.thread_records(thread_id)

    def answer_schema(self, tool: str, allowed: Sequence[str]) -> dict[str, Any]:
        """The JSON schema of the answers a call of `tool` accepts."""
        return self._schemas.json_schema(tool, cast(Sequence[DecisionType], allowed))

    def args_schema(self, tool: str) -> dict[str, Any]:
        """The JSON schema of `tool`'s arguments (what an edit must fit)."""
        return self._schemas.args_json_schema(tool)

    def resume(self, thread_id: str) -> None:
        """Continue a thread from its last checkpoint, under its lease (after a decision, or
        a crash): the nodes apply what the ledger recorded since."""
        with self._lease(thread_id):
            self._invoke(None, thread_id)

    def settle(
        self, *, grace: float | None = None
    ) -> tuple[list[ApprovalRecord], list[ApprovalRecord], list[str]]:
        """Expire overdue approvals and flag calls whose runner died; return those, and the
        threads that can move on (expired calls, decisions not applied `grace` seconds
        after they were recorded). Resuming them is the caller's."""
        with _translated():
            expired = self._ledger.expire_overdue(actor=SWEEP_ACTOR)
            orphaned = self._ledger.mark_orphaned_runs()
            unapplied = (
                self._ledger.unapplied_threads()
                if grace is None
                else self._ledger.unapplied_threads(older_than=grace)
            )
        threads = list(dict.fromkeys([r.thread_id for r in expired] + unapplied))
        return expired, orphaned, threads

    def nudge(self) -> tuple[list[ApprovalRecord], list[ApprovalRecord]]:
        """Send the reminders and escalations that are due; return the calls reminded and
        escalated. Each is sent once, whichever of several sweeping processes gets there."""
        with _translated():
            reminded = self._ledger.remind_due(actor=SWEEP_ACTOR)
            escalated = self._ledger.escalate_due(actor=SWEEP_ACTOR)
        return reminded, escalated

    def assign(
        self,
        thread_id: str,
        tool_call_id: str,
        assignee: str | None,
        *,
        actor: str,
        roles: Collection[str] = (),
    ) -> ApprovalRecord:
        """Assign a pending call to a person or `role:NAME` (None: unassign). Not a decision:
        who may decide is still the call's rules; allowed to its approvers and admins."""
        if assignee is not None and (not assignee.strip() or not _is_utf8(assignee)):
            raise InvalidTriage(
                f"cannot assign to {assignee!r}: give a person's name or role:NAME "
                "(or unassign the call)"
            )
        self._pending_record(thread_id, tool_call_id)
        with _translated(thread_id, self._ledger):
            return self._ledger.assign(thread_id, tool_call_id, assignee, actor=actor, roles=roles)

    def snooze(
        self,
        thread_id: str,
        tool_call_id: str,
        until: float | None,
        *,
        actor: str,
        roles: Collection[str] = (),
    ) -> ApprovalRecord:
        """Hide a pending call from the default inbox until `until` (None: unsnooze). It
        stays pending and still expires on its deadline; allowed to its approvers and admins."""
        now = self._ledger.clock()
        if until is not None and until <= now:
            raise InvalidTriage(
                f"cannot snooze until {iso(until)}: that is not in the future; give a "
                "later time (e.g. 2h), or unsnooze the call"
            )
        if until is not None and until - now > MAX_SNOOZE_SECONDS:
            raise InvalidTriage(
                "cannot snooze a call for more than a year: give an earlier time "
                "(its deadline, if any, still settles it)"
            )
        self._pending_record(thread_id, tool_call_id)
        with _translated(thread_id, self._ledger):
            return self._ledger.snooze(thread_id, tool_call_id, until, actor=actor, roles=roles)

    def sweep(self) -> SweepReport:
        """Expire overdue approvals, flag calls whose runner died, and resume the threads
        that can move on. Safe to run at any time, from any number of processes."""
        expired, orphaned, threads = self.settle()
        reminded, escalated = self.nudge()
        resumed: list[str] = []
        busy: list[str] = []
        failed: dict[str, str] = {}
        for thread_id in threads:
            try:
                with self._lease(thread_id, wait=0.0):
                    snapshot = self._graph.get_state(_config(thread_id))
                    # applied by a runtime that does not record it (Studio): the state holds
                    # their reviews, or the thread has moved past their turn
                    applied = _reviews(snapshot.values) | self._past_turn_calls(thread_id, snapshot)
                    self._ledger.mark_applied(thread_id, applied)
                    if _unfinished(snapshot) or self._ledger.unapplied_calls(thread_id):
                        self._invoke(None, thread_id)
                        resumed.append(thread_id)
            except Busy:
                busy.append(thread_id)  # a later sweep applies it if that run does not
            except Exception as e:  # one broken thread (a model, a tool) must not stop the others
                failed[thread_id] = str(e) or type(e).__name__
        return SweepReport(
            expired=expired,
            orphaned=orphaned,
            resumed=resumed,
            busy=busy,
            failed=failed,
            reminded=reminded,
            escalated=escalated,
        )

    # plumbing

    def _past_turn_calls(self, thread_id: str, snapshot: StateSnapshot) -> set[str]:
        """Undecided-to-applied calls of turns the thread has moved past: requested before
        its newest saved checkpoint, and not in the model's latest turn (a call requested
        later belongs to a turn another runtime has not saved yet)."""
        if snapshot.created_at is None:
            return set()
        saved_at = datetime.fromisoformat(snapshot.created_at).timestamp()
        unapplied = self._ledger.unapplied_calls(thread_id) - _turn_call_ids(snapshot.values)
        return {
            r.tool_call_id
            for r in self._ledger.thread_records(thread_id)
            if r.tool_call_id in unapplied and r.requested_at <= saved_at
        }

    def _known(self, thread_id: str) -> bool:
        """Whether the thread has a checkpoint, or a run queued to make its first one."""
        return self.exists(thread_id) or self._moves_on.has_queued_run(thread_id)

    def _validated(
        self,
        thread_id: str,
        tool_call_id: str,
        answer: object,
        record: ApprovalRecord | None = None,
    ) -> dict[str, Any]:
        """The decision `answer` gives for a pending call (its row, if read already)."""
        record = record or self._pending_record(thread_id, tool_call_id)
        allowed = cast(Sequence[DecisionType], record.allowed_decisions)
        try:
            decision = dict(self._schemas.validate(record.tool, allowed, answer))
        except DecisionNotAllowedError:
            raise DecisionNotAllowed(record.tool, _kind(answer), allowed) from None
        except ValidationError as e:
            raise InvalidDecision(tool_call_id, _describe(e)) from None
        message = decision.get("message")  # stored as it is, unlike the JSON of the decision
        if not _is_utf8(json.dumps(decision, ensure_ascii=False)) or (
            isinstance(message, str) and not _is_utf8(message)
        ):
            raise InvalidDecision(tool_call_id, _NOT_UTF8)
        return decision

    def _every_pending(self, thread_id: str) -> list[ApprovalRecord]:
        """The thread's pending calls; `NothingPending` if none."""
        pending = self._waiting(thread_id, ("pending",))
        if not pending:
            raise NothingPending(thread_id, self._status(thread_id))
        return pending

    def _pending_record(self, thread_id: str, tool_call_id: str) -> ApprovalRecord:
        record = self._ledger.get(thread_id, tool_call_id)
        if record is None:
            self._snapshot(thread_id)
            waiting = [r.tool_call_id for r in self._waiting(thread_id, ("pending",))]
            elsewhere = self._ledger.threads_of_call(tool_call_id)
            if not waiting and not elsewhere:
                raise NothingPending(thread_id, self._status(thread_id))
            raise UnknownToolCall(thread_id, tool_call_id, waiting, elsewhere)
        if record.status != "pending":
            raise _already_decided(record)
        return record

    def _waiting(
        self, thread_id: str, statuses: Sequence[str] = NEEDS_A_PERSON
    ) -> list[ApprovalRecord]:
        return self._ledger.thread_records(thread_id, statuses)

    def _snapshot(self, thread_id: str) -> StateSnapshot:
        snapshot = self._graph.get_state(_config(thread_id))
        if snapshot.created_at is None:  # no checkpoint: the thread does not exist
            raise ThreadNotFound(thread_id)
        return snapshot

    def _status(self, thread_id: str) -> Status:
        return _status(self._snapshot(thread_id))

    @contextmanager
    def _lease(self, thread_id: str, *, wait: float | None = None) -> Iterator[None]:
        kwargs = {} if wait is None else {"wait": wait}
        with _translated(thread_id), self._ledger.lease(thread_id, **kwargs):
            yield

    def _view_at(self, end: "RunEnd") -> ThreadView:
        """`show`'s first page for a thread whose run just ended (its lease still held), from
        what the run streamed: no second load of the checkpoint."""
        if end.values is None:  # nothing streamed: read it as `show` does
            return self.show(end.thread_id)
        waiting = (
            [r for r in end.records if r.status in NEEDS_A_PERSON]
            if end.records is not None
            else self._waiting(end.thread_id)
        )
        votes = by_call(votes_of_quorum_calls(self._ledger, waiting))
        status: Status = "interrupted" if end.interrupted else "done"
        return _view(end.thread_id, status, end.values, waiting, votes, MESSAGES_PAGE, None)

    def _invoke(self, payload: Any, thread_id: str, *, requester: str | None = None) -> "RunEnd":
        """Run the thread (the caller holds its lease), then record which decisions its state
        now holds, so `sweep` knows they need no resume. Each node's update goes to the
        observer, if any (the HTTP service streams them). `requester` (who sent the message)
        also reaches gates whose graph state has no `requester` key (a user's `StateGraph`).
        Returns how the run ended (it raises if it failed)."""
        config = _config(thread_id)
        if requester is not None:
            config["configurable"][REQUESTER_KEY] = requester
        state: Any = None
        reviewed: set[str] = set()  # the state resets reviews at each turn: gather them all
        interrupted = False
        began = self._ledger.clock()
        try:
            with _translated(thread_id):
                for mode, chunk in self._graph.stream(
                    payload,
                    config,
                    durability="sync",
                    stream_mode=["updates", "values"],
                ):
                    if mode == "values":
                        state = chunk
                        continue
                    nodes = cast(dict[str, Any], chunk or {})
                    for update in nodes.values():
                        reviewed |= _reviews(update) | _answered(update)
                    interrupted = interrupted or "__interrupt__" in nodes
                    if self._observer is not None:
                        if "__interrupt__" in nodes:  # the calls it asks about are registered
                            self._saver.flush(thread_id)  # committed: on disk before anyone hears
                        self._observer(thread_id, partial(_updates_to_json, chunk))
        except BaseException as failed:
            try:  # the run's own error is the one to tell; the flush's goes with it
                self._saver.flush(thread_id)
            except Exception as also:
                failed.add_note(f"saving the steps before it failed too: {also}")
            raise
        self._saver.flush(thread_id)
        records = None
        if interrupted:  # waiting on other calls: it saw the turn's decisions made before it
            turn = _turn_call_ids(state)
            records = self._ledger.thread_records(thread_id)
            reviewed |= {
                r.tool_call_id
                for r in records
                if r.tool_call_id in turn and r.decided_at is not None and r.decided_at <= began
            }
        # only once the run has ended or stopped at an interrupt: a run that failed, or a
        # process killed, leaves its decisions unapplied, for `sweep` to finish the thread
        with _translated(thread_id):  # the lease's release is next: one commit for both
            self._ledger.mark_applied(thread_id, reviewed | _reviews(state), at="release")
        return RunEnd(thread_id, state if isinstance(state, dict) else None, interrupted, records)


@dataclass(frozen=True)
class RunEnd:
    """How a run of the service's ended: its last state, whether it stopped at an interrupt,
    and the thread's calls if it did (read then, for the decisions it had seen)."""

    thread_id: str
    values: dict[str, Any] | None
    interrupted: bool
    records: list[ApprovalRecord] | None


@contextmanager
def _translated(thread_id: str = "", ledger: Ledger | None = None) -> Iterator[None]:
    """The lower layers' refusals the service words its own way; the ledger's others (see
    `PASSED_ON` in `errors`) pass through as they are."""
    try:
        yield
    except NotPending as e:
        raise _already_decided(e.record) from None
    except CallNotFound as e:
        pending = []
        if ledger is not None:
            pending = [
                r.tool_call_id
                for r in ledger.thread_records(thread_id)
                if r.status in NEEDS_A_PERSON
            ]
        raise UnknownToolCall(thread_id, e.tool_call_id, pending, e.elsewhere) from None
    except (ThreadBusy, DatabaseBusy, CallInProgress, JournalUnavailable) as e:
        raise Busy(str(e)) from None
    except ModelConfigError as e:  # the model asked for a tool the agent lacks, mid-run
        raise InvalidSettings(str(e)) from None


def _already_decided(record: ApprovalRecord) -> AlreadyDecided:
    decision = record.decision_type or record.status
    if record.decision and record.decision.get("message"):
        decision += f": {record.decision['message']}"
    return AlreadyDecided(
        record.thread_id,
        record.tool_call_id,
        record.decided_by or "nobody",
        iso(record.decided_at) or "?",
        decision,
        record.status,
    )


_NOT_UTF8 = (
    "the text is not valid UTF-8 (it holds an undecodable byte or a lone surrogate) or holds a "
    "NUL character, which PostgreSQL cannot store; send it in UTF-8, without NUL"
)


def _check_message(prompts: Sequence[str], actor: str) -> None:
    if not prompts:
        raise InvalidDecision("(the message)", "no message to send; give at least one")
    if not all(_is_utf8(p) for p in prompts) or not _is_utf8(actor):
        raise InvalidDecision("(the message)", _NOT_UTF8)


def _is_utf8(text: str) -> bool:
    """Whether every backend can store `text`: UTF-8, and no NUL (PostgreSQL's text has none;
    refused on SQLite too, so that a database can be copied to PostgreSQL)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


REVIEW_KEYS = ("hitl_reviews", "reviews")
"""Where a state keeps the latest turn's reviews: `ApprovalMiddleware`'s key, or a graph's own."""


def _review_map(values: Any) -> dict[str, Any]:
    """The reviews a thread's state (or a node's update) holds, by call ID."""
    if not isinstance(values, dict):
        return {}
    found = next((values[k] for k in REVIEW_KEYS if isinstance(values.get(k), dict)), None)
    return dict(found) if found else {}


def _reviews(values: Any) -> set[str]:
    """The calls a thread's state (or a node's update) holds a review of (their decisions
    are applied)."""
    return set(_review_map(values))


def _answered(update: Any) -> set[str]:
    """The calls a node's update answers with a tool message (their decisions are applied,
    in any graph: a user's gate keeps no `reviews`)."""
    messages = update.get("messages") if isinstance(update, dict) else None
    if not isinstance(messages, list):
        return set()
    return {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}


def _turn_call_ids(values: Any) -> set[str]:
    """The calls of the model's latest turn (read from the newest messages only)."""
    turn = current_turn(values.get("messages", []))[0] if isinstance(values, dict) else None
    return {cast(str, c["id"]) for c in turn.tool_calls} if turn else set()


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def _status(snapshot: StateSnapshot) -> Status:
    if snapshot.interrupts:
        return "interrupted"
    return "incomplete" if _unfinished(snapshot) else "done"


def _unfinished(snapshot: StateSnapshot) -> bool:
    """Whether the thread has steps left: tasks to run, or tasks whose writes are saved but
    not yet applied by a next checkpoint (`next` leaves those out). A run in progress shows
    the latter between a checkpoint and the next one, where a saver commits each row at once
    (PostgreSQL), and so does a run that died there."""
    return bool(snapshot.next or snapshot.tasks)


def _interrupted_calls(snapshot: StateSnapshot) -> list[str]:
    """The calls a checkpoint's interrupts ask about: per call (`tool_approval`), or in one
    batched `HITLRequest` (matched to the model's latest turn by tool and arguments)."""
    found: list[str] = []
    for task in snapshot.tasks:
        for intr in task.interrupts:
            value = intr.value
            if not isinstance(value, dict):
                continue
            if value.get("type") == "tool_approval":
                found.append(value["tool_call_id"])
            elif isinstance(value.get("action_requests"), list):
                values = snapshot.values if isinstance(snapshot.values, dict) else {}
                turn = current_turn(values.get("messages", []))[0]
                for action in value["action_requests"]:
                    match = next(
                        (
                            str(c["id"])
                            for c in (turn.tool_calls if turn else [])
                            if (c["name"], c["args"]) == (action.get("name"), action.get("args"))
                            and c["id"] not in found
                        ),
                        None,
                    )
                    if match is not None:
                        found.append(match)
    return found


def _view(
    thread_id: str,
    status: Status,
    values: Mapping[str, Any],
    waiting: list[ApprovalRecord],
    votes: Mapping[str, Sequence[Vote]],
    count: int,
    before: int | None,
) -> ThreadView:
    history = values.get("messages", [])
    page = page_of_messages(thread_id, len(history), count, before)
    newest = message_to_json(history[-1]) if page.stop < len(history) else None
    return thread_view(
        thread_id,
        status,
        [message_to_json(m) for m in history[page.start : page.stop]],  # a lazy history's tail
        waiting,
        votes,
        page=page,
        total=len(history),
        newest=newest,
    )


def _message_ids(message_id: str, prompts: Sequence[str]) -> list[str]:
    return [message_id if n == 0 else f"{message_id}-{n}" for n in range(len(prompts))]


def _updates_to_json(chunk: Any) -> dict[str, Any]:
    """One step's updates as JSON: node → its new messages (and any interrupts)."""
    update: dict[str, Any] = {}
    for node, values in (chunk or {}).items():
        if node == "__interrupt__":
            update["interrupts"] = [
                {"id": i.id, "value": i.value} for i in values if isinstance(i.value, dict)
            ]
            continue
        entries = values if isinstance(values, list) else [values]
        messages = [
            message_to_json(m)
            for entry in entries
            if isinstance(entry, dict)
            for m in entry.get("messages", [])
            if isinstance(m, BaseMessage)
        ]
        update.setdefault("nodes", []).append({"node": node, "messages": messages})
    return update


def _kind(answer: object) -> str:
    return str(answer.get("type")) if isinstance(answer, dict) else str(answer)


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'decision'}: {e['msg']}" for e in error.errors()
    )
