"""Benchmark: the inbox's first page from the ledger's index, against reading every thread.

For each size it builds a fresh database (in a temp dir, deleted at the end): a few real
threads run through the service (pending, approved and run, rejected), then cloned with
`INSERT ... SELECT` under new thread IDs — checkpoints, writes, ledger rows and audit entries —
until the file holds `size` threads, `--pending-percent` of them pending. It then times, in
the same run and interleaved across sizes, the first page of `Ledger.inbox()` and of
`ApprovalService.pending()` (medians), and the naive scan (every thread's `get_state`), and
prints each as a ratio to the smallest size. 100,000 threads take about 2.5 GiB of temp space.

    python -m bench.inbox [--sizes 10000 100000] [--pending-percent 1] [--naive-budget 120]

Cloned threads share their template's tool call IDs (they are baked into the checkpoints), and
their audit chains do not verify (each link hashes its thread ID): nothing here reads either.
"""

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from langgraph.graph.state import CompiledStateGraph

from hitl.checkpoints.database import connect
from hitl.checkpoints.ledger import InboxQuery, Ledger, open_ledger
from hitl.checkpoints.savers import BatchingSqliteSaver, list_thread_ids, open_saver
from hitl.graph.builder import build_graph
from hitl.graph.decisions import DecisionSchemas
from hitl.graph.demo_tools import make_demo_tools
from hitl.graph.model import make_model
from hitl.graph.policy import default_policy
from hitl.service.workflow import ApprovalService

PROMPT = "Send sally@example.com an email saying 'hi'"
TEMPLATES = {"pending": 2, "succeeded": 4, "rejected": 2}
"""How many real threads of each outcome are run to be cloned."""
CLONED_TABLES = ("checkpoints", "writes", "hitl_approvals", "hitl_audit")
SHIFTED_COLUMNS = {
    "hitl_approvals": ("requested_at", "decided_at", "started_at", "finished_at"),
    "hitl_audit": ("at",),
}
"""Times moved back by the clone's shift, so clones were requested one second apart."""
PAGE = InboxQuery(limit=50)
TARGET_RATIO = 1.5
K = TypeVar("K")


@dataclass(frozen=True)
class Stack:
    """One process's view of a database: the service and the parts the naive scan needs."""

    service: ApprovalService
    graph: CompiledStateGraph[Any]
    saver: BatchingSqliteSaver
    ledger: Ledger


@dataclass(frozen=True)
class Naive:
    """A naive scan's median time; `extrapolated` if it was stopped at the budget."""

    seconds: float
    runs: int
    extrapolated: bool
    found: int | None


@contextmanager
def open_stack(db: Path, outbox: Path) -> Iterator[Stack]:
    """What `hitl.app.open_service` builds (offline model, demo tools), with its parts shown."""
    tools = make_demo_tools(outbox)
    with open_saver(db) as saver, open_ledger(db) as ledger:
        graph = build_graph(
            model=make_model(None),
            tools=tools,
            policy=default_policy(),
            checkpointer=saver,
            ledger=ledger,
        )
        service = ApprovalService(graph, saver, DecisionSchemas(tools), ledger)
        yield Stack(service, graph, saver, ledger)


# building


def run_templates(db: Path, outbox: Path) -> dict[str, list[str]]:
    """Run real threads to each outcome of `TEMPLATES`; their thread IDs by outcome."""
    made: dict[str, list[str]] = {kind: [] for kind in TEMPLATES}
    with open_stack(db, outbox) as stack:
        for kind, count in TEMPLATES.items():
            for _ in range(count):
                view = stack.service.run(PROMPT, actor="alice")
                call = view.pending[0].tool_call_id
                if kind != "pending":
                    answer = "approve" if kind == "succeeded" else "reject"
                    stack.service.decide(view.thread_id, {call: answer}, actor="bob")
                made[kind].append(view.thread_id)
    return made


def plan_clones(
    templates: dict[str, list[str]], size: int, pending: int
) -> list[tuple[str, str, float]]:
    """(template, new thread ID, time shift) for every clone needed to reach `size` threads.

    Pending clones are spread evenly among the finished ones, oldest first, as calls left
    waiting while others came and went would be: their rows are scattered over the table.
    """
    finished = templates["succeeded"] + templates["rejected"]
    count = size - len(templates["pending"]) - len(finished)
    to_pend = max(pending - len(templates["pending"]), 0)
    plan = []
    for i in range(max(count, 0)):
        is_pending = (i + 1) * to_pend // count > i * to_pend // count
        sources = templates["pending"] if is_pending else finished
        plan.append((sources[i % len(sources)], str(uuid.uuid4()), -float(count - i)))
    return plan


def clone_threads(db: Path, plan: Sequence[tuple[str, str, float]]) -> None:
    """Copy each template thread's rows in every table under its clone's thread ID."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("PRAGMA synchronous=OFF")  # build time only; the measured reads are unaffected
        conn.execute("CREATE TEMP TABLE clone_map (src TEXT, dst TEXT PRIMARY KEY, shift REAL)")
        conn.executemany("INSERT INTO clone_map VALUES (?, ?, ?)", plan)
        for table in CLONED_TABLES:
            conn.execute("BEGIN")
            conn.execute(_clone_statement(conn, table))
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _clone_statement(conn: sqlite3.Connection, table: str) -> str:
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    shifted = SHIFTED_COLUMNS.get(table, ())
    values = [
        "m.dst" if c == "thread_id" else f"t.{c} + m.shift" if c in shifted else f"t.{c}"
        for c in columns
    ]
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} "
        f"FROM clone_map m JOIN {table} t ON t.thread_id = m.src ORDER BY m.rowid"
    )


def build_database(db: Path, outbox: Path, size: int, pending: int) -> float:
    """A database of `size` threads, `pending` of them waiting; returns the build seconds."""
    start = time.perf_counter()
    templates = run_templates(db, outbox)
    clone_threads(db, plan_clones(templates, size, pending))
    return time.perf_counter() - start


# measuring


def naive_scan(stack: Stack, deadline: float) -> tuple[int, int, int]:
    """List every thread and read its state, as `hitl pending` did before the ledger.

    Returns (threads in the file, threads read before `deadline`, pending calls found).
    """
    thread_ids = list_thread_ids(stack.saver)
    found = 0
    for done, thread_id in enumerate(thread_ids):
        if time.perf_counter() > deadline:
            return len(thread_ids), done, found
        snapshot = stack.graph.get_state({"configurable": {"thread_id": thread_id}})
        found += sum(  # the calls each interrupt asks about (one batched request per turn)
            len(intr.value.get("action_requests", []))
            for task in snapshot.tasks
            for intr in task.interrupts
            if isinstance(intr.value, dict)
        )
    return len(thread_ids), len(thread_ids), found


def time_naive(stack: Stack, budget: float, max_runs: int) -> Naive:
    """Median of up to `max_runs` naive scans within `budget` seconds; extrapolated if the
    first one does not finish in it."""
    times: list[float] = []
    found = None
    while len(times) < max_runs and sum(times) + (times[-1] if times else 0) <= budget:
        start = time.perf_counter()
        total, done, found_now = naive_scan(stack, start + budget - sum(times))
        elapsed = time.perf_counter() - start
        if done < total:
            if times:  # a repeat ran out of budget: keep the complete runs
                break
            return Naive(elapsed * total / max(done, 1), 1, True, None)
        times.append(elapsed)
        found = found_now
    return Naive(statistics.median(times), len(times), False, found)


def time_interleaved(
    calls: dict[K, Callable[[], object]], repeats: int, batch: int = 25
) -> dict[K, float]:
    """Median microseconds per call of each callable, in alternating batches (shared noise)."""
    samples: dict[K, list[float]] = {key: [] for key in calls}
    for call in calls.values():  # warm-up: caches, prepared statements
        for _ in range(batch):
            call()
    for _ in range(max(repeats // batch, 1)):
        for key, call in calls.items():
            for _ in range(batch):
                start = time.perf_counter_ns()
                call()
                samples[key].append((time.perf_counter_ns() - start) / 1000)
    return {key: statistics.median(values) for key, values in samples.items()}


def inbox_statements(db: Path) -> list[str]:
    """The SQL `inbox()` runs for the first page, captured from the connection's trace."""
    conn = connect(db)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    Ledger(conn, path=str(db)).inbox(PAGE)
    conn.set_trace_callback(None)
    plans = []
    for statement in statements:
        if statement.lstrip().upper().startswith("SELECT"):
            plan = conn.execute(f"EXPLAIN QUERY PLAN {statement}").fetchall()
            plans.append(statement + "\n" + "\n".join(f"    {row[-1]}" for row in plan))
    conn.close()
    return plans


# reporting


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000], help="threads per database"
    )
    parser.add_argument(
        "--pending-percent", type=float, default=1.0, help="share of the threads pending (%%)"
    )
    parser.add_argument("--repeats", type=int, default=1000, help="timed inbox calls per size")
    parser.add_argument(
        "--naive-budget", type=float, default=120.0, help="seconds of naive scans per size"
    )
    parser.add_argument("--naive-runs", type=int, default=3, help="naive scans per size, at most")
    args = parser.parse_args()
    sizes = sorted(set(args.sizes))

    with tempfile.TemporaryDirectory(prefix="hitl-bench-inbox-") as tmp:
        work = Path(tmp)
        outbox = work / "outbox.jsonl"
        pending = {
            n: max(TEMPLATES["pending"], round(n * args.pending_percent / 100)) for n in sizes
        }
        for n in sizes:
            built = build_database(work / f"{n}.sqlite", outbox, n, pending[n])
            mib = (work / f"{n}.sqlite").stat().st_size / 2**20
            print(f"built {n:,} threads ({pending[n]:,} pending, {mib:,.0f} MiB) in {built:.1f} s")

        with _open_stacks(work, outbox, sizes) as stacks:
            for n, stack in stacks.items():
                _, total = stack.ledger.inbox(PAGE)
                if total != pending[n]:
                    sys.exit(f"inbox of {n:,} threads lists {total} calls, expected {pending[n]}")
            calls: dict[tuple[int, str], Callable[[], object]] = {}
            for n, s in stacks.items():
                calls[n, "ledger"] = partial(s.ledger.inbox, PAGE)
                calls[n, "service"] = partial(s.service.pending, PAGE)
            micros = time_interleaved(calls, args.repeats)
            ledger_us = {n: micros[n, "ledger"] for n in sizes}
            service_us = {n: micros[n, "service"] for n in sizes}
            naive = {
                n: time_naive(s, args.naive_budget, args.naive_runs) for n, s in stacks.items()
            }

        for n in sizes:
            if naive[n].found not in (None, pending[n]):
                sys.exit(f"naive scan of {n:,} threads found {naive[n].found}, not {pending[n]}")
        _report(sizes, pending, ledger_us, service_us, naive, args)
        print(f"\nEXPLAIN QUERY PLAN of inbox() at {sizes[-1]:,} threads:")
        for plan in inbox_statements(work / f"{sizes[-1]}.sqlite"):
            print(f"  {plan}")


@contextmanager
def _open_stacks(work: Path, outbox: Path, sizes: Sequence[int]) -> Iterator[dict[int, Stack]]:
    with ExitStack() as opened:
        yield {n: opened.enter_context(open_stack(work / f"{n}.sqlite", outbox)) for n in sizes}


def _report(
    sizes: Sequence[int],
    pending: dict[int, int],
    ledger_us: dict[int, float],
    service_us: dict[int, float],
    naive: dict[int, Naive],
    args: argparse.Namespace,
) -> None:
    base = sizes[0]
    print(
        f"\nfirst page (limit {PAGE.limit}), median of {args.repeats} calls; "
        f"ratios to {base:,} threads, measured in the same run:"
    )
    print(
        f"  {'threads':>9} {'pending':>8} │ {'ledger.inbox':>12} {'ratio':>6} │ "
        f"{'service.pending':>15} {'ratio':>6} │ {'naive scan':>14} {'ratio':>7} │ "
        f"{'naive/inbox':>11}"
    )
    for n in sizes:
        scan, inbox, pending_us = naive[n], ledger_us[n], service_us[n]
        note = "*" if scan.extrapolated else f" (n={scan.runs})"
        print(
            f"  {n:>9,} {pending[n]:>8,} │ {inbox:>9.0f} µs {inbox / ledger_us[base]:>6.2f} │ "
            f"{pending_us:>12.0f} µs {pending_us / service_us[base]:>6.2f} │ "
            f"{scan.seconds:>7.2f} s{note:<6} {scan.seconds / naive[base].seconds:>7.1f} │ "
            f"{scan.seconds * 1e6 / inbox:>10,.0f}×"
        )
    if any(naive[n].extrapolated for n in sizes):
        print(
            f"  * EXTRAPOLATED: the naive scan did not finish within {args.naive_budget:.0f} s; "
            "its time is (elapsed × threads / threads read), not measured to the end."
        )
    top = sizes[-1]
    ratio = ledger_us[top] / ledger_us[base]
    verdict = "met" if ratio <= TARGET_RATIO and ledger_us[top] < 1000 else "MISSED"
    print(
        f"\ninbox first page ratio {top}/{base} threads: {ratio:.2f} "
        f"(target ≤ {TARGET_RATIO} and < 1000 µs: {verdict}); service.pending ratio "
        f"{service_us[top] / service_us[base]:.2f}"
    )


if __name__ == "__main__":
    main()
