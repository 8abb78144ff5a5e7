"""What the benches share: the bytes this process wrote, the SQL statements (and commits) a
run made, and the table of targets met or missed that decides a bench's exit status."""

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any, Literal

Check = tuple[str, float, Literal[">=", "<="], float]
"""A figure to check: (label, measured value, sense, target)."""


def written_bytes() -> int:
    """Bytes this process has passed to `write` calls so far (Linux)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


@contextmanager
def traced(connections: Sequence[sqlite3.Connection], ledger: Any = None) -> Iterator[list[str]]:
    """The statements run on `connections` (and by `ledger`, through its own `traced()`)
    inside the block, in one list once it ends."""
    seen: list[str] = []
    for conn in connections:
        conn.set_trace_callback(seen.append)
    with ExitStack() as stack:
        by_ledger = stack.enter_context(ledger.traced()) if ledger is not None else []
        try:
            yield seen
        finally:
            for conn in connections:
                conn.set_trace_callback(None)
            seen.extend(by_ledger)


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


def commit_count(statements: Sequence[str], *, synced_only: bool = False) -> int:
    """How many of `statements` commit a transaction that wrote something.

    A read transaction's COMMIT writes nothing and syncs nothing, so it is not counted: only
    commits that make a change durable cost what this figure stands for. `synced_only`: only
    those committed under `synchronous=FULL` (the ledger commits its bookkeeping under
    `NORMAL`: written, not synced; a later synced commit syncs it too).
    """
    commits, wrote, synced = 0, False, True
    for statement in statements:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        if verb in _WRITES:
            wrote = True
        elif verb in ("COMMIT", "END"):
            commits += wrote and (synced or not synced_only)
            wrote = False
        elif verb in ("BEGIN", "ROLLBACK"):
            wrote = False
        elif verb == "PRAGMA" and "synchronous" in statement.lower():
            synced = statement.split("=", 1)[-1].strip().upper() in ("FULL", "2", "EXTRA", "3")
    return commits


def wal_checkpoint(db: Path) -> None:
    """Copy `db`'s write-ahead log into the file and empty it: a pass that ends with this
    counts the bytes its changes cost in the database itself, not only in the log (and no
    automatic checkpoint of earlier passes lands in it if it starts with one)."""
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def report_targets(checks: Sequence[Check], *, width: int = 28) -> int:
    """Print each figure against its target; the exit status: 1 if one was missed."""
    missed = []
    for label, value, sense, target in checks:
        ok = value >= target if sense == ">=" else value <= target
        print(
            f"  {label:{width}} {value:6.2f}  target {sense} {target:g}  {'ok' if ok else 'MISSED'}"
        )
        if not ok:
            missed.append(label)
    if missed:
        print(f"targets missed: {', '.join(missed)}")
        return 1
    return 0
