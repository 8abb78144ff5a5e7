"""Signed decision links: one per (call, args, approver, request), stored only as their SHA-256.

A link's secret is HMAC-SHA256 of (thread, call, args hash, identity, when the call was asked)
under a random 256-bit key kept in this database (`hitl_link_key`), so making the link for the
same call, args and person again gives the same link (a webhook sent twice, `hitl link` run
twice) without keeping it, and a call asked again (even with the same args, after a policy
change voided a decision made with the link) gets a new one. The table `hitl_links` holds its
hash, what it is bound to, and when it was used. Whoever can read the database can derive
links, as they can read webhook secrets; whoever can write it can decide anyway. A link is
used by a compare-and-set on `used_at`, so two requests with one link never both get past
`claim`.
"""

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hitl.checkpoints.database import Cursor, Store, one, store_connection

LINK_PREFIX = "hl_"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS hitl_link_key (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        link_key TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS hitl_links (
        link_hash TEXT PRIMARY KEY,
        thread_id TEXT NOT NULL,
        tool_call_id TEXT NOT NULL,
        args_hash TEXT NOT NULL,
        identity TEXT NOT NULL,
        expires_at REAL,
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        used_at REAL,
        claim TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS hitl_links_by_call ON hitl_links (thread_id, tool_call_id)",
)
_COLUMNS = (
    "thread_id, tool_call_id, args_hash, identity, expires_at, created_at, created_by, used_at"
)


@dataclass(frozen=True)
class Link:
    """What a link is bound to, and whether it was used (times are UNIX seconds)."""

    thread_id: str
    tool_call_id: str
    args_hash: str
    """The args the link's holder is shown and may decide: a call asked again with other args
    is not theirs to decide by this link."""
    identity: str
    """The person deciding with the link: the decision is recorded under this name."""
    expires_at: float | None
    created_at: float
    created_by: str
    used_at: float | None


class LinkStore(Store):
    """Links in the database beside the ledger. Thread-safe."""

    SCHEMA = _SCHEMA

    def issue(
        self,
        thread_id: str,
        tool_call_id: str,
        args_hash: str,
        identity: str,
        *,
        asked_at: float,
        expires_at: float | None,
        created_by: str,
        now: float,
    ) -> str:
        """The link secret for this call, args and person, as asked at `asked_at` (its
        `requested_at`): the same every time (its row is written once; a later call returns
        the same secret and changes nothing) until the call is asked again."""

        def work(cur: Cursor) -> str:
            bound = (thread_id, tool_call_id, args_hash, identity, repr(asked_at))
            secret = _derive(_key(cur), *bound)
            cur.execute(
                "INSERT INTO hitl_links (link_hash, thread_id, tool_call_id, args_hash, "
                "identity, expires_at, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (link_hash) DO NOTHING",
                (
                    _hash(secret),
                    thread_id,
                    tool_call_id,
                    args_hash,
                    identity,
                    expires_at,
                    now,
                    created_by,
                ),
            )
            return secret

        return self._write(work)

    def find(self, secret: str) -> Link | None:
        """The link with this secret, or None (a mistyped, cut or forged one)."""
        row = self._read(
            lambda cur: cur.execute(
                f"SELECT {_COLUMNS} FROM hitl_links WHERE link_hash = ?", (_hash(secret),)
            ).fetchone()
        )
        return None if row is None else _link_of(row)

    def claim(self, secret: str, *, now: float) -> str | None:
        """Mark the link used (compare-and-set: only if unused); a claim token to `release`
        it with if the decision is then refused, or None if it was used already."""
        token = secrets.token_hex(16)
        changed = self._write(
            lambda cur: (
                cur.execute(
                    "UPDATE hitl_links SET used_at = ?, claim = ? "
                    "WHERE link_hash = ? AND used_at IS NULL",
                    (now, token, _hash(secret)),
                ).rowcount
            )
        )
        return token if changed else None

    def release(self, secret: str, claim: str) -> None:
        """Make a claimed link usable again: the decision it was claimed for was not recorded
        (the database was busy, the thread could not be loaded)."""
        self._write(
            lambda cur: cur.execute(
                "UPDATE hitl_links SET used_at = NULL, claim = NULL "
                "WHERE link_hash = ? AND claim = ?",
                (_hash(secret), claim),
            )
        )

    def of_call(self, thread_id: str, tool_call_id: str) -> list[Link]:
        """Every link made for one call, oldest first (never their secrets)."""
        rows = self._read(
            lambda cur: cur.execute(
                f"SELECT {_COLUMNS} FROM hitl_links WHERE thread_id = ? AND tool_call_id = ? "
                "ORDER BY created_at",
                (thread_id, tool_call_id),
            ).fetchall()
        )
        return [_link_of(r) for r in rows]


@contextmanager
def open_link_store(path: Path | str) -> Iterator[LinkStore]:
    """The link store in the database at `path` (its tables created if missing)."""
    store = LinkStore(store_connection(path), path=str(path))
    try:
        yield store
    finally:
        store.close()


def _key(cur: Cursor) -> bytes:
    """This database's link key, made on first use (the first of two racing writers wins)."""
    cur.execute(
        "INSERT INTO hitl_link_key (id, link_key) VALUES (1, ?) ON CONFLICT (id) DO NOTHING",
        (secrets.token_hex(32),),
    )
    return bytes.fromhex(str(one(cur.execute("SELECT link_key FROM hitl_link_key"))[0]))


def _derive(key: bytes, *parts: str) -> str:
    message = "\0".join(parts).encode("utf-8", "surrogatepass")
    mac = hmac.new(key, message, hashlib.sha256).digest()  # 256 bits
    return LINK_PREFIX + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _link_of(row: tuple[Any, ...]) -> Link:
    thread_id, tool_call_id, args_hash, identity, expires_at, created_at, created_by, used = row
    return Link(
        thread_id, tool_call_id, args_hash, identity, expires_at, created_at, created_by, used
    )
