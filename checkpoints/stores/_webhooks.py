"""The webhook outbox: endpoints, one durable delivery per (endpoint, event), and their retries.

Events are read from the ledger's audit trail (`hitl_audit`), so a decision made by any process
(CLI, HTTP service, Studio) produces them; a cursor on the audit table's `rowid` (which only
grows: audit rows are never deleted) says how far they have been turned into deliveries.
Enqueueing, claiming and recording an attempt are each one write transaction, so a restart
loses no delivery and two dispatchers never enqueue or send the same delivery at the same time.

Delivery is at least once: a dispatcher that dies after the receiver answered but before the
answer is recorded sends that delivery again once its claim runs out. Receivers de-duplicate by
the payload's `id`. Secrets are stored in the clear (they sign, so they must be readable):
whoever can read the database file can forge webhooks.
"""

import json
import secrets
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from hitl.checkpoints.database import (
    LOCK_WAIT_SECONDS,
    Cursor,
    PgConnection,
    PostgresOnly,
    Store,
    scalar,
    schema_in_place,
    store_connection,
    table_exists,
)
from hitl.checkpoints.errors import DatabaseError, WebhookError
from hitl.checkpoints.ledger import AUDIT_COLUMNS, COLUMNS, audit_entry_of, record_of
from hitl.checkpoints.records import STATUS_OF_DECISION, ApprovalRecord, AuditEntry, iso
from hitl.checkpoints.urls import is_postgres

Clock = Callable[[], float]
DeliveryStatus = Literal["pending", "delivered", "dead"]

EVENT_TYPES: tuple[str, ...] = (
    "approval.requested",
    "approval.decided",
    "approval.expired",
    "tool.finished",
    "approval.reminder",
    "approval.escalated",
    "approval.voted",
    "standing.created",
    "standing.revoked",
)
EVENT_OF_AUDIT: dict[str, str] = {
    "requested": "approval.requested",
    "re-requested": "approval.requested",
    "decided": "approval.decided",
    "approved_by_standing": "approval.decided",  # decided in the standing approval's name
    "expired": "approval.expired",
    "tool_finished": "tool.finished",
    "reminded": "approval.reminder",
    "escalated": "approval.escalated",
    "approval_vote": "approval.voted",
    "standing_created": "standing.created",
    "standing_revoked": "standing.revoked",
}
"""Audit events that become webhooks; every other audit event is skipped."""
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = ("pending", "delivered", "dead")
BASE_BACKOFF_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 600.0
MAX_ATTEMPTS = 10
ENQUEUE_BATCH = 500
MIN_SECRET_LENGTH = 16
_ERROR_LENGTH = 500  # of `last_error`: a receiver's error page is not worth keeping whole

_TABLES = (
    """CREATE TABLE IF NOT EXISTS hitl_webhooks (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        secret TEXT NOT NULL,
        events TEXT,
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        after_audit_rowid INTEGER NOT NULL,
        removed_at REAL
    )""",
    # SQLite numbers rows itself; endpoints are listed in the order they were added
    PostgresOnly(
        "ALTER TABLE hitl_webhooks ADD COLUMN IF NOT EXISTS rowid BIGINT GENERATED ALWAYS AS "
        "IDENTITY"
    ),
    """CREATE TABLE IF NOT EXISTS hitl_webhook_deliveries (
        id INTEGER PRIMARY KEY,
        webhook_id TEXT NOT NULL REFERENCES hitl_webhooks (id),
        event_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL,
        claimed_until REAL,
        claim TEXT,
        last_status_code INTEGER,
        last_error TEXT,
        created_at REAL NOT NULL,
        delivered_at REAL,
        UNIQUE (webhook_id, event_id)
    )""",
    "CREATE INDEX IF NOT EXISTS hitl_webhook_deliveries_due "
    "ON hitl_webhook_deliveries (status, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS hitl_webhook_deliveries_by_webhook "
    "ON hitl_webhook_deliveries (webhook_id, id)",
    """CREATE TABLE IF NOT EXISTS hitl_webhook_cursor (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        audit_rowid INTEGER NOT NULL
    )""",
)
_ENDPOINT_COLUMNS = "id, url, events, created_at, created_by, active, after_audit_rowid"
_DELIVERY_COLUMNS = (
    "id, webhook_id, event_id, event_type, payload, status, attempts, next_attempt_at, "
    "claimed_until, last_status_code, last_error, created_at, delivered_at"
)


@dataclass(frozen=True)
class Endpoint:
    """A URL that receives events (times are UNIX seconds). Never carries its secret."""

    id: str
    url: str
    events: list[str] | None
    """The event types it receives; None: all of them, including types added later."""
    created_at: float
    created_by: str
    active: bool
    """False once removed: it receives nothing more."""
    after_audit_rowid: int
    """It receives only events of audit rows after this one (nothing from before it existed)."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self) | {"created_at": iso(self.created_at), "has_secret": True}
        del data["after_audit_rowid"]
        return data


@dataclass(frozen=True)
class Delivery:
    """One event for one endpoint, and how sending it went (times are UNIX seconds)."""

    id: int
    webhook_id: str
    event_id: str
    """The payload's `id`: the same for every attempt, so receivers can de-duplicate."""
    event_type: str
    payload: str
    """The exact body sent (JSON), the same for every attempt."""
    status: DeliveryStatus
    attempts: int
    next_attempt_at: float | None
    claimed_until: float | None
    """A dispatcher is sending it until then; after that any dispatcher may."""
    last_status_code: int | None
    last_error: str | None
    """Why the newest failed attempt failed (kept after a later success)."""
    created_at: float
    delivered_at: float | None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self) | {"payload": json.loads(self.payload)}
        for key in ("next_attempt_at", "claimed_until", "created_at", "delivered_at"):
            data[key] = iso(data[key])
        return data


@dataclass(frozen=True)
class Claim:
    """A delivery this dispatcher may send now, with where to and the key to sign it."""

    delivery: Delivery
    url: str
    secret: str = field(repr=False)
    token: str
    """Proves the claim when its attempt is recorded (a claim that ran out was taken over)."""


class WebhookStore(Store):
    """Endpoints and the delivery log in the checkpoint database. Thread-safe.

    A failed attempt is retried after `base_backoff * 2**(attempts - 1)` seconds (at most
    `max_backoff`); after `max_attempts` attempts the delivery is `dead`.
    """

    def __init__(
        self,
        conn: sqlite3.Connection | PgConnection,
        *,
        path: str = "",
        clock: Clock = time.time,
        base_backoff: float = BASE_BACKOFF_SECONDS,
        max_backoff: float = MAX_BACKOFF_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
        lock_wait: float = LOCK_WAIT_SECONDS,
    ) -> None:
        super().__init__(conn, path=path, lock_wait=lock_wait)
        if base_backoff < 0 or max_backoff < 0 or max_attempts < 1:
            raise WebhookError("backoffs must be >= 0 and max_attempts >= 1")
        self.clock = clock
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.max_attempts = max_attempts

    def setup(self) -> None:
        """Create the tables if missing; a new cursor starts after the audit rows that exist.

        Looks first without the write lock: opening a set-up store waits for no writer.
        """

        def in_place(cur: Cursor) -> bool:
            return schema_in_place(cur, _TABLES) and bool(
                cur.execute("SELECT 1 FROM hitl_webhook_cursor WHERE id = 1").fetchone()
            )

        if self._read(in_place):
            return

        def work(cur: Cursor) -> None:
            for statement in _TABLES:
                if self.on_postgres or not isinstance(statement, PostgresOnly):
                    cur.execute(statement)
            # an outbox created on a database with history does not replay that history
            cur.execute(
                "INSERT OR IGNORE INTO hitl_webhook_cursor (id, audit_rowid) VALUES (1, ?)",
                (_audit_head(cur),),
            )

        self._write(work)

    # endpoints

    def add_endpoint(
        self,
        url: str,
        *,
        events: Sequence[str] | None = None,
        secret: str | None = None,
        created_by: str,
    ) -> tuple[Endpoint, str]:
        """Register an endpoint for `events` (None: all); return it and its signing secret.

        The secret is generated unless given; this is the only call that returns it.
        """
        _check_url(url)
        wanted = _check_events(events)
        if secret is None:
            secret = secrets.token_urlsafe(32)
        elif len(secret) < MIN_SECRET_LENGTH:
            raise WebhookError(
                f"the secret is {len(secret)} characters long; use at least {MIN_SECRET_LENGTH} "
                "(or leave it out and one is generated)"
            )
        endpoint_id = f"wh_{uuid.uuid4().hex[:12]}"

        def work(cur: Cursor) -> Endpoint:
            cur.execute(
                "INSERT INTO hitl_webhooks (id, url, secret, events, created_at, created_by, "
                "active, after_audit_rowid) VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
                (
                    endpoint_id,
                    url,
                    secret,
                    None if wanted is None else json.dumps(wanted),
                    self.clock(),
                    created_by,
                    _audit_head(cur),
                ),
            )
            return _require_endpoint(cur, endpoint_id)

        return self._write(work), secret

    def list_endpoints(self, *, include_removed: bool = False) -> list[Endpoint]:
        """The endpoints, oldest first (without their secrets)."""
        where = "" if include_removed else "WHERE active = 1"
        return self._read(
            lambda cur: [
                _endpoint_of(r)
                for r in cur.execute(
                    f"SELECT {_ENDPOINT_COLUMNS} FROM hitl_webhooks {where} "
                    "ORDER BY created_at, rowid"
                ).fetchall()
            ]
        )

    def remove_endpoint(self, webhook_id: str) -> Endpoint:
        """Deactivate an endpoint; its pending deliveries become `dead` (idempotent)."""

        def work(cur: Cursor) -> Endpoint:
            endpoint = _get_endpoint(cur, webhook_id)
            if endpoint is None:
                raise WebhookError(
                    f"no webhook endpoint {webhook_id!r}; `hitl webhook list` shows their IDs"
                )
            now = self.clock()
            cur.execute(
                "UPDATE hitl_webhooks SET active = 0, removed_at = ? WHERE id = ? AND active = 1",
                (now, webhook_id),
            )
            # the claim stays: an attempt in flight may still record that it was delivered
            cur.execute(
                "UPDATE hitl_webhook_deliveries SET status = 'dead', next_attempt_at = NULL, "
                "last_error = ? WHERE webhook_id = ? AND status = 'pending'",
                (f"not sent: endpoint {webhook_id} was removed at {iso(now)}", webhook_id),
            )
            return _require_endpoint(cur, webhook_id)

        return self._write(work)

    # the outbox

    def enqueue_from_audit(self, limit: int = ENQUEUE_BATCH) -> int:
        """Turn up to `limit` new audit rows into deliveries; return how many were created.

        One transaction reads the rows after the cursor, inserts the deliveries and moves the
        cursor, so two dispatchers never enqueue an event twice. Looks first without the write
        lock: usually nothing is new, and a dispatcher polls.
        """
        if not self._read(_audit_after_cursor):
            return 0

        def work(cur: Cursor) -> int:
            if not _has_audit(cur):
                return 0  # no ledger in this file yet
            after = _cursor(cur)
            rows = cur.execute(
                f"SELECT rowid, {AUDIT_COLUMNS} FROM hitl_audit WHERE rowid > ? "
                "ORDER BY rowid LIMIT ?",
                (after, limit),
            ).fetchall()
            if not rows:
                return 0
            endpoints = [
                _endpoint_of(r)
                for r in cur.execute(
                    f"SELECT {_ENDPOINT_COLUMNS} FROM hitl_webhooks WHERE active = 1"
                ).fetchall()
            ]
            now, created = self.clock(), 0
            for rowid, *columns in rows:
                entry = audit_entry_of(tuple(columns))
                event_type = EVENT_OF_AUDIT.get(entry.event)
                if event_type is None:
                    continue
                receivers = [
                    e
                    for e in endpoints
                    if rowid > e.after_audit_rowid and (e.events is None or event_type in e.events)
                ]
                if not receivers:
                    continue
                payload = _payload(cur, entry, event_type)
                for endpoint in receivers:
                    created += cur.execute(
                        "INSERT OR IGNORE INTO hitl_webhook_deliveries (webhook_id, event_id, "
                        "event_type, payload, status, attempts, next_attempt_at, created_at) "
                        "VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)",
                        (endpoint.id, _event_id(entry), event_type, payload, now, now),
                    ).rowcount
            cur.execute(
                "UPDATE hitl_webhook_cursor SET audit_rowid = ? WHERE id = 1", (rows[-1][0],)
            )
            return created

        return self._write(work)

    def claim_due(self, now: float, limit: int, claim_seconds: float) -> list[Claim]:
        """Claim up to `limit` pending deliveries that are due, oldest first, for sending now.

        Compare-and-set in one write transaction: a delivery claimed by another dispatcher
        (until its claim runs out) is not returned, so it is not sent twice at the same time.
        Looks first without the write lock, like `enqueue_from_audit`.
        """
        due = (
            "d.status = 'pending' AND d.next_attempt_at <= ? "
            "AND (d.claimed_until IS NULL OR d.claimed_until <= ?)"
        )
        if not self._read(
            lambda cur: cur.execute(
                f"SELECT 1 FROM hitl_webhook_deliveries d WHERE {due} LIMIT 1", (now, now)
            ).fetchone()
        ):
            return []

        def work(cur: Cursor) -> list[Claim]:
            rows = cur.execute(
                f"SELECT {_qualified(_DELIVERY_COLUMNS, 'd')}, w.url, w.secret "
                "FROM hitl_webhook_deliveries d JOIN hitl_webhooks w ON w.id = d.webhook_id "
                f"WHERE {due} AND w.active = 1 "
                "ORDER BY d.next_attempt_at, d.id LIMIT ?",
                (now, now, limit),
            ).fetchall()
            claims = []
            for *columns, url, secret in rows:
                token = uuid.uuid4().hex
                changed = cur.execute(
                    "UPDATE hitl_webhook_deliveries SET claimed_until = ?, claim = ? "
                    "WHERE id = ? AND status = 'pending' "
                    "AND (claimed_until IS NULL OR claimed_until <= ?)",
                    (now + claim_seconds, token, columns[0], now),
                ).rowcount
                if changed:
                    claims.append(Claim(_require_delivery(cur, columns[0]), url, secret, token))
            return claims

        return self._write(work)

    def record_attempt(
        self,
        delivery_id: int,
        *,
        ok: bool,
        status_code: int | None = None,
        error: str | None = None,
        now: float | None = None,
        claim: str | None = None,
    ) -> Delivery | None:
        """Record one attempt: `delivered`, or retried later with backoff, or `dead`.

        With `claim`, only the holder of that claim may record (None is returned when another
        dispatcher took the delivery over after the claim ran out).
        """
        at = self.clock() if now is None else now

        def work(cur: Cursor) -> Delivery | None:
            delivery = _get_delivery(cur, delivery_id)
            if delivery is None:
                raise WebhookError(f"no webhook delivery {delivery_id}")
            held = scalar(
                cur.execute(
                    "SELECT claim FROM hitl_webhook_deliveries WHERE id = ?", (delivery_id,)
                )
            )
            if claim is not None and held != claim:
                return None
            if delivery.status == "delivered":
                return delivery
            attempts = delivery.attempts + 1
            fields: dict[str, Any] = {
                "attempts": attempts,
                "last_status_code": status_code,
                "claimed_until": None,
                "claim": None,
            }
            # a delivery made dead by a removal while this attempt was in flight: a success
            # still counts (the receiver has it), a failure only adds to the attempts
            if ok:
                fields |= {"status": "delivered", "delivered_at": at, "next_attempt_at": None}
            elif delivery.status == "pending":
                fields["last_error"] = (error or "failed")[:_ERROR_LENGTH]
                if attempts >= self.max_attempts:
                    fields |= {"status": "dead", "next_attempt_at": None}
                    fields["last_error"] = (
                        f"gave up after {attempts} attempts; last: {fields['last_error']}"
                    )[:_ERROR_LENGTH]
                else:
                    fields["next_attempt_at"] = at + self.backoff(attempts)
            assignments = ", ".join(f"{column} = ?" for column in fields)
            cur.execute(
                f"UPDATE hitl_webhook_deliveries SET {assignments} WHERE id = ?",
                (*fields.values(), delivery_id),
            )
            return _require_delivery(cur, delivery_id)

        return self._write(work)

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt."""
        return float(min(self.base_backoff * 2 ** (attempts - 1), self.max_backoff))

    def redeliver(self, delivery_id: int) -> Delivery:
        """Send a `dead` delivery again, from its first attempt (its endpoint must be active)."""

        def work(cur: Cursor) -> Delivery:
            delivery = _get_delivery(cur, delivery_id)
            if delivery is None:
                raise WebhookError(f"no webhook delivery {delivery_id}")
            if delivery.status != "dead":
                raise WebhookError(
                    f"delivery {delivery_id} is {delivery.status}; only a dead one is sent again"
                )
            endpoint = _require_endpoint(cur, delivery.webhook_id)
            if not endpoint.active:
                raise WebhookError(
                    f"delivery {delivery_id} is for the removed endpoint {endpoint.id}; "
                    "add the URL again to receive new events"
                )
            cur.execute(
                "UPDATE hitl_webhook_deliveries SET status = 'pending', attempts = 0, "
                "next_attempt_at = ?, claimed_until = NULL, claim = NULL WHERE id = ?",
                (self.clock(), delivery_id),
            )
            return _require_delivery(cur, delivery_id)

        return self._write(work)

    # the delivery log

    def deliveries(
        self,
        *,
        status: DeliveryStatus | None = None,
        webhook_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Delivery]:
        """One page of the delivery log, newest first."""
        where: list[str] = []
        params: list[str] = []
        if status is not None:
            if status not in DELIVERY_STATUSES:
                raise WebhookError(
                    f"unknown delivery status {status!r}; use one of {', '.join(DELIVERY_STATUSES)}"
                )
            where.append("status = ?")
            params.append(status)
        if webhook_id is not None:
            where.append("webhook_id = ?")
            params.append(webhook_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return self._read(
            lambda cur: [
                _delivery_of(r)
                for r in cur.execute(
                    f"SELECT {_DELIVERY_COLUMNS} FROM hitl_webhook_deliveries {clause} "
                    "ORDER BY id DESC LIMIT ? OFFSET ?",
                    (*params, limit, offset),
                ).fetchall()
            ]
        )

    def counts(self) -> dict[DeliveryStatus, int]:
        """How many deliveries are in each state."""
        rows = self._read(
            lambda cur: cur.execute(
                "SELECT status, COUNT(*) FROM hitl_webhook_deliveries GROUP BY status"
            ).fetchall()
        )
        return {status: 0 for status in DELIVERY_STATUSES} | dict(rows)

    def delivery(self, delivery_id: int) -> Delivery | None:
        """One delivery, or None."""
        return self._read(lambda cur: _get_delivery(cur, delivery_id))


@contextmanager
def open_webhook_store(
    path: Path | str,
    *,
    clock: Clock = time.time,
    base_backoff: float = BASE_BACKOFF_SECONDS,
    max_backoff: float = MAX_BACKOFF_SECONDS,
    max_attempts: int = MAX_ATTEMPTS,
    lock_wait: float = LOCK_WAIT_SECONDS,
    create: bool = True,
) -> Iterator[WebhookStore]:
    """Open (and create the tables of) the webhook store in the database at `path`.

    With `create=False` a missing file is a `DatabaseError` (a mistyped path), not a new file.
    """
    store = make_webhook_store(
        path,
        create=create,
        clock=clock,
        base_backoff=base_backoff,
        max_backoff=max_backoff,
        max_attempts=max_attempts,
        lock_wait=lock_wait,
    )
    try:
        yield store
    finally:
        store.close()


def make_webhook_store(
    path: Path | str,
    *,
    clock: Clock = time.time,
    base_backoff: float = BASE_BACKOFF_SECONDS,
    max_backoff: float = MAX_BACKOFF_SECONDS,
    max_attempts: int = MAX_ATTEMPTS,
    lock_wait: float = LOCK_WAIT_SECONDS,
    create: bool = True,
) -> WebhookStore:
    """A set-up webhook store on `path`, open until `close()` (for long-lived runtimes)."""
    if not create and not is_postgres(path) and not Path(path).exists():
        raise DatabaseError(path, FileNotFoundError("no such database file; nothing was created"))
    conn = store_connection(path)
    try:
        store = WebhookStore(
            conn,
            path=str(path),
            clock=clock,
            base_backoff=base_backoff,
            max_backoff=max_backoff,
            max_attempts=max_attempts,
            lock_wait=lock_wait,
        )
        store.setup()
    except BaseException:
        conn.close()
        raise
    return store


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError(
            f"{url!r} is not an http(s) URL; give one like https://example.com/hooks/hitl"
        )
    if any(c.isspace() for c in url):
        raise WebhookError(f"{url!r} contains whitespace; percent-encode it")


def _check_events(events: Sequence[str] | None) -> list[str] | None:
    if events is None:
        return None
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise WebhookError(
            f"unknown event type {', '.join(map(repr, unknown))}; use one of "
            f"{', '.join(EVENT_TYPES)} (or none for all)"
        )
    if not events:
        raise WebhookError(f"no event types given; use some of {', '.join(EVENT_TYPES)}")
    return sorted(set(events), key=EVENT_TYPES.index)


def _has_audit(cur: Cursor) -> bool:
    return table_exists(cur, "hitl_audit")


def _audit_head(cur: Cursor) -> int:
    """The newest audit row's `rowid` (0: none yet)."""
    if not _has_audit(cur):
        return 0
    return int(scalar(cur.execute("SELECT COALESCE(MAX(rowid), 0) FROM hitl_audit")))


def _cursor(cur: Cursor) -> int:
    """The `rowid` of the newest audit row already turned into deliveries."""
    return int(scalar(cur.execute("SELECT audit_rowid FROM hitl_webhook_cursor WHERE id = 1")))


def _audit_after_cursor(cur: Cursor) -> bool:
    return _has_audit(cur) and (
        cur.execute("SELECT 1 FROM hitl_audit WHERE rowid > ? LIMIT 1", (_cursor(cur),)).fetchone()
        is not None
    )


def _event_id(entry: AuditEntry) -> str:
    return f"{entry.thread_id}:{entry.seq}"


def _payload(cur: Cursor, entry: AuditEntry, event_type: str) -> str:
    """The body of the event's webhook, as sent (see docs/webhooks.md)."""
    record = None
    if entry.tool_call_id is not None:
        row = cur.execute(
            f"SELECT {COLUMNS} FROM hitl_approvals WHERE thread_id = ? AND tool_call_id = ?",
            (entry.thread_id, entry.tool_call_id),
        ).fetchone()
        record = None if row is None else record_of(row)
    payload = {
        "id": _event_id(entry),
        "type": event_type,
        "created_at": iso(entry.at),
        "thread_id": entry.thread_id,
        "tool_call_id": entry.tool_call_id,
        "actor": entry.actor,
        "data": _data(entry, record),
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def _data(entry: AuditEntry, record: ApprovalRecord | None) -> dict[str, Any]:
    detail = entry.detail
    data: dict[str, Any] = {}
    if record is not None:
        data |= {
            "tool": record.tool,
            "args": record.args,
            "requester": record.requester,
            "description": record.description,
            "allowed_decisions": record.allowed_decisions,
            "expires_at": iso(record.expires_at),
        }
    # the status this event gave the call (the row may have moved on since)
    if entry.event == "requested":
        data |= {"status": "pending", "args": detail.get("args", data.get("args"))}
        data["args_hash"] = detail.get("args_hash")
    elif entry.event == "re-requested":
        data |= {"status": "pending", "args_hash": detail.get("args_hash")}
        data["args_changed"] = detail.get("args")
        if "reason" in detail:  # asked again under a changed rule (docs/policy-and-audit.md)
            data |= {"reason": detail["reason"], "voided": detail.get("voided")}
    if entry.event in ("requested", "re-requested") and "why" in detail:
        data["why"] = detail["why"]
    elif entry.event == "decided":
        decision = str(detail.get("decision"))
        data |= {"status": STATUS_OF_DECISION.get(decision, decision), "decision": decision}
        for key in ("message", "comment", "approved_args_hash"):
            if key in detail:
                data[key] = detail[key]
        if "args" in detail:  # an edit: what the reviewer changed
            data["args_changed"] = detail["args"]
    elif entry.event == "approved_by_standing":
        data |= {
            "status": "approved",
            "decision": "approve",
            "approved_args_hash": detail.get("args_hash"),
            "standing_id": detail.get("standing_id"),
            "standing_created_by": detail.get("created_by"),
        }
    elif entry.event == "approval_vote":
        data |= {"status": "pending", "vote": detail.get("vote"), "quorum": detail.get("quorum")}
        data |= {"votes": detail.get("votes"), "args_hash": detail.get("args_hash")}
        if "role" in detail:
            data["role"] = detail["role"]
    elif entry.event in ("standing_created", "standing_revoked"):
        data |= {"standing_id": detail.get("standing_id"), "scope": detail.get("scope")}
        if "expires_at" in detail:
            data |= {"expires_at": iso(detail["expires_at"]), "from_call": detail.get("from_call")}
    elif entry.event == "expired":
        on_expire = detail.get("on_expire")
        data |= {
            "status": "expired",
            "decision": "approve" if on_expire == "approve" else "reject",
            "on_expire": on_expire,
            "deadline": iso(detail.get("deadline")),
            "approved_args_hash": detail.get("approved_args_hash"),
        }
    elif entry.event == "reminded":
        data |= {"status": "pending", "remind_at": iso(detail.get("remind_at"))}
        data["assignee"] = detail.get("assignee")
    elif entry.event == "escalated":
        rules = detail.get("rules") or {}
        data |= {"status": "pending", "escalate_to": detail.get("escalate_to")}
        data |= {
            "approvers_added": detail.get("approvers_added"),
            "approvers": rules.get("approvers"),
        }
    elif entry.event == "tool_finished":
        status = detail.get("status")
        data |= {
            "status": status,
            "result_status": "success" if status == "succeeded" else "error",
            "result_digest": detail.get("result_digest"),
        }
    return data


def _qualified(columns: str, alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


def _endpoint_of(row: tuple[Any, ...]) -> Endpoint:
    endpoint_id, url, events, created_at, created_by, active, after = row
    return Endpoint(
        id=endpoint_id,
        url=url,
        events=None if events is None else json.loads(events),
        created_at=created_at,
        created_by=created_by,
        active=bool(active),
        after_audit_rowid=after,
    )


def _get_endpoint(cur: Cursor, webhook_id: str) -> Endpoint | None:
    row = cur.execute(
        f"SELECT {_ENDPOINT_COLUMNS} FROM hitl_webhooks WHERE id = ?", (webhook_id,)
    ).fetchone()
    return None if row is None else _endpoint_of(row)


def _require_endpoint(cur: Cursor, webhook_id: str) -> Endpoint:
    endpoint = _get_endpoint(cur, webhook_id)
    assert endpoint is not None
    return endpoint


def _delivery_of(row: Sequence[Any]) -> Delivery:
    return Delivery(*row)


def _get_delivery(cur: Cursor, delivery_id: int) -> Delivery | None:
    row = cur.execute(
        f"SELECT {_DELIVERY_COLUMNS} FROM hitl_webhook_deliveries WHERE id = ?", (delivery_id,)
    ).fetchone()
    return None if row is None else _delivery_of(row)


def _require_delivery(cur: Cursor, delivery_id: int) -> Delivery:
    delivery = _get_delivery(cur, delivery_id)
    assert delivery is not None
    return delivery


__all__ = [
    "EVENT_TYPES",
    "Claim",
    "Delivery",
    "DeliveryStatus",
    "Endpoint",
    "WebhookStore",
    "make_webhook_store",
    "open_webhook_store",
]
