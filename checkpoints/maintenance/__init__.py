"""Keeping a database: its schema and migrations, retention (prune), copying to another one."""

from hitl.checkpoints.maintenance._copy import CopyReport, copy_database
from hitl.checkpoints.maintenance._progress import Progress, no_progress
from hitl.checkpoints.maintenance._retention import Pruner, PruneReport, file_bytes, prune
from hitl.checkpoints.maintenance._schema import SchemaStatus, migrate, status

__all__ = [
    "CopyReport",
    "Progress",
    "PruneReport",
    "Pruner",
    "SchemaStatus",
    "copy_database",
    "file_bytes",
    "migrate",
    "no_progress",
    "prune",
    "status",
]
