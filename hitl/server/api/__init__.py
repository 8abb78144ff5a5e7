"""The JSON API: the CLI's operations over HTTP, on the same `ApprovalService`.

Starting a run or deciding answers `202` as soon as the work is durable (a decision in the
ledger, a run in the queue); a worker runs the thread, `GET /runs/{id}` tells how it ended,
and `GET /threads/{id}/stream` shows it live.
"""

from fastapi import APIRouter

from hitl.server.api import admin, approvals, links, standing, threads, triage
from hitl.server.http_errors import ERROR_RESPONSES

router = APIRouter(responses=ERROR_RESPONSES)
for part in (threads, approvals, triage, standing, admin, links):
    router.include_router(part.router)
