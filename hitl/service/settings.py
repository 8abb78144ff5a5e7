"""Settings, read from an environment mapping when asked (never at import time)."""

import getpass
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, db: str | None = None) -> "Settings":
        """Read `HITL_DB` (or `db`), `HITL_PG_POOL_SIZE` and `HITL_MODEL`; the graph reads
        `HITL_TOOLS`, `HITL_POLICY`, ...

        `ValueError` if the database is neither a file nor a URL; `InvalidSettings` for a
        PostgreSQL URL libpq would fill in with its defaults (no database, a password without
        a user) or a pool size that is not a whole number of at least one.
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
        )


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
