"""Settings, read from an environment mapping when asked (never at import time)."""

import getpass
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hitl.checkpoints.database import DEFAULT_DB
from hitl.checkpoints.urls import (
    DatabaseName,
    PostgresUrl,
    check_postgres_url,
    is_postgres,
    parse_database,
    parse_pool_size,
)
from hitl.service.errors import InvalidSettings


@dataclass(frozen=True)
class Settings:
    """Where the database is, and what the graph is built from."""

    db: DatabaseName = DEFAULT_DB
    """A SQLite file (`Path`) or a PostgreSQL URL (a `PostgresUrl`, carrying its pool size to
    the saver and every store)."""
    model: str | None = None
    environ: Mapping[str, str] | None = None
    graph: str | None = None
    """The user's graph (`./file.py:attr` or `package.module:attr`); None: the demo agent."""
    public_url: str | None = None
    """Where people reach the service (`HITL_PUBLIC_URL`): decision links start with it."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, db: str | None = None) -> "Settings":
        """Read `HITL_DB` (or `db`), `HITL_PG_POOL_SIZE`, `HITL_MODEL` and `HITL_PUBLIC_URL`
        (`check_public_url`); the graph reads
        `HITL_TOOLS`, `HITL_POLICY`, ...

        `ValueError` if the database is neither a file nor a URL; `InvalidSettings` for a
        PostgreSQL URL libpq would fill in with its defaults (no database, a password without
        a user), a pool size that is not a whole number of at least one, or a public URL that
        is not one.
        """
        database = parse_database(db or environ.get("HITL_DB") or DEFAULT_DB)
        if is_postgres(database):  # only PostgreSQL has a pool: a stray value never stops SQLite
            try:
                check_postgres_url(str(database))
                pool_size = parse_pool_size(environ.get("HITL_PG_POOL_SIZE"))
            except ValueError as e:
                raise InvalidSettings(str(e)) from e
            database = PostgresUrl(str(database), pool_size=pool_size)
        return cls(
            db=database,
            model=environ.get("HITL_MODEL") or None,
            environ=dict(environ),
            graph=environ.get("HITL_GRAPH") or graph_in_langgraph_json(Path.cwd()),
            public_url=check_public_url(public)
            if (public := environ.get(PUBLIC_URL_SETTING))
            else None,
        )


PUBLIC_URL_SETTING = "HITL_PUBLIC_URL"


def check_public_url(url: str) -> str:
    """`url` without a trailing slash; `InvalidSettings` unless it is an http(s) URL with a
    host and no query or fragment."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise InvalidSettings(
            f"{PUBLIC_URL_SETTING} / --public-url {url!r} is not usable: give the http(s) URL "
            "people open the inbox at, e.g. https://hitl.example.com (no query or fragment)"
        )
    return url.strip().rstrip("/")


def default_actor(environ: Mapping[str, str]) -> str:
    """Who is acting: `HITL_ACTOR`, else the OS user."""
    return environ.get("HITL_ACTOR") or getpass.getuser()


def graph_in_langgraph_json(folder: Path) -> str | None:
    """The graph a project's `langgraph.json` names (its only one, or `agent`), as a spec
    relative to the current folder; None without one, or when it names this project's own
    Studio entry point (which serves the demo agent)."""
    path = folder / "langgraph.json"
    try:
        graphs = json.loads(path.read_text(encoding="utf-8")).get("graphs") or {}
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(graphs, dict) or not graphs:
        return None
    spec = graphs.get("agent") if len(graphs) > 1 else next(iter(graphs.values()))
    if not isinstance(spec, str) or ":" not in spec:
        return None
    target, _, attribute = spec.rpartition(":")
    if target.endswith(".py"):
        file = (folder / target).resolve()
        if file == STUDIO_ENTRY.resolve():
            return None
        target = str(file)
    return f"{target}:{attribute}"


STUDIO_ENTRY = Path(__file__).resolve().parents[1] / "graph" / "studio.py"
"""This project's own `langgraph.json` entry (the demo agent, for `langgraph dev`)."""
