"""A `hitl serve` process on PostgreSQL keeps to its connection budget under load."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from tests.support.postgres import fresh_database
from tests.support.prompts import SALLY
from tests.support.services import running_service, start_and_wait, wait_run

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

POOL = 2
CLIENTS = 6
CYCLES_PER_CLIENT = 3
APPLICATION = "hitl-pool-budget"


def test_a_service_with_a_pool_of_two_serves_six_clients_and_holds_at_most_three_connections(
    tmp_path: Path,
) -> None:
    """Two pooled connections (shared by the saver and every store) plus the one that
    LISTENs for inbox notifications, however many requests wait on them."""
    with fresh_database() as base:
        url = f"{base}&application_name={APPLICATION}"
        peak = 0
        stop = threading.Event()

        def watch_connections() -> None:
            nonlocal peak
            with psycopg.connect(base, autocommit=True) as conn:
                while not stop.wait(0.05):
                    row = conn.execute(
                        "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = %s",
                        (APPLICATION,),
                    ).fetchone()
                    peak = max(peak, int(row[0]) if row else 0)

        with running_service(tmp_path, db=url, env={"HITL_PG_POOL_SIZE": str(POOL)}) as service:

            def cycles(n: int) -> list[str]:
                sent = []
                with service.client() as client:
                    for _ in range(CYCLES_PER_CLIENT):
                        view = start_and_wait(client, SALLY)
                        assert view["status"] == "interrupted", view
                        accepted = client.post(f"/threads/{view['thread_id']}/approve", json={})
                        assert accepted.status_code == 202, accepted.text
                        assert (
                            wait_run(client, accepted.json()["run"]["run_id"])["status"] == "done"
                        )
                        sent.append(view["pending"][0]["tool_call_id"])
                return sent

            watcher = threading.Thread(target=watch_connections)
            watcher.start()
            started = time.monotonic()
            try:
                with ThreadPoolExecutor(CLIENTS) as pool:
                    approved = [c for found in pool.map(cycles, range(CLIENTS)) for c in found]
            finally:
                stop.set()
                watcher.join()
            took = time.monotonic() - started
            sent = service.outbox.read_text().splitlines()
    assert len(approved) == len(set(approved)) == CLIENTS * CYCLES_PER_CLIENT
    assert len(sent) == len(approved), took
    assert 0 < peak <= POOL + 1, peak
