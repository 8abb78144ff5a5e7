"""What the service does on its own: sweeping overdue approvals, a first demo thread,
waiting out a thread another process is running."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hitl.app import open_service
from hitl.checkpoints.database import store_connection
from hitl.checkpoints.ledger import open_ledger
from hitl.checkpoints.stores import TokenStore
from hitl.checkpoints.urls import DatabaseName, is_postgres
from hitl.server.app import ServerOptions, create_app
from hitl.service.settings import Settings
from hitl.service.workflow import EveryPending
from tests.support.harness import hitl_settings
from tests.support.plugins import plugin_spec
from tests.support.processes import eventually
from tests.support.prompts import COUNT, SALLY
from tests.support.sql import execute


def settings(tmp_path: Path, db: DatabaseName, **environ: str) -> Settings:
    return hitl_settings(db, tmp_path / "outbox.jsonl", environ)


@contextmanager
def admin_client(
    app_settings: Settings, options: ServerOptions, name: str = "ops"
) -> Iterator[TestClient]:
    store = TokenStore(store_connection(app_settings.db), path=str(app_settings.db))
    secret = store.create(name, "admin", created_by="test")[1]
    store.close()
    with TestClient(create_app(app_settings, options)) as client:
        client.headers["Authorization"] = f"Bearer {secret}"
        yield client


def status(client: TestClient, thread_id: str) -> str | None:
    return client.get(f"/threads/{thread_id}").json().get("status")


def test_the_periodic_sweep_expires_an_overdue_approval_and_the_thread_moves_on(
    tmp_path: Path,
    db: DatabaseName,
) -> None:
    app_settings = settings(tmp_path, db, HITL_POLICY=plugin_spec("QUICK_DEADLINE"))
    options = ServerOptions(sweep_interval=0.2, webhooks=False)
    with admin_client(app_settings, options) as client:
        thread_id = client.post("/threads", json={"prompt": SALLY}).json()["thread_id"]
        eventually(lambda: status(client, thread_id) == "done")
        with open_ledger(app_settings.db) as ledger:
            (record,) = ledger.thread_records(thread_id)
        assert (record.status, record.decided_by) == ("expired", "hitl sweep")
        assert not (tmp_path / "outbox.jsonl").exists()  # on_expire="reject": nothing was sent


def test_without_the_sweep_an_overdue_approval_waits(tmp_path: Path, db: DatabaseName) -> None:
    """The control of the test above: with sweeping off, nothing expires by itself."""
    app_settings = settings(tmp_path, db, HITL_POLICY=plugin_spec("QUICK_DEADLINE"))
    with admin_client(app_settings, ServerOptions(sweep_interval=0, webhooks=False)) as client:
        thread_id = client.post("/threads", json={"prompt": SALLY}).json()["thread_id"]
        eventually(lambda: status(client, thread_id) == "interrupted")
        time.sleep(1.5)
        assert client.get(f"/threads/{thread_id}").json()["pending"][0]["status"] == "pending"


def test_the_demo_option_leaves_one_approval_waiting_and_only_once(
    tmp_path: Path, db: DatabaseName
) -> None:
    app_settings = settings(tmp_path, db)
    options = ServerOptions(sweep_interval=0, webhooks=False, demo_prompt=SALLY)
    with admin_client(app_settings, options) as client:
        eventually(lambda: client.get("/approvals").json()["total"] == 1)
    with admin_client(settings(tmp_path, db), options, "ops2") as client:  # a restart adds none
        time.sleep(0.5)
        assert client.get("/approvals").json()["total"] == 1


@pytest.mark.parametrize("holder_seconds", [1.5])
def test_a_thread_another_process_holds_is_run_once_it_is_free(
    tmp_path: Path, db: DatabaseName, holder_seconds: float
) -> None:
    app_settings = settings(tmp_path, db)
    with admin_client(app_settings, ServerOptions(sweep_interval=0, webhooks=False)) as client:
        thread_id = client.post("/threads", json={"prompt": SALLY}).json()["thread_id"]
        eventually(lambda: status(client, thread_id) == "interrupted")
        with open_ledger(app_settings.db, lock_wait=1.0) as ledger, ledger.lease(thread_id):
            run = client.post(f"/threads/{thread_id}/approve", json={}).json()["run"]
            time.sleep(holder_seconds)  # the worker finds the thread busy and waits its turn
            assert client.get(f"/runs/{run['run_id']}").json()["status"] in ("queued", "running")
        finished = client.get(f"/runs/{run['run_id']}", params={"wait": 30}).json()
        assert finished["status"] == "done", finished
        assert client.get(f"/threads/{thread_id}").json().get("status") == "done"


def test_a_decision_whose_run_was_never_queued_is_resumed_at_the_next_start(
    tmp_path: Path,
    db: DatabaseName,
) -> None:
    """The process died between recording the decision and queuing its run."""
    app_settings = settings(tmp_path, db)
    options = ServerOptions(sweep_interval=0, webhooks=False)
    with admin_client(app_settings, options) as client:
        thread_id = client.post("/threads", json={"prompt": SALLY}).json()["thread_id"]
        eventually(lambda: status(client, thread_id) == "interrupted")
    # recorded, never run: what the crash left
    with open_service(app_settings, moves_on=NeverMovesOn()) as service:
        service.decide(thread_id, EveryPending({"type": "approve"}), actor="ops")
    with admin_client(app_settings, options, "ops2") as client:
        eventually(lambda: status(client, thread_id) == "done")
    assert len((tmp_path / "outbox.jsonl").read_text().splitlines()) == 1


class NeverMovesOn:
    """A `MovesOn` whose process dies before it can run or queue anything."""

    def resume(self, service: object, thread_id: str, *, actor: str, after: str | None) -> None:
        return None

    def send(self, *args: object, **kwargs: object) -> None:
        return None

    def has_queued_run(self, thread_id: str) -> bool:
        return False


def test_a_tool_that_exits_fails_its_run_and_the_workers_keep_serving(
    tmp_path: Path, db: DatabaseName
) -> None:
    app_settings = settings(tmp_path, db, HITL_TOOLS=plugin_spec("broken_tools"))
    with admin_client(app_settings, ServerOptions(sweep_interval=0, webhooks=False)) as client:
        runs = [
            client.post("/threads", json={"prompt": COUNT})
            for _ in range(3)  # more runs than workers
        ]
        for accepted in runs:
            run = client.get(f"/runs/{accepted.json()['run']['run_id']}", params={"wait": 30})
            assert (run.json()["status"], run.json()["error"]["type"]) == ("failed", "SystemExit")
        health = client.get("/healthz").json()
        assert (health["ok"], health["workers_alive"]) == (True, 2)


def test_a_thread_whose_first_run_is_queued_shows_as_queued(
    tmp_path: Path, db: DatabaseName
) -> None:
    app_settings = settings(tmp_path, db)
    with admin_client(app_settings, ServerOptions(workers=0, sweep_interval=0)) as client:
        accepted = client.post("/threads", json={"prompt": SALLY, "thread_id": "q1"})
        assert accepted.status_code == 202
        assert client.get("/threads/q1").json()["status"] == "queued"
        again = client.post("/threads/q1/runs", json={"prompt": SALLY})
        assert again.status_code == 202  # queued behind the first: that run checks
        assert client.get("/healthz").status_code == 503  # no worker runs them


@pytest.mark.parametrize(
    ("older_than", "left"), [(None, 1), (0.0, 0)], ids=["trims", "deletes-by-age"]
)
def test_the_scheduled_prune_trims_or_deletes_finished_threads_and_leaves_waiting_ones(
    tmp_path: Path, db: DatabaseName, older_than: float | None, left: int
) -> None:
    app_settings = settings(tmp_path, db)
    options = ServerOptions(
        sweep_interval=0, webhooks=False, prune_interval=0.2, prune_older_than=older_than
    )

    def checkpoints(thread_id: str) -> int:
        found = execute(db, "SELECT COUNT(*) FROM checkpoints WHERE thread_id = ?", (thread_id,))
        return int(found[0][0])

    def counted(thread_id: str) -> bool:
        with open_ledger(app_settings.db) as ledger:
            return [r.status for r in ledger.thread_records(thread_id)] == ["succeeded"]

    with admin_client(app_settings, options) as client:
        done = client.post("/threads", json={"prompt": COUNT}).json()["thread_id"]
        waiting = client.post("/threads", json={"prompt": SALLY}).json()["thread_id"]
        eventually(lambda: counted(done))  # its checkpoints are on disk from here on
        eventually(lambda: checkpoints(done) == left)
        eventually(lambda: status(client, waiting) == "interrupted")
        time.sleep(0.5)  # a few more rounds: the waiting thread stays whole
        assert checkpoints(waiting) > 1
        run = client.post(f"/threads/{waiting}/approve", json={}).json()["run"]
        finished = client.get(f"/runs/{run['run_id']}", params={"wait": 30}).json()
        assert finished["status"] == "done", finished
    assert len((tmp_path / "outbox.jsonl").read_text().splitlines()) == 1
    if not is_postgres(db):  # the space went back to the file system too
        assert execute(db, "PRAGMA auto_vacuum") == [(2,)]  # incremental
