"""Benchmark: full approval cycles (start → interrupt → approve → tool → end) per second.

Prints the project's SQLite saver — alone, and with the approvals ledger (the product's path:
registered call, compare-and-set decision, journaled tool, audit) — as a ratio to the same graph
on `InMemorySaver`, measured in the same run (interleaved rounds, median), with the stock
`SqliteSaver` beside it, and the number of SQLite commits per cycle (counted from the
connections' statement traces).

    python bench/approval_cycle.py [--cycles 200] [--rounds 5]
"""

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from hitl.checkpoints.database import connect
from hitl.checkpoints.ledger import Ledger, make_ledger
from hitl.checkpoints.savers import BatchingSqliteSaver, make_strict_serializer
from hitl.graph import build_graph
from hitl.graph.demo_tools import make_demo_tools
from hitl.graph.model import make_model
from hitl.graph.policy import default_policy

PROMPT = "Send sally@example.com an email saying 'hi'"
APPROVE = {"decisions": [{"type": "approve"}]}
"""The answer to the turn's one interrupt (LangChain's batched `HITLRequest`)."""


class CommitCounter:
    """Counts COMMIT statements on a connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.count = 0
        conn.set_trace_callback(self._trace)

    def _trace(self, statement: str) -> None:
        if statement.strip().upper().startswith("COMMIT"):
            self.count += 1


def run_cycles(
    saver: BaseCheckpointSaver,
    outbox: Path,
    cycles: int,
    tag: str,
    ledger: Ledger | None = None,
) -> float:
    """Cycles per second of the full approval cycle on `saver` (and `ledger`)."""
    graph = build_graph(
        model=make_model(None),
        tools=make_demo_tools(outbox),
        policy=default_policy(),
        checkpointer=saver,
        ledger=ledger,
    )
    start = time.perf_counter()
    for i in range(cycles):
        config = {"configurable": {"thread_id": f"{tag}-{i}"}}
        graph.invoke({"messages": [("user", PROMPT)]}, config, durability="sync")
        graph.invoke(Command(resume=APPROVE), config, durability="sync")
    return cycles / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200, help="cycles per round and saver")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hitl-bench-") as work:  # a run leaves nothing behind
        measure(args, Path(work))


def measure(args: argparse.Namespace, work: Path) -> None:
    """Every rate and commit count, on databases in `work`."""
    outbox = work / "outbox.jsonl"

    ours = BatchingSqliteSaver(connect(work / "ours.sqlite"), serde=make_strict_serializer())
    with_ledger = BatchingSqliteSaver(
        connect(work / "ledger.sqlite"), serde=make_strict_serializer()
    )
    ledger = make_ledger(work / "ledger.sqlite")
    with_ledger.commit_with(ledger)  # as `hitl` opens them: the ledger's commits carry the rows
    stock = SqliteSaver(sqlite3.connect(work / "stock.sqlite", check_same_thread=False))
    setups: dict[str, tuple[Callable[[], BaseCheckpointSaver[Any]], Ledger | None]] = {
        "memory": (InMemorySaver, None),
        "ours": (lambda: ours, None),
        "ledger": (lambda: with_ledger, ledger),
        "stock": (lambda: stock, None),
    }
    for name, (make, led) in setups.items():  # warm-up: imports, schema, caches
        run_cycles(make(), outbox, 10, f"warm-{name}", led)
    rates: dict[str, list[float]] = {name: [] for name in setups}
    for r in range(args.rounds):  # interleaved, so machine noise hits every saver alike
        for name, (make, led) in setups.items():
            rates[name].append(run_cycles(make(), outbox, args.cycles, f"{name}-{r}", led))
    # commits are counted in a separate, untimed pass: tracing statements costs time
    commits = {}
    for name, saver, led in (
        ("ours", ours, None),
        ("ledger", with_ledger, ledger),
        ("stock", stock, None),
    ):
        counters = [CommitCounter(saver.conn)] + ([CommitCounter(led._conn)] if led else [])
        run_cycles(saver, outbox, 50, f"count-{name}", led)
        saver.conn.set_trace_callback(None)
        if led:
            led._conn.set_trace_callback(None)
        commits[name] = sum(c.count for c in counters) / 50
    median = {name: statistics.median(v) for name, v in rates.items()}
    print(f"full approval cycles per second (median of {args.rounds} rounds × {args.cycles}):")
    print(f"  InMemorySaver (baseline)        {median['memory']:8.1f}/s   ratio 1.00")
    print(
        f"  project SQLite saver            {median['ours']:8.1f}/s   ratio "
        f"{median['ours'] / median['memory']:.2f}   commits/cycle "
        f"{commits['ours']:.1f}"
    )
    print(
        f"  project saver + ledger          {median['ledger']:8.1f}/s   ratio "
        f"{median['ledger'] / median['memory']:.2f}   commits/cycle "
        f"{commits['ledger']:.1f}"
    )
    print(
        f"  stock SqliteSaver (defaults)    {median['stock']:8.1f}/s   ratio "
        f"{median['stock'] / median['memory']:.2f}   commits/cycle "
        f"{commits['stock']:.1f}"
    )


if __name__ == "__main__":
    main()
