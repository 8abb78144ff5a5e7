"""Bulk decisions: approve or reject every pending call of a selection, one call at a time.

Each call goes through `ApprovalService.decide` on its own, bound to the args the selection
listed (`seen_args_hashes`): its rules (approvers, self-approval, allowed decisions), its
deadline and the ledger's one-wins compare-and-set apply to it alone, its decision has its own
audit entry, and a call refused leaves the others decided. The report says, per call, what
happened: `decided`, or why not (decided first by someone else, expired, not permitted...).
"""

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from hitl.checkpoints.ledger import InboxQuery
from hitl.checkpoints.records import quorum_progress
from hitl.service import errors
from hitl.service.views import InboxPage

if TYPE_CHECKING:  # remote mode uses this module's views without loading the graph's code
    from hitl.service.workflow import ApprovalService

BulkOutcome = Literal[
    "decided",
    "voted",
    "already_decided",
    "expired",
    "not_permitted",
    "args_changed",
    "not_found",
    "refused",
]
MAX_BULK = 500
"""The most calls one bulk decision takes: a selection that matches more is refused."""


class Lister(Protocol):
    """What lists the inbox: the service, or a running service over HTTP (`--url`)."""

    def pending(self, query: InboxQuery | None = None) -> InboxPage: ...


@dataclass(frozen=True)
class Target:
    """One call a bulk decision is about, with the args hash the decider saw."""

    thread_id: str
    tool_call_id: str
    args_hash: str | None = None
    tool: str = ""


@dataclass(frozen=True)
class BulkItem:
    """What the bulk decision did with one call."""

    thread_id: str
    tool_call_id: str
    tool: str
    outcome: BulkOutcome
    """`decided`: this decision was recorded; `voted`: recorded as a vote of a quorum call,
    which waits for more; otherwise why it was not."""
    message: str | None = None
    """Why it was not decided, in the words a single decision would have got."""
    decided_by: str | None = None
    """Who decided it first (`already_decided`, `expired`)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BulkReport:
    """Per call, what one bulk decision did."""

    decision: str
    items: list[BulkItem]

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.outcome] = counts.get(item.outcome, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "counts": self.counts,
            "items": [i.to_json() for i in self.items],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "BulkReport":
        return cls(data["decision"], [BulkItem(**i) for i in data["items"]])


def select(service: "Lister", query: InboxQuery) -> list[Target]:
    """The pending calls of an inbox filter (its sort, not its page); `InvalidTriage` if more
    than `MAX_BULK` match: narrow the filter."""
    named = [query.tool, query.thread_id, query.requester, *(query.assigned_to or ())]
    if not all(text is None or _is_utf8(text) for text in named):
        raise errors.InvalidTriage(
            "the filter holds text that is not UTF-8, or a NUL character; send UTF-8 without NUL"
        )
    page = service.pending(
        dataclasses.replace(query, statuses=("pending",), limit=MAX_BULK, offset=0)
    )
    items = [p for p in page.items if p.status == "pending"]  # a service lists both kinds
    if page.total > MAX_BULK:
        raise errors.InvalidTriage(
            f"{page.total} pending calls match; a bulk decision takes at most {MAX_BULK}: "
            "narrow the filter (--tool, --thread, --assigned-to)"
        )
    return [Target(p.thread_id, p.tool_call_id, p.args_hash, p.tool) for p in items]


def decide_all(
    service: "ApprovalService",
    targets: Sequence[Target],
    answer: dict[str, Any],
    *,
    actor: str,
    roles: Collection[str] = (),
    comment: str | None = None,
) -> BulkReport:
    """Decide each target with `answer` (an approve or a reject), one by one, through
    `ApprovalService.decide`; never raises for one call's refusal: the report holds it."""
    if answer.get("type") not in ("approve", "reject"):
        raise errors.InvalidTriage("a bulk decision approves or rejects; decide others one by one")
    if len(targets) > MAX_BULK:
        raise errors.InvalidTriage(f"a bulk decision takes at most {MAX_BULK} calls; send fewer")
    items = [
        _decide_one(service, target, answer, actor=actor, roles=roles, comment=comment)
        for target in targets
    ]
    return BulkReport(str(answer["type"]), items)


def _decide_one(
    service: "ApprovalService",
    target: Target,
    answer: dict[str, Any],
    *,
    actor: str,
    roles: Collection[str],
    comment: str | None,
) -> BulkItem:
    thread_id, cid = target.thread_id, target.tool_call_id
    seen = {cid: target.args_hash} if target.args_hash else None

    def item(
        outcome: BulkOutcome, error: Exception | None = None, by: str | None = None
    ) -> BulkItem:
        return BulkItem(thread_id, cid, target.tool, outcome, str(error) if error else None, by)

    try:
        [record] = service.decide(
            thread_id, {cid: answer}, actor=actor, roles=roles, comment=comment,
            seen_args_hashes=seen,
        ).records  # fmt: skip
    except errors.AlreadyDecided as e:
        return item("expired" if e.status == "expired" else "already_decided", e, e.by)
    except errors.NotPermitted as e:
        return item("not_permitted", e)
    except errors.ArgsChanged as e:
        return item("args_changed", e)
    except (errors.UnknownToolCall, errors.NothingPending, errors.ThreadNotFound) as e:
        return item("not_found", e)
    except errors.Busy as e:  # recorded, then the thread was busy: it moves on later
        record = service.call_record(thread_id, cid)
        if record.status != "pending" and record.decided_by == actor:
            return item("decided", e)
        return item("refused", e)
    except errors.DOMAIN_ERRORS as e:
        return item("refused", e)
    if record.status == "pending":  # a vote of a quorum call: it waits for the others
        votes = service.votes(thread_id, cid)
        approvals = [v.approver for v in votes if v.vote == "approve"]
        rejections = [v.approver for v in votes if v.vote == "reject"]
        more = "approvals" if answer["type"] == "approve" else "rejects"
        progress = quorum_progress(record.quorum, approvals, rejections)
        return BulkItem(
            thread_id, cid, target.tool, "voted", f"{progress}; the call waits for more {more}"
        )
    return item("decided")


def _is_utf8(text: str) -> bool:
    """Whether every backend can store `text` (as `workflow._is_utf8`)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text
