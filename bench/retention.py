"""Benchmark: `hitl prune` on 10,000 finished threads and 100 pending ones.

Builds a database (in a temp dir, deleted at the end) of `--pending` real threads waiting for
an approval, `--real` real finished threads (three approval cycles each, with their ledger
rows and audit chains), and `--finished` more finished threads cloned from one of them in SQL
(checkpoints, writes and messages; no ledger rows). Then prunes it (trim: each finished thread
keeps its newest checkpoint), and checks what must stay true: the file shrinks, every pending
approval still resumes and runs its tool exactly once, every audit chain verifies. Figures are
ratios against the same database before pruning, and against a plain `VACUUM` of a copy of it
(the baseline: what compaction alone gives back), measured in the same run.

    python -m bench.retention [--finished 10000] [--pending 100]
"""

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from contextlib import ExitStack, closing
from pathlib import Path

from hitl.app import open_service as open_hitl_service
from hitl.checkpoints.maintenance import file_bytes, prune
from hitl.service.settings import Settings
from hitl.service.workflow import ApprovalService, EveryPending

PROMPT = "Send sally@example.com an email saying 'hi'"
CLONED = ("checkpoints", "writes", "hitl_messages")


def open_service(stack: ExitStack, db: Path, outbox: Path) -> ApprovalService:
    """The service as `hitl` builds it (offline model, demo tools writing to `outbox`)."""
    return stack.enter_context(
        open_hitl_service(Settings(db=db, environ={"HITL_OUTBOX": str(outbox)}))
    )


def build(db: Path, outbox: Path, *, finished: int, real: int, pending: int) -> None:
    with ExitStack() as stack:
        service = open_service(stack, db, outbox)
        for n in range(real):
            for _ in range(3):
                view = service.run(PROMPT, f"real-{n}", actor="alice")
                service.decide(view.thread_id, EveryPending("approve"), actor="bob")
        for n in range(pending):
            service.run(PROMPT, f"pending-{n}", actor="alice")
    with closing(sqlite3.connect(db)) as conn:  # clones of real-0, in one transaction
        columns = {
            table: [r[1] for r in conn.execute(f"PRAGMA table_info({table})")] for table in CLONED
        }
        with conn:
            for n in range(finished):
                for table, names in columns.items():
                    rest = ", ".join(c for c in names if c != "thread_id")
                    conn.execute(
                        f"INSERT INTO {table} (thread_id, {rest}) SELECT ?, {rest} FROM {table} "
                        "WHERE thread_id = 'real-0'",
                        (f"done-{n}",),
                    )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def vacuumed_copy_bytes(db: Path, work: Path) -> tuple[int, float]:
    """The baseline: a copy of the database compacted with VACUUM alone, and how long it took."""
    copy = work / "baseline.sqlite"
    shutil.copyfile(db, copy)
    with closing(sqlite3.connect(copy)) as conn:
        start = time.perf_counter()
        conn.execute("VACUUM")
        took = time.perf_counter() - start
    return copy.stat().st_size, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finished", type=int, default=10_000, help="cloned finished threads")
    parser.add_argument("--real", type=int, default=20, help="real finished threads")
    parser.add_argument("--pending", type=int, default=100, help="threads waiting for approval")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hitl-bench-retention-"))
    try:
        db, outbox = work / "hitl.sqlite", work / "outbox.jsonl"
        start = time.perf_counter()
        build(db, outbox, finished=args.finished, real=args.real, pending=args.pending)
        threads = args.finished + args.real + args.pending
        print(f"built {threads:,} threads in {time.perf_counter() - start:.0f} s")
        sent_before = len(outbox.read_text().splitlines())
        before = file_bytes(db)
        vacuumed, vacuum_seconds = vacuumed_copy_bytes(db, work)
        report = prune(db)
        after = file_bytes(db)
        print(
            f"file: {before / 2**20:.1f} MiB → {after / 2**20:.1f} MiB after `hitl prune` "
            f"(ratio {after / before:.2f}); VACUUM alone (baseline): {vacuumed / 2**20:.1f} MiB "
            f"(ratio {vacuumed / before:.2f})"
        )
        print(
            f"prune: {report.seconds:.1f} s ({report.seconds / vacuum_seconds:.1f}× a plain "
            f"VACUUM's {vacuum_seconds:.1f} s); trimmed {report.threads_trimmed:,}, kept "
            f"{json.dumps(report.kept)}; deleted {report.checkpoints_deleted:,} checkpoints, "
            f"{report.writes_deleted:,} writes, {report.messages_deleted:,} messages"
        )
        with ExitStack() as stack:
            service = open_service(stack, db, outbox)
            resumed = 0
            for n in range(args.pending):
                service.decide(f"pending-{n}", EveryPending("approve"), actor="bob")
                view = service.show(f"pending-{n}")
                resumed += view.status == "done"
            audit = service.verify_audit()
        sent = outbox.read_text().splitlines()[sent_before:]
        call_ids = {json.loads(line)["tool_call_id"] for line in sent}
        print(
            f"after pruning: {resumed}/{args.pending} pending approvals resumed to the end, "
            f"{len(sent)} emails sent for {len(call_ids)} distinct calls; audit: "
            f"{'every chain verifies' if audit.ok else audit}"
        )
        ok = (
            after < before
            and resumed == len(sent) == len(call_ids) == args.pending
            and audit.ok
            and report.threads_trimmed >= args.finished
        )
        if not ok:
            sys.exit("retention benchmark: a check failed (see above)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
