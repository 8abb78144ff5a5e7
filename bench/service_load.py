"""Benchmark: full approval cycles per second through the HTTP service, under concurrent clients.

Starts one real `hitl serve` (a subprocess on a free port, its own temp SQLite file, the
offline model, `--workers` run threads) and lets `--clients` threads, each with its own
`httpx.Client`, loop for `--seconds`: start a thread (`POST /threads`), wait for its run
(`GET /runs/{id}?wait=10`), read its pending call (`GET /threads/{id}`), approve it
(`POST /threads/{id}/approve`), wait for that run (the demo `send_email` tool appends a line to
the outbox). The baseline, measured in the same run for the same time with the same number of
threads: the same workload in this process without HTTP, each thread with its own
`open_service` on another temp database (`service.run`, then `service.decide`).

Then the same HTTP workload on PostgreSQL, once per count of `--pg-processes` (default 1, 2
and 3): that many `hitl serve` processes on one fresh schema of `--pg-url`, sharing one
outbox. By default each request goes to a process picked at random (`--pg-route random`), so
one cycle's steps are served by different processes; `--pg-route client` sends all of client
i's requests to process i mod N. Either way a run may be taken by any process's worker, and a
process that waits for a run another one ran learns of its end from PostgreSQL (NOTIFY);
the latencies of `run` and `resumed` show what that costs. Without a reachable server a
one-line note says so and only the SQLite part runs.

It prints cycles per second of each configuration and its ratio to the in-process baseline,
p50/p99 latency of a cycle and of each request, errors (a non-2xx answer, an exception, a
failed run), and checks that every approval ran its tool exactly once: outbox lines, distinct
tool call IDs in the outbox, approvals accepted (202) and the ledger's succeeded calls (read
from SQLite or PostgreSQL) must all be equal. Targets, over every configuration: zero errors,
zero duplicate executions, executions == approvals; and for SQLite only, ratio HTTP /
in-process ≥ 0.5 (judged only with `--seconds` ≥ 30: shorter runs are smoke runs; the
PostgreSQL ratios are printed, not judged). Exits 1 if a judged target fails.

    python -m bench.service_load [--clients 8] [--seconds 30] [--workers 2] [--rounds 1]
        [--pg-processes 1,2,3 | --no-pg] [--pg-url URL] [--pg-route random|client] [--json]
"""

import argparse
import json
import math
import os
import platform
import random
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
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg

from hitl.app import open_service
from hitl.checkpoints.urls import DatabaseName, display, is_postgres
from hitl.service.settings import Settings
from hitl.service.workflow import ApprovalService

PROMPT = "Send sally@example.com an email saying 'hi'"
TARGET_RATIO = 0.5
MIN_JUDGED_SECONDS = 30.0
"""Shorter runs are smoke runs: every figure is printed, the ratio is not judged."""
WARM_UP_CYCLES = 1
"""Untimed cycles per client before the clock starts (imports, caches, connections)."""
STARTUP_TIMEOUT_SECONDS = 60.0
RUN_TIMEOUT_SECONDS = 120.0
HITL = Path(sys.executable).parent / "hitl"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
"""The PostgreSQL server when neither `--pg-url` nor `HITL_BENCH_PG` names one."""
ROUTES = ("random", "client")
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
    """One timed phase (in-process, or HTTP on one backend), checked against its outbox and
    ledger."""

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
    """CPU seconds spent in the timed span, by process: "bench" (this one), "server" (the
    `hitl serve` processes), "postgres" (their PostgreSQL backends, if on this machine)."""
    requests: int = 0
    """HTTP requests sent in the timed span (0 in-process)."""
    backend: str = "sqlite"
    processes: int = 0
    """`hitl serve` processes (0 in-process)."""
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
            "backend": self.backend,
            "processes": self.processes,
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
            "cores_busy": {
                k: None if math.isnan(v) else round(v / self.span, 2) for k, v in self.cpu.items()
            },
            "http_requests_per_cycle": round(self.requests / self.cycles, 2)
            if self.cycles
            else None,
        }


@dataclass(frozen=True)
class PgOptions:
    """Where and how the PostgreSQL rounds run."""

    url: str
    """The server; each configuration gets a fresh schema on it."""
    processes: tuple[int, ...]
    """`hitl serve` process counts, one configuration each."""
    route: str
    """"random": each request to a random process; "client": client i to process i mod N."""


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


# the HTTP phases


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path


@contextmanager
def hitl_serves(
    work: Path, workers: int, db: DatabaseName, outbox: Path, count: int = 1
) -> Iterator[tuple[list[Server], str]]:
    """`count` `hitl serve` subprocesses on `db`, all writing to `outbox`, and the first admin
    token; stopped (SIGINT) at the end.

    The first is up before the others start: it creates the tables and the admin token
    (printed once), which every process then accepts.
    """
    servers: list[Server] = []
    try:
        servers.append(_spawn(work, workers, db, outbox, "serve-0.log"))
        _wait_until_up(servers[0])
        found = _ADMIN.search(_log(servers[0].log_path))
        if not found:
            raise RuntimeError(f"hitl serve printed no admin token:\n{_log(servers[0].log_path)}")
        servers += [_spawn(work, workers, db, outbox, f"serve-{n}.log") for n in range(1, count)]
        for server in servers[1:]:
            _wait_until_up(server)
        yield servers, found.group(1)
    finally:
        for server in servers:
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGINT)  # shutdown waits for runs in progress
        for server in servers:
            try:
                server.process.wait(60)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(10)


def _spawn(work: Path, workers: int, db: DatabaseName, outbox: Path, log_name: str) -> Server:
    env = dict(os.environ)
    for name in ("HITL_TOOLS", "HITL_POLICY", "HITL_ACTOR"):  # the demo tools and policy
        env.pop(name, None)
    env.update(HITL_DB=str(db), HITL_OUTBOX=str(outbox), HITL_MODEL="offline")
    env.update(PYTHONUNBUFFERED="1")
    port = _free_port()
    command = [str(HITL), "serve", "--port", str(port), "--workers", str(workers)]
    log_path = work / log_name
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Server(f"http://127.0.0.1:{port}", process, log_path)


def _wait_until_up(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"hitl serve exited with {server.process.returncode}:\n{_log(server.log_path)}"
            )
        try:
            if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"hitl serve did not start:\n{_log(server.log_path)}")
        time.sleep(0.1)


def http_phase(
    work: Path,
    clients: int,
    seconds: float,
    workers: int,
    *,
    db: DatabaseName | None = None,
    processes: int = 1,
    route: str = "random",
    name: str = "http",
    pg_backends: str | None = None,
) -> Phase:
    """The HTTP workload against `processes` `hitl serve` on `db` (default: a SQLite file in
    `work`); with several, `route` says which process each request goes to. `pg_backends`:
    the `application_name` of the servers' PostgreSQL connections, whose CPU is measured."""
    work.mkdir()
    db = work / "hitl.sqlite" if db is None else db
    outbox = work / "outbox.jsonl"
    with hitl_serves(work, workers, db, outbox, processes) as (servers, token):
        headers = {"Authorization": f"Bearer {token}"}
        sessions = [
            [httpx.Client(base_url=s.url, headers=headers, timeout=60) for s in servers]
            for _ in range(clients)
        ]
        pickers = [_picker(n, sessions[n], route) for n in range(clients)]

        def cycle(n: int, log: ClientLog) -> None:
            pick = pickers[n]
            begin = time.perf_counter()
            started = _call(log, "start", pick().post, "/threads", json={"prompt": PROMPT})
            thread_id = started["thread_id"]
            _wait_run(log, "run", pick, started["run"]["run_id"])
            view = _call(log, "thread", pick().get, f"/threads/{thread_id}")
            if not view.get("pending"):
                raise CycleFailed(f"thread {thread_id} has no pending call: {view.get('status')}")
            call = view["pending"][0]["tool_call_id"]
            approved = _call(
                log, "approve", pick().post, f"/threads/{thread_id}/approve", json={"call": call}
            )
            log.approved += 1
            _wait_run(log, "resumed", pick, approved["run"]["run_id"])
            log.took("cycle", time.perf_counter() - begin)

        meter = CpuMeter(
            {f"server-{i}": s.process.pid for i, s in enumerate(servers)},
            postgres=None if pg_backends is None else (str(db), pg_backends),
        )
        try:
            logs, span, cpu = run_clients(clients, seconds, cycle, meter)
        finally:
            for own in sessions:
                for s in own:
                    s.close()
    # the servers have stopped: the outbox and database are final
    servers_cpu = sum(v for k, v in cpu.items() if k.startswith("server-"))
    return _phase(
        name,
        clients,
        span,
        logs,
        {"bench": cpu["bench"], "server": servers_cpu}
        | ({"postgres": cpu["postgres"]} if "postgres" in cpu else {}),
        db,
        outbox,
        processes=processes,
    )


def _picker(n: int, sessions: list[httpx.Client], route: str) -> Callable[[], httpx.Client]:
    """Which process client `n` sends its next request to."""
    if route == "client" or len(sessions) == 1:
        own = sessions[n % len(sessions)]
        return lambda: own
    chance = random.Random(n)  # each client thread its own: `random`'s shared one has a lock
    return lambda: chance.choice(sessions)


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


def _wait_run(log: ClientLog, kind: str, pick: Callable[[], httpx.Client], run_id: str) -> None:
    """Long-poll the run until it has finished; a failed run fails the cycle."""
    begin = time.perf_counter()
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while True:
        answer = pick().get(f"/runs/{run_id}", params={"wait": 10})
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


# PostgreSQL


def pg_unreachable(url: str) -> str | None:
    """Why the PostgreSQL rounds cannot run on `url` (None: they can)."""
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        return f"PostgreSQL at {display(url)} is not reachable ({first})"
    return None


@contextmanager
def fresh_schema(url: str) -> Iterator[tuple[str, str]]:
    """A URL whose tables all land in a new, empty schema of `url` (dropped afterwards), and
    that schema's name, which is also the `application_name` of the URL's connections."""
    schema = f"hitl_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in url else "?"
    try:
        yield (
            f"{url}{separator}options={quote(f'-csearch_path={schema}')}&application_name={schema}",
            schema,
        )
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '20s'")
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def pg_phase(
    work: Path, clients: int, seconds: float, workers: int, pg: PgOptions, processes: int
) -> Phase:
    with fresh_schema(pg.url) as (url, schema):
        return http_phase(
            work,
            clients,
            seconds,
            workers,
            db=url,
            processes=processes,
            route=pg.route,
            name=f"pg×{processes}",
            pg_backends=schema,
        )


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
        service.decide(
            view.thread_id, {view.pending[0].tool_call_id: {"type": "approve"}}, actor="bob"
        )
        after = service.show(view.thread_id)
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
    return _phase("in-process", clients, span, logs, cpu, db, outbox, processes=0)


# checks and figures


def _phase(
    name: str,
    clients: int,
    span: float,
    logs: list[ClientLog],
    cpu: dict[str, float],
    db: DatabaseName,
    outbox: Path,
    *,
    processes: int,
) -> Phase:
    sent = Counter(_sent_call_ids(outbox))
    return Phase(
        name=name,
        clients=clients,
        span=span,
        cycles=sum(log.cycles for log in logs),
        latencies={k: [x for log in logs for x in log.latencies[k]] for k in KINDS},
        errors=[e for log in logs for e in log.errors],
        approved=sum(log.approved for log in logs),
        ledger_succeeded=_ledger_succeeded(db),
        outbox_lines=sum(sent.values()),
        distinct_ids=len(sent),
        duplicates=sum(1 for n in sent.values() if n > 1),
        cpu=cpu,
        requests=sum(log.requests for log in logs),
        backend="postgres" if is_postgres(db) else "sqlite",
        processes=processes,
    )


def _ledger_succeeded(db: DatabaseName) -> int:
    """Calls the ledger says ran and succeeded, read straight from the database."""
    query = "SELECT COUNT(*) FROM hitl_approvals WHERE status = 'succeeded'"
    if is_postgres(db):
        with psycopg.connect(str(db)) as conn:
            row = conn.execute(query).fetchone()
    else:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as lite:
            row = lite.execute(query).fetchone()
    return int(row[0]) if row else 0


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
    """CPU seconds used so far by this process and, on Linux, by other processes by pid; with
    `postgres` (a server URL and an `application_name`), by the PostgreSQL backends of the
    connections so named, when the server runs on this machine (NaN otherwise)."""

    def __init__(
        self, pids: dict[str, int] | None = None, *, postgres: tuple[str, str] | None = None
    ) -> None:
        self._pids = pids or {}
        self._postgres = postgres
        self._backends: dict[int, float] = {}
        """Each backend seen, at its last reading: one that has exited keeps what it used."""

    def read(self) -> dict[str, float]:
        used = {"bench": time.process_time()}
        for name, pid in self._pids.items():
            used[name] = _cpu_seconds(pid)
        if self._postgres is not None:
            used["postgres"] = self._read_backends(*self._postgres)
        return used

    def _read_backends(self, url: str, application_name: str) -> float:
        try:
            with psycopg.connect(url, application_name="hitl-bench-meter") as conn:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                    (application_name,),
                ).fetchall()
        except psycopg.Error:
            return float("nan")
        for (pid,) in rows:
            if _command(pid) in ("postgres", "postmaster"):
                self._backends[pid] = _cpu_seconds(pid)
        if rows and not self._backends:
            return float("nan")  # the server runs elsewhere: its backends are not ours to see
        return sum(self._backends.values())


def _cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) process `pid` has used so far; NaN if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


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


def judge(every: list[Phase], ratio: float, seconds: float) -> list[Target]:
    """The targets over every phase; the ratio is SQLite HTTP's (PostgreSQL's is not judged)."""
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


def configurations(
    base: list[Phase], http: list[Phase], pg: dict[int, list[Phase]]
) -> list[tuple[str, list[Phase]]]:
    """Every configuration measured, with its rounds: the baseline first."""
    return [
        ("in-process (baseline)", base),
        ("HTTP, SQLite, 1 process", http),
        *((f"HTTP, PostgreSQL, {n} process{'es' if n > 1 else ''}", pg[n]) for n in sorted(pg)),
    ]


def report(
    args: argparse.Namespace,
    info: dict[str, Any],
    http: list[Phase],
    base: list[Phase],
    pg: dict[int, list[Phase]],
    pg_options: PgOptions | None,
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
    if pg_options and pg:
        route = (
            "each request to a process picked at random"
            if pg_options.route == "random"
            else "client i to process i mod N"
        )
        print(
            f"PostgreSQL at {display(pg_options.url)}: "
            f"{', '.join(map(str, sorted(pg)))} hitl serve process(es) on a fresh schema each, "
            f"one shared outbox, {route}"
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
    if pg:
        _report_configurations(base, http, pg)
    every = [*base, *http, *(p for n in sorted(pg) for p in pg[n])]
    print("\nerrors, executions and approvals:")
    for p in every:
        print(
            f"  {p.label:<10} errors {len(p.errors)}, outbox lines {p.outbox_lines}, distinct "
            f"tool_call_ids {p.distinct_ids}, duplicates {p.duplicates}, approvals accepted "
            f"{p.approved}, ledger succeeded {p.ledger_succeeded}"
        )
    for error in sorted({e for p in every for e in p.errors})[:10]:
        print(f"    error: {error}")
    print()
    for t in targets:
        verdict = {True: "PASS", False: "FAIL", None: "SKIP"}[t.passed]
        print(f"{verdict}  {t.name}: {t.detail}")


def _report_configurations(
    base: list[Phase], http: list[Phase], pg: dict[int, list[Phase]]
) -> None:
    """Every configuration side by side, then each step's latency over HTTP."""
    rate_base = statistics.median(p.per_second for p in base)
    print(
        "\nevery configuration of this run (cycles/s: median of rounds; cycle latency in ms: "
        "all rounds; CPU per cycle: of the hitl serve processes, in-process of this one, and of "
        "their PostgreSQL backends, ms):"
    )
    print(
        f"  {'configuration':<30} {'cycles/s':>8} {'ratio':>6} {'cycle p50':>9} {'cycle p99':>9} "
        f"{'errors':>6}  {'tool runs = approvals':<21} {'duplicates':>10} "
        f"{'CPU ms':>7} {'PG CPU':>7}"
    )
    for name, phases in configurations(base, http, pg):
        rate = statistics.median(p.per_second for p in phases)
        cycle = [x for p in phases for x in p.latencies["cycle"]]
        runs, approved = sum(p.outbox_lines for p in phases), sum(p.approved for p in phases)
        process = "bench" if phases is base else "server"
        tally = f"{runs} {'=' if runs == approved else '≠'} {approved}"
        postgres = _cpu_per_cycle(phases, "postgres") if "postgres" in phases[0].cpu else math.nan
        print(
            f"  {name:<30} {rate:8.1f} {rate / rate_base:6.2f} "
            f"{_cell(percentile(cycle, 50), 9)} {_cell(percentile(cycle, 99), 9)} "
            f"{sum(len(p.errors) for p in phases):>6}  "
            f"{tally:<21} "
            f"{sum(p.duplicates for p in phases):>10} "
            f"{_cell(_cpu_per_cycle(phases, process), 7)} {_cell(postgres, 7)}"
        )
    columns = [("SQLite ×1", http), *((f"PostgreSQL ×{n}", pg[n]) for n in sorted(pg))]
    print("\nlatency of each HTTP step, all rounds (ms, p50 / p99):")
    print(f"  {'':<10}" + "".join(f" {title:>19}" for title, _ in columns))
    for kind in KINDS:
        cells = []
        for _, phases in columns:
            values = [x for p in phases for x in p.latencies[kind]]
            cells.append(f"{_cell(percentile(values, 50), 9)} {_cell(percentile(values, 99), 9)}")
        print(f"  {kind:<10}" + "".join(f" {c}" for c in cells))


def _cpu_per_cycle(phases: list[Phase], process: str) -> float:
    cycles = sum(p.cycles for p in phases)
    return sum(p.cpu[process] for p in phases) / cycles if cycles else float("nan")


def _cell(seconds: float, width: int = 10) -> str:
    return f"{'-':>{width}}" if math.isnan(seconds) else f"{seconds * 1000:>{width}.1f}"


def _process_counts(text: str) -> tuple[int, ...]:
    """`--pg-processes`: "1,2,3" → (1, 2, 3); "" → () (no PostgreSQL rounds)."""
    try:
        counts = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list like 1,2,3") from None
    if any(n < 1 for n in counts):
        raise argparse.ArgumentTypeError("process counts must be positive")
    return tuple(sorted(set(counts)))


def _note(text: str, args: argparse.Namespace) -> None:
    """A line for the reader now: on stdout, or on stderr when stdout is one JSON document."""
    print(text, file=sys.stderr if args.json else sys.stdout, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (every phase)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=30.0,
        help=f"timed seconds per phase; under {MIN_JUDGED_SECONDS:.0f} the ratio is not judged",
    )
    parser.add_argument("--workers", type=int, default=2, help="hitl serve --workers")
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds of every phase, medians reported"
    )
    parser.add_argument(
        "--pg-processes",
        type=_process_counts,
        default=(1, 2, 3),
        metavar="N,N,...",
        help="hitl serve processes on one PostgreSQL database, one phase each (default 1,2,3; "
        "'' for none)",
    )
    parser.add_argument(
        "--no-pg",
        dest="pg_processes",
        action="store_const",
        const=(),
        help="no PostgreSQL phases (as --pg-processes '')",
    )
    parser.add_argument(
        "--pg-url",
        help=f"PostgreSQL server [env HITL_BENCH_PG; default {DEFAULT_PG_URL}]",
    )
    parser.add_argument(
        "--pg-route",
        choices=ROUTES,
        default="random",
        help="random: each request to a random process; client: client i to process i mod N",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.workers < 1 or args.rounds < 1:
        parser.error("--clients, --seconds, --workers and --rounds must be positive")
    args.pg_url = args.pg_url or os.environ.get("HITL_BENCH_PG") or DEFAULT_PG_URL

    pg_options: PgOptions | None = None
    skipped: str | None = None
    if args.pg_processes:
        skipped = pg_unreachable(args.pg_url)
        if skipped is None:
            pg_options = PgOptions(args.pg_url, args.pg_processes, args.pg_route)
        else:
            _note(f"note: {skipped}; only the SQLite phases run", args)

    info = machine()
    http: list[Phase] = []
    base: list[Phase] = []
    pg: dict[int, list[Phase]] = {n: [] for n in (pg_options.processes if pg_options else ())}
    with tempfile.TemporaryDirectory(prefix="hitl-bench-service-load-") as tmp:
        for r in range(args.rounds):  # every phase in every round, so noise hits all alike
            _progress(f"round {r + 1}: in-process")
            base.append(inprocess_phase(Path(tmp) / f"inprocess-{r}", args.clients, args.seconds))
            _progress(f"round {r + 1}: HTTP on SQLite, 1 process")
            http.append(
                http_phase(Path(tmp) / f"http-{r}", args.clients, args.seconds, args.workers)
            )
            for n in pg:
                assert pg_options is not None
                _progress(f"round {r + 1}: HTTP on PostgreSQL, {n} process(es)")
                pg[n].append(
                    pg_phase(
                        Path(tmp) / f"pg{n}-{r}",
                        args.clients,
                        args.seconds,
                        args.workers,
                        pg_options,
                        n,
                    )
                )
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    info["load_average_at_end"] = [round(x, 2) for x in load] if load else None
    if args.rounds > 1:
        for phases in (base, http, *pg.values()):
            for r, phase in enumerate(phases, 1):
                phase.label = f"{phase.name} round {r}"
    rate_base = statistics.median(p.per_second for p in base)
    ratio = statistics.median(p.per_second for p in http) / rate_base
    every = [*base, *http, *(p for n in sorted(pg) for p in pg[n])]
    targets = judge(every, ratio, args.seconds)
    if args.json:
        options = vars(args) | {
            "pg_url": display(args.pg_url),
            "pg_processes": list(args.pg_processes),
        }
        document = {
            "machine": info,
            "options": options,
            "in_process": [p.summary() for p in base],
            "http": [p.summary() for p in http],
            "ratio": round(ratio, 3),
            "server_cpu_per_cycle_vs_in_process": round(
                _cpu_per_cycle(http, "server") / _cpu_per_cycle(base, "bench"), 3
            ),
            "postgres": {
                "url": display(args.pg_url),
                "route": args.pg_route,
                "skipped": skipped,
                "configurations": [
                    {
                        "processes": n,
                        "cycles_per_second": round(
                            statistics.median(p.per_second for p in pg[n]), 3
                        ),
                        "ratio": round(
                            statistics.median(p.per_second for p in pg[n]) / rate_base, 3
                        ),
                        "rounds": [p.summary() for p in pg[n]],
                    }
                    for n in sorted(pg)
                ],
            },
            "targets": [asdict(t) for t in targets],
        }
        print(json.dumps(document, indent=2))
    else:
        report(args, info, http, base, pg, pg_options, ratio, targets)
    if any(t.passed is False for t in targets):
        sys.exit(1)


def _progress(text: str) -> None:
    print(f"service_load: {text} ...", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
