"""The ledger's rows as plain data: one approval per gated tool call, one audit entry per event."""

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal[
    "pending",
    "approved",
    "edited",
    "rejected",
    "responded",
    "expired",
    "running",
    "succeeded",
    "failed",
    "outcome_unknown",
]
NEEDS_A_PERSON: tuple[Status, ...] = ("pending", "outcome_unknown")
"""The statuses the inbox lists: a decision to make, or a crashed call to settle."""
NOT_YET_RUN: tuple[Status, ...] = ("pending", "approved", "edited", "expired")
"""Statuses a re-request may reset: nothing has been executed for the call yet."""
DECIDED_TO_RUN: tuple[Status, ...] = ("approved", "edited", "expired")
"""Statuses whose recorded decision may let the tool run (an expiry can approve)."""
STARTED: tuple[Status, ...] = ("running", "succeeded", "failed", "outcome_unknown")
"""Statuses of a call whose tool was started: only an approval can have let it get there."""
STATUS_OF_DECISION: dict[str, Status] = {
    "approve": "approved",
    "edit": "edited",
    "reject": "rejected",
    "respond": "responded",
}
POLICY_ACTOR = "policy"
"""`decided_by` of a call the policy let through without asking anyone."""


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the form that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def args_hash(args: Any) -> str:
    """The SHA-256 of a call's arguments in canonical JSON: what an approval is bound to."""
    return hashlib.sha256(canonical_json(args).encode()).hexdigest()


def parse_args_hash(text: str) -> str:
    """An `args_hash` a decider gives back (any case), as `args_hash` writes it; `ValueError`
    if it cannot be one, which is not the same as args that changed since they were seen."""
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise ValueError(
            f"{text!r} is not a valid args hash: give the call's `args_hash` as listed with "
            "its pending approval (64 hex digits, a SHA-256), whole"
        )
    return text.lower()


def digest(text: str) -> str:
    """The SHA-256 of a tool result, for the audit trail."""
    return hashlib.sha256(text.encode()).hexdigest()


def iso(timestamp: float | None) -> str | None:
    """A UNIX time as ISO 8601 in UTC (or None)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def unix(text: str | None) -> float | None:
    """The inverse of `iso`: UNIX seconds of an ISO 8601 time, or None."""
    return None if text is None else datetime.fromisoformat(text).timestamp()


_TIMES = ("requested_at", "expires_at", "decided_at", "started_at", "finished_at")


@dataclass(frozen=True)
class Triage:
    """A pending call's reminder, escalation, assignment and snooze (docs/triage.md)."""

    remind_at: float | None = None
    """When the sweep sends one reminder that the call still waits (None: never)."""
    escalate_at: float | None = None
    """When the sweep escalates the call to `escalate_to` (None: never)."""
    escalate_to: list[str] | None = None
    """Who may also decide once the call is escalated (names, `role:NAME`)."""
    reminded_at: float | None = None
    escalated_at: float | None = None
    assignee: str | None = None
    """Who should look at the call (a name or `role:NAME`); not a permission."""
    snoozed_until: float | None = None
    """Hidden from the default inbox until then; still pending, still expiring."""


_TRIAGE_FIELDS = tuple(f.name for f in fields(Triage))
_TRIAGE_TIMES = ("remind_at", "escalate_at", "reminded_at", "escalated_at", "snoozed_until")


@dataclass(frozen=True)
class ApprovalRecord:
    """One gated tool call as the ledger knows it (times are UNIX seconds)."""

    thread_id: str
    tool_call_id: str
    interrupt_id: str | None
    tool: str
    args: dict[str, Any]
    args_hash: str
    requester: str | None
    status: Status
    allowed_decisions: list[str]
    description: str
    requested_at: float
    expires_at: float | None
    on_expire: str
    approvers: list[str] | None
    """Who may approve or edit this call; None: anyone but (maybe) the requester."""
    allow_self_approval: bool
    decided_at: float | None = None
    decided_by: str | None = None
    decision: dict[str, Any] | None = None
    """The recorded decision in the LangChain wire format (`{"type": "approve"}`, ...)."""
    reason: str | None = None
    """The decider's comment, or the reason of a reject."""
    approved_args_hash: str | None = None
    """The hash of the args that may run: the model's on approve, the reviewer's on edit."""
    runner: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    result: str | None = None
    result_status: str | None = None
    """`success` or `error`: how the journaled result is given back to the model."""
    why: dict[str, Any] | None = None
    """Why the call was asked (or let through): the rule that matched and the policy's
    version (`docs/policy-and-audit.md`); None for a call recorded before they were."""
    triage: Triage | None = None
    """Its reminder, escalation, assignment and snooze; None when it has none (most calls:
    an inbox page then builds one object per row, not two). Read through the properties."""
    quorum: int = 1
    """How many distinct people must approve before the call runs (1: the first decision)."""
    quorum_distinct_roles: bool = False
    """Each approval of a quorum must come from a role no other approval came from."""
    reject_vetoes: bool = True
    """A quorum call: one reject rejects it (False: it takes `quorum` rejects)."""

    @property
    def decision_type(self) -> str | None:
        return None if self.decision is None else str(self.decision.get("type"))

    @property
    def remind_at(self) -> float | None:
        return None if self.triage is None else self.triage.remind_at

    @property
    def escalate_at(self) -> float | None:
        return None if self.triage is None else self.triage.escalate_at

    @property
    def escalate_to(self) -> list[str] | None:
        return None if self.triage is None else self.triage.escalate_to

    @property
    def reminded_at(self) -> float | None:
        return None if self.triage is None else self.triage.reminded_at

    @property
    def escalated_at(self) -> float | None:
        return None if self.triage is None else self.triage.escalated_at

    @property
    def assignee(self) -> str | None:
        return None if self.triage is None else self.triage.assignee

    @property
    def snoozed_until(self) -> float | None:
        return None if self.triage is None else self.triage.snoozed_until

    def to_json(self) -> dict[str, Any]:
        """The record as JSON, its triage fields flat beside the others."""
        data = asdict(self)
        triage = data.pop("triage") or {}
        data |= {key: triage.get(key) for key in _TRIAGE_FIELDS}
        for key in (*_TIMES, *_TRIAGE_TIMES):
            data[key] = iso(data[key])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ApprovalRecord":
        data = data | {key: unix(data.get(key)) for key in (*_TIMES, *_TRIAGE_TIMES)}
        triage = {key: data.pop(key, None) for key in _TRIAGE_FIELDS}
        made = None if all(v is None for v in triage.values()) else Triage(**triage)
        return cls(**data, triage=made)


@dataclass(frozen=True)
class AuditEntry:
    """One link of a thread's hash chain."""

    thread_id: str
    seq: int
    at: float
    event: str
    actor: str
    tool_call_id: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"at": iso(self.at)}

    def to_export(self) -> dict[str, Any]:
        """The entry as `hitl audit --export` writes it: `at` as UNIX seconds, exactly (its
        `repr` is hashed; ISO 8601 would lose digits), so that the chain can be recomputed."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AuditEntry":
        return cls(**(data | {"at": unix(data["at"])}))


@dataclass(frozen=True)
class BrokenLink:
    """The first place a thread's audit chain does not verify."""

    thread_id: str
    seq: int
    problem: str


@dataclass(frozen=True)
class AuditReport:
    """The result of verifying every chain."""

    threads: int
    entries: int
    broken: list[BrokenLink]
    heads: dict[str, str]
    """Thread ID → hash of its newest entry: anchor these elsewhere to detect truncation."""

    @property
    def ok(self) -> bool:
        return not self.broken

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "threads": self.threads,
            "entries": self.entries,
            "broken": [asdict(b) for b in self.broken],
            "heads": self.heads,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AuditReport":
        return cls(
            threads=data["threads"],
            entries=data["entries"],
            broken=[BrokenLink(**b) for b in data["broken"]],
            heads=data["heads"],
        )


STANDING_ACTOR_PREFIX = "standing:"
"""`decided_by` of a call a standing approval let through: `standing:ID`."""


@dataclass(frozen=True)
class StandingApproval:
    """A decision turned into a rule: calls of `tool` within its scope are approved in
    `created_by`'s name, without asking, until it expires or is revoked (times: UNIX seconds).
    """

    id: str
    tool: str
    args_hash: str | None
    """Only calls with exactly these args (their `args_hash`); None: any args."""
    requester: str | None
    """Only calls this person asked for; None: anyone's."""
    thread_id: str | None
    """Only calls of this thread; None: any thread."""
    created_by: str
    created_roles: list[str]
    """The creator's roles when it was created: a policy's `role:NAME` approvers admit them."""
    created_at: float
    expires_at: float
    revoked_at: float | None
    revoked_by: str | None
    source_thread_id: str
    """The call it came from (its thread's audit chain records its creation and revocation)."""
    source_tool_call_id: str

    @property
    def scope(self) -> dict[str, str | None]:
        return {
            "tool": self.tool,
            "args_hash": self.args_hash,
            "requester": self.requester,
            "thread_id": self.thread_id,
        }

    def active(self, now: float) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("created_at", "expires_at", "revoked_at"):
            data[key] = iso(data[key])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StandingApproval":
        times = {k: unix(data.get(k)) for k in ("created_at", "expires_at", "revoked_at")}
        return cls(**(data | times))


@dataclass(frozen=True)
class Vote:
    """One person's vote on a quorum call, for the args it was asked about."""

    approver: str
    role: str | None
    vote: Literal["approve", "reject"]
    at: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"at": iso(self.at)}


def quorum_progress(quorum: int, approvals: Sequence[str], rejections: Sequence[str]) -> str:
    """How far a quorum call got: "1 of 2 approvals: alice" (and the rejects, if any count)."""
    text = f"{len(approvals)} of {quorum} approvals"
    if approvals:
        text += f": {', '.join(approvals)}"
    if rejections:
        text += f"; {len(rejections)} of {quorum} rejects: {', '.join(rejections)}"
    return text
