"""Benchmark: the full approval cycle against what a user picks instead (issue "Exactly-once for
free"), in interleaved rounds of one run.

The peer is LangChain's `create_agent` with the stock `HumanInTheLoopMiddleware`, a scripted
model, `durability="sync"`, a tool that appends one line to a file and fsyncs it, a new thread
per cycle (user message → proposed call → interrupt → approve → tool → final answer), on
`InMemorySaver` and on the stock `SqliteSaver`. Beside it, the same agent with
`ApprovalMiddleware`: on `InMemorySaver` without a ledger, on this project's SQLite storage
with every guarantee (saver + ledger: the demo agent's make-up), and through `ApprovalService`
(`run` + `decide`, as the CLI and `hitl serve` drive it).

Prints cycles per second and ratios (median of the rounds), CPU per cycle, SQLite commits (and
how many of them synced) and bytes written per cycle, the write-ahead log's checkpoint included
(an untimed pass), and exits 1 if a target is missed:

- ours (SQLite, every guarantee) ≥ `--vs-peer` (1.0) × the peer on `SqliteSaver`;
- ours ≥ `--vs-memory` (0.85) × our agent on `InMemorySaver`;
- CPU per cycle in memory ≤ `--cpu` (1.1) × the peer's;
- the service ≥ `--service` (0.9) × our graph;
- commits per cycle ≤ `--commits` (5, graph) and `--service-commits` (6); bytes per cycle
  ≤ `--bytes` (1.0) × the peer's.

    python -m bench.peers [--cycles 60] [--rounds 3]
"""

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from bench._targets import (
    Check,
    commit_count,
    report_targets,
    traced,
    wal_checkpoint,
    written_bytes,
)
from hitl import ApprovalMiddleware, ScriptedChatModel
from hitl.app import assemble
from hitl.graph.policy import Policy, ToolRule
from hitl.service.settings import Settings
from hitl.service.workflow import EveryPending

REPLIES = [{"tool_calls": [{"name": "append_line", "args": {"line": "hello"}}]}, "Done."]
PROMPT = "append hello"


def appending_tool(path: Path) -> BaseTool:
    @tool
    def append_line(line: str) -> str:
        """Append a line to the side-effect file, synced to disk."""
        with path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())
        return f"appended {line!r}"

    return append_line


def agent(middleware: Any, tool_: BaseTool, checkpointer: Any) -> CompiledStateGraph[Any]:
    model = ScriptedChatModel.from_replies(REPLIES)
    graph = create_agent(model, tools=[tool_], middleware=[middleware])
    return graph.copy(update={"checkpointer": checkpointer})


Cycle = Callable[[str], None]
"""One approval cycle on a new thread of this ID."""


def graph_cycle(graph: CompiledStateGraph[Any]) -> Cycle:
    def cycle(thread_id: str) -> None:
        config: Any = {"configurable": {"thread_id": thread_id}}
        graph.invoke({"messages": [{"role": "user", "content": PROMPT}]}, config, durability="sync")
        approve = Command(resume={"decisions": [{"type": "approve"}]})
        graph.invoke(approve, config, durability="sync")

    return cycle


COUNTED = 30
"""Cycles of the untimed pass that counts commits and bytes."""


@dataclass
class Costs:
    """What one cycle writes (the untimed pass): commits, those synced, bytes."""

    commits: float
    synced: float
    written: float


@dataclass
class Timing:
    rate: float
    cpu_ms: float


def timed(cycle: Cycle, cycles: int, tag: str) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(cycles):
        cycle(f"{tag}-{i}")
    return Timing(
        cycles / (time.perf_counter() - wall), (time.process_time() - cpu) / cycles * 1000
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=60, help="cycles per round and setup")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--vs-peer", type=float, default=1.0, help="least ours ÷ peer on SQLite")
    parser.add_argument("--vs-memory", type=float, default=0.85, help="least ours ÷ ours in memory")
    parser.add_argument("--cpu", type=float, default=1.1, help="most CPU ÷ peer's, in memory")
    parser.add_argument("--service", type=float, default=0.9, help="least service ÷ our graph")
    parser.add_argument("--commits", type=float, default=5.0, help="most commits/cycle, graph")
    parser.add_argument(
        "--service-commits", type=float, default=6.0, help="most commits/cycle, service"
    )
    parser.add_argument("--bytes", type=float, default=1.0, help="most bytes/cycle ÷ peer's")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hitl-bench-peers-"))
    try:
        with ExitStack() as stack:
            peer_conn = sqlite3.connect(work / "peer.sqlite", check_same_thread=False)
            stack.callback(peer_conn.close)
            script = work / "script.json"
            script.write_text(json.dumps(REPLIES), encoding="utf-8")
            ours_tool = appending_tool(work / "ours.txt")
            parts = stack.enter_context(
                assemble(
                    Settings(db=work / "ours.sqlite", model=f"script:{script}", environ={}),
                    tools=[ours_tool],
                    policy=Policy(rules={"append_line": ToolRule(ask="always")}),
                )
            )
            service = parts.service

            def service_cycle(thread_id: str) -> None:
                service.run(PROMPT, thread_id, actor="alice")
                service.decide(thread_id, EveryPending("approve"), actor="bob")

            peer = HumanInTheLoopMiddleware({"append_line": True})
            setups: dict[str, Cycle] = {
                "peer-sqlite": graph_cycle(
                    agent(peer, appending_tool(work / "p1.txt"), SqliteSaver(peer_conn))
                ),
                "peer-memory": graph_cycle(
                    agent(peer, appending_tool(work / "p2.txt"), InMemorySaver())
                ),
                "ours-memory": graph_cycle(
                    agent(
                        ApprovalMiddleware({"append_line": True}),
                        appending_tool(work / "o2.txt"),
                        InMemorySaver(),
                    )
                ),
                "ours": graph_cycle(parts.graph),
                "service": service_cycle,
            }
            for name, cycle in setups.items():  # warm-up: imports, schema, caches
                timed(cycle, 5, f"warm-{name}")
            timings: dict[str, list[Timing]] = {name: [] for name in setups}
            for r in range(args.rounds):  # interleaved: machine noise hits all alike
                for name, cycle in setups.items():
                    timings[name].append(timed(cycle, args.cycles, f"{name}-{r}"))
            costs: dict[str, Costs] = {}
            for name, cycle in setups.items():  # untimed: tracing costs time
                conns = (
                    [peer_conn]
                    if name == "peer-sqlite"
                    else [parts.saver.conn]
                    if name in ("ours", "service")
                    else []
                )
                ledger = parts.ledger if name in ("ours", "service") else None
                db = work / ("ours.sqlite" if ledger else "peer.sqlite")
                wal_checkpoint(db)
                before = written_bytes()
                with traced(conns, ledger) as seen:
                    for i in range(COUNTED):
                        cycle(f"count-{name}-{i}")
                wal_checkpoint(db)  # the log's pages, into the file: what the cycles cost there
                costs[name] = Costs(
                    commit_count(seen) / COUNTED,
                    commit_count(seen, synced_only=True) / COUNTED,
                    (written_bytes() - before) / COUNTED,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report(timings, costs, args)


def report(timings: dict[str, list[Timing]], costs: dict[str, Costs], args: Any) -> int:
    rate = {n: statistics.median(t.rate for t in ts) for n, ts in timings.items()}
    cpu = {n: statistics.median(t.cpu_ms for t in ts) for n, ts in timings.items()}
    labels = {
        "peer-sqlite": "peer: HumanInTheLoopMiddleware + SqliteSaver (baseline)",
        "peer-memory": "peer: HumanInTheLoopMiddleware + InMemorySaver",
        "ours-memory": "ApprovalMiddleware + InMemorySaver, no ledger",
        "ours": "ours: ApprovalMiddleware + hitl saver and ledger",
        "service": "ours through ApprovalService (run + decide)",
    }
    print(f"approval cycles, median of {args.rounds} interleaved rounds × {args.cycles}:")
    for name, label in labels.items():
        cost = costs[name]
        print(
            f"  {label:58} {rate[name]:6.1f}/s  ÷ peer {rate[name] / rate['peer-sqlite']:4.2f}"
            f"  cpu {cpu[name]:5.1f} ms  commits {cost.commits:4.1f} ({cost.synced:4.1f} synced)"
            f"  bytes {cost.written:9,.0f}"
        )
    checks: list[Check] = [
        ("ours ÷ peer on SQLite", rate["ours"] / rate["peer-sqlite"], ">=", args.vs_peer),
        ("ours ÷ ours in memory", rate["ours"] / rate["ours-memory"], ">=", args.vs_memory),
        ("cpu in memory ÷ peer's", cpu["ours-memory"] / cpu["peer-memory"], "<=", args.cpu),
        ("service ÷ our graph", rate["service"] / rate["ours"], ">=", args.service),
        ("commits per cycle, graph", costs["ours"].commits, "<=", args.commits),
        ("commits per cycle, service", costs["service"].commits, "<=", args.service_commits),
        (
            "bytes per cycle ÷ peer's",
            costs["ours"].written / costs["peer-sqlite"].written,
            "<=",
            args.bytes,
        ),
    ]
    return report_targets(checks)


if __name__ == "__main__":
    sys.exit(main())
