"""Benchmark: long threads stay cheap — bytes per cycle, resume-to-tool, storage, history pages.

Runs the same graph on the project's saver (with the approvals ledger: the product's path) and
on the stock `SqliteSaver`, in the same run, and measures the raw SQLite commit latency of the
machine as a second baseline. Every figure is printed as a ratio:

- bytes written per approval cycle (WAL growth) on a thread of 1,000 messages ÷ 10 messages
  (target ≤ 1.1), and the size of the newest checkpoint (target ≤ 4 KB);
- resume-to-tool latency (from the resume until the approved tool starts) at 1,000 ÷ 10
  messages (target ≤ 1.5), also in raw commits;
- a thread grown over 200 approval cycles: stored bytes ÷ its serialized messages (target
  ≤ 2, plus a small fixed cost per cycle; stock: about 40×);
- a history page of 20 on a thread of ~1,000 checkpoints ÷ on one of ~50 (target ≤ 1.5);
- the whole cycle through `ApprovalService` (`run`, `decide`, then `show`, as `hitl run` and
  `hitl approve` do) at 1,000 ÷ 10 messages, against the same ratio of the graph's own cycle
  (target: ≤ 1.1 × the graph's growth; the views carry a page of messages, not all of them).

    python -m bench.long_threads [--cycles 200] [--samples 15]
"""

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.tools import BaseTool, tool
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from hitl.app import assemble
from hitl.checkpoints.database import connect
from hitl.checkpoints.ledger import Ledger, make_ledger
from hitl.checkpoints.savers import BatchingSqliteSaver, make_strict_serializer
from hitl.graph import build_graph
from hitl.graph.demo_tools import count_emails
from hitl.graph.model import make_model
from hitl.graph.policy import default_policy
from hitl.service.settings import Settings
from hitl.service.workflow import EveryPending

PROMPT = "Send sally@example.com an email saying 'hi'"
SHORT, LONG = 10, 1000
RIGS = ("ours", "stock", "delta")
"""This project's saver with the ledger; the stock `SqliteSaver`; the stock saver with the
messages in LangGraph's `DeltaChannel` (beta in 1.2)."""
PAGE = 20
FEW_CYCLES = 10
TARGETS = {
    "bytes": 1.1,
    "checkpoint": 4096,
    "resume": 1.5,
    "storage": 1.1,
    "page": 1.5,
    "service": 1.1,
}
"""`storage`: a grown thread's cost per cycle beyond twice its messages ÷ a young thread's;
`service`: the service's 1,000 ÷ 10 cycle time ÷ the graph's."""


@dataclass
class Rig:
    """One saver (and ledger) on its own database file, with a graph whose tool is timed."""

    name: str
    db: Path
    saver: BaseCheckpointSaver[Any]
    graph: CompiledStateGraph[Any]
    ledger: Ledger | None
    tool_started: list[float]

    def conns(self) -> list[sqlite3.Connection]:
        found = [self.saver.conn]  # type: ignore[attr-defined]
        return found + ([self.ledger._conn] if self.ledger else [])


def timed_send_email(started: list[float]) -> BaseTool:
    @tool
    def send_email(message: str, recipient: str) -> str:
        """Send an email.

        Args:
            message: The body of the email.
            recipient: The address to send it to.
        """
        started.append(time.perf_counter())
        return f"Email sent to {recipient}."

    return send_email


def make_rig(name: str, work: Path) -> Rig:
    db = work / f"{name}-{time.monotonic_ns()}.sqlite"
    started: list[float] = []
    ledger = None
    saver: BaseCheckpointSaver[Any]
    if name == "ours":
        ours = BatchingSqliteSaver(connect(db), serde=make_strict_serializer(), path=db)
        ledger = make_ledger(db)
        ours.commit_with(ledger)  # as `hitl` opens them: the ledger's commits carry the rows
        saver = ours
    else:
        conn = sqlite3.connect(db, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")  # so its bytes written are measured alike
        saver = SqliteSaver(conn)  # its own defaults: the baseline as users get it
    graph = build_graph(
        model=make_model(None),
        tools=[count_emails, timed_send_email(started)],
        policy=default_policy(),
        checkpointer=saver,
        ledger=ledger,
    )
    if name == "delta":  # LangGraph 1.2's own answer: store writes, replay them on load
        delta = DeltaChannel(_add_each, list)
        delta.key = "messages"
        graph.channels["messages"] = delta
    rig = Rig(name, db, saver, graph, ledger, started)
    for conn in rig.conns():
        conn.execute("PRAGMA wal_autocheckpoint=0")  # the WAL only grows: its size is the I/O
    return rig


def _add_each(state: list[AnyMessage], writes: Any) -> list[AnyMessage]:
    for write in writes:
        state = add_messages(state, write)  # type: ignore[assignment]
    return state


def earlier_conversation(count: int) -> list[AnyMessage]:
    """`count` finished exchanges' messages (about 250 bytes each, serialized)."""
    return [
        HumanMessage(f"note {i}: remember the meeting on day {i} about the budget", id=f"h{i}")
        if i % 2 == 0
        else AIMessage(f"Noted ({i}). I will remind you of it when you ask.", id=f"a{i}")
        for i in range(count)
    ]


def config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


def seed(rig: Rig, thread_id: str, messages: int) -> None:
    """A finished thread holding `messages` earlier messages (as if the last step of the model's
    turn wrote them; no model call), on disk before the cycle is measured."""
    rig.graph.update_state(
        config(thread_id),
        {"messages": earlier_conversation(messages)},
        as_node="ApprovalMiddleware.after_model",
    )
    flush = getattr(rig.saver, "flush", None)
    if flush is not None:  # this saver buffers an update until the next durable step
        flush()


def cycle(rig: Rig, thread_id: str) -> float:
    """One approval cycle; returns the seconds from the resume to the tool's start."""
    rig.graph.invoke({"messages": [("user", PROMPT)]}, config(thread_id), durability="sync")
    start = time.perf_counter()
    approve = {"decisions": [{"type": "approve"}]}
    rig.graph.invoke(Command(resume=approve), config(thread_id), durability="sync")
    return rig.tool_started[-1] - start


def wal_bytes(rig: Rig) -> int:
    wal = Path(f"{rig.db}-wal")
    return wal.stat().st_size if wal.exists() else 0


def newest_checkpoint_bytes(rig: Rig, thread_id: str) -> int:
    with closing_conn(rig.db) as conn:
        row = conn.execute(
            "SELECT length(checkpoint) FROM checkpoints WHERE thread_id = ? AND "
            "checkpoint_ns = '' ORDER BY checkpoint_id DESC LIMIT 1",
            (thread_id,),
        ).fetchone()
    return int(row[0])


@contextmanager
def closing_conn(db: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(db)
    try:
        yield conn
    finally:
        conn.close()


@dataclass
class CycleFigures:
    bytes_per_cycle: float
    resume_seconds: float
    checkpoint_bytes: int


def cycles_at(rig: Rig, sizes: tuple[int, ...], samples: int) -> dict[int, CycleFigures]:
    """Medians over `samples` cycles per size, each on a fresh thread seeded with that many
    messages; sizes interleaved, so each sees the same database size and machine noise."""
    written: dict[int, list[int]] = {size: [] for size in sizes}
    resumes: dict[int, list[float]] = {size: [] for size in sizes}
    checkpoint: dict[int, list[int]] = {size: [] for size in sizes}
    for n in range(samples + 2):
        for size in sizes:
            thread_id = f"{rig.name}-{size}-{n}"
            seed(rig, thread_id, size)
            before = wal_bytes(rig)
            resume = cycle(rig, thread_id)
            if n < 2:  # warm-up: imports, caches, the first statements prepared
                continue
            written[size].append(wal_bytes(rig) - before)
            resumes[size].append(resume)
            checkpoint[size].append(newest_checkpoint_bytes(rig, thread_id))
    return {
        size: CycleFigures(
            statistics.median(written[size]),
            statistics.median(resumes[size]),
            int(statistics.median(checkpoint[size])),
        )
        for size in sizes
    }


def raw_commit_seconds(work: Path, samples: int = 200) -> float:
    """The machine's latency of one small durable SQLite commit (WAL, synchronous=FULL)."""
    with closing_conn(work / "raw.sqlite") as conn:
        conn.isolation_level = None
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (v BLOB)")
        times = []
        for _ in range(samples):
            start = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?)", (os.urandom(100),))
            conn.execute("COMMIT")
            times.append(time.perf_counter() - start)
    return statistics.median(times)


@dataclass
class StorageFigures:
    stored: int
    """Bytes of the compacted database beyond an empty one (schema only)."""
    payload: int
    """Bytes of the rows and index entries themselves (SQLite's `dbstat`): `stored` without
    the pages' free space, which at a few cycles is most of the file."""
    messages: int
    """Bytes of the thread's messages, serialized."""
    cycles: int
    checkpoints: int

    @property
    def ratio(self) -> float:
        return self.stored / self.messages

    @property
    def fixed_per_cycle(self) -> float:
        """What a cycle stores beyond twice its messages (in payload bytes)."""
        return (self.payload - 2 * self.messages) / self.cycles


def compacted_size(rig: Rig) -> tuple[int, int]:
    """The file's size after VACUUM, and the payload bytes it holds."""
    for conn in rig.conns():
        conn.commit()
    with closing_conn(rig.db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        (payload,) = conn.execute("SELECT SUM(payload) FROM dbstat").fetchone()
    return rig.db.stat().st_size, int(payload or 0)


def grown_thread(rig: Rig, thread_id: str, cycles: int) -> StorageFigures:
    """One thread grown over `cycles` approval cycles on a new database, compacted."""
    rig.saver.setup()  # type: ignore[attr-defined]
    empty, empty_payload = compacted_size(rig)
    for _ in range(cycles):
        cycle(rig, thread_id)
    serde = make_strict_serializer()
    messages = rig.graph.get_state(config(thread_id)).values["messages"]
    message_bytes = sum(len(serde.dumps_typed(m)[1]) for m in messages)
    with closing_conn(rig.db) as conn:
        (checkpoints,) = conn.execute(
            "SELECT COUNT(*) FROM checkpoints WHERE thread_id = ?", (thread_id,)
        ).fetchone()
    size, payload = compacted_size(rig)
    return StorageFigures(size - empty, payload - empty_payload, message_bytes, cycles, checkpoints)


def page_seconds(rig: Rig, thread_id: str, samples: int) -> float:
    """Median time to read a history page of `PAGE` checkpoints (newest first)."""
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        page = list(rig.graph.get_state_history(config(thread_id), limit=PAGE))
        times.append(time.perf_counter() - start)
        assert len(page) == PAGE
    return statistics.median(times)


def service_cycles(work: Path, samples: int) -> dict[str, dict[int, float]]:
    """Median seconds of a whole cycle, the graph's own and through `ApprovalService`, on
    fresh threads seeded with `SHORT` and `LONG` messages, on one database; sizes and paths
    interleaved, so each sees the same database size and machine noise."""
    settings = Settings(db=work / "service.sqlite", environ={})
    started: list[float] = []
    tools = [count_emails, timed_send_email(started)]
    with assemble(settings, tools=tools, policy=default_policy()) as parts:
        rig = Rig("service", work / "service.sqlite", parts.saver, parts.graph, None, started)
        service = parts.service

        def through_service(thread_id: str) -> None:  # as `hitl run`, then `hitl approve`
            service.run(PROMPT, thread_id, actor="alice")
            service.decide(thread_id, EveryPending("approve"), actor="bob")
            service.show(thread_id)

        paths = {"graph": lambda thread_id: cycle(rig, thread_id), "service": through_service}
        times: dict[str, dict[int, list[float]]] = {p: {SHORT: [], LONG: []} for p in paths}
        for n in range(samples + 2):
            for size in (SHORT, LONG):
                for path, run in paths.items():
                    thread_id = f"{path}-{size}-{n}"
                    seed(rig, thread_id, size)
                    start = time.perf_counter()
                    run(thread_id)
                    if n >= 2:  # warm-up
                        times[path][size].append(time.perf_counter() - start)
    return {p: {size: statistics.median(t) for size, t in ts.items()} for p, ts in times.items()}


MISSED: list[str] = []


def verdict(what: str, value: float, target: float) -> str:
    """`ok`, or `MISSED` (remembered: the script then exits non-zero)."""
    if value <= target:
        return "ok"
    MISSED.append(f"{what}: {value:.2f} > {target}")
    return "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200, help="cycles of the grown thread")
    parser.add_argument("--samples", type=int, default=15, help="cycles timed per size")
    parser.add_argument(
        "--no-check", action="store_true", help="exit 0 even if a target is missed (tiny runs)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(
        prefix="hitl-bench-long-"
    ) as work:  # a run leaves nothing behind
        measure(args, Path(work))


def measure(args: argparse.Namespace, work: Path) -> None:
    """Every figure, on databases in `work`; exits non-zero if a target is missed."""
    commit = raw_commit_seconds(work)
    print(f"baseline: one raw SQLite commit (WAL, synchronous=FULL): {commit * 1e3:.2f} ms")

    figures: dict[str, dict[int, CycleFigures]] = {}
    for name in RIGS:
        rig = make_rig(name, work)
        figures[name] = cycles_at(rig, (SHORT, LONG), args.samples)
    print(f"\napproval cycle on a thread of {SHORT} and of {LONG} messages (medians):")
    print(f"  {'':24}" + "".join(f"{name:>14}" for name in RIGS))
    for label, get, unit in (
        ("bytes written / cycle", lambda f: f.bytes_per_cycle / 1024, "KB"),
        ("resume → tool", lambda f: f.resume_seconds * 1e3, "ms"),
        ("  in raw commits", lambda f: f.resume_seconds / commit, "×"),
        ("newest checkpoint", lambda f: f.checkpoint_bytes / 1024, "KB"),
    ):
        for size in (SHORT, LONG):
            cells = "".join(f"{get(figures[n][size]):>11.1f} {unit:<2}" for n in figures)
            print(f"  {label + f' @ {size}':<24}{cells}")
    for label, key, get in (
        ("ratio bytes/cycle", "bytes", lambda f: f.bytes_per_cycle),
        ("ratio resume → tool", "resume", lambda f: f.resume_seconds),
    ):
        ratios = [get(figures[n][LONG]) / get(figures[n][SHORT]) for n in RIGS]
        cells = "".join(f"{r:>14.2f}" for r in ratios)
        print(
            f"  {label + f' {LONG}÷{SHORT}':<24}{cells}"
            f"   ≤ {TARGETS[key]}  {verdict(label, ratios[0], TARGETS[key])}"
        )
    newest = figures["ours"][LONG].checkpoint_bytes
    small = verdict("newest checkpoint", newest, TARGETS["checkpoint"])
    print(f"  newest checkpoint @ {LONG}: {newest} bytes{'':>9}≤ {TARGETS['checkpoint']}  {small}")

    storage: dict[str, StorageFigures] = {}
    few: dict[str, StorageFigures] = {}
    pages: dict[str, tuple[float, float]] = {}
    for name in RIGS:
        few[name] = grown_thread(make_rig(name, work), "few", FEW_CYCLES)
        rig = make_rig(name, work)
        storage[name] = grown_thread(rig, "grown", args.cycles)
        short_thread = max(2, round(args.cycles * 50 / storage[name].checkpoints))
        for _ in range(short_thread):
            cycle(rig, "short")
        short_pages: list[float] = []
        long_pages: list[float] = []
        for _ in range(3):  # interleaved
            short_pages.append(page_seconds(rig, "short", args.samples))
            long_pages.append(page_seconds(rig, "grown", args.samples))
        pages[name] = (statistics.median(short_pages), statistics.median(long_pages))
    print(f"\na thread grown over {FEW_CYCLES} and {args.cycles} approval cycles (compacted):")
    for name in storage:
        for s in (few[name], storage[name]):
            print(
                f"  {name:<6} {s.cycles:>4} cycles: stored {s.stored / 2**20:7.2f} MiB, messages "
                f"{s.messages / 2**10:6.1f} KiB, ratio {s.ratio:6.1f}; payload beyond 2× "
                f"messages {s.fixed_per_cycle / 1024:6.1f} KiB per cycle"
            )
    growth = storage["ours"].fixed_per_cycle / few["ours"].fixed_per_cycle
    print(
        f"  ours: payload per cycle beyond 2× messages, {args.cycles} ÷ {FEW_CYCLES} cycles: "
        f"{growth:.2f}   ≤ {TARGETS['storage']}  "
        f"{verdict('storage growth', growth, TARGETS['storage'])}"
    )
    for name in RIGS[1:]:
        times = storage[name].stored / storage["ours"].stored
        print(f"  {name} ÷ ours, {args.cycles} cycles: {times:.1f}×")
    print(f"\nhistory page of {PAGE}, thread of ~50 checkpoints vs ~{storage['ours'].checkpoints}:")
    for name, (short, long) in pages.items():
        target = ""
        if name == "ours":
            target = f"≤ {TARGETS['page']}  {verdict('page', long / short, TARGETS['page'])}"
        print(
            f"  {name:<6} {short * 1e3:7.2f} ms → {long * 1e3:7.2f} ms: ratio "
            f"{long / short:5.2f}   {target}"
        )
    whole = service_cycles(work, args.samples)
    print("\nwhole approval cycle, the graph's own and through ApprovalService (medians):")
    for path, at in whole.items():
        print(
            f"  {path:<8} {at[SHORT] * 1e3:7.1f} ms @ {SHORT} → {at[LONG] * 1e3:7.1f} ms @ {LONG}: "
            f"ratio {at[LONG] / at[SHORT]:5.2f}"
        )
    growth = (whole["service"][LONG] / whole["service"][SHORT]) / (
        whole["graph"][LONG] / whole["graph"][SHORT]
    )
    for size in (SHORT, LONG):
        rate = whole["graph"][size] / whole["service"][size]
        print(f"  service ÷ graph, cycles per second @ {size}: {rate:.2f}")
    print(
        f"  service's growth ÷ the graph's: {growth:.2f}   ≤ {TARGETS['service']}  "
        f"{verdict('service growth', growth, TARGETS['service'])}"
    )
    if MISSED and not args.no_check:
        sys.exit("targets missed: " + "; ".join(MISSED))


if __name__ == "__main__":
    main()
