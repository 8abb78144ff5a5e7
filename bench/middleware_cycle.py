"""Benchmark: a user's `create_agent` agent, full approval cycles per second, with
`ApprovalMiddleware` on the project's SQLite storage (saver + ledger) against the same agent with
LangChain's stock `HumanInTheLoopMiddleware` on the stock `SqliteSaver`; both
`durability="sync"`, measured in the same run (interleaved rounds, median).

Also prints, from an untimed pass, the SQLite commits per cycle (statement traces) and the bytes
written per cycle (the process's `write` calls, /proc/self/io). Exits 1 if ours runs below
`--target` (0.8) of the stock rate.

    python -m bench.middleware_cycle [--cycles 100] [--rounds 5] [--target 0.8]
"""

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from bench._targets import commit_count, traced, written_bytes
from hitl import ApprovalMiddleware, ScriptedChatModel, bind_ledger
from hitl.checkpoints.ledger import Ledger, make_ledger
from hitl.checkpoints.savers import Saver, open_saver

REPLIES = [{"tool_calls": [{"name": "append_line", "args": {"line": "hello"}}]}, "Done."]


@tool
def append_line(line: str) -> str:
    """Append a line (to nothing: the benchmark measures the approval, not the tool)."""
    return f"appended {line!r}"


def agent(middleware: Any) -> CompiledStateGraph[Any]:
    model = ScriptedChatModel.from_replies(REPLIES)
    return create_agent(model, tools=[append_line], middleware=[middleware])


def run_cycles(graph: CompiledStateGraph[Any], cycles: int, tag: str) -> float:
    """Cycles per second: start → one interrupt → approve → the tool → the answer."""
    start = time.perf_counter()
    for i in range(cycles):
        config: Any = {"configurable": {"thread_id": f"{tag}-{i}"}}
        graph.invoke({"messages": [{"role": "user", "content": "go"}]}, config, durability="sync")
        graph.invoke(
            Command(resume={"decisions": [{"type": "approve"}]}), config, durability="sync"
        )
    return cycles / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100, help="cycles per round and setup")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--target", type=float, default=0.8, help="least ours/stock ratio")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hitl-bench-"))
    try:
        with ExitStack() as stack:
            saver: Saver = stack.enter_context(open_saver(work / "ours.sqlite"))
            ledger: Ledger = make_ledger(work / "ours.sqlite")
            stack.callback(ledger.close)
            saver.commit_with(ledger)  # as `hitl` opens them: the ledger's commits carry rows
            stock_conn = sqlite3.connect(work / "stock.sqlite", check_same_thread=False)
            stack.callback(stock_conn.close)
            ours = bind_ledger(
                agent(ApprovalMiddleware({"append_line": True})).copy(
                    update={"checkpointer": saver}
                ),
                ledger,
            )
            stock = agent(HumanInTheLoopMiddleware({"append_line": True})).copy(
                update={"checkpointer": SqliteSaver(stock_conn)}
            )
            setups: dict[str, CompiledStateGraph[Any]] = {"stock": stock, "ours": ours}
            for name, graph in setups.items():  # warm-up: imports, schema, caches
                run_cycles(graph, 10, f"warm-{name}")
            rates: dict[str, list[float]] = {name: [] for name in setups}
            for r in range(args.rounds):  # interleaved: machine noise hits both alike
                for name, graph in setups.items():
                    rates[name].append(run_cycles(graph, args.cycles, f"{name}-{r}"))
            costs = {}
            measured = {"stock": ([stock_conn], None), "ours": ([saver.conn], ledger)}
            for name, graph in setups.items():  # untimed: tracing costs time
                before = written_bytes()
                with traced(*measured[name]) as seen:
                    run_cycles(graph, 50, f"count-{name}")
                costs[name] = (commit_count(seen) / 50, (written_bytes() - before) / 50)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = {name: statistics.median(v) for name, v in rates.items()}
    ratio = median["ours"] / median["stock"]
    print(f"create_agent approval cycles per second (median of {args.rounds} × {args.cycles}):")
    for name, label in (
        ("stock", "HumanInTheLoopMiddleware + SqliteSaver (baseline)"),
        ("ours", "ApprovalMiddleware + hitl saver and ledger"),
    ):
        commits, written = costs[name]
        print(
            f"  {label:52} {median[name]:7.1f}/s   ratio {median[name] / median['stock']:.2f}"
            f"   commits/cycle {commits:.1f}   bytes written/cycle {written:,.0f}"
        )
    if ratio < args.target:
        print(f"MISSED: ours runs at {ratio:.2f} of the stock rate; the target is {args.target}")
        return 1
    print(f"target met: {ratio:.2f} >= {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
