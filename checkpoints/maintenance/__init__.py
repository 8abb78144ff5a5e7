"""Keeping a database: its schema and migrations, retention (prune), copying to another one."""

from hitl.checkpoints.maintenance._copy import CopyReport, copy_database
from hitl.checkpoints.maintenance._retention import Pruner, PruneReport, file_bytes, prune
from hitl.checkpoints.maintenance._schema import SchemaStatus, migrate, status

__all__ = [
    "CopyReport",
    "PruneReport",
    "Pruner",
    "SchemaStatus",
    "copy_database",
    "file_bytes",
    "migrate",
    "prune",
    "status",
]
