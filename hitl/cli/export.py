"""`hitl audit --export`: the audit trail as JSON Lines, one entry per line with its chain
hashes, for `examples/verify_audit_export.py` to verify offline (see docs/policy-and-audit.md).

Entries are written as they are read, a page at a time; a file is written beside its name and
moved into place when complete, so a failed export leaves no partial file under that name.
"""

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import click

from hitl.checkpoints.records import AuditEntry

STDOUT = "-"
"""The `--export` value that writes to standard output."""


@dataclass(frozen=True)
class Exported:
    """What an export wrote."""

    target: str
    entries: int
    threads: int

    def to_json(self) -> dict[str, Any]:
        return {"file": self.target, "entries": self.entries, "threads": self.threads}


def export_lines(entries: Iterable[AuditEntry], target: str) -> Exported:
    """Write `entries` to `target` (a file, or `-`), one JSON object per line."""
    if target == STDOUT:
        return _write(entries, sys.stdout, target)
    path = Path(target)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", encoding="utf-8") as out:
            written = _write(entries, out, target)
        os.replace(partial, path)
    except OSError as e:
        partial.unlink(missing_ok=True)
        problem = e.strerror or str(e)
        raise click.BadParameter(
            f"cannot write {target!r} ({problem}): name a file in a folder you may write, "
            "or - for standard output",
            param_hint="'--export'",
        ) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return written


def _write(entries: Iterable[AuditEntry], out: IO[str], target: str) -> Exported:
    count, threads, last = 0, 0, None
    for entry in entries:
        out.write(json.dumps(entry.to_export(), ensure_ascii=False) + "\n")
        count += 1
        if entry.thread_id != last:
            threads, last = threads + 1, entry.thread_id
    out.flush()
    return Exported(target, count, threads)
