"""The database under every store: connections (SQLite, pooled PostgreSQL), SQL written for
SQLite as PostgreSQL reads it, and the two kinds of transaction a store runs."""

from hitl.checkpoints.database._db import (
    MAX_OFFSET,
    Cursor,
    PgConnection,
    PgCursor,
    PgListener,
    PostgresOnly,
    Row,
    execute_later,
    index_exists,
    notify,
    one,
    scalar,
    table_exists,
    to_postgres,
)
from hitl.checkpoints.database._sqlite import (
    DEFAULT_DB,
    LOCK_WAIT_SECONDS,
    ReadOnlyConnection,
    connect,
    damage_named,
    is_busy,
    main_file,
    refused,
)
from hitl.checkpoints.database._store import WRITE_LOCK, Store, schema_in_place, store_connection

__all__ = [
    "DEFAULT_DB",
    "LOCK_WAIT_SECONDS",
    "MAX_OFFSET",
    "WRITE_LOCK",
    "Cursor",
    "PgConnection",
    "PgCursor",
    "PgListener",
    "PostgresOnly",
    "ReadOnlyConnection",
    "Row",
    "Store",
    "connect",
    "damage_named",
    "execute_later",
    "index_exists",
    "is_busy",
    "main_file",
    "notify",
    "one",
    "refused",
    "scalar",
    "schema_in_place",
    "store_connection",
    "table_exists",
    "to_postgres",
]
