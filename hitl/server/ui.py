"""The web inbox: sign-in, the pending approvals and a thread's story, as server-rendered pages.

Pages only read, through the same `ApprovalService` as the API. Every decision is a `fetch` of
the JSON API by `static/inbox.js`, with the `X-Hitl-CSRF` header a cookie-signed request needs.
Live updates: the script listens to the API's SSE streams and, when something changed, swaps in
the fragments `/ui/inbox` and `/ui/threads/{id}` render, keeping any card a reviewer is using.
"""

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import quote, urlencode, urlsplit

import jinja2
from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.routing import Match
from starlette.types import Scope

from hitl.checkpoints.records import ApprovalRecord, iso
from hitl.checkpoints.stores import RunQueue, Token, TokenStore
from hitl.server.auth import COOKIE, CSRF_HEADER, require, signed_in
from hitl.server.triage_ui import inbox_filter
from hitl.server.workers import ServicePool
from hitl.service.errors import ThreadNotFound
from hitl.service.views import (
    MAX_MESSAGES_PAGE,
    MESSAGES_PAGE,
    InboxPage,
    PendingApproval,
    actor_label,
)
from hitl.service.workflow import (
    MAX_OFFSET,
    ApprovalService,
    InboxQuery,
    ThreadFilter,
    ThreadQuery,
)

HERE = Path(__file__).parent
INBOX_LIMIT = 100
"""Cards on the inbox page: the first page `/approvals/stream` sends, so both agree."""
THREADS_PER_PAGE = 50
"""Rows on a page of `/threads`."""
THREAD_FILTERS = {"all": "All", "waiting": "Waiting", "running": "Running", "finished": "Finished"}
"""The thread list's status filters, as the API spells them, and their labels."""
MAX_PREFIX = 200
"""The longest ID prefix a search takes (a thread ID's longest)."""
STANDING_ENDED_SHOWN = 20
"""Revoked or expired standing approvals listed below the active ones (`hitl allow list --all`
lists them all)."""
URGENT_SECONDS = 5 * 60
"""A deadline closer than this is shown in red."""
PROSE_NAMES = frozenset({"message", "body", "content", "text", "description", "comment", "prompt"})
"""String arguments edited in a multi-line box whatever their current length."""
BAD_TOKEN = "That token is not valid (mistyped, or revoked). Ask an admin for a new one."
OTHER_SITE = "This form can only be sent from this site's own pages: open /login here."
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Vary": "Accept, Cookie",
}

viewer = Depends(require("viewer"))


def install(app: FastAPI) -> None:
    """Add the pages, their fragments and `/static` to `app` (after the API's routes)."""
    templates = _templates()

    def page(
        request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> HTMLResponse:
        return templates.TemplateResponse(
            request, name, context, status_code=status_code, headers=PAGE_HEADERS
        )

    router = APIRouter(include_in_schema=False)

    @router.get("/login")
    def login_form(request: Request, next: str = "/") -> Response:
        if signed_in(request) is not None:
            return _redirect(_local(next))
        return page(request, "login.html", {"me": None, "next": _local(next), "error": None})

    @router.post("/login")
    def login(request: Request, token: str = Form(""), next: str = Form("/")) -> Response:
        if not _same_origin(request):
            context = {"me": None, "next": _local(next), "error": OTHER_SITE}
            return page(request, "login.html", context, status_code=403)
        if _tokens(request).authenticate(token.strip()) is None:
            context = {"me": None, "next": _local(next), "error": BAD_TOKEN}
            return page(request, "login.html", context, status_code=401)
        response = _redirect(_local(next))
        response.set_cookie(
            COOKIE,
            token.strip(),
            httponly=True,
            samesite="strict",
            path="/",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/logout")
    def logout(request: Request) -> Response:
        if not _same_origin(request):
            raise HTTPException(403, OTHER_SITE)
        response = _redirect("/login")
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @router.get("/")
    def inbox_page(request: Request) -> Response:
        who = signed_in(request)
        if who is None:
            return _to_login(request)
        return page(request, "inbox.html", _inbox_context(request, who))

    @router.get("/ui/inbox")
    def inbox_fragment(request: Request, who: Token = viewer) -> HTMLResponse:
        return page(request, "_inbox.html", _inbox_context(request, who))

    @router.get("/ui/threads/{thread_id}")
    def thread_fragment(thread_id: str, request: Request, who: Token = viewer) -> HTMLResponse:
        return page(request, "_thread.html", _thread_context(request, who, thread_id))

    def thread_page(thread_id: str, request: Request) -> Response:
        who = signed_in(request)
        if who is None:
            return _to_login(request)
        try:
            context = _thread_context(request, who, thread_id)
        except ThreadNotFound:  # its message advises the CLI; the page words its own
            context = {"me": who, "thread_id": thread_id}
            return page(request, "not_found.html", context, status_code=404)
        return page(request, "thread.html", context)

    def threads_page(request: Request) -> Response:
        who = signed_in(request)
        if who is None:
            return _to_login(request)
        return page(request, "threads.html", _threads_context(request, who))

    def standing_page(request: Request) -> Response:
        who = signed_in(request)
        if who is None:
            return _to_login(request)
        found = _service(request).standing_approvals(include_inactive=True)
        now = time.time()
        context = {
            "me": who,
            "in_force": [s for s in found if s.active(now)],
            "ended": [s for s in found if not s.active(now)][:STANDING_ENDED_SHOWN],
            "can_revoke": who.may("approver"),
        }
        return page(request, "standing.html", context)

    app.include_router(router)
    # The API answers GET /threads and /threads/{id} with JSON; a browser asking for HTML gets
    # the page. Routes match in order, so the pages go first and decline any other request.
    for path, endpoint in (
        ("/threads/{thread_id}", thread_page),
        ("/threads", threads_page),
        ("/standing", standing_page),
    ):
        app.router.routes.insert(
            0,
            _BrowserRoute(
                path,
                endpoint,
                methods=["GET"],
                include_in_schema=False,
                response_class=HTMLResponse,
            ),
        )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")


class _BrowserRoute(APIRoute):
    """A route only for requests that accept HTML (a browser navigating), none else."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        accept = b",".join(v for k, v in scope.get("headers", []) if k == b"accept")
        if b"text/html" not in accept:
            return Match.NONE, {}
        return super().matches(scope)


# what the templates show


@dataclass(frozen=True)
class FormField:
    """One input of an edit form, derived from a property of the tool's args schema."""

    name: str
    label: str
    kind: Literal["string", "text", "integer", "number", "boolean", "enum", "json"]
    """How the script reads the value back: `text` is a multi-line string, `json` any JSON."""
    value: str
    attrs: dict[str, str | bool]
    """HTML constraint attributes (`required`, `pattern`, `min`...), checked before sending."""
    options: list[tuple[str, str, bool]] = field(default_factory=list)
    """For `enum`: (JSON of the value, label, selected)."""
    help: str = ""


@dataclass(frozen=True)
class Card:
    """One pending call as a card: what to read, and what the viewer may do with it."""

    approval: PendingApproval
    dom_id: str
    headline: str
    args: list[tuple[str, str]]
    age: str
    deadline: str
    deadline_state: Literal["none", "ok", "urgent", "overdue"]
    decisions: list[str]
    """The call's allowed decisions, or none for a viewer."""
    can_settle: bool
    fields: list[FormField]
    thread_url: str
    link_for: str | None = None
    """Whom "Copy link" makes a decision link for: the viewer (an approver), anyone they
    name (`""`: an admin), or None: no such action."""
    mine: bool = False
    """Assigned to the viewer by name (its card offers no "Assign to me")."""


def _inbox_context(request: Request, who: Token) -> dict[str, Any]:
    svc = _service(request)
    triage = inbox_filter(request.query_params, who)
    inbox = svc.pending(InboxQuery(limit=INBOX_LIMIT, **triage.query))
    return {
        "me": who,
        "cards": _cards(svc, inbox.items, who),
        "total": inbox.total,
        "signature": _signature(inbox),
        "can_decide": who.may("approver"),
        "triage": triage,
    }


def _thread_context(request: Request, who: Token, thread_id: str) -> dict[str, Any]:
    """A thread's page, with its newest messages: a page of them, or as many as `?messages=`
    asks (the "load earlier messages" link adds a page; a bad value reads as the nearest good
    one)."""
    svc = _service(request)
    asked = request.query_params.get("messages", "")
    shown = int(asked) if asked.isascii() and asked.isdigit() else MESSAGES_PAGE
    shown = min(max(shown, MESSAGES_PAGE), MAX_MESSAGES_PAGE)
    view = svc.show(thread_id, messages=shown)
    more = min(shown + MESSAGES_PAGE, MAX_MESSAGES_PAGE)
    queue = cast(RunQueue, request.app.state.queue)
    return {
        "me": who,
        "thread_id": thread_id,
        "view": view,
        "shown_query": "" if shown == MESSAGES_PAGE else f"?messages={shown}",
        "earlier_url": f"{thread_url(thread_id)}?messages={more}"
        if view.messages_next_before is not None and more > shown
        else None,
        "cards": _cards(svc, view.pending, who),
        "can_decide": who.may("approver"),
        "messages": [_message(m) for m in view.messages],
        "decisions": [_decision_row(r) for r in svc.thread_records(thread_id)],
        "audit": [_audit_row(e.to_json()) for e in svc.audit(thread_id)],
        "runs": [r.to_json() for r in queue.of_thread(thread_id, limit=5)],
    }


def _threads_context(request: Request, who: Token) -> dict[str, Any]:
    """A page of the thread list; a bad filter, search or offset (a hand-edited address) is
    read as the nearest good one rather than refused."""
    params = request.query_params
    status = params.get("status", "all")
    status = status if status in THREAD_FILTERS else "all"
    prefix = params.get("prefix", "").strip()[:MAX_PREFIX]
    offset = params.get("offset", "0")
    start = min(int(offset), MAX_OFFSET) if offset.isascii() and offset.isdigit() else 0
    query = ThreadQuery(
        status=cast(ThreadFilter, status), prefix=prefix, limit=THREADS_PER_PAGE, offset=start
    )
    listing = _service(request).list_threads(query)

    def link(offset: int) -> str:
        kept = {"status": status} if status != "all" else {}
        kept |= {"prefix": prefix} if prefix else {}
        kept |= {"offset": str(offset)} if offset else {}
        return "/threads" + ("?" + urlencode(kept) if kept else "")

    end = start + len(listing.threads)
    return {
        "me": who,
        "listing": listing,
        "status": status,
        "prefix": prefix,
        "filters": THREAD_FILTERS,
        "first": start + 1 if listing.threads else 0,
        "last": end,
        "newer": link(max(0, start - THREADS_PER_PAGE)) if start else None,
        "older": link(end) if end < listing.total else None,
    }


def _cards(svc: ApprovalService, items: Sequence[PendingApproval], who: Token) -> list[Card]:
    now = time.time()
    schemas: dict[str, dict[str, Any]] = {}
    cards = []
    for p in items:
        editable = "edit" in p.allowed_decisions
        if editable and p.tool not in schemas:
            schemas[p.tool] = svc.args_schema(p.tool)
        may_decide = p.status == "pending" and who.may("approver")
        deadline, state = countdown(p.expires_at, now)
        key = f"{p.thread_id}\0{p.tool_call_id}".encode()
        cards.append(
            Card(
                approval=p,
                dom_id="c" + hashlib.sha256(key).hexdigest()[:16],
                headline=_headline(p),
                args=[(k, v if isinstance(v, str) else _json(v)) for k, v in p.args.items()],
                age=ago(p.requested_at, now),
                deadline=deadline,
                deadline_state=state,
                decisions=list(p.allowed_decisions) if may_decide else [],
                can_settle=p.status == "outcome_unknown" and who.may("admin"),
                fields=edit_fields(schemas[p.tool], p.args) if editable and may_decide else [],
                thread_url=thread_url(p.thread_id),
                link_for=None if not may_decide else "" if who.may("admin") else who.name,
                mine=p.assignee == who.name,
            )
        )
    return cards


def _signature(inbox: InboxPage) -> str:
    """What the inbox shows, as `inbox.js` computes it from an `inbox` event (to skip a fetch
    when nothing it shows changed)."""
    rows = [
        f"{p.thread_id} {p.tool_call_id} {p.args_hash} {p.status} {p.assignee or ''} "
        f"{p.snoozed_until or ''} {p.escalated_at or ''} {len(p.approvals)}"
        for p in inbox.items
    ]
    return "\n".join([*rows, str(inbox.total)])


def _headline(p: PendingApproval) -> str:
    # the policy appends the tool and its args, which the card shows better right below
    head, found, _ = p.description.partition(f"\n\nTool: {p.tool}\nArgs: ")
    return head if found else p.description


def _message(message: Mapping[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    return {
        **message,
        "text": message.get("text") or (content if isinstance(content, str) else _json(content)),
        "calls": [{**c, "args_text": _json(c.get("args"))} for c in message.get("tool_calls", [])],
    }


def _decision_row(record: ApprovalRecord) -> dict[str, Any]:
    data = record.to_json()
    decision = record.decision or {}
    summary = record.decision_type or "—"
    if record.status == "expired":  # the deadline decided, not a person: say so
        ran = "approved by its on_expire rule" if record.decision_type == "approve" else "not run"
        summary = f"expired: nobody decided before the deadline; {ran}"
    elif decision.get("type") == "edit":
        summary += " → " + _json(decision.get("edited_action", {}).get("args"), indent=None)
    elif decision.get("message"):
        summary += f": {decision['message']}"
    return data | {"summary": summary, "args_text": _json(record.args, indent=None)}


def _audit_row(entry: dict[str, Any]) -> dict[str, Any]:
    """An audit entry with its actor for a person to read, and its detail as (key, shown,
    full value when shortened) triples."""
    pairs = []
    for key, value in (entry.get("detail") or {}).items():
        text = value if isinstance(value, str) else _json(value, indent=None)
        if key == "runner" and isinstance(value, str) and actor_label(value) != value:
            pairs.append((key, actor_label(value), value))
        elif key.endswith(("hash", "digest")) and len(text) > 16:
            pairs.append((key, text[:12] + "…", text))
        elif key.endswith("_at") and isinstance(value, int | float):
            pairs.append((key, _local_time(iso(value)), text))
        else:
            pairs.append((key, text, ""))
    return entry | {"actor_label": actor_label(entry["actor"]), "pairs": pairs}


def edit_fields(schema: Mapping[str, Any], args: Mapping[str, Any]) -> list[FormField]:
    """One input per property of a tool's args schema, holding the call's current value.

    A schema without properties (a tool that declares none) gets one JSON box for all args.
    """
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        attrs: dict[str, str | bool] = {"required": True, "rows": "6", "spellcheck": "false"}
        return [FormField("", "Arguments (JSON)", "json", _json(dict(args)), attrs)]
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    return [
        _field(name, _resolved(prop, defs), name in required, args.get(name, _MISSING))
        for name, prop in properties.items()
    ]


_MISSING = object()


def _resolved(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    resolved = dict(prop)
    ref = resolved.pop("$ref", None)
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = defs.get(ref.removeprefix("#/$defs/"), {})
        # the model's title names its type, not this property
        resolved = {**{k: v for k, v in target.items() if k != "title"}, **resolved}
    branches = resolved.get("anyOf")
    if isinstance(branches, list):  # Optional[X]: edit it as an X that may be left empty
        kept = [b for b in branches if b.get("type") != "null"]
        if len(kept) == 1:
            del resolved["anyOf"]
            resolved = {**_resolved(kept[0], defs), **resolved}
    return resolved


def _field(name: str, prop: Mapping[str, Any], required: bool, current: object) -> FormField:
    label = str(prop.get("title") or name.replace("_", " ").capitalize())
    help_text = str(prop.get("description") or "")
    value = prop.get("default") if current is _MISSING else current
    attrs: dict[str, str | bool] = {"required": required}
    choices = prop.get("enum", [prop["const"]] if "const" in prop else None)
    kind = prop.get("type")
    if isinstance(choices, list):
        options = [(_json(c, indent=None), str(c), c == value) for c in choices]
        return FormField(name, label, "enum", "", attrs, options, help_text)
    if kind == "boolean":
        return FormField(name, label, "boolean", "", {"checked": value is True}, [], help_text)
    if kind in ("integer", "number"):
        attrs |= _number_attrs(prop, integer=kind == "integer")
        shown = "" if value is None or value is _MISSING else _json(value)
        return FormField(name, label, kind, shown, attrs, [], help_text)
    if kind == "string":
        text = "" if value is None or value is _MISSING else str(value)
        attrs |= _string_attrs(prop)
        multiline = "\n" in text or len(text) > 60 or name.lower() in PROSE_NAMES
        if multiline and attrs.get("type", "text") == "text":
            attrs.pop("type", None)
            attrs.pop("pattern", None)  # textareas have none; the script checks data-pattern
            attrs["rows"] = str(min(10, max(3, text.count("\n") + 2)))
            return FormField(name, label, "text", text, attrs, [], help_text)
        attrs.setdefault("type", "text")
        return FormField(name, label, "string", text, attrs, [], help_text)
    shown = "" if value is _MISSING else _json(value)
    attrs |= {"rows": str(min(10, max(3, shown.count("\n") + 1))), "spellcheck": "false"}
    return FormField(name, label, "json", shown, attrs, [], help_text or "JSON")


def _number_attrs(prop: Mapping[str, Any], *, integer: bool) -> dict[str, str | bool]:
    attrs: dict[str, str | bool] = {
        "type": "number",
        "inputmode": "numeric" if integer else "decimal",
    }
    attrs["step"] = str(prop.get("multipleOf", 1 if integer else "any"))
    if "minimum" in prop:
        attrs["min"] = str(prop["minimum"])
    if "maximum" in prop:
        attrs["max"] = str(prop["maximum"])
    if integer and isinstance(prop.get("exclusiveMinimum"), int | float):
        attrs["min"] = str(int(prop["exclusiveMinimum"]) + 1)
    if integer and isinstance(prop.get("exclusiveMaximum"), int | float):
        attrs["max"] = str(int(prop["exclusiveMaximum"]) - 1)
    return attrs


_INPUT_TYPES = {"email": "email", "uri": "url", "date": "date", "time": "time"}


def _string_attrs(prop: Mapping[str, Any]) -> dict[str, str | bool]:
    attrs: dict[str, str | bool] = {}
    if prop.get("format") in _INPUT_TYPES:
        attrs["type"] = _INPUT_TYPES[prop["format"]]
    if "minLength" in prop:
        attrs["minlength"] = str(prop["minLength"])
    if "maxLength" in prop:
        attrs["maxlength"] = str(prop["maxLength"])
    if "pattern" in prop:
        # JSON schema patterns search; HTML's must match the whole value
        attrs["pattern"] = f"[\\s\\S]*(?:{prop['pattern']})[\\s\\S]*"
        attrs["data-pattern"] = str(prop["pattern"])
    return attrs


def ago(when: str | None, now: float) -> str:
    """'just now', '3 min ago', '2 h ago', '4 days ago' (inbox.js ticks the same text)."""
    if not when:
        return "—"
    seconds = max(0, int(now - datetime.fromisoformat(when).timestamp()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    days = seconds // 86400
    return f"{days} day{'s' if days > 1 else ''} ago"


def countdown(
    when: str | None, now: float
) -> tuple[str, Literal["none", "ok", "urgent", "overdue"]]:
    """The time left to decide and how pressing it is (inbox.js ticks it every second)."""
    if not when:
        return "no deadline", "none"
    left = int(datetime.fromisoformat(when).timestamp() - now)
    if left <= 0:
        return "overdue", "overdue"
    h, rest = divmod(left, 3600)
    m, s = divmod(rest, 60)
    if h >= 24:
        text = f"{h // 24} d {h % 24} h left"
    elif h:
        text = f"{h}:{m:02d}:{s:02d} left"
    else:
        text = f"{m}:{s:02d} left"
    return text, "urgent" if left < URGENT_SECONDS else "ok"


def thread_url(thread_id: str) -> str:
    return "/threads/" + quote(thread_id, safe="")


# plumbing


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    versions = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:10]
        for p in (HERE / "static").iterdir()
        if p.is_file()
    }
    env.globals |= {
        "static": lambda name: f"/static/{name}?v={versions.get(name, '0')}",
        "csrf_header": CSRF_HEADER,
        "thread_url": thread_url,
        "ago": lambda iso: ago(iso, time.time()),
    }
    env.filters["local_time"] = _local_time
    env.filters["attrs"] = _html_attrs
    return Jinja2Templates(env=env)


def page_templates() -> Jinja2Templates:
    """The inbox's templates with their filters and globals, for pages of their own."""
    return _templates()


def same_origin(request: Request) -> bool:
    """Whether a form was posted from this site's own pages (see `_same_origin`)."""
    return _same_origin(request)


def _html_attrs(attrs: Mapping[str, str | bool]) -> Markup:
    """HTML attributes: `True` bare (`required`), `False` left out, text escaped."""
    parts = [
        escape(k) if v is True else Markup('{}="{}"').format(k, v)
        for k, v in attrs.items()
        if v is not False
    ]
    return Markup(" ").join(parts)


def _local_time(when: str | None) -> str:
    """A readable UTC time; inbox.js rewrites it in the reader's time zone."""
    if not when:
        return "—"
    return datetime.fromisoformat(when).strftime("%b %d, %H:%M:%S UTC")


def _json(value: Any, indent: int | None = 2) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=False, default=str)


def _service(request: Request) -> ApprovalService:
    return cast(ServicePool, request.app.state.pool).get()


def _tokens(request: Request) -> TokenStore:
    return cast(TokenStore, request.app.state.tokens)


def _to_login(request: Request) -> RedirectResponse:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _redirect("/login" + ("" if path == "/" else "?next=" + quote(path, safe="")))


def _redirect(to: str) -> RedirectResponse:
    return RedirectResponse(to, status_code=303, headers={"Cache-Control": "no-store"})


def _local(path: str) -> str:
    """`path` if it stays on this site, else `/` (no open redirect through `next`)."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//"):
        return "/"
    return path if "\\" not in path else "/"


def _same_origin(request: Request) -> bool:
    """Whether a form was posted from this site's own pages (signing a person in as someone
    else is an attack too). Browsers send `Origin` with every POST; behind a proxy that
    rewrites `Host`, its `X-Forwarded-Host` names this site."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not sent by a browser's form
    ours = {request.headers.get("host"), request.headers.get("x-forwarded-host")} - {None}
    return urlsplit(origin).netloc in ours
