"""The confirmation page of a decision link: no sign-in (the link is the credential), a GET
that only shows the call, and a POST from the page that decides once.

A mail scanner or a chat preview fetches every link it sees (GET, HEAD): those read and never
use the link. The form carries the link's secret in its body; the page is never cached and
never sends the link on as a `Referer`.
"""

import logging
import re
import time
from typing import Any, cast

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse

from hitl.checkpoints.errors import DatabaseBusy
from hitl.checkpoints.records import iso
from hitl.server.ui import PAGE_HEADERS, countdown, page_templates, same_origin
from hitl.server.workers import ServicePool
from hitl.service import errors
from hitl.service.links import LINK_PATH, DecisionLinks, LinkView

LINK_HEADERS = PAGE_HEADERS | {
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}
"""The inbox's headers (no-store, its CSP), but the link's address never goes on to another
site, nor into a search index."""
REFUSED: dict[type[Exception], int] = {
    errors.LinkNotFound: 404,
    errors.LinkGone: 410,
    errors.AlreadyDecided: 409,
    errors.ArgsChanged: 410,
    errors.NotPermitted: 403,
    errors.LedgerTampered: 409,
    errors.DecisionNotAllowed: 422,
    errors.InvalidDecision: 422,
    errors.Busy: 503,
    DatabaseBusy: 503,
}
"""What a confirmation page may be refused with, and its status."""
OTHER_SITE = "This form can only be sent from its own page: open the link again."


ACCESS_LOGGER = "uvicorn.access"
_SECRET_IN_PATH = re.compile(re.escape(LINK_PATH) + r"[^/?#\s]+")


class HideLinkSecrets(logging.Filter):
    """Shows `/link/…` instead of a link's secret in the access log: a log is read by more
    people than the link was sent to."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_IN_PATH.sub(LINK_PATH + "…", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


def install(app: FastAPI) -> None:
    """Add `GET|HEAD /link/{secret}` and `POST /link` to `app`, and hide link secrets from
    the access log."""
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, HideLinkSecrets) for f in access.filters):
        access.addFilter(HideLinkSecrets())
    pages = page_templates()
    router = APIRouter(include_in_schema=False)

    def page(request: Request, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
        return pages.TemplateResponse(
            request,
            "link.html",
            {"me": None, "view": None, "done": None, "votes": None, "error": None} | context,
            status_code=status_code,
            headers=LINK_HEADERS,
        )

    def refused(request: Request, error: Exception) -> HTMLResponse:
        status = next(s for k, s in REFUSED.items() if isinstance(error, k))
        return page(request, {"view": None, "error": str(error)}, status)

    @router.api_route(LINK_PATH + "{secret}", methods=["GET", "HEAD"])
    def confirm(secret: str, request: Request) -> HTMLResponse:
        try:
            view = _links(request).view(secret)
        except errors.LinkNotFound as e:
            return refused(request, e)
        status = {"ready": 200, "decided": 409}.get(view.state, 410)
        return page(request, _context(view, secret), status)

    @router.post(LINK_PATH.rstrip("/"))
    def decide(
        request: Request,
        link: str = Form(""),
        decision: str = Form(""),
        message: str = Form(""),
    ) -> HTMLResponse:
        # the page's `no-referrer` makes a browser send `Origin: null`; the secret in the
        # body is what authorizes, so only a POST from another named site is refused
        if request.headers.get("origin") != "null" and not same_origin(request):
            return page(request, {"view": None, "error": OTHER_SITE}, 403)
        links = _links(request)
        service = cast(ServicePool, request.app.state.pool).get()
        try:
            decided = links.decide(service, link, decision, message=message.strip() or None)
        except tuple(REFUSED) as e:
            return refused(request, e)
        [record] = decided.records  # still pending: a vote of a quorum call
        votes = links.progress(record)
        return page(request, {"view": None, "done": record, "votes": votes, "error": None})

    app.include_router(router)


def _context(view: LinkView, secret: str) -> dict[str, Any]:
    record = view.record
    return {
        "view": view,
        "secret": secret,
        "requested_at": iso(record.requested_at),
        "deadline": countdown(iso(record.expires_at), time.time())[0],
        "error": view.problem,
        "done": None,
    }


def _links(request: Request) -> DecisionLinks:
    return cast(DecisionLinks, request.app.state.links)
