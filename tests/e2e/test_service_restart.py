"""`hitl serve` killed with `kill -9` and started again on the same files: every run it had
accepted (202) finishes, no tool runs twice, and no message is answered twice."""

import sqlite3
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.support.environment import REPO_ROOT, importable
from tests.support.plugins import gate, held, plugin_spec
from tests.support.processes import eventually
from tests.support.prompts import email_prompt
from tests.support.services import HitlService, accepted, start_service, wait_run

WAIT_SECONDS = 30.0
REQUEUED = "runs were in flight when the last process stopped; running them again"
"""What the restarted service logs, after the number of runs it put back in the queue."""


def restartable(tmp: Path, workers: int) -> HitlService:
    """`hitl serve` on `tmp`'s files with the `slow_tools`."""
    env = {"HITL_TOOLS": plugin_spec("slow_tools"), **importable(REPO_ROOT)}
    return start_service(tmp, env=env, args=("--workers", str(workers)))


def restart(killed: HitlService) -> HitlService:
    """The service again, on the files of one that was killed, its gate open."""
    gate(killed.outbox).unlink()
    held(killed.outbox).unlink()
    return start_service(
        killed.db.parent,
        env=killed.env,
        admin_token=killed.admin_token,
        log_name="restart.log",
    )


def kill_mid_tool(service: HitlService, ready: Callable[[], bool], what: str) -> None:
    """Once `ready()`, close the gate, wait until a tool is held there, and `kill -9`."""
    eventually(ready, what, WAIT_SECONDS)
    gate(service.outbox).touch()
    eventually(held(service.outbox).exists, "a tool is held at the gate", WAIT_SECONDS)
    service.kill()


def sent(service: HitlService) -> list[str]:
    """The call IDs `send_email` delivered, once per delivery."""
    if not service.outbox.exists():
        return []
    return service.outbox.read_text().split()


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the database as it is on disk (the service may be writing, or dead)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        return conn.execute(sql).fetchall()


def running_calls(db: Path) -> set[str]:
    """The calls that began and have not journaled an end."""
    rows = query(db, "SELECT tool_call_id FROM hitl_approvals WHERE status = 'running'")
    return {r[0] for r in rows}


def running_runs(db: Path) -> set[str]:
    return {r[0] for r in query(db, "SELECT run_id FROM hitl_runs WHERE status = 'running'")}


def runs_by_status(db: Path) -> Counter[str]:
    return Counter(dict(query(db, "SELECT status, COUNT(*) FROM hitl_runs GROUP BY status")))


def count_prompt(n: int) -> str:
    return f"count my emails of the last {n} days"


def count_answer(n: int) -> str:
    return (
        f"Here is what happened:\n- count_emails: You received {n * 7} emails in the last {n} days."
    )


@pytest.mark.slow
def test_a_service_killed_mid_tool_finishes_every_accepted_run_and_runs_no_tool_twice(
    tmp_path: Path,
) -> None:
    first = restartable(tmp_path, workers=2)
    try:
        with first.client() as client:
            starts = [
                accepted(client.post("/threads", json={"prompt": email_prompt(n)}))
                for n in range(12)
            ]
            for start in starts:
                assert wait_run(client, start["run"]["run_id"], WAIT_SECONDS)["status"] == "done"
            approvals = [
                accepted(client.post(f"/threads/{s['thread_id']}/approve", json={})) for s in starts
            ]
        kill_mid_tool(first, lambda: len(sent(first)) >= 3, "some emails were sent")
    finally:
        first.stop()
    call_of = {a["thread_id"]: a["decided"][0]["tool_call_id"] for a in approvals}
    in_flight, runs_in_flight = running_calls(first.db), running_runs(first.db)
    assert in_flight and runs_in_flight
    assert len(sent(first)) < len(call_of), "every email was sent before the kill"

    second = restart(first)
    try:
        with second.client() as client:
            for approval in approvals:  # none lost: every accepted run ends, and ends well
                run = wait_run(client, approval["run"]["run_id"], WAIT_SECONDS)
                assert (run["status"], run["error"]) == ("done", None)
                if run["run_id"] in runs_in_flight:  # put back in the queue, run again
                    assert run["attempts"] >= 2
            views = {t: client.get(f"/threads/{t}").json() for t in call_of}
            unknown = {
                p["tool_call_id"]: t
                for t, view in views.items()
                for p in view["pending"]
                if p["status"] == "outcome_unknown"
            }
            # the calls cut short wait for a person (they may have sent); the others finished
            assert set(unknown) == in_flight
            for thread_id, view in views.items():
                if call_of[thread_id] not in unknown:
                    assert (view["status"], view["pending"]) == ("done", []), view

            for call, thread_id in unknown.items():  # what an operator does: look, then settle
                action = "mark_done" if call in sent(second) else "retry"
                settled = client.post(
                    f"/threads/{thread_id}/reconcile", json={"call": call, "action": action}
                )
                run = wait_run(client, accepted(settled)["run"]["run_id"], WAIT_SECONDS)
                assert run["status"] == "done"
                assert client.get(f"/threads/{thread_id}").json()["status"] == "done"
    finally:
        second.stop()

    deliveries = Counter(sent(second))
    assert set(deliveries) == set(call_of.values()), "an approved email was never sent"
    assert [c for c, n in deliveries.items() if n > 1] == [], "an email was sent twice"
    assert f"{REQUEUED}: {len(runs_in_flight)}" in second.log()


@pytest.mark.slow
def test_messages_queued_or_running_when_the_service_was_killed_are_each_answered_once(
    tmp_path: Path,
) -> None:
    first = restartable(tmp_path, workers=1)  # the runs queue up behind the one that runs
    try:
        with first.client() as client:
            starts = [
                accepted(client.post("/threads", json={"prompt": count_prompt(n)}))
                for n in range(1, 9)
            ]

        def one_done_and_more_queued() -> bool:
            runs = runs_by_status(first.db)
            return runs["done"] >= 1 and runs["queued"] >= 3

        kill_mid_tool(first, one_done_and_more_queued, "a run is done and more are queued")
    finally:
        first.stop()
    at_kill, in_flight = runs_by_status(first.db), running_calls(first.db)
    assert at_kill["queued"] >= 2 and at_kill["running"] == 1 and len(in_flight) == 1

    second = restart(first)
    try:
        with second.client() as client:
            reconciled = set()
            for n, start in enumerate(starts, start=1):
                thread_id = start["thread_id"]
                run = wait_run(client, start["run"]["run_id"], WAIT_SECONDS)
                assert (run["status"], run["error"]) == ("done", None)
                view = client.get(f"/threads/{thread_id}").json()
                if view["status"] == "interrupted":  # its count was cut short by the kill
                    [unknown] = view["pending"]
                    assert unknown["status"] == "outcome_unknown"
                    call = unknown["tool_call_id"]
                    retried = client.post(
                        f"/threads/{thread_id}/reconcile", json={"call": call, "action": "retry"}
                    )
                    wait_run(client, accepted(retried)["run"]["run_id"], WAIT_SECONDS)
                    reconciled.add(call)
                    view = client.get(f"/threads/{thread_id}").json()
                humans = [m["content"] for m in view["messages"] if m["type"] == "human"]
                turns = [m for m in view["messages"] if m["type"] == "ai" and m.get("tool_calls")]
                assert humans == [count_prompt(n)], "a message was lost or sent twice"
                assert len(turns) == 1, "a message was answered twice"
                assert (view["status"], view["answer"]) == ("done", count_answer(n))
    finally:
        second.stop()
    assert reconciled == in_flight
    assert f"{REQUEUED}: 1" in second.log()
