"""The ledger as a state machine, driven by hypothesis: calls are requested, decided by several
actors (at once, and after their deadline), swept by a moving clock, begun and finished, left
running by a crash, reconciled, and tampered with by raw SQL; after every step, what must stay
true is checked.

Two `Ledger` objects on one SQLite file play two processes (a crash is `abandon`: the attempt's
token dies with its process); races run them on two real threads behind a barrier, and the
outcome must be the one of some order of the two. The model below is what the ledger must hold
for each call; it is the ground truth even after a tamper, so that "a tool runs only under a
real approval" is checked against the decisions that were really given.

CI runs a bounded, derandomized number of examples; `HITL_SOAK_EXAMPLES` (or
`python3 dev.py bench ledger_soak`) runs many more.
"""

import copy
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from hitl.checkpoints.errors import LedgerError, LedgerTampered
from hitl.checkpoints.ledger import InboxQuery, Ledger, make_ledger, open_ledger
from hitl.checkpoints.records import (
    DECIDED_TO_RUN,
    NEEDS_A_PERSON,
    NOT_YET_RUN,
    STATUS_OF_DECISION,
    args_hash,
)
from tests.support.fakes import FakeClock
from tests.support.ledger import request_call
from tests.support.sql import execute

SOAK_EXAMPLES = "HITL_SOAK_EXAMPLES"
"""Environment variable: run this many examples instead of CI's bounded number."""
CI_EXAMPLES = 150
STEPS = 40
REQUESTER = "alice"
ACTORS = ("alice", "bob", "carol")
THREADS = ("t1", "t2", "t3")
STATUSES = (
    "pending", "approved", "edited", "rejected", "responded", "expired", "running", "succeeded",
    "failed", "outcome_unknown",
)  # fmt: skip


@dataclass
class Call:
    """What the ledger must hold for one call: the decisions really given, the runs really
    started."""

    thread_id: str
    tool_call_id: str
    args: dict[str, Any]
    needs_review: bool
    expires_after: float | None
    on_expire: str
    approvers: list[str] | None
    allow_self_approval: bool
    quorum: int = 1
    status: str = "pending"
    approved: str | None = None
    """The args hash the newest decision lets run (None: nothing may run)."""
    decided_status: str = "pending"
    """What a retry or a pause puts the call back to."""
    expires_at: float | None = None
    edited_args: dict[str, Any] | None = None
    seen: list[str] = field(default_factory=list)
    """Every args hash the call was asked about with, oldest first (stale views of deciders)."""
    holder: int | None = None
    """The ledger (process) whose attempt is running the tool."""
    live: bool = False
    runs: int = 0
    may_run: int = 1
    """Runs allowed so far: one, plus one per reconcile retry and per paused attempt."""
    votes: list[str] = field(default_factory=list)
    """Who approved a quorum call's current args so far."""

    @property
    def key(self) -> tuple[str, str]:
        return self.thread_id, self.tool_call_id

    @property
    def hash(self) -> str:
        return args_hash(self.args)


Model = dict[tuple[str, str], Call]
Outcome = Any


def _error(e: BaseException) -> str:
    return type(e).__name__


def _decision(kind: str, n: int) -> dict[str, Any]:
    if kind == "edit":
        return {"type": "edit", "edited_action": {"name": "send_email", "args": {"n": n + 100}}}
    if kind in ("reject", "respond"):
        return {"type": kind, "message": f"{kind} {n}"}
    return {"type": "approve"}


# the model's side of each operation: the outcome the ledger must give, and what it changes


def model_request(model: Model, call: Call, args: dict[str, Any], now: float) -> Outcome:
    current = model.get(call.key)
    h = args_hash(args)
    if current is not None and (current.hash == h or current.status not in NOT_YET_RUN):
        return current.status
    if current is None:
        current = model[call.key] = call
    current.args, current.edited_args = args, None
    current.seen.append(h)
    current.votes = []  # votes were for the args asked about before
    if current.needs_review:
        current.status = current.decided_status = "pending"
        current.approved = None
        current.expires_at = None if call.expires_after is None else now + call.expires_after
    else:
        current.status = current.decided_status = "approved"
        current.approved, current.expires_at = h, None
    return current.status


def _expire(call: Call) -> None:
    call.status = call.decided_status = "expired"
    call.approved = call.hash if call.on_expire == "approve" else None


def model_decide(
    model: Model,
    thread_id: str,
    decisions: dict[str, dict[str, Any]],
    actor: str,
    seen: dict[str, str],
    now: float,
) -> Outcome:
    calls = []
    for cid, decision in decisions.items():
        call = model[(thread_id, cid)]
        if call.status != "pending":
            return "NotPending"
        if cid in seen and seen[cid] != call.hash:
            return "ArgsChanged"
        if decision["type"] in ("approve", "edit", "respond") and (
            (call.approvers is not None and actor not in call.approvers)
            or (not call.allow_self_approval and actor == REQUESTER)
        ):
            return "NotPermitted"
        if call.quorum > 1 and decision["type"] in ("edit", "respond"):
            return "NotPermitted"
        calls.append(call)
    overdue = [
        c
        for c, d in zip(calls, decisions.values(), strict=True)
        if c.expires_at is not None and now >= c.expires_at and d["type"] in ("approve", "edit")
    ]
    if overdue:
        for call in overdue:
            _expire(call)
        return "NotPending"
    voting = [c for c, d in zip(calls, decisions.values(), strict=True) if _votes(c, d)]
    if any(actor in c.votes for c in voting):
        return "AlreadyVoted"
    for call, decision in zip(calls, decisions.values(), strict=True):
        kind = decision["type"]
        if call in voting:
            call.votes.append(actor)
            if len(call.votes) < call.quorum:
                continue  # still pending
        call.status = call.decided_status = STATUS_OF_DECISION[kind]
        call.approved = None
        if kind == "approve":
            call.approved = call.hash
        elif kind == "edit":
            call.edited_args = decision["edited_action"]["args"]
            call.approved = args_hash(call.edited_args)
    return ("ok", tuple(c.status for c in calls))


def _votes(call: Call, decision: dict[str, Any]) -> bool:
    return call.quorum > 1 and decision["type"] == "approve"


def model_sweep(model: Model, now: float, frozen: set[tuple[str, str]]) -> Outcome:
    overdue = sorted(
        key
        for key, c in model.items()
        if c.status == "pending"
        and c.expires_at is not None
        and c.expires_at <= now
        and key not in frozen
    )
    for key in overdue:
        _expire(model[key])
    return overdue


def model_begin(model: Model, who: int, turn: list[tuple[Call, dict[str, Any]]]) -> Outcome:
    before = copy.deepcopy(model)
    actions = {}
    for wanted, args in turn:
        call = model[wanted.key]
        if call.status in ("succeeded", "failed"):
            actions[call.tool_call_id] = "done"
        elif call.status == "outcome_unknown":
            actions[call.tool_call_id] = "unknown"
        elif call.status == "running" and call.live:
            actions[call.tool_call_id] = "busy"
        elif call.status == "running":
            call.status = "outcome_unknown"
            actions[call.tool_call_id] = "unknown"
        elif call.status in DECIDED_TO_RUN and call.approved == args_hash(args):
            call.status, call.holder, call.live = "running", who, True
            call.runs += 1
            actions[call.tool_call_id] = "run"
        else:
            actions[call.tool_call_id] = "ask"
    if "busy" in actions.values():  # all or nothing: the turn starts no call
        model.clear()
        model.update(before)
        return {cid: "busy" if a == "run" else a for cid, a in actions.items()}
    return actions


def model_finish(model: Model, who: int, key: tuple[str, str], ok: bool) -> Outcome:
    call = model[key]
    if call.holder == who and call.live:
        call.live, call.holder = False, None
        if call.status == "running":
            call.status = "succeeded" if ok else "failed"
    return None


def model_abandon(model: Model, who: int, key: tuple[str, str]) -> Outcome:
    call = model[key]
    if call.holder == who and call.live:
        call.live, call.holder = False, None
    return None


def model_unbegin(model: Model, who: int, key: tuple[str, str]) -> Outcome:
    call = model[key]
    if call.holder == who and call.live:
        call.live, call.holder = False, None
        if call.status == "running":
            call.status = call.decided_status
            call.may_run += 1  # the paused attempt did nothing it cannot redo
    return None


def model_orphans(model: Model) -> Outcome:
    orphans = sorted(k for k, c in model.items() if c.status == "running" and not c.live)
    for key in orphans:
        model[key].status = "outcome_unknown"
    return orphans


def model_reconcile(model: Model, key: tuple[str, str], action: str) -> Outcome:
    call = model[key]
    if call.status != "outcome_unknown":
        return "NotReconcilable"
    if action == "retry":
        call.status = call.decided_status
        call.may_run += 1
    else:
        call.status = "succeeded" if action == "mark_done" else "failed"
    return call.status


# the ledger's side, each outcome in the model's terms


def do_request(ledger: Ledger, call: Call, args: dict[str, Any]) -> Outcome:
    record = ledger.request(
        thread_id=call.thread_id,
        tool_call_id=call.tool_call_id,
        interrupt_id=None,
        tool="send_email",
        args=args,
        requester=REQUESTER,
        needs_review=call.needs_review,
        allowed_decisions=["approve", "edit", "reject", "respond"],
        description="",
        expires_after=call.expires_after,
        on_expire=call.on_expire,
        approvers=call.approvers,
        allow_self_approval=call.allow_self_approval,
        quorum=call.quorum,
    )
    return record.status


def do_decide(
    ledger: Ledger,
    thread_id: str,
    decisions: dict[str, dict[str, Any]],
    actor: str,
    seen: dict[str, str],
) -> Outcome:
    try:
        decided = ledger.decide(thread_id, decisions, actor=actor, seen_args_hashes=seen)
    except LedgerError as e:
        return _error(e)
    return ("ok", tuple(r.status for r in decided))


def do_begin(ledger: Ledger, turn: list[tuple[Call, dict[str, Any]]]) -> Outcome:
    thread_id = turn[0][0].thread_id
    begun = ledger.begin(thread_id, [(c.tool_call_id, args) for c, args in turn])
    return {cid: b.action for cid, b in begun.items()}


def do_reconcile(ledger: Ledger, key: tuple[str, str], action: str, actor: str) -> Outcome:
    try:
        return ledger.reconcile(*key, action, actor=actor).status  # type: ignore[arg-type]
    except LedgerError as e:
        return _error(e)


# the audit trail read back: the invariants that hold whatever the model says


def check_trail(entries: list[Any]) -> None:
    """At most one decision per request of a call, and every start under an approval of its
    args, and no second start but after a retry or a pause."""
    by_call: dict[str, list[Any]] = {}
    for e in entries:
        if e.tool_call_id is not None:
            by_call.setdefault(e.tool_call_id, []).append(e)
    for cid, events in by_call.items():
        decisions, approved, starts, restarts = 0, None, 0, 0
        for e in events:
            if e.event in ("requested", "re-requested", "approved_by_policy"):
                decisions = 1 if e.event == "approved_by_policy" else 0
                approved = e.detail.get("args_hash") if decisions else None
            elif e.event in ("decided", "expired"):
                decisions += 1
                approved = e.detail.get("approved_args_hash")
                assert decisions == 1, f"call {cid} decided twice: {events}"
            elif e.event == "tool_started":
                assert e.detail["args_hash"] == approved, f"{cid} started unapproved: {events}"
                starts += 1
                assert starts <= 1 + restarts, f"call {cid} started twice: {events}"
            elif e.event == "tool_paused" or (
                e.event == "reconciled" and e.detail["action"] == "retry"
            ):
                restarts += 1


class LedgerMachine(RuleBasedStateMachine):
    """Two processes' ledgers on one SQLite file, a clock, and the model of every call."""

    calls = Bundle("calls")

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="hitl-machine-"))
        self.db = self.folder / "hitl.sqlite"
        self.clock = FakeClock(1_800_000_000.0)
        self.ledgers = [make_ledger(self.db, clock=self.clock) for _ in range(2)]
        self.model: Model = {}
        self.tampered: dict[str, str] = {}  # thread → what was changed, until it is touched
        self.ever_tampered: set[str] = set()
        self.frozen: set[tuple[str, str]] = (
            set()
        )  # rows changed by SQL: the ledger may not sweep them
        self.next_call = 0

    def teardown(self) -> None:
        for ledger in self.ledgers:
            for key in list(ledger._attempts):  # this "process" ends: its attempts die with it
                ledger.abandon(*key)
            ledger.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _touch(self, thread_id: str) -> None:
        """After an operation on a tampered thread the ledger may have written over the
        change: it is no longer required to be named (but never anywhere else)."""
        self.tampered.pop(thread_id, None)

    def _fresh(self, thread_id: str) -> bool:
        return thread_id not in self.ever_tampered

    def _check(self, outcome: Outcome, expected: Outcome, what: str) -> None:
        assert outcome == expected, f"{what}: the ledger said {outcome!r}, the model {expected!r}"

    # asking

    @rule(
        target=calls,
        thread_id=st.sampled_from(THREADS),
        n=st.integers(0, 3),
        needs_review=st.sampled_from([True, True, False]),
        expires_after=st.sampled_from([None, 10.0, 60.0]),
        on_expire=st.sampled_from(["reject", "approve"]),
        approvers=st.sampled_from([None, ["bob"], ["bob", "carol"]]),
        allow_self_approval=st.booleans(),
        quorum=st.sampled_from([1, 1, 2]),
        who=st.integers(0, 1),
    )
    def request(
        self,
        thread_id: str,
        n: int,
        needs_review: bool,
        expires_after: float | None,
        on_expire: str,
        approvers: list[str] | None,
        allow_self_approval: bool,
        quorum: int,
        who: int,
    ) -> tuple[str, str]:
        self.next_call += 1
        if not self._fresh(thread_id):  # the model of a tampered thread stands still
            thread_id = f"{thread_id}.{self.next_call}"
        call = Call(
            thread_id, f"c{self.next_call}", {"n": n}, needs_review, expires_after, on_expire,
            approvers, allow_self_approval, quorum,
        )  # fmt: skip
        self._touch(thread_id)
        outcome = do_request(self.ledgers[who], call, call.args)
        expected = model_request(self.model, call, call.args, self.clock())
        self._check(outcome, expected, "request")
        return call.key

    @precondition(lambda self: self.model)
    @rule(key=calls, n=st.integers(0, 3), who=st.integers(0, 1))
    def ask_again(self, key: tuple[str, str], n: int, who: int) -> None:
        """The approval node asks again, with the same args or (a model's new turn) others."""
        if not self._fresh(key[0]):
            return
        call = self.model[key]
        outcome = do_request(self.ledgers[who], call, {"n": n})
        self._check(outcome, model_request(self.model, call, {"n": n}, self.clock()), "ask")

    # deciding

    @rule(
        key=calls,
        kind=st.sampled_from(["approve", "edit", "reject", "respond"]),
        actor=st.sampled_from(ACTORS),
        stale=st.booleans(),
        who=st.integers(0, 1),
    )
    def decide(self, key: tuple[str, str], kind: str, actor: str, stale: bool, who: int) -> None:
        if not self._fresh(key[0]):
            return
        call = self.model[key]
        seen = {key[1]: call.seen[0] if stale else call.seen[-1]}
        decisions = {key[1]: _decision(kind, call.args["n"])}
        outcome = do_decide(self.ledgers[who], key[0], decisions, actor, seen)
        expected = model_decide(self.model, key[0], decisions, actor, seen, self.clock())
        self._check(outcome, expected, f"decide {kind} by {actor}")

    @rule(
        thread_id=st.sampled_from(THREADS),
        kind=st.sampled_from(["approve", "reject"]),
        actor=st.sampled_from(ACTORS),
    )
    def decide_the_whole_thread(self, thread_id: str, kind: str, actor: str) -> None:
        """One decision for every call of a thread, all or none."""
        cids = [cid for (t, cid) in self.model if t == thread_id]
        if not cids or not self._fresh(thread_id):
            return
        decisions = {cid: _decision(kind, 0) for cid in cids}
        outcome = do_decide(self.ledgers[0], thread_id, decisions, actor, {})
        expected = model_decide(self.model, thread_id, decisions, actor, {}, self.clock())
        self._check(outcome, expected, f"decide the thread ({kind} by {actor})")

    @rule(
        key=calls,
        kinds=st.tuples(*[st.sampled_from(["approve", "edit", "reject", "respond"])] * 2),
        actors=st.tuples(*[st.sampled_from(ACTORS)] * 2),
    )
    def race_two_deciders(
        self, key: tuple[str, str], kinds: tuple[str, str], actors: tuple[str, str]
    ) -> None:
        """Two processes decide the same call at the same moment: one decision is recorded."""
        if not self._fresh(key[0]):
            return
        now = self.clock()
        decisions = [{key[1]: _decision(k, self.model[key].args["n"])} for k in kinds]
        self._race(
            [
                (
                    lambda m, i=i: model_decide(m, key[0], decisions[i], actors[i], {}, now),
                    lambda i=i: do_decide(self.ledgers[i], key[0], decisions[i], actors[i], {}),
                )
                for i in range(2)
            ]
        )

    @precondition(lambda self: self._pending_quorum_calls())
    @rule(data=st.data(), actors=st.tuples(*[st.sampled_from(ACTORS)] * 2))
    def race_two_approvers_of_a_quorum_call(
        self, data: st.DataObject, actors: tuple[str, str]
    ) -> None:
        """Two processes approve a pending quorum call at once: two people's votes (the second
        may decide it), or one person's, counted once."""
        key = data.draw(st.sampled_from(self._pending_quorum_calls()))
        now = self.clock()
        decisions = {key[1]: _decision("approve", 0)}
        self._race(
            [
                (
                    lambda m, i=i: model_decide(m, key[0], decisions, actors[i], {}, now),
                    lambda i=i: do_decide(self.ledgers[i], key[0], decisions, actors[i], {}),
                )
                for i in range(2)
            ]
        )

    def _pending_quorum_calls(self) -> list[tuple[str, str]]:
        return sorted(
            k
            for k, c in self.model.items()
            if c.quorum > 1 and c.status == "pending" and self._fresh(k[0])
        )

    @rule(key=calls, kind=st.sampled_from(["approve", "reject"]), actor=st.sampled_from(ACTORS))
    def race_a_late_decider_and_the_sweeper(
        self, key: tuple[str, str], kind: str, actor: str
    ) -> None:
        """A decision given right at the deadline, while another process sweeps."""
        call = self.model[key]
        if not self._fresh(key[0]) or call.status != "pending" or call.expires_at is None:
            return
        self.clock.now = call.expires_at
        now = self.clock()
        decisions = {key[1]: _decision(kind, call.args["n"])}
        self._race(
            [
                (
                    lambda m: model_decide(m, key[0], decisions, actor, {}, now),
                    lambda: do_decide(self.ledgers[0], key[0], decisions, actor, {}),
                ),
                (
                    lambda m: self._fresh_only(model_sweep(m, now, self.frozen)),
                    lambda: self._swept(self.ledgers[1]),
                ),
            ],
        )

    # the clock

    @rule(seconds=st.sampled_from([1.0, 5.0, 30.0, 120.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(seconds=st.sampled_from([0.0, 10.0, 60.0]), who=st.integers(0, 1))
    def sweep(self, seconds: float, who: int) -> None:
        self.clock.advance(seconds)
        swept = self._swept(self.ledgers[who])
        expected = self._fresh_only(model_sweep(self.model, self.clock(), self.frozen))
        self._check(swept, expected, "sweep")

    def _fresh_only(self, keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [k for k in keys if self._fresh(k[0])]

    def _swept(self, ledger: Ledger) -> list[tuple[str, str]]:
        """Sweep; the calls expired, but those of tampered threads, which it touched."""
        swept = sorted(
            (r.thread_id, r.tool_call_id) for r in ledger.expire_overdue(actor="sweeper")
        )
        for thread_id, _ in swept:
            self._touch(thread_id)
        return [k for k in swept if self._fresh(k[0])]

    # executing: the journal

    def _turn_args(self, call: Call, which: int) -> dict[str, Any]:
        """The args a tools node would run: the approved ones, or a stale turn's others."""
        if which == 0:
            return call.edited_args if call.edited_args is not None else call.args
        if which == 1:
            return call.args
        return {"n": -1}

    @rule(key=calls, which=st.integers(0, 2), who=st.integers(0, 1))
    def begin(self, key: tuple[str, str], which: int, who: int) -> None:
        call = self.model[key]
        self._begin_turn(who, [(call, self._turn_args(call, which))])

    @rule(
        thread_id=st.sampled_from(THREADS),
        which=st.integers(0, 2),
        who=st.integers(0, 1),
    )
    def begin_a_turn(self, thread_id: str, which: int, who: int) -> None:
        """Every call of a thread begun as one turn: all start, or none."""
        turn = [
            (c, self._turn_args(c, which)) for c in self.model.values() if c.thread_id == thread_id
        ]
        if turn:
            self._begin_turn(who, turn)

    def _begin_turn(self, who: int, turn: list[tuple[Call, dict[str, Any]]]) -> None:
        thread_id = turn[0][0].thread_id
        expected = model_begin(self.model, who, turn)
        if self._fresh(thread_id):
            self._check(do_begin(self.ledgers[who], turn), expected, "begin")
            return
        # a tampered thread: the ledger may refuse it, but never run what the model would not
        self._touch(thread_id)
        try:
            outcome = do_begin(self.ledgers[who], turn)
        except LedgerTampered:
            outcome = {}
        for cid, action in outcome.items():
            if action == "run":
                assert expected[cid] == "run", f"{cid} of a tampered thread ran: {expected}"
        for call, _ in turn:  # what did not run on the ledger did not run in the model
            if expected[call.tool_call_id] == "run" and outcome.get(call.tool_call_id) != "run":
                model_call = self.model[call.key]
                model_call.runs -= 1
                model_call.status, model_call.holder, model_call.live = (
                    model_call.decided_status,
                    None,
                    False,
                )

    @rule(key=calls, ok=st.booleans(), who=st.integers(0, 1))
    def finish(self, key: tuple[str, str], ok: bool, who: int) -> None:
        self.ledgers[who].finish(*key, ok=ok, result=f"sent {ok}")
        model_finish(self.model, who, key, ok)

    @rule(key=calls, who=st.integers(0, 1))
    def crash_in_the_tool(self, key: tuple[str, str], who: int) -> None:
        """The process dies while the tool runs: begun, never finished."""
        self.ledgers[who].abandon(*key)
        model_abandon(self.model, who, key)

    @rule(key=calls, who=st.integers(0, 1))
    def pause_in_the_tool(self, key: tuple[str, str], who: int) -> None:
        """The tool raised an interrupt before doing anything: LangGraph runs it again."""
        if self._fresh(key[0]):
            self.ledgers[who].unbegin(*key)
            model_unbegin(self.model, who, key)

    @rule(who=st.integers(0, 1))
    def restart_a_process(self, who: int) -> None:
        """A process dies with every attempt it was running; a new one opens the file."""
        ledger = self.ledgers[who]
        for key in list(ledger._attempts):
            ledger.abandon(*key)
            model_abandon(self.model, who, key)
        ledger.close()
        self.ledgers[who] = make_ledger(self.db, clock=self.clock)

    @rule(who=st.integers(0, 1))
    def mark_orphaned_runs(self, who: int) -> None:
        marked = sorted(
            (r.thread_id, r.tool_call_id) for r in self.ledgers[who].mark_orphaned_runs()
        )
        for thread_id, _ in marked:
            self._touch(thread_id)
        fresh = [k for k in marked if self._fresh(k[0])]
        expected = [k for k in model_orphans(self.model) if self._fresh(k[0])]
        self._check(fresh, expected, "mark_orphaned_runs")

    @rule(
        key=calls,
        action=st.sampled_from(["retry", "mark_done", "skip"]),
        actor=st.sampled_from(ACTORS),
        who=st.integers(0, 1),
    )
    def reconcile(self, key: tuple[str, str], action: str, actor: str, who: int) -> None:
        if not self._fresh(key[0]):
            return
        outcome = do_reconcile(self.ledgers[who], key, action, actor)
        self._check(outcome, model_reconcile(self.model, key, action), f"reconcile {action}")

    @rule(key=calls, which=st.integers(0, 1))
    def race_two_runners(self, key: tuple[str, str], which: int) -> None:
        """Two processes begin the same call at the same moment: at most one runs it."""
        if not self._fresh(key[0]):
            return
        call = self.model[key]
        turn = [(call, self._turn_args(call, which))]
        self._race(
            [
                (
                    lambda m, i=i: model_begin(m, i, turn),
                    lambda i=i: do_begin(self.ledgers[i], turn),
                )
                for i in range(2)
            ]
        )

    def _race(
        self,
        ops: list[tuple[Callable[[Model], Outcome], Callable[[], Outcome]]],
        normalize: Callable[[Outcome], Outcome] = lambda o: o,
    ) -> None:
        """Run two operations on two threads at once; their outcomes must be those of one of
        the two orders, whose model then stands."""
        barrier = threading.Barrier(2)
        outcomes: list[Outcome] = [None, None]

        def run(i: int) -> None:
            barrier.wait()
            try:
                outcomes[i] = normalize(ops[i][1]())
            except BaseException as e:  # reported below, as an outcome no order gives
                outcomes[i] = repr(e)

        workers = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        orders = []
        for order in ((0, 1), (1, 0)):
            model = copy.deepcopy(self.model)
            expected: list[Outcome] = [None, None]
            for i in order:
                expected[i] = ops[i][0](model)
            orders.append(expected)
            if expected == outcomes:
                self.model = model
                return
        raise AssertionError(f"race: the ledger said {outcomes}, the orders give {orders}")

    # tampering: raw SQL on the file, as someone with write access to it

    @rule(
        key=calls,
        column=st.sampled_from(["status", "decision", "args", "flip"]),
        pick=st.integers(0, 9),
    )
    def tamper_with_a_row(self, key: tuple[str, str], column: str, pick: int) -> None:
        if not self._fresh(key[0]):  # a second change could undo the first
            return
        (row,) = execute(
            self.db,
            "SELECT status, decision FROM hitl_approvals WHERE thread_id = ? AND tool_call_id = ?",
            key,
        )
        status, decision = row
        if column == "status":
            value = [s for s in STATUSES if s != status][pick % (len(STATUSES) - 1)]
            sql = "status = ?"
            params: tuple[Any, ...] = (value,)
        elif column == "decision":
            kinds = [
                k
                for k in ("approve", "edit", "reject", "respond")
                if decision is None or json.loads(decision)["type"] != k
            ]
            value = json.dumps(_decision(kinds[pick % len(kinds)], pick))
            sql, params = "decision = ?", (value,)
        elif column == "args":
            sql, params = "args = ?", (json.dumps({"n": 1000 + pick}),)
        else:  # what a hand edit makes of a call: approved, of its (maybe other) args
            sql = (
                "status = 'approved', decision = '{\"type\":\"approve\"}', "
                "approved_args_hash = args_hash"
            )
            params = ()
            if (
                status == "approved"
                and decision is not None
                and json.loads(decision)["type"] == "approve"
            ):
                return
        execute(
            self.db,
            f"UPDATE hitl_approvals SET {sql} WHERE thread_id = ? AND tool_call_id = ?",
            (*params, *key),
        )
        self.tampered[key[0]] = f"{column} of {key[1]}"
        self.frozen.add(key)
        self.ever_tampered.add(key[0])

    @rule(
        thread_id=st.sampled_from(THREADS),
        pick=st.integers(0, 20),
        how=st.sampled_from(["actor", "detail", "delete"]),
    )
    def tamper_with_the_audit_trail(self, thread_id: str, pick: int, how: str) -> None:
        if not self._fresh(thread_id):
            return
        seqs = [
            r[0]
            for r in execute(
                self.db, "SELECT seq FROM hitl_audit WHERE thread_id = ? ORDER BY seq", (thread_id,)
            )
        ]
        if not seqs:
            return
        seq = seqs[pick % len(seqs)]
        if how == "actor":
            execute(
                self.db,
                "UPDATE hitl_audit SET actor = 'mallory' WHERE thread_id = ? AND seq = ?",
                (thread_id, seq),
            )
        elif how == "detail":
            execute(
                self.db,
                'UPDATE hitl_audit SET detail = \'{"decision":"approve"}\' '
                "WHERE thread_id = ? AND seq = ?",
                (thread_id, seq),
            )
        else:
            execute(
                self.db, "DELETE FROM hitl_audit WHERE thread_id = ? AND seq = ?", (thread_id, seq)
            )
        self.tampered[thread_id] = f"audit entry {seq} ({how})"
        self.ever_tampered.add(thread_id)

    # what must hold after every step

    @invariant()
    def the_inbox_is_every_pending_and_unknown_call(self) -> None:
        listed, total = self.ledgers[0].inbox(InboxQuery(limit=1000))
        inbox = sorted((r.thread_id, r.tool_call_id) for r in listed)
        rows = sorted(
            (t, c)
            for t, c in execute(
                self.db,
                "SELECT thread_id, tool_call_id FROM hitl_approvals WHERE status IN (?, ?)",
                NEEDS_A_PERSON,
            )
        )
        assert inbox == rows and total == len(rows), (inbox, rows, total)
        waiting = sorted(
            k for k, c in self.model.items() if c.status in NEEDS_A_PERSON and self._fresh(k[0])
        )
        assert [k for k in inbox if self._fresh(k[0])] == waiting, (inbox, waiting)

    @invariant()
    def every_row_is_what_the_model_says(self) -> None:
        for key, call in self.model.items():
            if not self._fresh(key[0]):
                continue
            record = self.ledgers[1].get(*key)
            assert record is not None
            assert (record.status, record.approved_args_hash) == (call.status, call.approved), (
                key,
                record,
                call,
            )
            assert call.runs <= call.may_run, f"{key} ran {call.runs} times"

    @invariant()
    def verification_names_exactly_the_tampered_threads(self) -> None:
        report = self.ledgers[0].verify_audit()
        named = {b.thread_id for b in report.broken}
        assert named <= self.ever_tampered, f"untampered threads named: {report.broken}"
        missed = {t: what for t, what in self.tampered.items() if t not in named}
        assert not missed, f"tampered but not named: {missed}; report: {report.broken}"

    @invariant()
    def the_trails_record_one_decision_and_runs_only_under_approval(self) -> None:
        for thread_id in {t for t, _ in self.model}:
            if self._fresh(thread_id):
                check_trail(self.ledgers[0].audit_trail(thread_id))


# what the machine found, kept as plain examples


def test_a_pending_call_whose_args_were_changed_by_sql_is_named_and_never_asked_about_for_ever(
    tmp_path: Path,
) -> None:
    db = tmp_path / "hitl.sqlite"
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "a", args={"n": 1})
        execute(db, "UPDATE hitl_approvals SET args = '{\"n\":2}'")
        report = ledger.verify_audit()
        with pytest.raises(LedgerTampered, match="'a'"):  # nobody approves the forged args
            ledger.decide("t", {"a": {"type": "approve"}}, actor="bob")
        # the graph runs the args it asked about; before, `ask` here and a request that
        # returned the row as it was sent the call back and forth for ever
        with pytest.raises(LedgerTampered, match="'a'"):
            ledger.begin("t", [("a", {"n": 1})])
    assert [b.thread_id for b in report.broken] == ["t"]
    assert "call a" in report.broken[0].problem


@pytest.mark.parametrize("status", ["running", "succeeded", "failed", "outcome_unknown"])
def test_an_approved_call_marked_as_started_by_sql_is_named(tmp_path: Path, status: str) -> None:
    db = tmp_path / "hitl.sqlite"
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "a")
        ledger.decide("t", {"a": {"type": "approve"}}, actor="bob")
        execute(db, "UPDATE hitl_approvals SET status = ?", (status,))
        report = ledger.verify_audit()
    assert [b.thread_id for b in report.broken] == ["t"]
    assert f"call a is {status}" in report.broken[0].problem


@pytest.mark.parametrize("status", ["approved", "running", "outcome_unknown"])
def test_a_finished_call_set_back_by_sql_is_named_and_does_not_run_again(
    tmp_path: Path, status: str
) -> None:
    db = tmp_path / "hitl.sqlite"
    args = {"recipient": "a@x.org"}
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "a", args=args)
        ledger.decide("t", {"a": {"type": "approve"}}, actor="bob")
        assert ledger.begin("t", [("a", args)])["a"].action == "run"
        ledger.finish("t", "a", ok=True, result="sent")
        execute(db, "UPDATE hitl_approvals SET status = ?, runner = NULL", (status,))
        report = ledger.verify_audit()
        with pytest.raises(LedgerTampered):
            ledger.begin("t", [("a", args)])  # approved, before: `run`, a second time
    assert [b.thread_id for b in report.broken] == ["t"]


def test_a_turn_with_a_call_busy_elsewhere_tells_no_call_to_run(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "hitl.sqlite") as ledger:
        request_call(ledger, "t", "a", args={"n": 1}, needs_review=False)
        request_call(ledger, "t", "b", args={"n": 2}, needs_review=False)
        ledger.begin("t", [("b", {"n": 2})])  # b runs (this process, still live)
        turn = ledger.begin("t", [("a", {"n": 1}), ("b", {"n": 2})])
        a = ledger.get("t", "a")
    assert a is not None and a.status == "approved"  # not started: the turn was rolled back
    assert turn["a"].action == "busy"  # before: `run`, for a start that was never recorded


def _examples() -> int:
    return int(os.environ.get(SOAK_EXAMPLES) or CI_EXAMPLES)


LedgerMachine.TestCase.settings = settings(
    max_examples=_examples(),
    stateful_step_count=STEPS,
    deadline=None,
    derandomize=SOAK_EXAMPLES not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=True,
)
test_the_ledger_state_machine = pytest.mark.slow(LedgerMachine.TestCase)  # ~25 s
