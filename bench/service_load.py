"""Benchmark: full approval cycles per second through the HTTP service, under concurrent clients.

Starts one real `hitl serve` (a subprocess on a free port, its own temp SQLite file, the
offline model, `--workers` run threads) and lets `--clients` threads, each with its own
`httpx.Client`, loop for `--seconds`: start a thread (`POST /threads`), wait for its run
(`GET /runs/{id}?wait=10`), read its pending call (`GET /threads/{id}`), approve it
(`POST /threads/{id}/approve`), wait for that run (the demo `send_email` tool appends a line to
the outbox). The baseline, measured in the same run for the same time with the same number of
threads: the same workload in this process without HTTP, each thread with its own
`open_service` on another temp database (`service.run`, then `service.decide`).

It prints cycles per second of both and their ratio, p50/p99 latency of a cycle and of each
request, errors (a non-2xx answer, an exception, a failed run), and checks that every approval
ran its tool exactly once: outbox lines, distinct tool call IDs in the outbox, approvals
accepted (202) and the ledger's succeeded calls must all be equal. Targets: zero errors, zero
duplicate executions, executions == approvals, ratio HTTP / in-process ≥ 0.5 (judged only
with `--seconds` ≥ 30: shorter runs are smoke runs). Exits 1 if a judged target fails.

    python -m bench.service_load [--clients 8] [--seconds 30] [--workers 2] [--rounds 1] [--json]
"""

import argparse
import json
import math
import os
import platform
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hitl.app import open_service
from hitl.service import ApprovalService
from hitl.settings import Settings

PROMPT = "Send sally@example.com an email saying 'hi'"
TARGET_RATIO = 0.5
MIN_JUDGED_SECONDS = 30.0
"""Shorter runs are smoke runs: every figure is printed, the ratio is not judged."""
WARM_UP_CYCLES = 1
"""Untimed cycles per client before the clock starts (imports, caches, connections)."""
STARTUP_TIMEOUT_SECONDS = 60.0
RUN_TIMEOUT_SECONDS = 120.0
HITL = Path(sys.executable).parent / "hitl"
_ADMIN = re.compile(r"first admin token \(shown once, keep it safe\): (hitl_\S+)")
KINDS = ("cycle", "start", "run", "thread", "approve", "resumed")
"""Latency kinds: a whole cycle, then its steps in order."""
KIND_HELP = {
    "cycle": "whole cycle (start → pending → approve → tool ran)",
    "start": "POST /threads (202)  | in-process: service.run",
    "run": "wait for the first run (GET /runs/{id}?wait=10, until done)",
    "thread": "GET /threads/{id} (the pending call)",
    "approve": "POST /threads/{id}/approve (202)  | in-process: service.decide",
    "resumed": "wait for the approved run (the tool ran)",
}


class CycleFailed(Exception):
    """A non-2xx answer or a failed run: the cycle is abandoned and counted as an error."""


@dataclass
class ClientLog:
    """What one client thread did."""

    cycles: int = 0
    """Timed cycles completed."""
    approved: int = 0
    """Approvals accepted (202; in-process: `decide` returned), warm-up included."""
    requests: int = 0
    """HTTP requests sent in the timed span."""
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: list[str] = field(default_factory=list)
    end: float = 0.0
    timed: bool = False

    def took(self, kind: str, seconds: float) -> None:
        if self.timed:
            self.latencies[kind].append(seconds)

    def sent(self) -> None:
        if self.timed:
            self.requests += 1


@dataclass
class Phase:
    """One timed phase (HTTP or in-process), checked against its outbox and ledger."""

    name: str
    clients: int
    span: float
    cycles: int
    latencies: dict[str, list[float]]
    errors: list[str]
    approved: int
    ledger_succeeded: int
    outbox_lines: int
    distinct_ids: int
    duplicates: int
    cpu: dict[str, float]
    """CPU seconds spent in the timed span, by process ("bench": this one, "server")."""
    requests: int = 0
    """HTTP requests sent in the timed span (0 in-process)."""
    label: str = ""
    """The name shown in reports: with the round's number when there are several."""

    def __post_init__(self) -> None:
        self.label = self.label or self.name

    @property
    def per_second(self) -> float:
        return self.cycles / self.span if self.span > 0 else float("nan")

    @property
    def consistent(self) -> bool:
        """Every approval ran its tool once: all four counts equal."""
        return self.outbox_lines == self.distinct_ids == self.approved == self.ledger_succeeded

    def summary(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "seconds": round(self.span, 3),
            "cycles": self.cycles,
            "cycles_per_second": round(self.per_second, 3),
            "latency_ms": {
                k: {"p50": _ms(percentile(v, 50)), "p99": _ms(percentile(v, 99)), "n": len(v)}
                for k, v in self.latencies.items()
                if v
            },
            "errors": len(self.errors),
            "error_samples": sorted(set(self.errors))[:10],
            "approvals_accepted": self.approved,
            "ledger_succeeded": self.ledger_succeeded,
            "outbox_lines": self.outbox_lines,
            "distinct_tool_call_ids": self.distinct_ids,
            "duplicates": self.duplicates,
            "cpu_ms_per_cycle": {
                k: _ms(v / self.cycles) if self.cycles else None for k, v in self.cpu.items()
            },
            "cores_busy": {k: round(v / self.span, 2) for k, v in self.cpu.items()},
            "http_requests_per_cycle": round(self.requests / self.cycles, 2)
            if self.cycles
            else None,
        }


# the clients


def run_clients(
    clients: int, seconds: float, cycle: Callable[[int, ClientLog], None], cpu: "CpuMeter"
) -> tuple[list[ClientLog], float, dict[str, float]]:
    """`clients` threads: warm up, start together, loop `cycle` until `seconds` have passed.

    Returns each thread's log, the span (start to the end of the last cycle) and CPU seconds.
    """
    logs = [ClientLog() for _ in range(clients)]
    ready = threading.Barrier(clients + 1)
    go = threading.Event()
    deadline = [0.0]

    def client(n: int) -> None:
        log = logs[n]
        for _ in range(WARM_UP_CYCLES):
            _guarded(cycle, n, log)
        ready.wait()
        go.wait()
        log.timed = True
        while time.monotonic() < deadline[0]:
            if _guarded(cycle, n, log):
                log.cycles += 1
        log.end = time.monotonic()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    ready.wait()
    before = cpu.read()
    start = time.monotonic()
    deadline[0] = start + seconds
    go.set()
    for t in threads:
        t.join()
    after = cpu.read()
    span = max(log.end for log in logs) - start
    return logs, span, {k: after[k] - before[k] for k in after}


def _guarded(cycle: Callable[[int, ClientLog], None], n: int, log: ClientLog) -> bool:
    """Run one cycle; an exception is an error of that cycle. True if it completed."""
    try:
        cycle(n, log)
    except Exception as e:
        log.errors.append(f"{type(e).__name__}: {str(e)[:200]}")
        return False
    return True


# the HTTP phase


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    db: Path
    outbox: Path
    log_path: Path
    admin_token: str


@contextmanager
def hitl_serve(work: Path, workers: int) -> Iterator[Server]:
    """A `hitl serve` subprocess on a fresh database in `work`, stopped (SIGINT) at the end."""
    env = dict(os.environ)
    for name in ("HITL_TOOLS", "HITL_POLICY", "HITL_ACTOR"):  # the demo tools and policy
        env.pop(name, None)
    db, outbox, log_path = work / "hitl.sqlite", work / "outbox.jsonl", work / "serve.log"
    env.update(HITL_DB=str(db), HITL_OUTBOX=str(outbox), HITL_MODEL="offline")
    env.update(PYTHONUNBUFFERED="1")
    port = _free_port()
    command = [str(HITL), "serve", "--port", str(port), "--workers", str(workers)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"hitl serve exited with {process.returncode}:\n{_log(log_path)}"
                )
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"hitl serve did not start:\n{_log(log_path)}")
            time.sleep(0.1)
        found = _ADMIN.search(_log(log_path))
        if not found:
            raise RuntimeError(f"hitl serve printed no admin token:\n{_log(log_path)}")
        yield Server(url, process, db, outbox, log_path, found.group(1))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # shutdown waits for the runs in progress
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def http_phase(work: Path, clients: int, seconds: float, workers: int) -> Phase:
    work.mkdir()
    with hitl_serve(work, workers) as server:
        headers = {"Authorization": f"Bearer {server.admin_token}"}
        sessions = [
            httpx.Client(base_url=server.url, headers=headers, timeout=60) for _ in range(clients)
        ]

        def cycle(n: int, log: ClientLog) -> None:
            http = sessions[n]
            begin = time.perf_counter()
            started = _call(log, "start", http.post, "/threads", json={"prompt": PROMPT})
            thread_id = started["thread_id"]
            _wait_run(log, "run", http, started["run"]["run_id"])
            view = _call(log, "thread", http.get, f"/threads/{thread_id}")
            if not view.get("pending"):
                raise CycleFailed(f"thread {thread_id} has no pending call: {view.get('status')}")
            call = view["pending"][0]["tool_call_id"]
            approved = _call(
                log, "approve", http.post, f"/threads/{thread_id}/approve", json={"call": call}
            )
            log.approved += 1
            _wait_run(log, "resumed", http, approved["run"]["run_id"])
            log.took("cycle", time.perf_counter() - begin)

        try:
            logs, span, cpu = run_clients(
                clients, seconds, cycle, CpuMeter(server=server.process.pid)
            )
        finally:
            for s in sessions:
                s.close()
    # the server has stopped: its outbox and database are final
    return _phase("http", clients, span, logs, cpu, server.db, server.outbox)


def _call(
    log: ClientLog, kind: str, send: Callable[..., httpx.Response], *args: Any, **kw: Any
) -> Any:
    begin = time.perf_counter()
    answer = send(*args, **kw)
    log.sent()
    log.took(kind, time.perf_counter() - begin)
    if not answer.is_success:
        raise CycleFailed(
            f"{answer.request.method} {kind}: {answer.status_code} {answer.text[:200]}"
        )
    return answer.json()


def _wait_run(log: ClientLog, kind: str, http: httpx.Client, run_id: str) -> None:
    """Long-poll the run until it has finished; a failed run fails the cycle."""
    begin = time.perf_counter()
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while True:
        answer = http.get(f"/runs/{run_id}", params={"wait": 10})
        log.sent()
        if not answer.is_success:
            raise CycleFailed(f"GET /runs/{{id}}: {answer.status_code} {answer.text[:200]}")
        run = answer.json()
        if run["status"] == "done":
            break
        if run["status"] == "failed":
            raise CycleFailed(f"run failed: {run.get('error')}")
        if time.monotonic() > deadline:
            raise CycleFailed(f"run {run_id} did not finish in {RUN_TIMEOUT_SECONDS} s")
    log.took(kind, time.perf_counter() - begin)


# the in-process baseline


def inprocess_phase(work: Path, clients: int, seconds: float) -> Phase:
    work.mkdir()
    db, outbox = work / "hitl.sqlite", work / "outbox.jsonl"
    settings = Settings(db=db, environ={"HITL_OUTBOX": str(outbox)})
    with open_service(settings):
        pass  # create the schema once, before the threads open their own services
    services: list[ApprovalService] = []
    closers: list[Any] = []
    for _ in range(clients):
        opened = open_service(settings)
        services.append(opened.__enter__())
        closers.append(opened)

    def cycle(n: int, log: ClientLog) -> None:
        service = services[n]
        begin = time.perf_counter()
        view = service.run(PROMPT, actor="alice")
        log.took("start", time.perf_counter() - begin)
        if not view.pending:
            raise CycleFailed(f"thread {view.thread_id} has no pending call: {view.status}")
        mid = time.perf_counter()
        after = service.decide(
            view.thread_id, {view.pending[0].tool_call_id: {"type": "approve"}}, actor="bob"
        )
        log.approved += 1
        end = time.perf_counter()
        log.took("approve", end - mid)
        log.took("cycle", end - begin)
        if after.pending:
            raise CycleFailed(f"thread {view.thread_id} still waits after the approval")

    try:
        logs, span, cpu = run_clients(clients, seconds, cycle, CpuMeter())
    finally:
        for closer in closers:
            closer.__exit__(None, None, None)
    return _phase("in-process", clients, span, logs, cpu, db, outbox)


# checks and figures


def _phase(
    name: str,
    clients: int,
    span: float,
    logs: list[ClientLog],
    cpu: dict[str, float],
    db: Path,
    outbox: Path,
) -> Phase:
    sent = Counter(_sent_call_ids(outbox))
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        (succeeded,) = conn.execute(
            "SELECT COUNT(*) FROM hitl_approvals WHERE status = 'succeeded'"
        ).fetchone()
    return Phase(
        name=name,
        clients=clients,
        span=span,
        cycles=sum(log.cycles for log in logs),
        latencies={k: [x for log in logs for x in log.latencies[k]] for k in KINDS},
        errors=[e for log in logs for e in log.errors],
        approved=sum(log.approved for log in logs),
        ledger_succeeded=int(succeeded),
        outbox_lines=sum(sent.values()),
        distinct_ids=len(sent),
        duplicates=sum(1 for n in sent.values() if n > 1),
        cpu=cpu,
        requests=sum(log.requests for log in logs),
    )


def _sent_call_ids(outbox: Path) -> list[str]:
    if not outbox.exists():
        return []
    return [json.loads(line)["tool_call_id"] for line in outbox.read_text().splitlines()]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (NaN if there are no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 2)


class CpuMeter:
    """CPU seconds used so far by this process and, on Linux, by other processes by pid."""

    def __init__(self, **pids: int) -> None:
        self._pids = pids

    def read(self) -> dict[str, float]:
        used = {"bench": time.process_time()}
        for name, pid in self._pids.items():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                used[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                used[name] = float("nan")
        return used


def machine() -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": affinity,
        "cpu": _cpu_model(),
        "load_average_1_5_15": [round(x, 2) for x in load] if load else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-8000:]


# the report


@dataclass(frozen=True)
class Target:
    name: str
    passed: bool | None
    """None: not judged (a smoke run)."""
    detail: str


def judge(http: list[Phase], base: list[Phase], ratio: float, seconds: float) -> list[Target]:
    every = [*http, *base]
    errors = {p.name: sum(len(q.errors) for q in every if q.name == p.name) for p in every}
    duplicates = {p.name: sum(q.duplicates for q in every if q.name == p.name) for p in every}

    def counts(p: Phase) -> str:
        return (
            f"outbox {p.outbox_lines} lines / {p.distinct_ids} distinct tool_call_ids, "
            f"{p.approved} approvals accepted, {p.ledger_succeeded} succeeded in the ledger"
        )

    judged = seconds >= MIN_JUDGED_SECONDS
    return [
        Target(
            "zero errors",
            not any(errors.values()),
            ", ".join(f"{k} {v}" for k, v in errors.items()),
        ),
        Target(
            "zero duplicate executions",
            not any(duplicates.values()),
            ", ".join(f"{k} {v}" for k, v in duplicates.items()),
        ),
        Target(
            "executions == approvals",
            all(p.consistent for p in every),
            "; ".join(f"{p.label}: {counts(p)}" for p in every),
        ),
        Target(
            f"throughput ratio HTTP / in-process ≥ {TARGET_RATIO}",
            ratio >= TARGET_RATIO if judged else None,
            f"{ratio:.2f}"
            + ("" if judged else f" (not judged: a smoke run, under {MIN_JUDGED_SECONDS:.0f} s)"),
        ),
    ]


def report(
    args: argparse.Namespace,
    info: dict[str, Any],
    http: list[Phase],
    base: list[Phase],
    ratio: float,
    targets: list[Target],
) -> None:
    print(
        f"machine: {info['cpu_count']} CPUs ({info['usable_cpus']} usable), {info['cpu']}, "
        f"load {info['load_average_1_5_15']} at start, {info['load_average_at_end']} at end "
        f"(this benchmark adds about 2), Python {info['python']}"
    )
    print(
        f"{args.clients} clients, {args.seconds:g} s per phase, {args.rounds} round(s), "
        f"hitl serve --workers {args.workers}; in-process baseline: {args.clients} threads, "
        "each with its own open_service"
    )
    rate_http = statistics.median(p.per_second for p in http)
    rate_base = statistics.median(p.per_second for p in base)
    print("\nfull approval cycles per second (median of rounds):")
    for name, phases, rate in (
        ("in-process (baseline)", base, rate_base),
        ("HTTP", http, rate_http),
    ):
        cycles = sum(p.cycles for p in phases)
        rounds = " ".join(f"{p.per_second:.1f}" for p in phases)
        print(
            f"  {name:<22} {rate:8.1f}/s   ratio {rate / rate_base:.2f}   "
            f"({cycles} cycles; rounds {rounds})"
        )
    print(f"\nthroughput ratio HTTP / in-process: {ratio:.2f}")
    print("\nlatency, all rounds (ms):")
    print(f"  {'':<10} {'in-process':>21} │ {'HTTP':>21}")
    print(f"  {'':<10} {'p50':>10} {'p99':>10} │ {'p50':>10} {'p99':>10} {'n':>6}   what")
    for kind in KINDS:
        cells = []
        for phases in (base, http):
            values = [x for p in phases for x in p.latencies[kind]]
            cells.append((percentile(values, 50), percentile(values, 99), len(values)))
        (b50, b99, _), (h50, h99, hn) = cells
        print(
            f"  {kind:<10} {_cell(b50)} {_cell(b99)} │ {_cell(h50)} {_cell(h99)} {hn:>6}   "
            f"{KIND_HELP[kind]}"
        )
    print("\nCPU per cycle (ms) and cores busy during the timed span:")
    for name, phases in (("in-process", base), ("HTTP", http)):
        parts = []
        for proc in phases[0].cpu:
            cpu = sum(p.cpu[proc] for p in phases)
            cycles = sum(p.cycles for p in phases)
            span = sum(p.span for p in phases)
            per = cpu / cycles * 1000 if cycles else float("nan")
            label = "bench process" if proc == "bench" else f"{proc} process"
            if name == "HTTP" and proc == "bench":
                label = "clients (bench process)"
            parts.append(f"{label} {per:.1f} ms, {cpu / span:.2f} cores")
        print(f"  {name:<10} " + "; ".join(parts))
    cycles = sum(p.cycles for p in http)
    if cycles:
        print(f"  HTTP requests per cycle: {sum(p.requests for p in http) / cycles:.2f}")
    server, own = _cpu_per_cycle(http, "server"), _cpu_per_cycle(base, "bench")
    print(
        f"  the server spends {server / own:.2f}× the in-process CPU per cycle: the HTTP ratio "
        f"if both had one core to themselves would be about {own / server:.2f}"
    )
    print("\nerrors, executions and approvals:")
    for p in [*base, *http]:
        print(
            f"  {p.label:<10} errors {len(p.errors)}, outbox lines {p.outbox_lines}, distinct "
            f"tool_call_ids {p.distinct_ids}, duplicates {p.duplicates}, approvals accepted "
            f"{p.approved}, ledger succeeded {p.ledger_succeeded}"
        )
    for error in sorted({e for p in [*base, *http] for e in p.errors})[:10]:
        print(f"    error: {error}")
    print()
    for t in targets:
        verdict = {True: "PASS", False: "FAIL", None: "SKIP"}[t.passed]
        print(f"{verdict}  {t.name}: {t.detail}")


def _cpu_per_cycle(phases: list[Phase], process: str) -> float:
    cycles = sum(p.cycles for p in phases)
    return sum(p.cpu[process] for p in phases) / cycles if cycles else float("nan")


def _cell(seconds: float) -> str:
    return f"{'-':>10}" if math.isnan(seconds) else f"{seconds * 1000:>10.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (both phases)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=30.0,
        help=f"timed seconds per phase; under {MIN_JUDGED_SECONDS:.0f} the ratio is not judged",
    )
    parser.add_argument("--workers", type=int, default=2, help="hitl serve --workers")
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds of (in-process, HTTP), medians reported"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.workers < 1 or args.rounds < 1:
        parser.error("--clients, --seconds, --workers and --rounds must be positive")

    info = machine()
    http: list[Phase] = []
    base: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="hitl-bench-service-load-") as tmp:
        for r in range(args.rounds):  # both phases in every round, so noise hits both alike
            base.append(inprocess_phase(Path(tmp) / f"inprocess-{r}", args.clients, args.seconds))
            http.append(
                http_phase(Path(tmp) / f"http-{r}", args.clients, args.seconds, args.workers)
            )
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    info["load_average_at_end"] = [round(x, 2) for x in load] if load else None
    if args.rounds > 1:
        for phases in (base, http):
            for r, phase in enumerate(phases, 1):
                phase.label = f"{phase.name} round {r}"
    ratio = statistics.median(p.per_second for p in http) / statistics.median(
        p.per_second for p in base
    )
    targets = judge(http, base, ratio, args.seconds)
    if args.json:
        document = {
            "machine": info,
            "options": vars(args),
            "in_process": [p.summary() for p in base],
            "http": [p.summary() for p in http],
            "ratio": round(ratio, 3),
            "server_cpu_per_cycle_vs_in_process": round(
                _cpu_per_cycle(http, "server") / _cpu_per_cycle(base, "bench"), 3
            ),
            "targets": [asdict(t) for t in targets],
        }
        print(json.dumps(document, indent=2))
    else:
        report(args, info, http, base, ratio, targets)
    if any(t.passed is False for t in targets):
        sys.exit(1)


if __name__ == "__main__":
    main()
