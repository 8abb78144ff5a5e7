"""Settings, read from an environment mapping when asked (never at import time)."""

import getpass
from collections.abc import Mapping
from dataclasses import dataclass

from hitl.checkpoints.database import DEFAULT_DB
from hitl.checkpoints.urls import DatabaseName, parse_database


@dataclass(frozen=True)
class Settings:
    """Where the database is, and what the graph is built from."""

    db: DatabaseName = DEFAULT_DB
    """A SQLite file (`Path`) or a PostgreSQL URL."""
    model: str | None = None
    environ: Mapping[str, str] | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, db: str | None = None) -> "Settings":
        """Read `HITL_DB` and `HITL_MODEL`; the graph reads `HITL_TOOLS`, `HITL_POLICY`, ..."""
        return cls(
            db=parse_database(db or environ.get("HITL_DB") or DEFAULT_DB),
            model=environ.get("HITL_MODEL") or None,
            environ=dict(environ),
        )


def default_actor(environ: Mapping[str, str]) -> str:
    """Who is acting: `HITL_ACTOR`, else the OS user."""
    return environ.get("HITL_ACTOR") or getpass.getuser()
