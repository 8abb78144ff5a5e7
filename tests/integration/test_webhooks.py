"""Signed webhooks from the real service's events to a real local receiver, retried, durable."""

import json
import logging
import multiprocessing as mp
import threading
import time
from collections import Counter
from datetime import timedelta
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hitl.checkpoints.errors import WebhookError
from hitl.checkpoints.stores import WebhookStore, open_webhook_store
from hitl.cli.main import cli as hitl_cli
from hitl.graph.policy import Policy, ToolRule
from hitl.service.webhooks import Destinations, WebhookDispatcher
from hitl.service.workflow import SWEEP_ACTOR
from tests.support.fakes import FakeClock, ToolLog
from tests.support.harness import open_test_service
from tests.support.http import assert_error, open_api
from tests.support.prompts import SALLY
from tests.support.webhooks import ALLOW_LOCAL_RECEIVERS, LOCAL_RECEIVERS, Receiver, serving

SECRET = "receiver-secret-0123456789"


def _add(store: WebhookStore, receiver: Receiver, path: str = "/hook", **options: Any) -> str:
    """Register the receiver's `path` with a generated secret; return the endpoint ID."""
    endpoint, secret = store.add_endpoint(receiver.url(path), created_by="ops", **options)
    receiver.secrets[path] = secret
    return endpoint.id


def _ask(db: Path, log: ToolLog) -> tuple[str, str]:
    """Start a run that asks for approval; return its thread and call IDs."""
    with open_test_service(db, log) as service:
        view = service.run(SALLY, actor="alice")
    return view.thread_id, view.pending[0].tool_call_id


def _approve(db: Path, log: ToolLog, thread_id: str, call_id: str) -> None:
    with open_test_service(db, log) as service:
        service.decide(thread_id, {call_id: "approve"}, actor="bob", comment="looks fine")


def test_an_approval_cycle_is_delivered_in_order_signed_and_as_documented(
    db: Path, log: ToolLog
) -> None:
    with serving() as receiver, open_webhook_store(db) as store:
        _add(store, receiver)
        thread_id, call_id = _ask(db, log)
        _approve(db, log, thread_id, call_id)
        with WebhookDispatcher(store, destinations=LOCAL_RECEIVERS) as dispatcher:
            assert dispatcher.run_once() == 3
            assert dispatcher.run_once() == 0  # nothing is sent twice
        sent_log = store.deliveries()

    got = receiver.received
    assert [r.event for r in got] == ["approval.requested", "approval.decided", "tool.finished"]
    assert all(r.valid for r in got)
    assert all(r.content_type == "application/json" for r in got)
    assert [r.payload["type"] for r in got] == [r.event for r in got]
    assert [d.status for d in sent_log] == ["delivered"] * 3 and [d.attempts for d in sent_log] == [
        1
    ] * 3
    assert [r.delivery for r in got] == [str(d.id) for d in reversed(sent_log)]  # newest first
    assert [r.body.decode() for r in got] == [d.payload for d in reversed(sent_log)]

    requested, decided, finished = (r.payload for r in got)
    assert len({p["id"] for p in (requested, decided, finished)}) == 3
    assert requested["id"].startswith(f"{thread_id}:")
    for p in (requested, decided, finished):
        assert p["thread_id"] == thread_id and p["tool_call_id"] == call_id
        assert p["created_at"].endswith("+00:00")
        assert p["data"]["tool"] == "send_email"
        assert p["data"]["args"] == {"message": "hi", "recipient": "sally@example.com"}
    assert requested["actor"] == "alice" and requested["data"]["status"] == "pending"
    assert decided["actor"] == "bob"
    assert decided["data"] | {"status": "approved", "decision": "approve"} == decided["data"]
    assert decided["data"]["comment"] == "looks fine"
    assert finished["data"]["status"] == "succeeded"
    assert finished["data"]["result_status"] == "success"


def test_a_failing_receiver_gets_the_delivery_on_the_third_attempt_after_growing_backoff(
    db: Path, log: ToolLog, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(time.time())
    with (
        serving(lambda n: 500 if n <= 2 else 204) as receiver,
        open_webhook_store(db, clock=clock) as store,
        WebhookDispatcher(store, destinations=LOCAL_RECEIVERS, clock=clock) as dispatcher,
        caplog.at_level(logging.WARNING),
    ):
        _add(store, receiver, events=["approval.requested"])
        _ask(db, log)
        first_at = clock()
        assert dispatcher.run_once() == 1
        (first,) = store.deliveries()
        assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 500)
        assert first.last_error == "HTTP 500: boom"
        assert dispatcher.run_once() == 0  # not due yet

        assert first.next_attempt_at is not None
        clock.advance(first.next_attempt_at - clock())
        second_at = clock()
        assert dispatcher.run_once() == 1
        second = store.delivery(first.id)
        assert second is not None and second.attempts == 2 and second.status == "pending"
        assert second.next_attempt_at is not None
        clock.advance(second.next_attempt_at - clock())
        assert dispatcher.run_once() == 1
        third = store.delivery(first.id)

    assert first.next_attempt_at == pytest.approx(first_at + 2)
    assert second.next_attempt_at == pytest.approx(second_at + 4)  # the wait doubled
    assert third is not None and third.status == "delivered" and third.attempts == 3
    assert third.last_status_code == 204 and third.last_error == "HTTP 500: boom"
    assert third.delivered_at == pytest.approx(second_at + 4)
    got = receiver.received
    assert len(got) == 3 and all(r.valid for r in got)
    assert len({r.body for r in got}) == 1 and len({r.delivery for r in got}) == 1
    assert [r.timestamp for r in got] == [int(first_at), int(second_at), int(second_at + 4)]
    assert "failed: HTTP 500" in caplog.text
    assert receiver.secrets["/hook"] not in caplog.text


def test_a_delivery_to_a_receiver_that_is_down_survives_a_restart(db: Path, log: ToolLog) -> None:
    clock = FakeClock(time.time())
    with serving() as gone:
        port = gone.port  # free now: connections are refused until a receiver listens again
    with open_webhook_store(db, clock=clock) as store:
        endpoint, secret = store.add_endpoint(
            gone.url(), events=["approval.requested"], created_by="ops"
        )
    _ask(db, log)  # no dispatcher is running: the event waits in the audit trail

    with (
        open_webhook_store(db, clock=clock) as store,
        WebhookDispatcher(
            store, destinations=LOCAL_RECEIVERS, clock=clock, timeout=2
        ) as dispatcher,
    ):
        assert dispatcher.run_once() == 1
        (failed,) = store.deliveries()
    assert failed.status == "pending" and failed.attempts == 1
    assert failed.last_status_code is None
    assert failed.last_error is not None and failed.last_error.startswith("ConnectError")

    clock.advance(2)
    with (
        serving(port=port) as receiver,
        open_webhook_store(db, clock=clock) as store,  # a restarted process
        WebhookDispatcher(store, destinations=LOCAL_RECEIVERS, clock=clock) as dispatcher,
    ):
        receiver.secrets["/hook"] = secret
        assert dispatcher.run_once() == 1
        assert dispatcher.run_once() == 0
        (delivered,) = store.deliveries()
    assert delivered.id == failed.id and delivered.status == "delivered"
    assert delivered.attempts == 2
    assert [(r.event, r.valid) for r in receiver.received] == [("approval.requested", True)]
    assert endpoint.id == delivered.webhook_id


def test_a_delivery_is_dead_after_max_attempts_until_it_is_sent_again_by_hand(
    db: Path, log: ToolLog
) -> None:
    clock = FakeClock(time.time())
    answers = {"code": 500}
    with (
        serving(lambda n: answers["code"]) as receiver,
        open_webhook_store(db, clock=clock, max_attempts=3) as store,
        WebhookDispatcher(store, destinations=LOCAL_RECEIVERS, clock=clock) as dispatcher,
    ):
        _add(store, receiver, events=["approval.requested"])
        _ask(db, log)
        for _ in range(3):
            assert dispatcher.run_once() == 1
            clock.advance(store.max_backoff)
        assert dispatcher.run_once() == 0
        (dead,) = store.deliveries(status="dead")
        answers["code"] = 200
        store.redeliver(dead.id)
        with pytest.raises(WebhookError, match="only a dead one"):
            store.redeliver(dead.id)
        assert dispatcher.run_once() == 1
        (delivered,) = store.deliveries()
    assert dead.attempts == 3 and dead.next_attempt_at is None
    assert dead.last_error == "gave up after 3 attempts; last: HTTP 500: boom"
    assert delivered.status == "delivered" and delivered.attempts == 1
    assert len(receiver.received) == 4


def test_a_claim_that_ran_out_cannot_record_over_the_dispatcher_that_took_it_over(
    db: Path, log: ToolLog
) -> None:
    clock = FakeClock(time.time())
    with serving() as receiver, open_webhook_store(db, clock=clock) as store:
        endpoint = _add(store, receiver, events=["approval.requested"])
        _ask(db, log)
        store.enqueue_from_audit()
        (slow,) = store.claim_due(clock(), limit=10, claim_seconds=30)
        assert store.claim_due(clock(), limit=10, claim_seconds=30) == []  # held
        clock.advance(31)
        (taken_over,) = store.claim_due(clock(), limit=10, claim_seconds=30)
        late = store.record_attempt(slow.delivery.id, ok=False, error="late", claim=slow.token)
        store.remove_endpoint(endpoint)  # while the second attempt is in flight
        done = store.record_attempt(taken_over.delivery.id, ok=True, claim=taken_over.token)
    assert late is None and taken_over.delivery.id == slow.delivery.id
    assert slow.secret not in repr(slow)
    assert done is not None and done.status == "delivered" and done.attempts == 1


def test_the_background_dispatcher_delivers_until_it_is_stopped(db: Path, log: ToolLog) -> None:
    with serving() as receiver, open_webhook_store(db) as store:
        _add(store, receiver)
        stop = threading.Event()
        with WebhookDispatcher(store, destinations=LOCAL_RECEIVERS) as dispatcher:
            worker = threading.Thread(target=dispatcher.run_forever, args=(stop, 0.02))
            worker.start()
            try:
                _ask(db, log)
                deadline = time.monotonic() + 10
                while not receiver.received and time.monotonic() < deadline:
                    time.sleep(0.01)
            finally:
                stop.set()
                worker.join(timeout=10)
    assert not worker.is_alive()
    assert [(r.event, r.valid) for r in receiver.received] == [("approval.requested", True)]


def test_a_removed_endpoint_gets_nothing_more_and_its_pending_deliveries_die(
    db: Path, log: ToolLog
) -> None:
    clock = FakeClock(time.time())
    with (
        serving(lambda n: 200) as good,
        serving(lambda n: 500) as bad,
        open_webhook_store(db, clock=clock) as store,
        WebhookDispatcher(store, destinations=LOCAL_RECEIVERS, clock=clock) as dispatcher,
    ):
        kept, removed = _add(store, good), _add(store, bad)
        thread_id, call_id = _ask(db, log)
        assert dispatcher.run_once() == 2
        store.remove_endpoint(removed)
        store.remove_endpoint(removed)  # idempotent
        with pytest.raises(WebhookError, match="no webhook endpoint 'wh_nope'"):
            store.remove_endpoint("wh_nope")
        _approve(db, log, thread_id, call_id)
        clock.advance(60)  # the removed endpoint's retry would be due by now
        assert dispatcher.run_once() == 2  # decided and finished, to the kept endpoint only
        active = store.list_endpoints()
        every = store.list_endpoints(include_removed=True)
        dropped = store.deliveries(webhook_id=removed)
    assert [e.id for e in active] == [kept]
    assert [(e.id, e.active) for e in every] == [(kept, True), (removed, False)]
    assert all("secret" not in e.to_json() and e.to_json()["has_secret"] for e in every)
    assert [(d.status, d.attempts) for d in dropped] == [("dead", 1)]
    assert dropped[0].last_error is not None and "was removed" in dropped[0].last_error
    assert len(bad.received) == 1
    assert [r.event for r in good.received] == [
        "approval.requested",
        "approval.decided",
        "tool.finished",
    ]


def test_an_endpoint_added_later_gets_only_the_events_after_it_was_added(
    db: Path, log: ToolLog
) -> None:
    with serving() as receiver, open_webhook_store(db) as store:
        _add(store, receiver, "/early")
        first_thread, first_call = _ask(db, log)
        _add(store, receiver, "/late")  # before any dispatch: the backlog is not its business
        _approve(db, log, first_thread, first_call)
        with WebhookDispatcher(store, destinations=LOCAL_RECEIVERS) as dispatcher:
            dispatcher.run_once()
    by_path = Counter(r.path for r in receiver.received)
    assert by_path == {"/early": 3, "/late": 2}  # /late missed the request it came after
    assert all(r.valid for r in receiver.received)


def test_an_outbox_created_on_a_database_with_history_does_not_replay_it(
    db: Path, log: ToolLog
) -> None:
    old_thread, _ = _ask(db, log)
    with serving() as receiver, open_webhook_store(db) as store:
        _add(store, receiver)
        with WebhookDispatcher(store, destinations=LOCAL_RECEIVERS) as dispatcher:
            assert dispatcher.run_once() == 0
            new_thread, _ = _ask(db, log)
            assert dispatcher.run_once() == 1
    assert [r.payload["thread_id"] for r in receiver.received] == [new_thread]
    assert old_thread != new_thread


def test_an_expired_approval_is_delivered_as_approval_expired(db: Path, log: ToolLog) -> None:
    ledger_clock = FakeClock()
    policy = Policy(rules={"send_email": ToolRule(expires_after=timedelta(hours=1))})
    with serving() as receiver, open_webhook_store(db) as store:
        _add(store, receiver, events=["approval.expired"])
        with open_test_service(db, log, policy, ledger_clock) as service:
            view = service.run(SALLY, actor="alice")
            ledger_clock.advance(3601)
            service.sweep()
        with WebhookDispatcher(store, destinations=LOCAL_RECEIVERS) as dispatcher:
            assert dispatcher.run_once() == 1
    (expired,) = (r.payload for r in receiver.received)
    assert expired["type"] == "approval.expired" and expired["actor"] == SWEEP_ACTOR
    assert expired["thread_id"] == view.thread_id
    assert expired["created_at"] == "2027-01-15T09:00:01.000+00:00"
    data = expired["data"]
    assert (data["status"], data["decision"], data["on_expire"]) == ("expired", "reject", "reject")
    assert data["deadline"] == "2027-01-15T09:00:00.000+00:00"
    assert log.calls == []


def test_a_call_asked_again_under_a_changed_rule_is_delivered_with_why_and_what_was_voided(
    db: Path, log: ToolLog
) -> None:
    only_carol = Policy(rules={"send_email": ToolRule(approvers=["carol"])})
    with serving() as receiver, open_webhook_store(db) as store:
        _add(store, receiver, events=["approval.requested"])
        thread_id, call_id = _ask(db, log)
        with open_test_service(db, log, only_carol) as service:  # the deploy changed the rule
            service.decide(thread_id, {call_id: "approve"}, actor="bob")
        with WebhookDispatcher(store, destinations=LOCAL_RECEIVERS) as dispatcher:
            assert dispatcher.run_once() == 2
    requested, reasked = (r.payload["data"] for r in receiver.received)
    assert requested["why"]["rule"] == "interrupt_on" and "reason" not in requested
    assert reasked["status"] == "pending"
    assert reasked["reason"] == "policy_changed"
    assert reasked["voided"] == {"decision": "approve", "decided_by": "bob"}
    assert reasked["why"]["rule_version"] != requested["why"]["rule_version"]
    assert log.calls == []


RACERS = 3


def _dispatch_until_done(db: str, barrier: Barrier) -> None:
    with (
        open_webhook_store(db) as store,
        WebhookDispatcher(store, destinations=LOCAL_RECEIVERS, batch=1) as dispatcher,
    ):
        barrier.wait(timeout=60)  # everyone is connected: now race
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if dispatcher.run_once() == 0:
                if store.counts()["pending"] == 0:
                    return
                time.sleep(0.005)  # the rest is claimed by others: let them work
        raise TimeoutError("deliveries still pending after 60 s")


@pytest.mark.slow
def test_dispatchers_racing_in_several_processes_deliver_each_event_exactly_once(
    db: Path, log: ToolLog
) -> None:
    with serving() as receiver:
        with open_webhook_store(db) as store:
            _add(store, receiver, "/a")
            _add(store, receiver, "/b")
        for _ in range(3):
            _approve(db, log, *_ask(db, log))
        ctx = mp.get_context("spawn")
        barrier = ctx.Barrier(RACERS)
        procs = [
            ctx.Process(target=_dispatch_until_done, args=(str(db), barrier)) for _ in range(RACERS)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
            assert p.exitcode == 0
    sent = Counter((r.path, r.payload["id"]) for r in receiver.received)
    assert len(sent) == 2 * 3 * 3  # two endpoints, three threads, three events each
    assert set(sent.values()) == {1}
    assert all(r.valid for r in receiver.received)
    with open_webhook_store(db) as store:
        assert store.counts() == {"pending": 0, "delivered": 18, "dead": 0}


def test_the_webhook_commands_register_list_dispatch_and_show_the_log(
    db: Path, log: ToolLog, tmp_path: Path
) -> None:
    runner = CliRunner()

    def hitl(*args: str) -> Any:
        return runner.invoke(
            hitl_cli, ["--db", str(db), "webhook", *args], env=ALLOW_LOCAL_RECEIVERS
        )

    bad = hitl("add", "ftp://example.com/hook")
    assert bad.exit_code == 10 and "error: 'ftp://example.com/hook' is not an http(s) URL" in (
        bad.stderr
    )
    short = hitl("add", "https://example.com/hook", "--secret", "short", "--json")
    assert short.exit_code == 10 and json.loads(short.stdout)["error"]["type"] == "WebhookError"
    missing = runner.invoke(hitl_cli, ["--db", str(tmp_path / "nope.sqlite"), "webhook", "list"])
    assert missing.exit_code == 10 and "no such database file" in missing.stderr

    with serving() as receiver:
        added = hitl(
            "add", receiver.url(), "--event", "approval.requested", "--as", "ops", "--json"
        )
        assert added.exit_code == 0, added.output
        created = json.loads(added.stdout)
        receiver.secrets["/hook"] = created["secret"]
        listed = hitl("list", "--json")
        assert created["secret"] not in listed.stdout
        endpoints = json.loads(listed.stdout)["endpoints"]
        assert [(e["id"], e["events"], e["created_by"]) for e in endpoints] == [
            (created["endpoint"]["id"], ["approval.requested"], "ops")
        ]
        _ask(db, log)
        dispatched = hitl("dispatch", "--json")
        assert json.loads(dispatched.stdout) == {
            "attempted": 1,
            "counts": {"pending": 0, "delivered": 1, "dead": 0},
        }
    shown = json.loads(hitl("deliveries", "--status", "delivered", "--json").stdout)
    (delivery,) = shown["deliveries"]
    assert delivery["event_type"] == "approval.requested" and delivery["attempts"] == 1
    assert delivery["payload"] == receiver.received[0].payload
    assert "delivered" in hitl("deliveries").stdout
    removed = hitl("remove", created["endpoint"]["id"])
    assert removed.exit_code == 0 and "removed webhook" in removed.stdout
    assert hitl("remove", "wh_nope").exit_code == 10
    assert "no webhooks" in hitl("list").stdout


METADATA = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


def test_a_webhook_to_a_metadata_or_private_address_is_refused_over_http_and_by_the_cli(
    tmp_path: Path,
) -> None:
    with open_api(tmp_path / "default") as api:
        before = api.state()
        metadata = api.post("/webhooks", by="root", json={"url": METADATA})
        loopback = api.post("/webhooks", by="root", json={"url": "http://127.0.0.1:9/hook"})
        assert api.state() == before
    with open_api(tmp_path / "local", ALLOW_LOCAL_RECEIVERS) as api:
        still = api.post("/webhooks", by="root", json={"url": METADATA})
        allowed = api.post("/webhooks", by="root", json={"url": "http://127.0.0.1:9/hook"})
    cli = CliRunner().invoke(
        hitl_cli, ["--db", str(tmp_path / "cli.sqlite"), "webhook", "add", METADATA, "--json"]
    )

    for refused in (metadata, still):
        assert_error(refused, 422, "WebhookError", "169.254.169.254", "never go there")
    assert_error(loopback, 422, "WebhookError", "HITL_WEBHOOK_ALLOW_PRIVATE=1")
    assert allowed.status_code == 201, allowed.text
    assert cli.exit_code == 10, cli.output
    assert "never go there" in json.loads(cli.stdout)["error"]["message"]


def test_a_delivery_to_a_private_address_is_refused_when_sent_and_nothing_is_posted(
    db: Path, log: ToolLog
) -> None:
    """An endpoint added where it was allowed, or whose name resolved elsewhere then."""
    with serving() as receiver, open_webhook_store(db) as store:
        _add(store, receiver)
        _ask(db, log)
        with WebhookDispatcher(store, destinations=Destinations()) as dispatcher:
            assert dispatcher.run_once() == 1
        (refused,) = store.deliveries()

    assert receiver.received == []
    assert refused.status == "pending" and refused.attempts == 1
    assert "a private or loopback address" in (refused.last_error or "")
