"""Benchmark: `hitl serve` against `langgraph dev`, full approval cycles over HTTP.

With 1 and 8 concurrent clients (issue "Exactly-once for free"), both servers serve the same
agent from a temporary project folder: LangChain's `create_agent`, a scripted model
(`ScriptedChatModel`), a tool that appends one line to a file and fsyncs it; each cycle on a
new thread (user message → proposed call → interrupt → approve → tool → final answer).

- The peer, the baseline: `langgraph dev --no-browser --no-reload` (no file watcher), its
  `langgraph.json` naming the agent with the stock `HumanInTheLoopMiddleware`, on the in-memory
  runtime (state in memory, never fsynced), driven by `langgraph-sdk`'s sync client:
  `threads.create`, `runs.wait` with the input, `runs.wait` with
  `command={"resume": {"decisions": [{"type": "approve"}]}}`.
- Ours: `hitl serve` on a SQLite file (every guarantee: checkpoints, ledger, audit) serving
  the agent with `ApprovalMiddleware` (`HITL_GRAPH`, `HITL_MODEL=script:FILE`), driven with
  httpx: `POST /threads`, `GET /runs/{id}?wait=`, `POST /threads/{id}/approve` (every pending
  call), `GET /runs/{id}?wait=`.

Both start once, with their own defaults unless told (`langgraph dev` runs one run at a time,
`hitl serve` two: see `--dev-jobs`, `--workers`), and stay up. Each round measures every
number of `--clients` on the peer, then on ours, for `--seconds` each: that many threads of
this process, each with its own client, doing whole cycles after one untimed cycle.

It prints cycles per second (median of the rounds) and their ratio to the peer's at the same
number of clients, p50/p99 latency of a cycle (all rounds), HTTP requests per cycle, CPU per
cycle of the server and of the clients (this process: both share the machine's cores), and
checks that every approval ran the tool once (lines in each server's side file = approvals
answered). Exits 1 if a target is missed:

- ours ≥ `--vs-dev` (1.2) × `langgraph dev` at the most clients;
- ours: p99 ≤ `--tail` (2.5) × p50 of a cycle, at each number of clients;
- no errors, and tool runs = approvals, on both servers.

    python -m bench.serve_vs_dev [--clients 1 8] [--seconds 20] [--rounds 3]
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from langgraph_sdk import get_sync_client

from bench._targets import Check, report_targets
from bench.service_load import machine, percentile

REPLIES = [{"tool_calls": [{"name": "append_line", "args": {"line": "hello"}}]}, "Done."]
PROMPT = "append hello"
AGENTS_PY = '''\
"""The agent both servers serve, alike but for the approval middleware."""

import json
import os
from pathlib import Path

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.tools import tool

from hitl import ApprovalMiddleware, ScriptedChatModel, chat_model


@tool
def append_line(line: str) -> str:
    """Append a line to the side-effect file, synced to disk."""
    with Path(os.environ["SIDE_FILE"]).open("a", encoding="utf-8") as out:
        out.write(line + "\\n")
        out.flush()
        os.fsync(out.fileno())
    return f"appended {line!r}"


script = json.loads(Path(__file__).with_name("script.json").read_text(encoding="utf-8"))
plain = create_agent(
    ScriptedChatModel.from_replies(script),
    tools=[append_line],
    middleware=[HumanInTheLoopMiddleware({"append_line": True})],
)
ours = create_agent(
    chat_model(),  # HITL_MODEL=script:script.json
    tools=[append_line],
    middleware=[ApprovalMiddleware({"append_line": True})],
)
'''
"""Built once at import: both servers run compiled graphs, never a factory per run."""
DEV, OURS = "langgraph dev", "hitl serve"
BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 120.0
WAIT = {"wait": 30}
"""Each request that starts a run answers when the run has ended (`?wait=`)."""
_ADMIN = re.compile(r"first admin token \(shown once, keep it safe\): (hitl_\S+)")


class CycleFailed(Exception):
    """A non-2xx answer, a failed run, or an answer that is not the cycle's."""


# the servers


@dataclass
class Server:
    """A running server, in a session of its own (stopped with every process in it)."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    side_file: Path
    """The file the agent's tool appends a line to, each time it runs."""
    token: str = ""
    """`hitl serve`'s first admin token."""

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def cpu_seconds(self) -> float:
        """CPU used so far by the live processes of the server's session (NaN off Linux)."""
        total, found = 0.0, False
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # exited meanwhile
            if int(fields[3]) == self.process.pid:  # the session's ID: its leader's pid
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                found = True
        return total if found else float("nan")

    def side_lines(self) -> int:
        return len(self.side_file.read_text().splitlines()) if self.side_file.exists() else 0


def write_project(folder: Path) -> None:
    folder.mkdir()
    (folder / "agents.py").write_text(AGENTS_PY, encoding="utf-8")
    (folder / "script.json").write_text(json.dumps(REPLIES), encoding="utf-8")
    config = {"dependencies": ["."], "graphs": {"agent": "./agents.py:plain"}, "env": {}}
    (folder / "langgraph.json").write_text(json.dumps(config), encoding="utf-8")


def environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without `HITL_*` settings, offline, output unbuffered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HITL_")}
    env.update(
        LANGSMITH_TRACING="false",
        LANGCHAIN_TRACING_V2="false",
        LANGGRAPH_NO_VERSION_CHECK="true",  # else a thread asks PyPI for a newer one
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        LOG_COLOR="false",
        PYTHONUNBUFFERED="1",
    )
    return env | extra


@contextlib.contextmanager
def serving(
    name: str, command: list[str], cwd: Path, env: dict[str, str], work: Path, side: Path
) -> Iterator[Server]:
    """Start a server on a free port (`command` ends with `--port`); stop it on the way out."""
    port = _free_port()
    log_path = work / f"{name.replace(' ', '-')}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, str(port)],
            cwd=cwd,
            env=env | {"SIDE_FILE": str(side)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, f"http://127.0.0.1:{port}", process, log_path, side)
    try:
        _wait_until_up(server)
        yield server
    finally:
        _stop(server.process)


def _wait_until_up(server: Server) -> None:
    probe = "/ok" if server.name == DEV else "/healthz"
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited:\n{server.log()[-8000:]}")
        with contextlib.suppress(httpx.TransportError):
            # the server's banner names its URL; without it, the answer came from someone else
            up = httpx.get(server.url + probe, timeout=2).status_code == 200
            if up and (server.name != DEV or server.url in server.log()):
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} did not start:\n{server.log()[-8000:]}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT the server's session (shutdown waits for runs in progress), then SIGKILL it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_TIMEOUT_SECONDS)
    with contextlib.suppress(ProcessLookupError):  # uvicorn's children can outlive it
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# the clients


@dataclass
class ClientLog:
    """What one client thread did."""

    timed: bool = False
    cycles: int = 0
    """Timed cycles completed."""
    latencies: list[float] = field(default_factory=list)
    requests: int = 0
    """HTTP requests sent in the timed span."""
    approvals: int = 0
    """Approvals the server answered, warm-up included."""
    error: str | None = None
    end: float = 0.0

    def sent(self, _request: httpx.Request) -> None:
        if self.timed:
            self.requests += 1


Cycle = Callable[[ClientLog], None]
"""One whole approval cycle on a new thread."""


def dev_client(url: str) -> Callable[[ClientLog], Cycle]:
    """A client of `langgraph dev` through `langgraph-sdk`, for one client thread."""

    def make(log: ClientLog) -> Cycle:
        sdk = get_sync_client(url=url, api_key=None, timeout=REQUEST_TIMEOUT_SECONDS)
        sdk.http.client.event_hooks = {"request": [log.sent]}

        def cycle(log: ClientLog) -> None:
            thread_id = sdk.threads.create()["thread_id"]
            start = {"messages": [{"role": "user", "content": PROMPT}]}
            asked: Any = sdk.runs.wait(thread_id, "agent", input=start)
            if not asked.get("__interrupt__"):
                raise CycleFailed(f"thread {thread_id} did not stop for approval: {asked}")
            approve = {"resume": {"decisions": [{"type": "approve"}]}}
            done: Any = sdk.runs.wait(thread_id, "agent", command=approve)
            log.approvals += 1
            if done["messages"][-1]["content"] != REPLIES[-1]:
                raise CycleFailed(f"thread {thread_id} ended with {done['messages'][-1]}")

        return cycle

    return make


def ours_client(url: str, token: str) -> Callable[[ClientLog], Cycle]:
    """A client of `hitl serve` through its HTTP API, for one client thread."""

    def make(log: ClientLog) -> Cycle:
        http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT_SECONDS,
            event_hooks={"request": [log.sent]},
        )

        def ended(answer: httpx.Response) -> Any:
            """The answer of a request that waited for its run (`200`), or the run followed
            to its end if it outlasted the wait (`202`)."""
            if answer.status_code not in (200, 202):
                raise CycleFailed(f"{answer.request.url.path}: {answer.status_code} {answer.text}")
            body = answer.json()
            if answer.status_code == 202:
                finish(body["run"]["run_id"])
            elif body["run"]["status"] != "done":
                raise CycleFailed(f"run {body['run']['run_id']} failed: {body['run']}")
            return body

        def finish(run_id: str) -> None:
            while True:  # each long-poll answers at the run's end, or after 10 s
                answer = http.get(f"/runs/{run_id}", params={"wait": 10})
                if not answer.is_success:
                    raise CycleFailed(f"GET /runs/{run_id}: {answer.status_code} {answer.text}")
                run = answer.json()
                if run["status"] == "done":
                    return
                if run["status"] == "failed":
                    raise CycleFailed(f"run {run_id} failed: {run.get('error')}")

        def cycle(log: ClientLog) -> None:
            # each request waits for the run it starts: two requests a cycle (the SDK: three)
            started = ended(http.post("/threads", json={"prompt": PROMPT}, params=WAIT))
            # no call named: every pending call, so no read of the thread first
            ended(http.post(f"/threads/{started['thread_id']}/approve", json={}, params=WAIT))
            log.approvals += 1

        return cycle

    return make


@dataclass
class Phase:
    """One server under one number of clients, for one timed span."""

    server: str
    clients: int
    span: float
    cycles: int
    latencies: list[float]
    requests: int
    cpu: float
    """The server's CPU seconds in the span."""
    client_cpu: float
    """This process's CPU seconds in the span: the clients (and the idle main thread)."""
    approvals: int
    errors: list[str]

    @property
    def rate(self) -> float:
        return self.cycles / self.span if self.span > 0 else 0.0


def measure(
    server: Server, clients: int, seconds: float, make: Callable[[ClientLog], Cycle]
) -> Phase:
    """`clients` threads: one untimed cycle each, then whole cycles until `seconds` have passed;
    a thread stops at its first error."""
    logs = [ClientLog() for _ in range(clients)]
    ready = threading.Barrier(clients + 1)
    go = threading.Event()
    deadline = [0.0]

    def client(log: ClientLog) -> None:
        cycle = make(log)
        try:
            cycle(log)
        except Exception as e:
            log.error = f"warm-up: {type(e).__name__}: {str(e)[:300]}"
        ready.wait()
        go.wait()
        log.timed = True
        while log.error is None and time.monotonic() < deadline[0]:
            begin = time.perf_counter()
            try:
                cycle(log)
            except Exception as e:
                log.error = f"{type(e).__name__}: {str(e)[:300]}"
                break
            log.latencies.append(time.perf_counter() - begin)
            log.cycles += 1
        log.end = time.monotonic()

    threads = [threading.Thread(target=client, args=(log,), daemon=True) for log in logs]
    for t in threads:
        t.start()
    ready.wait()
    cpu, own = server.cpu_seconds(), time.process_time()
    start = time.monotonic()
    deadline[0] = start + seconds
    go.set()
    for t in threads:
        t.join()
    return Phase(
        server=server.name,
        clients=clients,
        span=max(log.end for log in logs) - start,
        cycles=sum(log.cycles for log in logs),
        latencies=[x for log in logs for x in log.latencies],
        requests=sum(log.requests for log in logs),
        cpu=server.cpu_seconds() - cpu,
        client_cpu=time.process_time() - own,
        approvals=sum(log.approvals for log in logs),
        errors=[log.error for log in logs if log.error],
    )


# the run


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--clients", type=int, nargs="+", default=[1, 8], help="numbers of concurrent clients"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per phase")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument(
        "--workers", type=int, help="hitl serve --workers (default: its own, 2 run threads)"
    )
    parser.add_argument(
        "--dev-jobs",
        type=int,
        help="langgraph dev --n-jobs-per-worker (default: its own, 1 run at a time)",
    )
    parser.add_argument(
        "--vs-dev", type=float, default=1.2, help="least ours ÷ langgraph dev, most clients"
    )
    parser.add_argument("--tail", type=float, default=2.5, help="most p99 ÷ p50 of ours' cycle")
    args = parser.parse_args()
    if min(args.clients) < 1 or args.seconds <= 0 or args.rounds < 1:
        parser.error("--clients, --seconds and --rounds must be positive")
    clients = sorted(set(args.clients))
    info = machine()
    phases: list[Phase] = []
    sides: dict[str, tuple[int, int]] = {}
    work = Path(tempfile.mkdtemp(prefix="hitl-bench-serve-vs-dev-"))
    try:
        project = work / "project"
        write_project(project)
        dev_command = [str(BIN / "langgraph"), "dev", "--no-browser", "--no-reload"]
        if args.dev_jobs:
            dev_command += ["--n-jobs-per-worker", str(args.dev_jobs)]
        ours_command = [str(BIN / "hitl"), "serve"]
        if args.workers:
            ours_command += ["--workers", str(args.workers)]
        ours_env = environment(
            {
                "HITL_DB": str(work / "hitl.sqlite"),
                "HITL_GRAPH": f"{project / 'agents.py'}:ours",
                "HITL_MODEL": f"script:{project / 'script.json'}",
                "HITL_OUTBOX": str(work / "outbox.jsonl"),
            }
        )
        with (
            serving(
                DEV,
                [*dev_command, "--host", "127.0.0.1", "--port"],
                project,
                environment({}),
                work,
                work / "dev-side.txt",
            ) as dev,
            serving(
                OURS, [*ours_command, "--port"], work, ours_env, work, work / "ours-side.txt"
            ) as ours,
        ):
            found = _ADMIN.search(ours.log())
            if found is None:
                raise RuntimeError(f"hitl serve printed no admin token:\n{ours.log()}")
            makers = {DEV: dev_client(dev.url), OURS: ours_client(ours.url, found.group(1))}
            for r in range(args.rounds):  # interleaved: machine noise hits both alike
                for n in clients:
                    for server in (dev, ours):
                        _progress(f"round {r + 1}: {server.name}, {n} client(s)")
                        phases.append(measure(server, n, args.seconds, makers[server.name]))
            for server in (dev, ours):
                approvals = sum(p.approvals for p in phases if p.server == server.name)
                sides[server.name] = (server.side_lines(), approvals)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report(phases, sides, clients, info, args)


def report(
    phases: list[Phase],
    sides: dict[str, tuple[int, int]],
    clients: list[int],
    info: dict[str, Any],
    args: argparse.Namespace,
) -> int:
    print(
        f"machine: {info['cpu_count']} CPUs ({info['usable_cpus']} usable), {info['cpu']}, "
        f"load {info['load_average_1_5_15']} at start, Python {info['python']}"
    )
    jobs = f"{args.dev_jobs} runs" if args.dev_jobs else "1 run (its default)"
    workers = f"{args.workers} run threads" if args.workers else "2 run threads (its default)"
    print(
        f"{DEV}: in-memory runtime, {jobs} at a time, langgraph-sdk clients; "
        f"{OURS}: SQLite file, {workers}, httpx clients"
    )
    print(
        f"approval cycles per second, median of {args.rounds} interleaved round(s) × "
        f"{args.seconds:g} s; cycle latency over every round:"
    )
    print(
        f"  {'clients':>7}  {'server':<13} {'cycles/s':>9} {'÷ dev':>6} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'p99÷p50':>7} {'requests/cycle':>14} {'CPU ms/cycle: server':>20} "
        f"{'clients':>7}  rounds (cycles/s)"
    )
    rate: dict[tuple[str, int], float] = {}
    tail: dict[tuple[str, int], float] = {}
    for n in clients:
        for name in (DEV, OURS):
            own = [p for p in phases if p.server == name and p.clients == n]
            rate[name, n] = statistics.median(p.rate for p in own)
            cycles = sum(p.cycles for p in own)
            every = [x for p in own for x in p.latencies]
            p50, p99 = percentile(every, 50), percentile(every, 99)
            tail[name, n] = p99 / p50 if p50 > 0 else float("nan")
            requests = sum(p.requests for p in own) / cycles if cycles else float("nan")
            cpu = sum(p.cpu for p in own) / cycles * 1000 if cycles else float("nan")
            mine = sum(p.client_cpu for p in own) / cycles * 1000 if cycles else float("nan")
            print(
                f"  {n:>7}  {name:<13} {rate[name, n]:9.2f} "
                f"{rate[name, n] / rate[DEV, n] if rate[DEV, n] else float('nan'):6.2f} "
                f"{p50 * 1000:8.1f} {p99 * 1000:8.1f} {tail[name, n]:7.2f} "
                f"{requests:14.2f} {cpu:20.1f} {mine:7.1f}  "
                + " ".join(f"{p.rate:.2f}" for p in own)
            )
    errors = [f"{p.server}, {p.clients} client(s): {e}" for p in phases for e in p.errors]
    for error in errors[:10]:
        print(f"  error: {error}")
    for name, (lines, approvals) in sides.items():
        print(f"  {name}: tool runs {lines}, approvals answered {approvals}")
    most = clients[-1]
    versus = rate[OURS, most] / rate[DEV, most] if rate[DEV, most] else 0.0
    checks: list[Check] = [(f"{OURS} ÷ {DEV}, {most} client(s)", versus, ">=", args.vs_dev)]
    checks += [
        (f"{OURS} p99 ÷ p50, {n} client(s)", tail[OURS, n], "<=", args.tail) for n in clients
    ]
    checks += [("errors", float(len(errors)), "<=", 0.0)]
    checks += [
        (f"{name}: |tool runs − approvals|", float(abs(lines - approvals)), "<=", 0.0)
        for name, (lines, approvals) in sides.items()
    ]
    return report_targets(checks, width=38)


def _progress(text: str) -> None:
    print(f"serve_vs_dev: {text} ...", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
