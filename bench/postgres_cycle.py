"""Benchmark: what an approval cycle costs on PostgreSQL beside SQLite, in one process.

The cycle is the service's (`run` + `decide`: the request, the interrupt, the decision, the
tool's start, its result, the end), with the offline model and the demo tools, a new thread
per cycle, on a temp SQLite file and on a fresh schema of `--url` (dropped after), in
interleaved rounds. Printed per cycle, median of the rounds: cycles per second, CPU of this
process, CPU of the PostgreSQL backends serving it (read from `/proc`: the server must run on
this machine), commits (PostgreSQL: the database's `xact_commit`, read transactions included,
its backends ended after the counted pass so their figures are flushed; SQLite: commits of
transactions that wrote) and round trips to the server (counted in psycopg).

Target: CPU per cycle on PostgreSQL (this process + its backends) ≤ `--target` (1.3) × on
SQLite (where the database's work is in this process). Exits 1 if missed; without a
reachable server it says so and measures nothing (as `service_load` does).

    python -m bench.postgres_cycle [--url postgresql://...] [--cycles 40] [--rounds 3]
"""

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench._targets import commit_count, report_targets, traced
from bench.service_load import CpuMeter, fresh_schema, pg_unreachable
from hitl.app import Assembly, assemble
from hitl.checkpoints.database._db import IDLE_CHECK_SECONDS
from hitl.checkpoints.urls import parse_database
from hitl.service.settings import Settings
from hitl.service.workflow import EveryPending

PROMPT = "Send sally@example.com an email saying 'hi'"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Round:
    rate: float
    process_ms: float
    backends_ms: float

    @property
    def cpu_ms(self) -> float:
        return self.process_ms + (0.0 if self.backends_ms != self.backends_ms else self.backends_ms)


def cycle_of(parts: Assembly) -> Callable[[str], None]:
    def cycle(thread_id: str) -> None:
        parts.service.run(PROMPT, thread_id, actor="alice")
        parts.service.decide(thread_id, EveryPending("approve"), actor="bob")

    return cycle


def timed(cycle: Callable[[str], None], meter: CpuMeter, cycles: int, tag: str) -> Round:
    before, wall = meter.read(), time.perf_counter()
    for i in range(cycles):
        cycle(f"{tag}-{i}")
    elapsed, after = time.perf_counter() - wall, meter.read()
    per = 1000 / cycles
    backends = after.get("postgres", 0.0) - before.get("postgres", 0.0)
    return Round(cycles / elapsed, (after["bench"] - before["bench"]) * per, backends * per)


@contextmanager
def round_trips() -> Iterator[list[int]]:
    """Count the round trips to the server this process makes while inside: each time psycopg
    blocks to read the server's answer (psycopg's `wait` is wrapped). A statement queued in a
    pipeline is sent without waiting: the pipeline's answers cost one wait when they are read."""
    import psycopg.waiting as waiting
    from psycopg.waiting import Wait

    count = [0]
    original = waiting.wait

    def counting(gen: Any) -> Any:
        try:
            state = next(gen)
            while True:
                if state == Wait.R:
                    count[0] += 1
                state = gen.send((yield state))
        except StopIteration as done:
            return done.value

    waiting.wait = lambda gen, *args, **kwargs: original(counting(gen), *args, **kwargs)
    try:
        yield count
    finally:
        waiting.wait = original


def pg_commits(url: str, application_name: str) -> int:
    """The database's committed transactions so far, after ending the backends named
    `application_name` (a backend flushes its statistics when it ends; the pool reconnects)."""
    with psycopg.connect(url, autocommit=True, application_name="hitl-bench-meter") as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        )
        time.sleep(0.5)
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    time.sleep(IDLE_CHECK_SECONDS + 0.5)  # the pool then checks each connection before use
    return int(row[0]) if row else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="a PostgreSQL database to use")
    parser.add_argument("--cycles", type=int, default=40, help="cycles per round and database")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--target", type=float, default=1.3, help="most CPU ÷ SQLite's")
    args = parser.parse_args()
    if why := pg_unreachable(args.url):
        print(f"{why}: nothing measured (give --url)")
        return 0
    work = Path(tempfile.mkdtemp(prefix="hitl-bench-pg-"))
    try:
        with ExitStack() as stack:
            url, schema = stack.enter_context(fresh_schema(args.url))
            dbs = {"sqlite": work / "cycle.sqlite", "postgres": parse_database(url)}
            parts = {
                name: stack.enter_context(
                    assemble(Settings(db=db, environ={"HITL_OUTBOX": str(work / f"{name}.jsonl")}))
                )
                for name, db in dbs.items()
            }
            meters = {"sqlite": CpuMeter(), "postgres": CpuMeter(postgres=(url, schema))}
            cycles = {name: cycle_of(p) for name, p in parts.items()}
            for name, cycle in cycles.items():  # warm-up: imports, schema, pools, caches
                timed(cycle, meters[name], 5, f"warm-{name}")
            rounds: dict[str, list[Round]] = {name: [] for name in cycles}
            for r in range(args.rounds):  # interleaved: machine noise hits both alike
                for name, cycle in cycles.items():
                    rounds[name].append(timed(cycle, meters[name], args.cycles, f"{name}-{r}"))
            counted = 20  # an untimed pass: commits and round trips
            saver_conn = getattr(parts["sqlite"].saver, "conn", None)
            with traced([saver_conn] if saver_conn else [], parts["sqlite"].ledger) as seen:
                for i in range(counted):
                    cycles["sqlite"](f"count-sqlite-{i}")
            sqlite_commits = commit_count(seen) / counted
            before = pg_commits(args.url, schema)
            with round_trips() as trips:
                for i in range(counted):
                    cycles["postgres"](f"count-postgres-{i}")
            pg_per_cycle = (pg_commits(args.url, schema) - before - 1) / counted
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report(rounds, sqlite_commits, pg_per_cycle, trips[0] / counted, args)


def report(
    rounds: dict[str, list[Round]],
    sqlite_commits: float,
    pg_commits_per_cycle: float,
    trips: float,
    args: argparse.Namespace,
) -> int:
    def median(name: str, figure: Callable[[Round], float]) -> float:
        return statistics.median(figure(r) for r in rounds[name])

    print(f"service cycles (run + decide), median of {args.rounds} rounds × {args.cycles}:")
    figures = {}
    for name in ("sqlite", "postgres"):
        figures[name] = {
            "cycles_per_s": round(median(name, lambda r: r.rate), 1),
            "cpu_process_ms": round(median(name, lambda r: r.process_ms), 1),
            "cpu_backends_ms": round(median(name, lambda r: r.backends_ms), 1),
            "cpu_ms": round(median(name, lambda r: r.cpu_ms), 1),
        }
    figures["sqlite"] |= {"commits": round(sqlite_commits, 1), "round_trips": 0}
    figures["postgres"] |= {"commits": round(pg_commits_per_cycle, 1), "round_trips": trips}
    for name, f in figures.items():
        print(
            f"  {name:9} {f['cycles_per_s']:6.1f}/s  cpu {f['cpu_ms']:5.1f} ms "
            f"(this process {f['cpu_process_ms']:5.1f}, backends {f['cpu_backends_ms']:5.1f})"
            f"  commits {f['commits']:5.1f}  round trips {f['round_trips']:5.1f}"
        )
    print(json.dumps(figures))
    ratio = figures["postgres"]["cpu_ms"] / figures["sqlite"]["cpu_ms"]
    return report_targets([("cpu ÷ SQLite's", ratio, "<=", args.target)])


if __name__ == "__main__":
    sys.exit(main())
