"""`hitl serve` while another process holds the SQLite write lock (a `hitl prune` VACUUM, a
`hitl db migrate`): the inbox, a thread, `/metrics` and `/healthz` still answer at once (in
WAL mode a reader never waits for a writer), and a write waits the lock out."""

import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.prompts import SALLY
from tests.support.services import (
    HitlService,
    accepted,
    running_service,
    start_and_wait,
    wait_run,
)

HOLD_SECONDS = 30.0
REQUESTS = 50
"""Requests to each endpoint, spread over the hold."""
P99_LIMIT_SECONDS = 2.0
HOLD_WRITE_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def client_of(service: HitlService, timeout: float) -> httpx.Client:
    """The admin's client, waiting up to `timeout` seconds for an answer."""
    headers = {"Authorization": f"Bearer {service.admin_token}"}
    return httpx.Client(base_url=service.url, headers=headers, timeout=timeout)


def p99(seconds: list[float]) -> float:
    ordered = sorted(seconds)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


@pytest.mark.slow
@pytest.mark.sqlite_only
def test_inbox_thread_metrics_and_healthz_answer_while_another_process_holds_the_write_lock(
    tmp_path: Path,
) -> None:
    with running_service(tmp_path) as service, service.client() as client:
        thread_id = start_and_wait(client, SALLY)["thread_id"]
        paths = {
            "/approvals": lambda c: c.get("/approvals"),
            f"/threads/{thread_id}": lambda c: c.get(f"/threads/{thread_id}"),
            "/metrics": lambda c: c.get("/metrics"),
            "/healthz": lambda c: c.get("/healthz"),
        }
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_WRITE_LOCK, str(service.db), str(HOLD_SECONDS)],
            stdout=subprocess.PIPE,
            text=True,
        )
        latencies: dict[str, list[float]] = {path: [] for path in paths}
        failures: list[str] = []
        started_during_hold: list[httpx.Response] = []
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            held_from = time.monotonic()

            def hammer(path: str) -> None:
                # each endpoint from its own client, all at once: the server opens stores on
                # fresh threads of its pool, as it does under load
                with client_of(service, HOLD_SECONDS + 30) as own:
                    for n in range(REQUESTS):
                        due = held_from + n * (HOLD_SECONDS - 2) / REQUESTS
                        time.sleep(max(0.0, due - time.monotonic()))
                        sent = time.monotonic()
                        answer = paths[path](own)
                        latencies[path].append(time.monotonic() - sent)
                        if answer.status_code != 200:
                            failures.append(f"{path}: {answer.status_code} {answer.text[:200]}")

            def write() -> None:  # a store's write waits for the lock: reads must not
                with client_of(service, HOLD_SECONDS + 60) as own:
                    started_during_hold.append(own.post("/threads", json={"prompt": SALLY}))

            threads = [threading.Thread(target=hammer, args=(path,)) for path in paths]
            threads.append(threading.Thread(target=write))
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            holder.wait(timeout=HOLD_SECONDS + 30)
        assert holder.returncode == 0
        figures = {path: p99(seconds) for path, seconds in latencies.items()}
        print(
            f"p99 over {REQUESTS} requests each, write lock held {HOLD_SECONDS:.0f} s: "
            + ", ".join(f"{path} {seconds:.3f} s" for path, seconds in figures.items())
        )
        assert failures == []
        assert all(len(seconds) == REQUESTS for seconds in latencies.values())
        assert max(figures.values()) < P99_LIMIT_SECONDS, figures
        # the write waited the lock out, and then went through
        wait_run(client, accepted(started_during_hold[0])["run"]["run_id"])


WAITING_WRITES = 50
"""More writes than the server has request threads (40): all of them wait for the lock."""


@pytest.mark.slow
@pytest.mark.sqlite_only
def test_healthz_answers_while_every_request_thread_waits_for_the_write_lock(
    tmp_path: Path,
) -> None:
    with running_service(tmp_path) as service:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_WRITE_LOCK, str(service.db), "15"],
            stdout=subprocess.PIPE,
            text=True,
        )
        answers: list[int] = []

        def write() -> None:
            with client_of(service, 60) as own:
                answers.append(own.post("/threads", json={"prompt": SALLY}).status_code)

        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            writes = [threading.Thread(target=write) for _ in range(WAITING_WRITES)]
            for t in writes:
                t.start()
            time.sleep(2)  # they have taken every request thread
            latencies = []
            with httpx.Client(base_url=service.url, timeout=60) as anyone:
                for _ in range(10):
                    sent = time.monotonic()
                    health = anyone.get("/healthz")
                    latencies.append(time.monotonic() - sent)
                    assert health.status_code == 200 and health.json()["ok"]
                    time.sleep(0.5)
            for t in writes:
                t.join()
        finally:
            holder.wait(timeout=30)
    print(
        f"/healthz behind {WAITING_WRITES} waiting writes: "
        + ", ".join(f"{seconds:.3f}" for seconds in latencies)
        + " s"
    )
    assert max(latencies) < P99_LIMIT_SECONDS
    assert len(answers) == WAITING_WRITES
