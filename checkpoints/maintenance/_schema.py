"""The database's schema as a whole: every table the project keeps, its version, migrating it.

Two parts are versioned: LangGraph's checkpoint tables (the saver's own migrations, counted
in `checkpoint_migrations` on PostgreSQL) and the ledger's (`hitl_schema`). The run queue,
token, webhook and message tables are created if missing when their store opens, and
`migrate` creates them all at once, so a deployment can create its schema before the
service processes start (and without racing each other to it).
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hitl.checkpoints.database import Cursor, Store, scalar, store_connection, table_exists
from hitl.checkpoints.errors import DatabaseError
from hitl.checkpoints.ledger import SCHEMA_VERSION, make_ledger
from hitl.checkpoints.maintenance._progress import Progress, no_progress
from hitl.checkpoints.savers import open_saver
from hitl.checkpoints.stores import LinkStore, RunQueue, TokenStore, make_webhook_store
from hitl.checkpoints.urls import DatabaseName, display, is_postgres

CHECKPOINT_TABLES = {
    "sqlite": ("checkpoints", "writes"),
    "postgres": ("checkpoints", "checkpoint_blobs", "checkpoint_writes"),
}
HITL_TABLES = (
    "hitl_schema",
    "hitl_approvals",
    "hitl_audit",
    "hitl_leases",
    "hitl_messages",
    "hitl_runs",
    "hitl_tokens",
    "hitl_webhooks",
    "hitl_webhook_deliveries",
    "hitl_webhook_cursor",
    "hitl_link_key",
    "hitl_links",
)

_MIGRATING = "parts of the schema created or migrated"
_COUNTING = "tables counted"


@dataclass(frozen=True)
class SchemaStatus:
    """What `hitl db status` shows."""

    database: str
    backend: str
    ledger_version: int
    """0: the ledger's tables are not there yet."""
    ledger_target: int
    checkpoint_version: int | None
    """LangGraph's last applied migration (PostgreSQL); None where the saver keeps none."""
    checkpoint_target: int | None
    rows: dict[str, int | None] = field(default_factory=dict)
    """Rows per table; None for a table that does not exist."""

    @property
    def up_to_date(self) -> bool:
        return (
            self.ledger_version == self.ledger_target
            and self.checkpoint_version == self.checkpoint_target
            and all(n is not None for n in self.rows.values())
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "up_to_date": self.up_to_date}


def migrate(db: DatabaseName, progress: Progress = no_progress) -> SchemaStatus:
    """Create every table that is missing and apply every pending migration; the status after.
    `progress` is told the parts of the schema done, then the tables counted.

    Safe to run while services use the database, and from several processes at once.
    """

    def checkpoint_tables() -> None:
        with open_saver(db):
            pass

    def stores() -> None:
        for store in (RunQueue, TokenStore, LinkStore):
            store(store_connection(db), path=display(db)).close()

    parts: tuple[Callable[[], None], ...] = (
        checkpoint_tables,
        lambda: make_ledger(db).close(),
        stores,
        lambda: make_webhook_store(db).close(),
    )
    progress(_MIGRATING, 0, len(parts))
    for done, part in enumerate(parts, 1):
        part()
        progress(_MIGRATING, done, len(parts))
    return status(db, progress)


def status(db: DatabaseName, progress: Progress = no_progress) -> SchemaStatus:
    """The schema's versions and every table's row count; creates nothing. `progress` is told
    the tables counted (a count reads a whole table)."""
    if not is_postgres(db) and not Path(db).exists():
        raise DatabaseError(db, FileNotFoundError("no such database file; nothing was created"))
    backend = "postgres" if is_postgres(db) else "sqlite"
    reader = _Reader(store_connection(db), path=display(db))
    try:
        return reader._read(lambda cur: _status(cur, db, backend, progress))
    finally:
        reader.close()


def _status(cur: Cursor, db: DatabaseName, backend: str, progress: Progress) -> SchemaStatus:
    rows: dict[str, int | None] = {}
    counted = (*CHECKPOINT_TABLES[backend], *HITL_TABLES)
    progress(_COUNTING, 0, len(counted))
    for done, table in enumerate(counted, 1):
        exists = table_exists(cur, table)
        count = cur.execute(f"SELECT COUNT(*) FROM {table}").fetchone() if exists else None
        rows[table] = None if count is None else int(count[0])
        progress(_COUNTING, done, len(counted))
    ledger_version = 0
    if rows["hitl_schema"]:
        ledger_version = int(scalar(cur.execute("SELECT version FROM hitl_schema")))
    checkpoint_version = checkpoint_target = None
    if backend == "postgres":
        from langgraph.checkpoint.postgres.base import MIGRATIONS

        checkpoint_target = len(MIGRATIONS) - 1
        checkpoint_version = -1
        if table_exists(cur, "checkpoint_migrations"):
            found = scalar(cur.execute("SELECT MAX(v) FROM checkpoint_migrations"))
            checkpoint_version = -1 if found is None else int(found)
    return SchemaStatus(
        database=display(db),
        backend=backend,
        ledger_version=ledger_version,
        ledger_target=SCHEMA_VERSION,
        checkpoint_version=checkpoint_version,
        checkpoint_target=checkpoint_target,
        rows=rows,
    )


class _Reader(Store):
    """A store with no tables of its own: `status` reads through it."""
