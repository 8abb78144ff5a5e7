"""Whether a runner is still alive, judged from another process on this host: a paused lease
holder keeps its lease, a runner token nobody holds is dead even if its pid was reused, an
attempt that ended is dead though its process lives, and a twin container's token is not judged
by our locks at all."""

import multiprocessing as mp
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hitl.checkpoints.errors import ThreadBusy
from hitl.checkpoints.ledger import alive_on_this_host, host_id, open_ledger
from tests.support.ledger import request_call
from tests.support.sql import execute


def _hold_lease(db: str, ready: Any) -> None:
    with open_ledger(db) as ledger, ledger.lease("t", ttl=0.5):
        ready.set()
        signal.pause()


def test_a_paused_lease_holder_on_this_host_keeps_its_lease_past_the_ttl(db: Path) -> None:
    with open_ledger(db):
        pass
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_lease, args=(str(db), ready))
    holder.start()
    try:
        assert ready.wait(60) and holder.pid is not None
        os.kill(holder.pid, signal.SIGSTOP)  # a debugger, a frozen container: alive, silent
        with open_ledger(db) as ledger, pytest.raises(ThreadBusy), ledger.lease("t", wait=1.5):
            pass
    finally:
        holder.kill()
        holder.join(30)


def test_a_token_of_another_container_with_the_same_host_name_is_not_judged_by_our_locks() -> None:
    """Same host name, same pid 1, another /tmp: that runner is alive while its lease lasts."""
    twin = f"{socket.gethostname()}~0ther1d0:1:a:b"
    assert host_id().startswith(socket.gethostname() + "~") and host_id() != twin.split(":")[0]
    assert alive_on_this_host(twin) is None
    assert alive_on_this_host(f"{host_id()}:1:a:b") is False  # ours, and nobody holds it


def test_a_runner_token_nobody_holds_is_dead_even_if_its_pid_is_alive(db: Path) -> None:
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        token = f"{host_id()}:{stranger.pid}:a:b"  # a reused pid, a finished attempt
        with open_ledger(db) as ledger:
            ledger.request(
                thread_id="t",
                tool_call_id="c",
                interrupt_id=None,
                tool="send_email",
                args={},
                requester="alice",
                needs_review=False,
                allowed_decisions=["approve"],
                description="",
            )
            execute(db, "UPDATE hitl_approvals SET status = 'running', runner = ?", (token,))
            orphaned = ledger.mark_orphaned_runs()
    finally:
        stranger.kill()
        stranger.wait()
    assert [r.status for r in orphaned] == ["outcome_unknown"]


def _start_and_leak(db: str, ready: Any) -> None:
    """A long-lived process whose attempt ended without a journaled result."""
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "a", args={"n": 1}, needs_review=False)
        ledger.begin("t", [("a", {"n": 1})])
        ledger.abandon("t", "a")  # e.g. the result could not be journaled
        ready.set()
        signal.pause()


def test_another_process_sees_an_ended_attempt_of_a_live_process_as_dead(db: Path) -> None:
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    service = ctx.Process(target=_start_and_leak, args=(str(db), ready))
    service.start()
    try:
        assert ready.wait(60)
        with open_ledger(db) as ledger:
            orphaned = ledger.mark_orphaned_runs()
    finally:
        service.kill()
        service.join(30)
    assert [(r.tool_call_id, r.status) for r in orphaned] == [("a", "outcome_unknown")]
