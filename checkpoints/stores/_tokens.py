"""API tokens: who may use the HTTP service, and as what.

A token is shown once, when it is made; the database keeps only its SHA-256 (a token is 256
random bits, so a plain hash is as good as a slow one and costs nothing per request). Names
are identities: decisions made with a token are recorded under its name.
"""

import hashlib
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from hitl.checkpoints.database import Cursor, Store, one, store_connection
from hitl.checkpoints.errors import TokenError, TokenExists, TokenNotFound
from hitl.checkpoints.records import iso

Role = Literal["viewer", "approver", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "approver", "admin")
"""Each role may do what the ones before it may."""
TOKEN_PREFIX = "hitl_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS hitl_tokens (
        token_hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at REAL
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS hitl_tokens_active_name ON hitl_tokens (name) "
    "WHERE revoked_at IS NULL",
)


@dataclass(frozen=True)
class Token:
    """An active (or revoked) token, without its secret."""

    name: str
    role: Role
    created_at: float
    created_by: str
    revoked_at: float | None

    def may(self, role: Role) -> bool:
        """Whether this token's role includes `role`."""
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def roles(self) -> tuple[Role, ...]:
        """Its role and every role it includes."""
        return ROLES[: ROLES.index(self.role) + 1]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "revoked_at": iso(self.revoked_at),
        }


class TokenStore(Store):
    """Tokens in the database beside the checkpoints. Thread-safe."""

    SCHEMA = _SCHEMA

    def create(self, name: str, role: str, *, created_by: str) -> tuple[Token, str]:
        """A new token for `name`; returns it and its secret, which is never stored."""
        if not _NAME.match(name):
            raise TokenError(
                f"invalid token name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-', "
                "starting with a letter or digit (it is the identity decisions are recorded as)"
            )
        if role not in ROLES:
            raise TokenError(f"invalid role {role!r}: choose one of {', '.join(ROLES)}")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)

        def work(cur: Cursor) -> Token:
            if cur.execute(
                "SELECT 1 FROM hitl_tokens WHERE name = ? AND revoked_at IS NULL", (name,)
            ).fetchone():
                raise TokenExists(
                    f"a token named {name!r} exists already; revoke it first "
                    f"(`hitl token revoke {name}`) or choose another name"
                )
            cur.execute(
                "INSERT INTO hitl_tokens (token_hash, name, role, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?)",
                (_hash(secret), name, role, time.time(), created_by),
            )
            return _token_of(
                one(
                    cur.execute(
                        "SELECT name, role, created_at, created_by, revoked_at FROM hitl_tokens "
                        "WHERE token_hash = ?",
                        (_hash(secret),),
                    )
                )
            )

        return self._write(work), secret

    def authenticate(self, secret: str) -> Token | None:
        """The active token with this secret, or None."""
        row = self._read(
            lambda cur: cur.execute(
                "SELECT name, role, created_at, created_by, revoked_at FROM hitl_tokens "
                "WHERE token_hash = ? AND revoked_at IS NULL",
                (_hash(secret),),
            ).fetchone()
        )
        return None if row is None else _token_of(row)

    def revoke(self, name: str) -> Token:
        """Revoke the active token named `name`; it stops working at once."""

        def work(cur: Cursor) -> Token:
            changed = cur.execute(
                "UPDATE hitl_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                (time.time(), name),
            ).rowcount
            if not changed:
                raise TokenNotFound(f"no active token named {name!r}; see `hitl token list`")
            return _token_of(
                one(
                    cur.execute(
                        "SELECT name, role, created_at, created_by, revoked_at FROM hitl_tokens "
                        "WHERE name = ? ORDER BY revoked_at DESC LIMIT 1",
                        (name,),
                    )
                )
            )

        return self._write(work)

    def list(self, *, include_revoked: bool = False) -> list[Token]:
        where = "" if include_revoked else "WHERE revoked_at IS NULL"
        rows = self._read(
            lambda cur: cur.execute(
                "SELECT name, role, created_at, created_by, revoked_at FROM hitl_tokens "
                f"{where} ORDER BY created_at"
            ).fetchall()
        )
        return [_token_of(r) for r in rows]

    def has_admin(self) -> bool:
        return any(t.role == "admin" for t in self.list())

    def create_first_admin(self, *, created_by: str) -> str | None:
        """The secret of a first admin token (named `admin`, or `admin-N` if another token has
        that name); None if an admin token exists, or another process made one meanwhile
        (services started together on one database: only one of them gets it)."""
        active = self.list()
        if any(t.role == "admin" for t in active):
            return None
        names = {t.name for t in active}
        name = next(n for n in ("admin", *(f"admin-{i}" for i in range(2, 100))) if n not in names)
        try:
            return self.create(name, "admin", created_by=created_by)[1]
        except TokenExists:  # another process took the name between our read and our write
            if self.has_admin():
                return None
            raise


@contextmanager
def open_token_store(path: Path | str) -> Iterator[TokenStore]:
    """The token store in the database at `path` (its table created if missing)."""
    store = TokenStore(store_connection(path), path=str(path))
    try:
        yield store
    finally:
        store.close()


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _token_of(row: tuple[Any, ...]) -> Token:
    name, role, created_at, created_by, revoked_at = row
    return Token(name, cast(Role, role), created_at, created_by, revoked_at)
