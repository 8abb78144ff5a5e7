"""The approval service of a running `hitl serve`, over HTTP, for the CLI's remote mode.

It has the methods of `ApprovalService` that the CLI calls and returns the same views, so
`hitl --url URL --token T approve ...` prints what the local command prints. An acting call
waits for the run it started (long-polling `GET /runs/{id}`), as the local command does.
Identity is the token's: the service records every decision under the token's name.
"""

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from hitl.checkpoints.ledger import InboxQuery, Remember
from hitl.checkpoints.records import (
    ApprovalRecord,
    AuditEntry,
    AuditReport,
    StandingApproval,
    iso,
)
from hitl.service.bulk import BulkReport, Target
from hitl.service.errors import InvalidDecision, ServiceUnavailable, from_wire
from hitl.service.thread_ids import check_thread_id
from hitl.service.views import (
    MESSAGES_PAGE,
    Decided,
    EveryPending,
    HistoryEntry,
    InboxPage,
    Reconciled,
    Sent,
    SweepReport,
    ThreadView,
)

RUN_WAIT_SECONDS = 30.0
"""How long one long-poll waits; the client polls again until the run ends."""


class RemoteService:
    """`ApprovalService`'s operations on the service at `url`, as the token's owner."""

    def __init__(self, url: str, token: str, *, timeout: float = 60.0) -> None:
        self._url = url.rstrip("/")
        self._client = httpx.Client(
            base_url=self._url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout + RUN_WAIT_SECONDS,
        )

    def close(self) -> None:
        self._client.close()

    # reading

    def show(
        self, thread_id: str, *, messages: int = MESSAGES_PAGE, before: int | None = None
    ) -> ThreadView:
        params = {"messages": messages} | ({} if before is None else {"before": before})
        return ThreadView.from_json(self._get(f"/threads/{_q(thread_id)}", params=params))

    def pending(self, query: InboxQuery | None = None) -> InboxPage:
        query = query or InboxQuery()
        params: dict[str, Any] = {
            "sort": query.sort,
            "desc": query.descending,
            "limit": query.limit,
            "offset": query.offset,
        }
        for name in ("tool", "thread_id", "requester"):
            if (value := getattr(query, name)) is not None:
                params[name] = value
        now = time.time()
        if query.older_than is not None:
            params["older_than"] = f"{max(0.0, now - query.older_than):.3f}s"
        if query.expiring_before is not None:
            params["expiring_before"] = iso(query.expiring_before)
        if query.assigned_to is not None:
            params["assigned_to"] = list(query.assigned_to)
        params["snoozed"] = query.snoozed
        return InboxPage.from_json(self._get("/approvals", params=params))

    def history(
        self, thread_id: str, *, limit: int | None = None, before: str | None = None
    ) -> list[HistoryEntry]:
        params = {k: v for k, v in (("limit", limit), ("before", before)) if v is not None}
        data = self._get(f"/threads/{_q(thread_id)}/history", params=params)
        return [HistoryEntry.from_json(e) for e in data["history"]]

    def audit(self, thread_id: str) -> list[AuditEntry]:
        data = self._get(f"/threads/{_q(thread_id)}/audit")
        return [AuditEntry.from_json(e) for e in data["audit"]]

    def verify_audit(self) -> AuditReport:
        return AuditReport.from_json(self._get("/audit/verify"))

    # acting: the service's own methods, over HTTP; each waits for the run it queued

    def send(
        self,
        prompts: str | Sequence[str],
        thread_id: str | None = None,
        *,
        actor: str,
        cancel_pending: bool = False,
    ) -> Sent:
        texts = [prompts] if isinstance(prompts, str) else list(prompts)
        body: dict[str, Any] = (
            {"prompt": texts[0]}
            if len(texts) == 1
            else {"messages": [{"content": m} for m in texts]}
        )
        if thread_id is None:
            accepted = self._post("/threads", body)
        elif self._client.get(f"/threads/{_q(thread_id)}").status_code != 404:
            body["cancel_pending"] = cancel_pending
            accepted = self._post(f"/threads/{_q(thread_id)}/runs", body)
        else:  # refused here as locally: the service's 422 would not say which error it is
            accepted = self._post("/threads", body | {"thread_id": check_thread_id(thread_id)})
        self._wait(accepted)
        return Sent(accepted["thread_id"], None)

    def decide(
        self,
        thread_id: str,
        answers: Mapping[str, object] | EveryPending,
        *,
        actor: str,
        comment: str | None = None,
        seen_args_hashes: Mapping[str, str] | None = None,
        remember: Remember | None = None,
    ) -> Decided:
        """One request per call (the API decides one call, or every pending one, at a time)."""
        if isinstance(answers, EveryPending):
            return self._decide_one(thread_id, None, answers.answer, comment, None, remember)
        if not answers:
            raise InvalidDecision("(none)", "no decision given")
        records: list[ApprovalRecord] = []
        for tool_call_id, answer in answers.items():
            seen = (seen_args_hashes or {}).get(tool_call_id)
            decided = self._decide_one(thread_id, tool_call_id, answer, comment, seen, remember)
            records += decided.records
        return Decided(thread_id, records, None)

    def allow(
        self,
        tool: str,
        *,
        actor: str,
        expires_after: float,
        args: Mapping[str, Any] | None = None,
        requester: str | None = None,
        thread_id: str | None = None,
    ) -> StandingApproval:
        body = {
            "tool": tool,
            "expires_in": f"{expires_after}s",
            "args": None if args is None else dict(args),
            "requester": requester,
            "thread_id": thread_id,
        }
        return StandingApproval.from_json(self._post("/standing", body))

    def standing_approvals(self, *, include_inactive: bool = False) -> list[StandingApproval]:
        found = self._get("/standing", params={"all": include_inactive})
        return [StandingApproval.from_json(s) for s in found["standing"]]

    def revoke_standing(self, standing_id: str, *, actor: str) -> StandingApproval:
        revoked = self._answer(lambda: self._client.delete(f"/standing/{_q(standing_id)}"))
        return StandingApproval.from_json(revoked)

    def edit_answer(self, thread_id: str, tool_call_id: str, args: Mapping[str, Any]) -> object:
        """The `edit` answer; the service checks it against the tool's schema."""
        return {"type": "edit", "edited_action": {"name": "", "args": dict(args)}}

    def reconcile(
        self,
        thread_id: str,
        tool_call_id: str,
        action: str,
        *,
        actor: str,
        result: str | None = None,
    ) -> Reconciled:
        body = {"call": tool_call_id, "action": action, "result": result}
        accepted = self._post(f"/threads/{_q(thread_id)}/reconcile", body)
        self._wait(accepted)
        return Reconciled(ApprovalRecord.from_json(accepted["reconciled"]), None)

    def continue_thread(self, thread_id: str, *, actor: str) -> None:
        self._wait(self._post(f"/threads/{_q(thread_id)}/resume", {}))

    def sweep(self) -> SweepReport:
        return SweepReport.from_json(self._post("/sweep", {}))

    def assign(
        self, thread_id: str, tool_call_id: str, assignee: str | None, *, actor: str
    ) -> ApprovalRecord:
        path = f"/approvals/{_q(thread_id)}/{_q(tool_call_id)}/assign"
        return ApprovalRecord.from_json(self._post(path, {"assignee": assignee}))

    def snooze(
        self, thread_id: str, tool_call_id: str, until: float | None, *, actor: str
    ) -> ApprovalRecord:
        path = f"/approvals/{_q(thread_id)}/{_q(tool_call_id)}/snooze"
        return ApprovalRecord.from_json(self._post(path, {"until": iso(until)}))

    def decide_all(
        self, targets: Sequence[Target], answer: dict[str, Any], *, comment: str | None
    ) -> BulkReport:
        """`hitl.service.bulk.decide_all` on the service: each call decided on its own; the
        answer comes once they are recorded (the service's workers run the threads)."""
        calls = [
            {"thread_id": t.thread_id, "call": t.tool_call_id}
            | ({"args_hash": t.args_hash} if t.args_hash else {})
            for t in targets
        ]
        body = {"decision": answer["type"], "calls": calls, "comment": comment}
        if answer.get("message"):
            body["reason"] = answer["message"]
        report = BulkReport.from_json(self._post("/approvals/bulk", body))
        tools = {(t.thread_id, t.tool_call_id): t.tool for t in targets}
        items = [
            dataclasses.replace(i, tool=tools.get((i.thread_id, i.tool_call_id), i.tool))
            for i in report.items
        ]
        return BulkReport(report.decision, items)

    def make_link(self, thread_id: str, tool_call_id: str, identity: str) -> dict[str, Any]:
        """A decision link for `identity` (yourself; anyone for an admin's token)."""
        path = f"/approvals/{_q(thread_id)}/{_q(tool_call_id)}/links"
        return self._post(path, {"for": identity})

    # plumbing

    def _decide_one(
        self,
        thread_id: str,
        tool_call_id: str | None,
        answer: object,
        comment: str | None,
        seen: str | None,
        remember: Remember | None = None,
    ) -> Decided:
        decision: dict[str, Any] = (
            {"type": answer} if isinstance(answer, str) else dict(answer)  # type: ignore[call-overload]
        )
        kind = str(decision.get("type"))
        body: dict[str, Any] = {"call": tool_call_id, "comment": comment}
        if seen:
            body["args_hash"] = seen
        if kind == "reject" and decision.get("message"):
            body["reason"] = decision["message"]
        elif kind == "respond":
            body["message"] = decision.get("message")
        elif kind == "edit":
            body["args"] = decision.get("edited_action", {}).get("args")
        elif kind != "approve" and kind != "reject":
            raise InvalidDecision(tool_call_id or "(all)", f"unknown decision type {kind!r}")
        if remember is not None:
            body["remember"] = {
                "expires_in": f"{remember.expires_after}s",
                "args": remember.args,
                "requester": remember.requester,
                "thread": remember.thread,
            }
        accepted = self._post(f"/threads/{_q(thread_id)}/{kind}", body)
        self._wait(accepted)
        records = [ApprovalRecord.from_json(r) for r in accepted.get("decided", [])]
        return Decided(thread_id, records, None)

    def _wait(self, accepted: dict[str, Any]) -> None:
        """Wait for the accepted run to end; its error, if it failed, as a domain error (a
        vote that left its quorum call pending queued no run)."""
        run = accepted["run"]
        if run is None:
            return
        while run["status"] not in ("done", "failed"):
            run = self._get(f"/runs/{run['run_id']}", params={"wait": RUN_WAIT_SECONDS})
        if run["status"] == "failed" and run.get("error"):
            raise from_wire({"type": run["error"]["type"], "message": run["error"]["message"]}, 0)

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._answer(lambda: self._client.get(path, params=params))

    def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._answer(lambda: self._client.post(path, json=dict(body)))

    def _answer(self, send: Any) -> dict[str, Any]:
        try:
            response: httpx.Response = send()
        except httpx.TransportError as e:
            raise ServiceUnavailable(
                f"cannot reach the hitl service at {self._url} ({e}); is `hitl serve` "
                "running there? Check --url / HITL_URL."
            ) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success and isinstance(data, dict):
            return data
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, dict):
            raise ServiceUnavailable(
                f"the hitl service at {self._url} answered {response.status_code} "
                f"{response.reason_phrase}: {response.text[:200]}"
            )
        raise from_wire(error, response.status_code)


def _q(thread_id: str) -> str:
    """A thread ID as one URL path segment, whatever it holds."""
    return quote(thread_id, safe="")
