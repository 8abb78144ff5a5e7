"""Signed one-click decision links: made for one pending call and one person, opened on a
confirmation page that needs no sign-in, used once by a POST from that page.

A link is the credential of the person it was made for (`identity`), so it is made only for
someone who may approve the call (its rule's approvers, by name or by the role of their API
token, and not its requester where self-approval is off); the decision still goes through
`ApprovalService.decide` under that name and those roles, so the ledger checks it again.
Opening a link (GET, HEAD: what a mail scanner does) reads only. Using it claims it first
(compare-and-set in `LinkStore`): of two requests with one link one decides, the other is told
the link was used; a decision the ledger then refuses gives the claim back.

Where a link points: `{public_url}/link/{secret}`; `HITL_PUBLIC_URL` (or `hitl serve
--public-url`) names the service as its users reach it.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hitl.checkpoints.ledger import ROLE_PREFIX, Ledger, check_permitted, progress
from hitl.checkpoints.records import ApprovalRecord, iso
from hitl.checkpoints.stores import Link, LinkStore, TokenStore
from hitl.service.errors import (
    AlreadyDecided,
    AlreadyVoted,
    InvalidDecision,
    InvalidSettings,
    LinkGone,
    LinkNotFound,
    NotPermitted,
    UnknownToolCall,
)
from hitl.service.settings import PUBLIC_URL_SETTING
from hitl.service.views import Decided

if TYPE_CHECKING:
    from hitl.service.workflow import ApprovalService

LINK_PATH = "/link/"
"""Where a link's confirmation page is: `LINK_PATH + secret`."""
ONE_CLICK: tuple[str, ...] = ("approve", "reject")
"""The decisions a confirmation page offers (those the call allows): an edit or a response
needs the inbox's form."""
LINKED_EVENTS = ("approval.requested", "approval.escalated")
"""The webhook events that carry links: to the call's approvers, and to those an escalation
added."""
WEBHOOK_ACTOR = "webhook"
"""`created_by` of the links a webhook carries."""
NO_PUBLIC_URL = (
    f"decision links need the service's public address: set {PUBLIC_URL_SETTING} (or pass "
    "--public-url) to the URL people open the inbox at, e.g. https://hitl.example.com"
)
State = Literal["ready", "used", "decided", "args_changed", "expired"]
RolesOf = Callable[[str], Sequence[str]]


def token_roles(tokens: TokenStore) -> RolesOf:
    """A person's roles: those of their active API token (none without one)."""

    def roles_of(name: str) -> Sequence[str]:
        token = next((t for t in tokens.list() if t.name == name), None)
        return () if token is None else token.roles

    return roles_of


@dataclass(frozen=True)
class IssuedLink:
    """A link made for one person; its `url` is their credential for this one call."""

    url: str
    thread_id: str
    tool_call_id: str
    identity: str
    """Who decides with it: the decision is recorded under this name."""
    args_hash: str
    """The args it decides: asked again with other args, the call needs a new link."""
    expires_at: float | None
    """The call's deadline (UNIX seconds): the link ends with the approval."""

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "thread_id": self.thread_id,
            "tool_call_id": self.tool_call_id,
            "for": self.identity,
            "args_hash": self.args_hash,
            "expires_at": iso(self.expires_at),
        }


@dataclass(frozen=True)
class LinkView:
    """What a confirmation page shows: the call, and whether the link can still decide it."""

    link: Link
    record: ApprovalRecord
    state: State
    problem: str | None
    """Why the link cannot decide (None when `state` is `ready`), for a person."""
    decisions: list[str]
    """The one-click decisions the call allows (empty unless `ready`)."""


class DecisionLinks:
    """Make, show and use decision links, on one ledger and one link store."""

    def __init__(
        self,
        ledger: Ledger,
        store: LinkStore,
        roles_of: RolesOf,
        *,
        public_url: str | None,
    ) -> None:
        self._ledger = ledger
        self._store = store
        self._roles_of = roles_of
        self._public_url = public_url

    def make(
        self,
        thread_id: str,
        tool_call_id: str,
        identity: str,
        *,
        created_by: str,
        base_url: str | None = None,
    ) -> IssuedLink:
        """The link for `identity` to decide this pending call (the same link if made again).

        `NotPermitted` if `identity` may not approve it; `AlreadyDecided`, `LinkGone` (past its
        deadline) if it cannot be decided any more. `base_url` stands in for a missing public
        URL (the address a request came to); without either, `InvalidSettings`.
        """
        base = self._public_url or base_url
        if base is None:
            raise InvalidSettings(NO_PUBLIC_URL)
        record = self._pending(thread_id, tool_call_id)
        self._check_may_use(record, identity)
        secret = self._store.issue(
            thread_id,
            tool_call_id,
            record.args_hash,
            identity,
            asked_at=record.requested_at,
            expires_at=record.expires_at,
            created_by=created_by,
            now=self._ledger.clock(),
        )
        return IssuedLink(
            base.rstrip("/") + LINK_PATH + secret,
            thread_id,
            tool_call_id,
            identity,
            record.args_hash,
            record.expires_at,
        )

    def view(self, secret: str) -> LinkView:
        """What the link is for and whether it can decide; reads only (`LinkNotFound`)."""
        link = self._store.find(secret)
        record = None if link is None else self._ledger.get(link.thread_id, link.tool_call_id)
        if link is None or record is None:
            raise LinkNotFound()
        state, problem = self._state(link, record)
        allowed = [d for d in ONE_CLICK if d in record.allowed_decisions]
        return LinkView(link, record, state, problem, allowed if state == "ready" else [])

    def decide(
        self,
        service: "ApprovalService",
        secret: str,
        decision: str,
        *,
        message: str | None = None,
    ) -> Decided:
        """Use the link: record `decision` (approve or reject) as its person, through
        `service.decide`, once. `LinkGone` if it was used (or is used
        meanwhile), expired or made for other args; the ledger's refusals as they are."""
        view = self.view(secret)
        if view.problem is not None:
            raise LinkGone(view.problem)
        if decision not in view.decisions:
            raise InvalidDecision(
                view.record.tool_call_id,
                f"a link can {' or '.join(view.decisions) or 'not decide'} this call, not "
                f"{decision!r}; open the inbox for other answers",
            )
        link = view.link
        claim = self._store.claim(secret, now=self._ledger.clock())
        if claim is None:
            raise LinkGone(_USED)
        answer: dict[str, Any] = {"type": decision}
        if decision == "reject" and message:
            answer["message"] = message
        try:
            return service.decide(
                link.thread_id,
                {link.tool_call_id: answer},
                actor=link.identity,
                seen_args_hashes={link.tool_call_id: link.args_hash},
                roles=tuple(self._roles_of(link.identity)),
            )
        except BaseException:
            self._store.release(secret, claim)  # refused: the page then says what stands
            raise

    def progress(self, record: ApprovalRecord) -> str | None:
        """How far a quorum call a link voted on got ("1 of 2 approvals: bob"); None once
        the call is decided (a vote that reached the quorum decided it)."""
        if record.status != "pending":
            return None
        return progress(record, self._ledger.votes(record.thread_id, record.tool_call_id))

    def add_to_payload(self, event_type: str, payload: str) -> str:
        """An `approval.requested` webhook body with `data.links`, a link for each approver
        the call's rule names (by name; none for roles, or when anyone may approve); an
        `approval.escalated` one with a link for each person the escalation let decide; other
        bodies, and all without a public URL, as they are. Made when sent, never stored."""
        if event_type not in LINKED_EVENTS or self._public_url is None:
            return payload
        body = json.loads(payload)
        data = body.get("data") or {}
        record = self._ledger.get(str(body.get("thread_id")), str(body.get("tool_call_id")))
        if record is None or record.status != "pending" or record.approvers is None:
            return payload
        if event_type == "approval.escalated":
            if record.escalated_at is None:
                return payload  # asked again since: its escalation is still to come
            names = list(data.get("approvers_added") or [])
        elif record.args_hash != data.get("args_hash"):
            return payload  # asked again since: the newer event carries the links
        else:
            names = list(record.approvers)
        links: dict[str, str] = {}
        for name in names:
            if name.startswith(ROLE_PREFIX) or name not in record.approvers:
                continue
            try:
                made = self.make(
                    record.thread_id, record.tool_call_id, name, created_by=WEBHOOK_ACTOR
                )
            except (NotPermitted, LinkGone, AlreadyDecided):
                continue  # the requester without self-approval; or settled meanwhile
            links[name] = made.url
        body["data"] = data | {"links": links}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    def _pending(self, thread_id: str, tool_call_id: str) -> ApprovalRecord:
        record = self._ledger.get(thread_id, tool_call_id)
        if record is None:
            pending = [r.tool_call_id for r in self._ledger.thread_records(thread_id)]
            raise UnknownToolCall(
                thread_id, tool_call_id, pending, self._ledger.threads_of_call(tool_call_id)
            )
        if record.status != "pending":
            raise AlreadyDecided(
                thread_id,
                tool_call_id,
                record.decided_by or "nobody",
                iso(record.decided_at) or "?",
                record.decision_type or record.status,
                record.status,
            )
        if record.expires_at is not None and self._ledger.clock() >= record.expires_at:
            raise LinkGone(_expired(record.expires_at))
        return record

    def _check_may_use(self, record: ApprovalRecord, identity: str) -> None:
        if identity.startswith(ROLE_PREFIX) or not identity.strip():
            raise NotPermitted(
                f"{identity!r} is not a person: a link is made for one person, by name"
            )
        kind = "approve" if "approve" in record.allowed_decisions else "reject"
        check_permitted(record, kind, identity, tuple(self._roles_of(identity)))
        if record.quorum > 1 and any(
            vote.approver == identity
            for vote in self._ledger.votes(record.thread_id, record.tool_call_id)
        ):
            raise AlreadyVoted(
                f"{identity!r} already voted on this call, which waits for other approvers: "
                "a link would let them do nothing more"
            )

    def _state(self, link: Link, record: ApprovalRecord) -> tuple[State, str | None]:
        if link.used_at is not None:
            return "used", _USED
        if record.status != "pending":
            by = record.decided_by or "nobody"
            return "decided", (
                f"This call was already decided by {by} at {iso(record.decided_at)} "
                f"({record.decision_type or record.status}); it is now {record.status}. "
                "Nothing was changed."
            )
        if record.args_hash != link.args_hash:
            return "args_changed", (
                "The agent asked about this call again, with other arguments, after this link "
                "was made; this link cannot decide them. Ask for a new link, or use the inbox."
            )
        deadline = record.expires_at
        if deadline is not None and self._ledger.clock() >= deadline:
            return "expired", _expired(deadline)
        return "ready", None


_USED = "This link was used already; a link decides once. Nothing was changed."


def _expired(deadline: float) -> str:
    return (
        f"The approval expired at {iso(deadline)}; this link cannot decide it any more. "
        "Nothing was changed."
    )
