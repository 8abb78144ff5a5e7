"""Benchmark: several processes approving different threads at once on one SQLite file.

Creates `--threads` pending threads (one approval each) with the service, once. Then, for each
process count of `--procs`, in `--rounds` interleaved rounds, it copies that database and
spawns the processes — each with its own `open_service` — which approve their share at the
same time (`service.decide`, which runs the demo `send_email` tool). It prints decisions per
second as a ratio to one process measured in the same run (medians over rounds), and checks
every round: `database is locked` errors (`sqlite3.OperationalError`, `Busy`), tool calls run
twice, tool calls never run. Exits 1 if any of those counts is not 0.

    python -m bench.concurrency [--threads 200] [--procs 1 2 4] [--rounds 3]
"""

import argparse
import json
import multiprocessing as mp
import queue
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Barrier
from pathlib import Path

from hitl.app import open_service
from hitl.checkpoints.errors import DatabaseBusy
from hitl.service.errors import Busy
from hitl.service.settings import Settings

PROMPT = "Send sally@example.com an email saying 'hi'"
Call = tuple[str, str]
"""(thread_id, tool_call_id) of one pending approval."""


@dataclass
class Share:
    """What one decider process did: its timed span and what went wrong."""

    start: float
    end: float
    decided: int
    cpu: float = 0.0
    """CPU seconds this process spent in its timed span."""
    locked: int = 0
    other: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Round:
    """One round at one process count, checked against the outbox."""

    procs: int
    per_second: float
    cores_busy: float
    """CPU seconds of all deciders per second of the round: below `procs`, they waited."""
    locked: int
    other: int
    duplicates: int
    missing: int
    errors: list[str]

    @property
    def failures(self) -> int:
        return self.locked + self.other + self.duplicates + self.missing


def _settings(db: Path, outbox: Path) -> Settings:
    return Settings(db=db, environ={"HITL_OUTBOX": str(outbox)})


def create_pending(db: Path, outbox: Path, count: int) -> list[Call]:
    """Start `count` threads that each wait for one approval."""
    calls = []
    with open_service(_settings(db, outbox)) as service:
        for _ in range(count):
            view = service.run(PROMPT, actor="alice")
            calls.append((view.thread_id, view.pending[0].tool_call_id))
    return calls


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy (WAL included), so every round starts from the same file."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def decide_share(
    db: str,
    outbox: str,
    warm_up: Call,
    share: list[Call],
    barrier: Barrier,
    results: "mp.Queue[Share]",
) -> None:
    """One decider process: warm up on a call of its own, wait for the others, then approve."""
    outcome = Share(0.0, 0.0, len(share))
    with open_service(_settings(Path(db), Path(outbox))) as service:
        service.decide(warm_up[0], {warm_up[1]: "approve"}, actor="bob")  # imports, caches
        barrier.wait(timeout=300)
        outcome.start = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process
        cpu = time.process_time()
        for thread_id, call_id in share:
            try:
                service.decide(thread_id, {call_id: "approve"}, actor="bob")
            except (sqlite3.OperationalError, Busy, DatabaseBusy) as e:
                outcome.locked += 1
                outcome.errors.append(f"{type(e).__name__}: {e}")
            except Exception as e:
                outcome.other += 1
                outcome.errors.append(f"{type(e).__name__}: {e}")
        outcome.end = time.monotonic()
        outcome.cpu = time.process_time() - cpu
    results.put(outcome)


def run_round(
    template: Path, work: Path, procs: int, warm_ups: list[Call], calls: list[Call]
) -> Round:
    """Copy the template, let `procs` processes approve `calls` between them, check the outbox."""
    db, outbox = work / f"round-{procs}.sqlite", work / f"round-{procs}.outbox.jsonl"
    for stale in (db, outbox, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    copy_database(template, db)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(procs)
    results: mp.Queue[Share] = ctx.Queue()
    workers = [
        ctx.Process(
            target=decide_share,
            args=(str(db), str(outbox), warm_ups[i], calls[i::procs], barrier, results),
        )
        for i in range(procs)
    ]
    for w in workers:
        w.start()
    shares = _collect(workers, results)
    crashed = [f"worker exited with {w.exitcode}" for w in workers if w.exitcode != 0]
    span = max(s.end for s in shares) - min(s.start for s in shares) if shares else float("nan")
    sent = Counter(_sent_call_ids(outbox))
    expected = {call_id for _, call_id in [*calls, *warm_ups[:procs]]}
    return Round(
        procs=procs,
        per_second=sum(s.decided for s in shares) / span,
        cores_busy=sum(s.cpu for s in shares) / span,
        locked=sum(s.locked for s in shares),
        other=sum(s.other for s in shares) + len(crashed),
        duplicates=sum(1 for n in sent.values() if n > 1),
        missing=len(expected - sent.keys()),
        errors=[e for s in shares for e in s.errors] + crashed,
    )


def _collect(workers: Sequence[BaseProcess], results: "mp.Queue[Share]") -> list[Share]:
    """Every worker's report; stop waiting (and stop the others) once one has died."""
    shares: list[Share] = []
    while len(shares) < len(workers):
        try:
            shares.append(results.get(timeout=1))
        except queue.Empty:
            if any(w.exitcode not in (None, 0) for w in workers):
                for w in workers:
                    if w.is_alive():
                        w.terminate()  # it would wait at the barrier for the dead one
                break
    for w in workers:
        w.join()
    return shares


def _sent_call_ids(outbox: Path) -> list[str]:
    if not outbox.exists():
        return []
    return [json.loads(line)["tool_call_id"] for line in outbox.read_text().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--threads", type=int, default=200, help="pending threads per round")
    parser.add_argument(
        "--procs", type=int, nargs="+", default=[1, 2, 4], help="process counts (1 is added)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    args = parser.parse_args()
    procs = sorted(set(args.procs) | {1})  # one process is the baseline

    with tempfile.TemporaryDirectory(prefix="hitl-bench-concurrency-") as tmp:
        work = Path(tmp)
        template = work / "template.sqlite"
        start = time.perf_counter()
        warm_ups = create_pending(template, work / "unused.outbox.jsonl", max(procs))
        calls = create_pending(template, work / "unused.outbox.jsonl", args.threads)
        print(
            f"created {args.threads} pending threads (+{max(procs)} for warm-up) in "
            f"{time.perf_counter() - start:.1f} s; {args.rounds} rounds, processes {procs}"
        )
        rounds = [
            run_round(template, work, p, warm_ups, calls)
            for _ in range(args.rounds)
            for p in procs  # interleaved, so machine noise hits every process count alike
        ]
    _report(procs, rounds, args.threads)
    failures = sum(r.failures for r in rounds)
    if failures:
        for error in sorted({e for r in rounds for e in r.errors})[:10]:
            print(f"  error: {error}")
        sys.exit(f"FAILED: {failures} locked errors, other errors, duplicate or missing runs")


def _report(procs: list[int], rounds: list[Round], threads: int) -> None:
    rate = {p: statistics.median(r.per_second for r in rounds if r.procs == p) for p in procs}
    print(
        f"\n{threads} approvals (decide → resume → send_email → end) split over N processes, "
        "median of rounds; ratio to 1 process in the same run:"
    )
    print(
        f"  {'processes':>9} │ {'decisions/s':>11} {'ratio':>6} {'cores busy':>10} │ "
        f"{'locked':>6} {'other':>6} {'duplicate':>9} {'missing':>7}"
    )
    for p in procs:
        mine = [r for r in rounds if r.procs == p]
        busy = statistics.median(r.cores_busy for r in mine)
        print(
            f"  {p:>9} │ {rate[p]:>11.1f} {rate[p] / rate[1]:>6.2f} {busy:>10.2f} │ "
            f"{sum(r.locked for r in mine):>6} {sum(r.other for r in mine):>6} "
            f"{sum(r.duplicates for r in mine):>9} {sum(r.missing for r in mine):>7}"
        )
    top = procs[-1]
    print(f"\nthroughput ratio {top}/1 processes: {rate[top] / rate[1]:.2f}")


if __name__ == "__main__":
    main()
