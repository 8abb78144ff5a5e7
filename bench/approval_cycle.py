"""Benchmark: full approval cycles (start → interrupt → approve → tool → end) per second.

Prints the project's SQLite saver as a ratio to the same graph on `InMemorySaver`, measured in
the same run (interleaved rounds, median), with the stock `SqliteSaver` beside it, and the number
of SQLite commits per cycle (counted from the connection's statement trace).

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

from checkpoints.serde import make_strict_serializer
from checkpoints.sqlite import BatchingSqliteSaver, connect
from graph import build_graph
from graph.demo_tools import make_demo_tools
from graph.model import make_model
from graph.policy import default_policy

PROMPT = "Send sally@example.com an email saying 'hi'"


class CommitCounter:
    """Counts COMMIT statements on a connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.count = 0
        conn.set_trace_callback(self._trace)

    def _trace(self, statement: str) -> None:
        if statement.strip().upper().startswith("COMMIT"):
            self.count += 1


def run_cycles(saver: BaseCheckpointSaver, outbox: Path, cycles: int, tag: str) -> float:
    """Cycles per second of the full approval cycle on `saver`."""
    graph = build_graph(
        model=make_model(None),
        tools=make_demo_tools(outbox),
        policy=default_policy(),
        checkpointer=saver,
    )
    start = time.perf_counter()
    for i in range(cycles):
        config = {"configurable": {"thread_id": f"{tag}-{i}"}}
        graph.invoke({"messages": [("user", PROMPT)]}, config, durability="sync")
        pending = graph.get_state(config).interrupts
        graph.invoke(Command(resume={pending[0].id: "approve"}), config, durability="sync")
    return cycles / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hitl-bench-"))
    outbox = work / "outbox.jsonl"

    ours = BatchingSqliteSaver(connect(work / "ours.sqlite"), serde=make_strict_serializer())
    stock = SqliteSaver(sqlite3.connect(work / "stock.sqlite", check_same_thread=False))
    savers: dict[str, Callable[[], BaseCheckpointSaver[Any]]] = {
        "memory": InMemorySaver,
        "ours": lambda: ours,
        "stock": lambda: stock,
    }
    for name, make in savers.items():  # warm-up: imports, schema, caches
        run_cycles(make(), outbox, 10, f"warm-{name}")
    rates: dict[str, list[float]] = {name: [] for name in savers}
    for r in range(args.rounds):  # interleaved, so machine noise hits every saver alike
        for name, make in savers.items():
            rates[name].append(run_cycles(make(), outbox, args.cycles, f"{name}-{r}"))
    # commits are counted in a separate, untimed pass: tracing statements costs time
    commits = {}
    for name, saver in (("ours", ours), ("stock", stock)):
        counter = CommitCounter(saver.conn)
        run_cycles(saver, outbox, 50, f"count-{name}")
        saver.conn.set_trace_callback(None)
        commits[name] = counter.count / 50
    median = {name: statistics.median(v) for name, v in rates.items()}
    print(f"full approval cycles per second (median of {args.rounds} rounds × {args.cycles}):")
    print(f"  InMemorySaver (baseline)        {median['memory']:8.1f}/s   ratio 1.00")
    print(
        f"  project SQLite saver            {median['ours']:8.1f}/s   ratio "
        f"{median['ours'] / median['memory']:.2f}   commits/cycle "
        f"{commits['ours']:.1f}"
    )
    print(
        f"  stock SqliteSaver (defaults)    {median['stock']:8.1f}/s   ratio "
        f"{median['stock'] / median['memory']:.2f}   commits/cycle "
        f"{commits['stock']:.1f}"
    )


if __name__ == "__main__":
    main()
