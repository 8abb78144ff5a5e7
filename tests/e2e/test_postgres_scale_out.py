"""Three `hitl serve` processes on one PostgreSQL database, as behind a load balancer: they
start together, each approval is decided once whichever process a decision reaches, and when
one is killed mid-tool another takes its thread over (on one host, or from another host once
the dead one's heartbeat is silent) without running the tool again."""

import json
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import psycopg
import pytest

from hitl.checkpoints.stores import OTHER_HOST_SILENCE_SECONDS, open_token_store
from hitl.server.workers import HEARTBEAT_SECONDS
from tests.support.environment import REPO_ROOT, importable
from tests.support.plugins import gate, held, plugin_spec
from tests.support.postgres import fresh_database
from tests.support.processes import eventually
from tests.support.prompts import SALLY, email_prompt
from tests.support.services import HitlService, accepted, start_services, wait_run

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SERVICES = 3
WORKERS = ("--workers", "2")
APPROVALS = 200
RACED = 100
"""How many of the approvals two clients decide at the same instant (the others, once)."""
CLIENTS = 20
WAIT_SECONDS = 60.0
TAKEOVER_SECONDS = 20.0
"""On one host a dead runner is seen at once (its token's lock died with it) and the
survivors' workers look at the queue every 0.5 s; on another host, once its run's heartbeat
is `OTHER_HOST_SILENCE_SECONDS` old. The bound leaves room for a slow, shared machine."""


@contextmanager
def running_services(
    tmp: Path, db: str, env: dict[str, str] | None = None, *, separate_hosts: bool = False
) -> Iterator[list[HitlService]]:
    """`SERVICES` processes of `hitl serve` started at once on `db`, sharing `tmp`'s outbox;
    stopped (those still alive) afterwards, their logs' tails printed for a failing test."""
    tmp.mkdir(parents=True, exist_ok=True)
    services = start_services(
        tmp, SERVICES, db=db, env=env, args=WORKERS, separate_hosts=separate_hosts
    )
    try:
        yield services
    finally:
        for service in services:
            service.stop()
            print(f"--- tail of {service.log_path.name} ---\n{service.log()[-3000:]}")


def query(db: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the database over a connection of the test's own."""
    with psycopg.connect(db, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def forks(db: str) -> list[tuple[Any, ...]]:
    """Checkpoints of the root graph that share a parent: a thread whose history split."""
    return query(
        db,
        "SELECT thread_id, parent_checkpoint_id, COUNT(*) FROM checkpoints "
        "WHERE checkpoint_ns = '' AND parent_checkpoint_id IS NOT NULL "
        "GROUP BY thread_id, parent_checkpoint_id HAVING COUNT(*) > 1",
    )


def audit_events(db: str) -> Counter[tuple[str, str]]:
    """How many audit entries each (tool call, event) has."""
    rows = query(
        db,
        "SELECT tool_call_id, event, COUNT(*) FROM hitl_audit "
        "WHERE tool_call_id IS NOT NULL GROUP BY tool_call_id, event",
    )
    return Counter({(call, event): n for call, event, n in rows})


def sent(outbox: Path) -> Counter[str]:
    """How many times `send_email` delivered each call (the outbox all processes share)."""
    if not outbox.exists():
        return Counter()
    lines = outbox.read_text(encoding="utf-8").splitlines()
    return Counter(json.loads(line)["tool_call_id"] for line in lines)


def start_waiting_threads(
    services: list[HitlService], count: int, rng: random.Random
) -> dict[str, str]:
    """Start `count` threads through randomly chosen processes, each stopping at the approval
    of one `send_email` call; thread ID → that call's ID (read from the inbox)."""
    with ExitStack() as stack:
        clients = [stack.enter_context(s.client()) for s in services]
        picks = [rng.choice(clients) for _ in range(count)]

        def start(n: int) -> str:
            started = accepted(picks[n].post("/threads", json={"prompt": email_prompt(n)}))
            run = wait_run(picks[n], started["run"]["run_id"], WAIT_SECONDS)
            assert (run["status"], run["error"]) == ("done", None), run
            return str(started["thread_id"])

        with ThreadPoolExecutor(8) as pool:
            threads = set(pool.map(start, range(count)))
        inbox = rng.choice(clients).get("/approvals", params={"limit": 1000}).json()
    assert inbox["total"] == count, inbox
    call_of = {p["thread_id"]: p["tool_call_id"] for p in inbox["pending"]}
    assert set(call_of) == threads
    assert {(p["tool"], p["status"]) for p in inbox["pending"]} == {("send_email", "pending")}
    return call_of


@dataclass(frozen=True)
class Attempt:
    """One client's decision on one call, sent to one process; two attempts on one call
    share a barrier."""

    thread_id: str
    call: str
    kind: Literal["approve", "reject"]
    service: HitlService
    barrier: threading.Barrier | None


@dataclass(frozen=True)
class Answer:
    attempt: Attempt
    client: str
    status: int
    body: dict[str, Any]


def decide_concurrently(attempts: list[Attempt], tokens: dict[str, str]) -> list[Answer]:
    """`len(tokens)` clients, each with its own HTTP client and token, take the attempts in
    order and send each to its process; two attempts on one call wait for each other, so they
    reach their processes at the same instant."""
    work: queue.Queue[Attempt] = queue.Queue()
    for attempt in attempts:
        work.put(attempt)
    answers: list[Answer] = []
    lock = threading.Lock()

    def client(name: str, secret: str) -> None:
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(headers=headers, timeout=WAIT_SECONDS) as http:
            while True:
                try:
                    attempt = work.get_nowait()
                except queue.Empty:
                    return
                if attempt.barrier is not None:
                    attempt.barrier.wait(WAIT_SECONDS)
                body: dict[str, Any] = {"call": attempt.call}
                if attempt.kind == "reject":
                    body["reason"] = f"{name} says no"
                url = f"{attempt.service.url}/threads/{attempt.thread_id}/{attempt.kind}"
                answer = http.post(url, json=body)
                with lock:
                    answers.append(Answer(attempt, name, answer.status_code, answer.json()))

    workers = [threading.Thread(target=client, args=item) for item in tokens.items()]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return answers


def test_three_services_started_at_once_on_a_new_database_all_come_up_with_one_first_admin(
    tmp_path: Path,
) -> None:
    for attempt in range(2):  # the start is a race: run it more than once
        with (
            fresh_database() as url,
            running_services(tmp_path / f"start-{attempt}", url) as services,
        ):
            # `start_services` checked that exactly one of them printed the first admin token
            for service in services:
                with service.client() as client:
                    assert client.get("/me").json()["role"] == "admin"
                assert "Traceback" not in service.log(), service.log()
            admins = query(url, "SELECT name FROM hitl_tokens WHERE role = 'admin'")
            assert admins == [("admin",)]


def test_three_services_on_one_database_decide_each_approval_once_and_run_each_tool_once(
    tmp_path: Path,
) -> None:
    seed = random.randrange(1 << 30)
    print(f"random seed: {seed}")
    rng = random.Random(seed)
    with fresh_database() as url, running_services(tmp_path, url) as services:
        began = time.monotonic()
        call_of = start_waiting_threads(services, APPROVALS, rng)
        print(f"{APPROVALS} approvals waiting after {time.monotonic() - began:.1f} s")

        with open_token_store(url) as store:
            tokens = {
                f"approver-{n}": store.create(f"approver-{n}", "approver", created_by="test")[1]
                for n in range(CLIENTS)
            }
        raced = set(rng.sample(sorted(call_of), RACED))
        groups = []
        for thread_id, call in call_of.items():
            # a call decided twice is decided through two processes at once
            twice = thread_id in raced
            barrier = threading.Barrier(2) if twice else None
            groups.append(
                [
                    Attempt(thread_id, call, rng.choice(["approve", "reject"]), service, barrier)
                    for service in rng.sample(services, 2 if twice else 1)
                ]
            )
        rng.shuffle(groups)  # each pair stays together: two clients take it at once
        began = time.monotonic()
        answers = decide_concurrently([a for group in groups for a in group], tokens)
        print(f"{len(answers)} decisions answered in {time.monotonic() - began:.1f} s")

        # each call: exactly one decision accepted; a second one refused, naming the first
        by_call: dict[str, list[Answer]] = {}
        for answer in answers:
            by_call.setdefault(answer.attempt.call, []).append(answer)
        assert set(by_call) == set(call_of.values())
        winner: dict[str, Answer] = {}
        for call, tries in by_call.items():
            assert sorted(t.status for t in tries) == [202] + [409] * (len(tries) - 1), [
                (t.status, t.body) for t in tries
            ]
            [winner[call]] = [t for t in tries if t.status == 202]
            for refused in (t for t in tries if t.status == 409):
                recorded = refused.body["error"]["recorded"]
                assert recorded["decided_by"] == winner[call].client, refused.body
                assert recorded["decision"].startswith(winner[call].attempt.kind), refused.body
        approved = {c for c, w in winner.items() if w.attempt.kind == "approve"}
        rejected = set(winner) - approved
        assert approved and rejected

        # every accepted decision's run finishes, whichever process it is asked of
        with ExitStack() as stack:
            clients = [stack.enter_context(s.client()) for s in services]

            def finished(run_id: str) -> dict[str, Any]:
                return wait_run(rng.choice(clients), run_id, WAIT_SECONDS)

            run_ids = [w.body["run"]["run_id"] for w in winner.values()]
            with ThreadPoolExecutor(CLIENTS) as pool:
                runs = list(pool.map(finished, run_ids))
            assert {(r["status"], r["error"]) for r in runs} == {("done", None)}
            with ThreadPoolExecutor(8) as pool:
                views = list(pool.map(lambda t: rng.choice(clients).get(f"/threads/{t}"), call_of))
            assert {(v.json()["status"], len(v.json()["pending"])) for v in views} == {("done", 0)}
            assert rng.choice(clients).get("/approvals").json()["total"] == 0
            assert rng.choice(clients).get("/audit/verify").json()["ok"] is True
        print(f"every run finished after {time.monotonic() - began:.1f} s")

        assert query(url, "SELECT status, COUNT(*) FROM hitl_runs GROUP BY status") == [
            ("done", 2 * APPROVALS)
        ]
        rows = query(url, "SELECT tool_call_id, status, decided_by, decision FROM hitl_approvals")
        assert len(rows) == APPROVALS
        for call, status, decided_by, decision in rows:
            expected = "succeeded" if call in approved else "rejected"
            assert (status, decided_by, json.loads(decision)["type"]) == (
                expected,
                winner[call].client,
                winner[call].attempt.kind,
            )
        events = audit_events(url)
        runners = query(url, "SELECT actor FROM hitl_audit WHERE event = 'tool_started'")
        ran_in = Counter(int(actor.split(":")[1]) for (actor,) in runners)
        assert set(ran_in) == {s.process.pid for s in services}, f"tools run by pid: {ran_in}"
        for call in call_of.values():
            ran = int(call in approved)
            assert [events[call, e] for e in ("decided", "tool_started", "tool_finished")] == [
                1,
                ran,
                ran,
            ], call
        deliveries = sent(services[0].outbox)
        assert set(deliveries) == approved, "an approved email was not sent, or a rejected one was"
        assert [c for c, n in deliveries.items() if n > 1] == [], "an email was sent twice"
        assert forks(url) == [], "a thread's history forked"


@pytest.mark.parametrize("separate_hosts", [False, True], ids=["one-host", "separate-hosts"])
def test_a_service_killed_mid_tool_is_taken_over_by_another_and_the_call_waits_for_a_person(
    tmp_path: Path, separate_hosts: bool
) -> None:
    seed = random.randrange(1 << 30)
    print(f"random seed: {seed}")
    rng = random.Random(seed)
    env = {"HITL_TOOLS": plugin_spec("gated_tools"), **importable(REPO_ROOT)}
    with (
        fresh_database() as url,
        running_services(tmp_path, url, env, separate_hosts=separate_hosts) as services,
    ):
        outbox = services[0].outbox
        call_of = start_waiting_threads(services, 7, rng)
        victim, *others = sorted(call_of)
        victim_call = call_of[victim]

        gate(outbox).touch()
        with rng.choice(services).client() as client:
            approval = client.post(f"/threads/{victim}/approve", json={"call": victim_call})
        run_id = accepted(approval)["run"]["run_id"]
        eventually(held(outbox).exists, "the approved email is held mid-tool", WAIT_SECONDS)
        in_tool = json.loads(held(outbox).read_text(encoding="utf-8"))
        assert in_tool["tool_call_id"] == victim_call
        [holder] = [s for s in services if s.process.pid == in_tool["pid"]]
        [(run_runner,)] = query(url, "SELECT runner FROM hitl_runs WHERE run_id = %s", (run_id,))
        [(status, call_runner)] = query(
            url, "SELECT status, runner FROM hitl_approvals WHERE tool_call_id = %s", (victim_call,)
        )
        assert status == "running"
        assert run_runner.split(":")[1] == call_runner.split(":")[1] == str(holder.process.pid)

        holder.kill()
        killed_at = time.monotonic()
        survivors = [s for s in services if s is not holder]
        gate(outbox).unlink()  # from now on a second run of the tool would go through, and show

        # the earliest a survivor may take it over: on one host at once; else when the run's
        # heartbeat (written at its claim, and every HEARTBEAT_SECONDS) has gone silent
        earliest = OTHER_HOST_SILENCE_SECONDS - HEARTBEAT_SECONDS if separate_hosts else 0.0
        with survivors[0].client() as client:
            run = wait_run(client, run_id, earliest + HEARTBEAT_SECONDS + TAKEOVER_SECONDS)
        took = time.monotonic() - killed_at
        print(f"a survivor finished the killed process's run {took:.2f} s after the kill")
        assert earliest <= took < earliest + HEARTBEAT_SECONDS + TAKEOVER_SECONDS
        assert (run["status"], run["error"], run["attempts"]) == ("done", None, 2), run
        assert holder.process.poll() is not None, "the killed process was restarted"

        # the call cut short waits for a person, in every survivor's inbox; the others are intact
        for survivor in survivors:
            with survivor.client() as client:
                inbox = client.get("/approvals", params={"limit": 100}).json()["pending"]
                view = client.get(f"/threads/{victim}").json()
            statuses = {p["tool_call_id"]: p["status"] for p in inbox}
            assert statuses == {call_of[t]: "pending" for t in others} | {
                victim_call: "outcome_unknown"
            }
            assert view["status"] == "interrupted"
            assert [(p["tool_call_id"], p["status"]) for p in view["pending"]] == [
                (victim_call, "outcome_unknown")
            ]
        events = audit_events(url)
        assert [
            events[victim_call, e]
            for e in ("decided", "tool_started", "outcome_unknown", "tool_finished")
        ] == [1, 1, 1, 0]
        assert sent(outbox) == Counter([victim_call]), "the email was sent again"

        # the survivors serve the other threads: decisions taken through either one run
        rejected = others[0]
        with ExitStack() as stack:
            clients = [stack.enter_context(s.client()) for s in survivors]
            decided = [
                accepted(
                    rng.choice(clients).post(
                        f"/threads/{t}/{'reject' if t == rejected else 'approve'}",
                        json={"call": call_of[t]},
                    )
                )
                for t in others
            ]
            for decision in decided:
                done = wait_run(rng.choice(clients), decision["run"]["run_id"], WAIT_SECONDS)
                assert (done["status"], done["error"]) == ("done", None), done
            for t in others:
                assert rng.choice(clients).get(f"/threads/{t}").json()["status"] == "done"

            # a person settles the call: the email went out, so mark it done; the thread ends
            settled = clients[0].post(
                f"/threads/{victim}/reconcile", json={"call": victim_call, "action": "mark_done"}
            )
            done = wait_run(clients[1], accepted(settled)["run"]["run_id"], WAIT_SECONDS)
            assert (done["status"], done["error"]) == ("done", None), done
            view = clients[1].get(f"/threads/{victim}").json()
            assert (view["status"], view["pending"]) == ("done", [])
            assert clients[0].get("/approvals").json()["total"] == 0
            assert clients[1].get("/audit/verify").json()["ok"] is True

        deliveries = sent(outbox)
        assert deliveries == Counter(call_of[t] for t in call_of if t != rejected)
        [(status,)] = query(
            url, "SELECT status FROM hitl_approvals WHERE tool_call_id = %s", (victim_call,)
        )
        assert status == "succeeded"
        assert audit_events(url)[victim_call, "reconciled"] == 1
        assert forks(url) == [], "a thread's history forked"
        assert holder.process.returncode == -9


def test_an_inbox_stream_on_one_service_follows_requests_and_decisions_made_on_another(
    tmp_path: Path,
) -> None:
    with fresh_database() as db, running_services(tmp_path, db) as services:
        asking, watched = services[0], services[-1]
        with (
            asking.client() as client,
            watched.client() as viewer,
            viewer.stream("GET", "/approvals/stream") as stream,
        ):
            assert stream.status_code == 200
            events = _sse(stream)
            assert "pending" in next(events)  # the inbox as it is: empty

            started = accepted(client.post("/threads", json={"prompt": SALLY}))
            wait_run(client, started["run"]["run_id"])
            call = client.get(f"/threads/{started['thread_id']}").json()["pending"][0]
            assert _until(events, lambda inbox: _calls(inbox) == [call["tool_call_id"]])

            decided = accepted(client.post(f"/threads/{started['thread_id']}/approve", json={}))
            wait_run(client, decided["run"]["run_id"])
            assert _until(events, lambda inbox: _calls(inbox) == [])


def _sse(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The `inbox` events' data of an SSE response, as they arrive."""
    for line in response.iter_lines():
        if line.startswith("data:"):
            yield json.loads(line.removeprefix("data:").strip())


def _calls(inbox: dict[str, Any]) -> list[str]:
    return [p["tool_call_id"] for p in inbox["pending"]]


def _until(events: Iterator[dict[str, Any]], seen: Callable[[dict[str, Any]], bool]) -> bool:
    """Whether an event satisfying `seen` arrives within 20 s of events (a silent stream
    fails the test by the client's read timeout)."""
    deadline = time.monotonic() + 20
    for inbox in events:
        if seen(inbox):
            return True
        if time.monotonic() > deadline:
            return False
    return False
