"""The JSON API in this process (`TestClient` runs the app's lifespan, so its workers run the
real graph on a file database): 202s with runs to follow, decisions recorded under the token's
name, refusals that change nothing, and, against a real `hitl serve`, the SSE streams."""

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hitl.checkpoints.ledger import open_ledger
from hitl.server.app import MAX_BODY_BYTES
from hitl.service.workflow import CANCELLED_REASON
from tests.support.http import WAIT_SECONDS, Api, assert_error, only_call, tool_message
from tests.support.prompts import COUNT, PAIR, SALLY
from tests.support.services import HitlService, make_token, running_service, start_and_wait

# starting threads and following runs


def test_starting_a_thread_answers_202_with_where_to_follow_its_run(api: Api) -> None:
    accepted = api.post("/threads", json={"prompt": SALLY})

    assert accepted.status_code == 202
    body = accepted.json()
    thread_id, run = body["thread_id"], body["run"]
    assert accepted.headers["Location"] == f"/runs/{run['run_id']}"
    assert body["links"] == {
        "run": f"/runs/{run['run_id']}",
        "thread": f"/threads/{thread_id}",
        "stream": f"/threads/{thread_id}/stream",
    }
    assert (run["kind"], run["actor"], run["thread_id"]) == ("message", "alice", thread_id)

    finished = api.get(body["links"]["run"], params={"wait": WAIT_SECONDS}).json()
    assert (finished["status"], finished["attempts"], finished["error"]) == ("done", 1, None)
    view = api.get(body["links"]["thread"]).json()
    assert view["status"] == "interrupted"
    [pending] = view["pending"]
    assert (pending["tool"], pending["requester"]) == ("send_email", "alice")
    assert [r["run_id"] for r in view["runs"]] == [run["run_id"]]


def test_a_request_that_waits_answers_200_with_the_ended_run_in_one_round_trip(api: Api) -> None:
    started = api.post("/threads", json={"prompt": SALLY}, params={"wait": WAIT_SECONDS})

    assert started.status_code == 200, started.text
    assert "Location" not in started.headers
    body = started.json()
    assert body["run"]["status"] == "done"  # it ran up to the approval, which now waits
    thread_id = body["thread_id"]
    approved = api.post(f"/threads/{thread_id}/approve", json={}, params={"wait": WAIT_SECONDS})

    assert approved.status_code == 200, approved.text
    assert approved.json()["run"]["status"] == "done"
    assert api.sent_ids() == [approved.json()["decided"][0]["tool_call_id"]]
    assert api.thread(thread_id)["status"] == "done"


def test_a_wait_too_short_for_the_run_still_answers_202_with_where_to_follow_it(
    api: Api,
) -> None:
    started = api.post("/threads", json={"prompt": SALLY}, params={"wait": 0.001})

    assert started.status_code == 202
    assert started.headers["Location"] == f"/runs/{started.json()['run']['run_id']}"
    assert api.finished(started)["status"] == "done"
    error = assert_error(
        api.post("/threads", json={"prompt": SALLY}, params={"wait": 61}), 422, "InvalidRequest"
    )
    assert [f["field"] for f in error["fields"]] == ["query.wait"]


@pytest.mark.parametrize("thread_id", ["a/b", ".", "..", "../etc", "with space"])
def test_a_new_thread_id_that_would_not_survive_a_url_is_422_naming_the_rule(
    api: Api, thread_id: str
) -> None:
    before = api.state()

    answer = api.post("/threads", json={"prompt": SALLY, "thread_id": thread_id})

    error = assert_error(answer, 422, "InvalidRequest", repr(thread_id), "letters, digits")
    assert error["fields"][0]["field"] == "body.thread_id"
    assert api.state() == before


def test_an_unknown_run_is_404_and_a_wait_over_the_limit_is_422(api: Api) -> None:
    assert_error(api.get("/runs/no-such-run"), 404, "NotFound", "no-such-run")
    accepted = api.post("/threads", json={"prompt": COUNT})
    error = assert_error(
        api.get(accepted.headers["Location"], params={"wait": 61}), 422, "InvalidRequest"
    )
    assert [f["field"] for f in error["fields"]] == ["query.wait"]


# the inbox


def test_the_inbox_lists_pending_approvals_by_filter_and_page(api: Api) -> None:
    sally = api.start(SALLY)
    pair = api.start(PAIR, by="bob")
    api.start(COUNT)  # runs without asking: nothing pending

    everything = api.get("/approvals").json()
    assert (everything["total"], everything["offset"], everything["limit"]) == (3, 0, 50)
    listed = [(p["thread_id"], p["tool_call_id"]) for p in everything["pending"]]
    assert {t for t, _ in listed} == {sally["thread_id"], pair["thread_id"]}

    def page(**params: Any) -> tuple[int, list[tuple[str, str]]]:
        answer = api.get("/approvals", params=params)
        assert answer.status_code == 200, answer.text
        data = answer.json()
        return data["total"], [(p["thread_id"], p["tool_call_id"]) for p in data["pending"]]

    assert page(thread_id=pair["thread_id"]) == (
        2,
        [x for x in listed if x[0] == pair["thread_id"]],
    )
    assert page(requester="alice") == (1, [(sally["thread_id"], only_call(sally))])
    assert page(tool="send_email") == (3, listed)
    assert page(tool="count_emails") == (0, [])
    assert page(limit=2) == (3, listed[:2])
    assert page(limit=2, offset=2) == (3, listed[2:])
    assert page(older_than="1h") == (0, [])
    assert page(older_than="0s")[0] == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"older_than": "soon"}, "older_than"),
        ({"expiring_before": "whenever"}, "expiring_before"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 2**63}, "offset"),  # past the database's integers
        ({"limit": 2**63}, "limit"),
        ({"sort": "colour"}, "sort"),
    ],
)
def test_a_bad_inbox_parameter_is_422_naming_it(
    api: Api, params: dict[str, Any], field: str
) -> None:
    answer = api.get("/approvals", params=params)

    error = assert_error(answer, 422, "InvalidRequest", field)
    assert [f["field"] for f in error["fields"]] == [f"query.{field}"]


@pytest.mark.parametrize("field", ["offset", "limit"])
def test_a_delivery_log_page_past_the_databases_integers_is_422_naming_it(
    api: Api, field: str
) -> None:
    answer = api.get("/webhooks/deliveries", params={field: 2**63}, by="root")

    error = assert_error(answer, 422, "InvalidRequest", field)
    assert [f["field"] for f in error["fields"]] == [f"query.{field}"]


def test_an_approval_carries_the_schemas_of_its_answers_and_of_its_args(api: Api) -> None:
    view = api.start(SALLY)
    call = only_call(view)

    answer = api.get(f"/approvals/{view['thread_id']}/{call}")

    assert answer.status_code == 200, answer.text
    approval = answer.json()
    assert (approval["tool_call_id"], approval["status"], approval["tool"]) == (
        call,
        "pending",
        "send_email",
    )
    assert set(approval["args_schema"]["properties"]) == {"message", "recipient"}
    assert set(approval["args_schema"]["required"]) == {"message", "recipient"}
    schema_text = json.dumps(approval["response_schema"])
    for decision in ("approve", "edit", "reject", "respond"):
        assert f'"{decision}"' in schema_text
    assert_error(api.get(f"/approvals/{view['thread_id']}/call_nope"), 404, "UnknownToolCall")
    assert_error(api.get(f"/approvals/no-such-thread/{call}"), 404, "ThreadNotFound")


# deciding


def test_approving_runs_the_tool_once_and_records_the_tokens_name(api: Api) -> None:
    view = api.start(SALLY)
    thread_id, call = view["thread_id"], only_call(view)

    accepted = api.post(f"/threads/{thread_id}/approve", json={"call": call, "comment": "ok"})

    assert accepted.status_code == 202, accepted.text
    assert [(d["tool_call_id"], d["decided_by"]) for d in accepted.json()["decided"]] == [
        (call, "alice")
    ]
    assert api.finished(accepted)["status"] == "done"
    assert api.sent_ids() == [call]
    [record] = api.get(f"/threads/{thread_id}/approvals").json()["approvals"]
    assert (record["decided_by"], record["status"], record["decision"]) == (
        "alice",
        "succeeded",
        {"type": "approve"},
    )
    audit = api.get(f"/threads/{thread_id}/audit").json()["audit"]
    decided = next(e for e in audit if e["event"] == "decided")
    assert (decided["actor"], decided["detail"]["comment"]) == ("alice", "ok")
    assert api.thread(thread_id)["status"] == "done"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"actor": "mallory"}, "actor"),  # the body cannot claim another identity
        ({"decided_by": "mallory"}, "decided_by"),
        ({"call_id": "{call}"}, "call_id"),  # misspelt `call`: not a decision on every call
    ],
)
def test_a_decision_with_an_unknown_field_is_422_naming_it_and_records_nothing(
    api: Api, body: dict[str, str], field: str
) -> None:
    view = api.start(PAIR)
    first = view["pending"][0]["tool_call_id"]
    before = api.state()

    answer = api.post(
        f"/threads/{view['thread_id']}/approve",
        json={k: v.format(call=first) for k, v in body.items()},
    )

    error = assert_error(answer, 422, "InvalidRequest", field)
    assert [f["field"] for f in error["fields"]] == [f"body.{field}"]
    assert api.state() == before


def test_approving_without_a_call_approves_every_pending_call(api: Api) -> None:
    view = api.start(PAIR)

    accepted = api.post(f"/threads/{view['thread_id']}/approve", json={})

    assert len(accepted.json()["decided"]) == 2
    api.finished(accepted)
    assert sorted(api.sent_ids()) == sorted(p["tool_call_id"] for p in view["pending"])


def test_a_second_decision_on_a_call_is_409_with_the_decision_that_stands(api: Api) -> None:
    view = api.start(SALLY)
    thread_id, call = view["thread_id"], only_call(view)
    api.finished(api.post(f"/threads/{thread_id}/approve", json={"call": call}))
    before = api.state()

    for by, path, body in [
        ("alice", "approve", {"call": call}),
        ("bob", "reject", {"call": call, "reason": "too late"}),
    ]:
        error = assert_error(
            api.post(f"/threads/{thread_id}/{path}", json=body, by=by), 409, "AlreadyDecided"
        )
        assert error["recorded"]["decided_by"] == "alice"
        assert error["recorded"]["decision"] == "approve"
        assert error["recorded"]["status"] == "succeeded"

    assert api.state() == before
    assert api.sent_ids() == [call]


def test_an_invalid_edit_is_422_naming_the_field_and_records_nothing(api: Api) -> None:
    view = api.start(SALLY)
    thread_id, call = view["thread_id"], only_call(view)
    before = api.state()

    missing = api.post(
        f"/threads/{thread_id}/edit", json={"call": call, "args": {"message": "hello"}}
    )
    wrong_type = api.post(
        f"/threads/{thread_id}/edit",
        json={"call": call, "args": {"message": "hello", "recipient": 42}},
    )

    unknown = api.post(
        f"/threads/{thread_id}/edit",
        json={"call": call, "args": {"message": "hello", "recipient": "a@b.c", "cc": "z"}},
    )

    assert_error(missing, 422, "InvalidDecision", "recipient", "Field required")
    assert_error(wrong_type, 422, "InvalidDecision", "recipient", "valid string")
    assert_error(unknown, 422, "InvalidDecision", "send_email takes no argument 'cc'")
    assert api.state() == before
    assert api.get(f"/approvals/{thread_id}/{call}").json()["status"] == "pending"


def test_an_edit_runs_the_tool_with_the_edited_args(api: Api) -> None:
    view = api.start(SALLY)
    thread_id, call = view["thread_id"], only_call(view)
    edited = {"message": "hello", "recipient": "sally@example.com"}

    api.finished(api.post(f"/threads/{thread_id}/edit", json={"call": call, "args": edited}))

    [sent] = [json.loads(line) for line in api.outbox.read_text().splitlines()]
    assert (sent["tool_call_id"], sent["message"]) == (call, "hello")


def test_deciding_on_an_unknown_thread_or_call_is_404_and_records_nothing(api: Api) -> None:
    view = api.start(SALLY)
    before = api.state()

    assert_error(
        api.post("/threads/no-such-thread/approve", json={}),
        404,
        "ThreadNotFound",
        "no-such-thread",
    )
    assert_error(
        api.post("/threads/no-such-thread/approve", json={"call": only_call(view)}),
        404,
        "ThreadNotFound",
    )
    assert_error(
        api.post(f"/threads/{view['thread_id']}/reject", json={"call": "call_nope"}),
        404,
        "UnknownToolCall",
        "call_nope",
        only_call(view),  # the message lists the calls that are pending
    )
    assert api.state() == before


def test_a_decision_on_args_that_changed_since_they_were_seen_is_409(api: Api) -> None:
    view = api.start(SALLY)
    thread_id, [pending] = view["thread_id"], view["pending"]
    before = api.state()

    stale = {"call": pending["tool_call_id"], "args_hash": "0" * 64}
    assert_error(api.post(f"/threads/{thread_id}/approve", json=stale), 409, "ArgsChanged")
    assert_error(
        api.post(f"/threads/{thread_id}/approve", json={"args_hash": pending["args_hash"]}),
        422,
        "InvalidRequest",
        "args_hash",
    )
    assert api.state() == before

    seen = {"call": pending["tool_call_id"], "args_hash": pending["args_hash"]}
    api.finished(api.post(f"/threads/{thread_id}/approve", json=seen))
    assert api.sent_ids() == [pending["tool_call_id"]]


def test_an_args_hash_that_is_no_sha256_digest_is_422_saying_so_and_records_nothing(
    api: Api,
) -> None:
    view = api.start(SALLY)
    thread_id, call = view["thread_id"], only_call(view)
    before = api.state()

    answer = api.post(f"/threads/{thread_id}/approve", json={"call": call, "args_hash": "deadbeef"})

    error = assert_error(answer, 422, "InvalidRequest", "'deadbeef' is not a valid args hash")
    assert [f["field"] for f in error["fields"]] == ["body.args_hash"]
    assert api.state() == before


def test_a_rejection_reason_reaches_the_model_and_the_tool_never_runs(api: Api) -> None:
    view = api.start(SALLY)
    thread_id, call = view["thread_id"], only_call(view)

    api.finished(
        api.post(f"/threads/{thread_id}/reject", json={"call": call, "reason": "not on Fridays"})
    )

    done = api.thread(thread_id)
    assert done["status"] == "done"
    assert "not on Fridays" in tool_message(done, call)["content"]
    assert "not on Fridays" in done["answer"]
    assert api.sent_ids() == []


def test_a_response_stands_in_for_the_tool_without_running_it(api: Api) -> None:
    view = api.start(SALLY)
    thread_id, call = view["thread_id"], only_call(view)

    api.finished(
        api.post(f"/threads/{thread_id}/respond", json={"call": call, "message": "Sally is away"})
    )

    done = api.thread(thread_id)
    assert done["status"] == "done"
    assert tool_message(done, call)["content"] == "Sally is away"
    assert api.sent_ids() == []


# new messages


def test_a_new_message_to_a_waiting_thread_is_409_unless_it_cancels_the_pending_calls(
    api: Api,
) -> None:
    view = api.start(SALLY)
    thread_id, call = view["thread_id"], only_call(view)
    before = api.state()

    assert_error(
        api.post(f"/threads/{thread_id}/runs", json={"prompt": COUNT}),
        409,
        "PendingApprovalsExist",
        call,
    )
    assert_error(  # starting it again is not a way around the wait
        api.post("/threads", json={"prompt": COUNT, "thread_id": thread_id}),
        409,
        "ThreadExists",
        f"POST /threads/{thread_id}/runs",
    )
    assert_error(
        api.post("/threads/no-such-thread/runs", json={"prompt": COUNT}), 404, "ThreadNotFound"
    )
    assert api.state() == before

    accepted = api.post(
        f"/threads/{thread_id}/runs", json={"prompt": COUNT, "cancel_pending": True}
    )

    assert api.finished(accepted)["status"] == "done"
    cancelled = api.get(f"/approvals/{thread_id}/{call}").json()
    assert (cancelled["status"], cancelled["decided_by"]) == ("rejected", "alice")
    assert cancelled["decision"]["message"] == CANCELLED_REASON
    done = api.thread(thread_id)
    assert (done["status"], done["pending"]) == ("done", [])
    assert [m["content"] for m in done["messages"] if m["type"] == "human"] == [SALLY, COUNT]
    assert api.sent_ids() == []


# operations


def test_an_admin_reconciles_a_call_whose_runner_died_and_the_thread_finishes(api: Api) -> None:
    view = api.start(SALLY)
    thread_id, [pending] = view["thread_id"], view["pending"]
    call = pending["tool_call_id"]
    with open_ledger(api.db) as ledger:
        # approved, then its runner began the tool and died: no result, and a dead attempt
        # (tests/integration/test_crash.py kills a real process there)
        ledger.decide(thread_id, {call: {"type": "approve"}}, actor="alice")
        ledger.begin(thread_id, [(call, pending["args"])])
        ledger.abandon(thread_id, call)
    [unknown] = api.get("/approvals").json()["pending"]
    assert (unknown["tool_call_id"], unknown["status"]) == (call, "outcome_unknown")
    before = api.state()

    assert_error(
        api.post(f"/threads/{thread_id}/reconcile", json={"call": call, "action": "retry"}),
        403,
        "Forbidden",
        "admin",
    )
    assert api.state() == before

    accepted = api.post(
        f"/threads/{thread_id}/reconcile", json={"call": call, "action": "retry"}, by="root"
    )

    assert accepted.json()["reconciled"]["status"] == "approved"
    assert api.finished(accepted)["status"] == "done"
    assert api.thread(thread_id)["status"] == "done"
    assert api.sent_ids() == [call]
    audit = api.get(f"/threads/{thread_id}/audit").json()["audit"]
    assert ("reconciled", "root") in [(e["event"], e["actor"]) for e in audit]
    assert_error(
        api.post(
            f"/threads/{thread_id}/reconcile", json={"call": call, "action": "retry"}, by="root"
        ),
        409,
        "NotReconcilable",
    )


def test_an_admin_prunes_finished_threads_and_a_bad_request_changes_nothing(api: Api) -> None:
    done = api.start(COUNT)["thread_id"]
    waiting = api.start(SALLY)["thread_id"]
    before = api.state()

    assert_error(api.post("/prune", json={}), 403, "Forbidden", "admin")
    bad_age = api.post("/prune", json={"older_than": "soon"}, by="root")
    assert_error(bad_age, 422, "InvalidRequest", "older_than")
    assert_error(api.post("/prune", json={"older_tan": "1d"}, by="root"), 422, "InvalidRequest")
    assert api.state() == before

    report = api.post("/prune", json={"vacuum": False}, by="root")

    assert report.status_code == 200, report.text
    assert (report.json()["threads_trimmed"], report.json()["kept"]) == (1, {"pending": 1})
    assert len(api.get(f"/threads/{done}/history").json()["history"]) == 1
    assert api.thread(done)["status"] == "done"
    assert len(api.get(f"/threads/{waiting}/history").json()["history"]) > 1


def test_a_threads_history_audit_and_approvals_tell_what_happened(api: Api) -> None:
    view = api.start(SALLY)
    thread_id, call = view["thread_id"], only_call(view)
    api.finished(api.post(f"/threads/{thread_id}/approve", json={"call": call}))

    history = api.get(f"/threads/{thread_id}/history").json()["history"]
    audit = api.get(f"/threads/{thread_id}/audit").json()["audit"]
    approvals = api.get(f"/threads/{thread_id}/approvals").json()["approvals"]

    assert history[0]["node"] == "input"
    steps = [e["step"] for e in history]
    assert steps == sorted(steps)
    assert any(call in e["pending"] for e in history)
    assert any(e["decided"].get(call) == "approve" for e in history)
    assert [(e["event"], e["tool_call_id"]) for e in audit] == [
        ("requested", call),
        ("decided", call),
        ("tool_started", call),
        ("tool_finished", call),
    ]
    assert [(a["tool_call_id"], a["status"]) for a in approvals] == [(call, "succeeded")]
    newest = api.get(f"/threads/{thread_id}/history", params={"limit": 2}).json()
    assert newest["history"] == history[-2:]
    older = api.get(
        f"/threads/{thread_id}/history", params={"limit": 2, "before": newest["next_before"]}
    ).json()
    assert older["history"] == history[-4:-2]
    unknown = api.get(f"/threads/{thread_id}/history", params={"limit": 2, "before": "nope"})
    assert_error(unknown, 404, "UnknownCheckpoint", "has no checkpoint")
    for what in ("history", "audit", "approvals"):
        assert_error(api.get(f"/threads/no-such-thread/{what}"), 404, "ThreadNotFound")


def test_a_threads_messages_come_a_page_at_a_time_and_a_page_it_lacks_is_refused(
    api: Api,
) -> None:
    thread_id = api.start(COUNT)["thread_id"]
    whole = api.get(f"/threads/{thread_id}", params={"messages": 100}).json()

    newest = api.get(f"/threads/{thread_id}", params={"messages": 3}).json()
    older = api.get(f"/threads/{thread_id}", params={"messages": 3, "before": 1}).json()

    assert (whole["messages_total"], whole["messages_next_before"]) == (4, None)
    assert api.thread(thread_id)["messages"] == whole["messages"]  # 4 fit the default page
    assert newest["messages"] == whole["messages"][1:] and newest["messages_next_before"] == 1
    assert older["messages"] == whole["messages"][:1] and older["messages_next_before"] is None
    assert newest["answer"] == older["answer"] == whole["answer"] is not None
    beyond = api.get(f"/threads/{thread_id}", params={"before": 5})
    assert_error(beyond, 404, "MessagesOutOfRange", "holds 4 messages")
    assert_error(api.get(f"/threads/{thread_id}", params={"messages": 0}), 422, "InvalidRequest")


def test_healthz_answers_without_a_token(api: Api) -> None:
    answer = api.get("/healthz", by=None)

    assert answer.status_code == 200
    assert answer.json() == {
        "ok": True,
        "workers_alive": 2,
        "busy_workers": 0,
        "queued": 0,
        "running": 0,
    }


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_show_the_pending_approvals_and_count_decisions(api: Api) -> None:
    view = api.start(SALLY)
    pending = ("hitl_pending_approvals", (("status", "pending"),))
    approved = ("hitl_decisions_total", (("type", "approve"),))
    succeeded = ("hitl_tool_runs_total", (("outcome", "succeeded"),))

    first = api.get("/metrics", by="victor")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/plain")
    before = metric_samples(first.text)
    api.finished(api.post(f"/threads/{view['thread_id']}/approve", json={}))
    after = metric_samples(api.get("/metrics", by="victor").text)

    assert (before[pending], before[approved], before[succeeded]) == (1, 0, 0)
    assert (after[pending], after[approved], after[succeeded]) == (0, 1, 1)
    assert after[("hitl_runs", (("status", "done"),))] == 2
    assert after[("hitl_run_latency_seconds_count", ())] >= 1


# limits


def test_a_body_over_one_mebibyte_is_413_whether_declared_or_streamed(api: Api) -> None:
    view = api.start(SALLY)
    json_body = {"Content-Type": "application/json"}
    big = json.dumps({"prompt": "x" * MAX_BODY_BYTES}).encode()

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    before = api.state()
    declared = api.post("/threads", content=big, headers=json_body)
    streamed = api.post("/threads", content=chunked(), headers=json_body)
    decision = api.post(
        f"/threads/{view['thread_id']}/reject",
        content=json.dumps({"reason": "x" * MAX_BODY_BYTES}).encode(),
        headers=json_body,
    )

    for answer in (declared, streamed, decision):
        assert_error(answer, 413, "TooLarge", str(MAX_BODY_BYTES))
    assert api.state() == before
    # just under the limit, the body is read and judged on its content
    under = json.dumps({"prompt": "x" * (MAX_BODY_BYTES - 100), "thread_id": ""}).encode()
    assert_error(api.post("/threads", content=under, headers=json_body), 422, "InvalidRequest")
    assert api.state() == before


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(b'{"prompt": "caf\xe9"}', "not UTF-8", id="latin-1"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "nested", id="deeply-nested"),
        pytest.param(b'{"prompt": ', "JSON decode error", id="truncated"),
    ],
)
def test_a_body_that_is_not_readable_json_is_422_in_the_error_shape_and_starts_nothing(
    api: Api, body: bytes, problem: str
) -> None:
    before = api.state()

    answer = api.post("/threads", content=body, headers={"Content-Type": "application/json"})

    error = assert_error(answer, 422, "InvalidRequest", problem)
    assert error["fields"][0]["field"].startswith("body")
    assert api.state() == before


# live streams, from a real `hitl serve`


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HitlService]:
    with running_service(tmp_path_factory.mktemp("live")) as service:
        yield service


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of a `text/event-stream` response, as they arrive."""
    name: str | None = None
    data: list[str] = []
    for line in response.iter_lines():
        if not line:
            if name is not None:
                yield name, json.loads("\n".join(data))
            name, data = None, []
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)


@contextmanager
def stream(
    service: HitlService, path: str, token: str | None = None
) -> Iterator[tuple[httpx.Response, Iterator[tuple[str, dict[str, Any]]]]]:
    headers = {"Authorization": f"Bearer {token or service.admin_token}"}
    with (
        httpx.Client(base_url=service.url, headers=headers, timeout=10) as client,
        client.stream("GET", path) as response,
    ):
        assert response.status_code == 200
        yield response, sse_events(response)


def test_the_inbox_stream_starts_with_the_inbox_and_follows_new_requests(
    live: HitlService,
) -> None:
    with live.client() as client, stream(live, "/approvals/stream") as (response, events):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        name, first = next(events)
        assert name == "inbox"
        known = {p["tool_call_id"] for p in first["pending"]}

        view = start_and_wait(client, SALLY)
        call = only_call(view)
        assert call not in known
        for name, data in events:  # changes are polled: a few events may come first
            assert name == "inbox"
            if call in {p["tool_call_id"] for p in data["pending"]}:
                break


def test_revoking_a_token_ends_its_open_inbox_stream_within_seconds(live: HitlService) -> None:
    secret = make_token(live, "stream-reader", "viewer")
    with live.client() as admin, stream(live, "/approvals/stream", secret) as (_, events):
        assert next(events)[0] == "inbox"
        revoked = time.monotonic()
        assert admin.delete("/tokens/stream-reader").status_code == 200
        call = only_call(start_and_wait(admin, SALLY))

        for _, data in events:  # until the service ends the stream
            pending = {p["tool_call_id"] for p in data["pending"]}
            assert call not in pending, "a revoked token's stream still receives new approvals"
        ended_after = time.monotonic() - revoked

    assert ended_after < 10
    assert live.client(secret).get("/approvals/stream").status_code == 401


def test_the_thread_stream_starts_with_its_state_and_shows_the_run_a_decision_causes(
    live: HitlService,
) -> None:
    with live.client() as client:
        view = start_and_wait(client, SALLY)
        thread_id, call = view["thread_id"], only_call(view)
        with stream(live, f"/threads/{thread_id}/stream") as (_, events):
            name, first = next(events)
            assert (name, first["status"], only_call(first)) == ("state", "interrupted", call)

            accepted = client.post(f"/threads/{thread_id}/approve", json={"call": call})
            assert accepted.status_code == 202
            seen: list[tuple[str, Any]] = []
            for name, data in events:
                if name == "run":
                    seen.append((name, (data["run_id"], data["status"])))
                elif name == "update":
                    seen.append((name, [n["node"] for n in data.get("nodes", [])]))
                else:
                    seen.append((name, data["status"]))
                    if data["status"] == "done":
                        break

    run_id = accepted.json()["run"]["run_id"]
    assert seen[:2] == [("run", (run_id, "queued")), ("run", (run_id, "running"))]
    assert ("update", ["tools"]) in seen
    assert seen[-2:] == [("run", (run_id, "done")), ("state", "done")]


def test_a_message_sent_as_content_blocks_is_read_like_a_string(api: Api) -> None:
    """Agent Chat UI (and LangChain's standard content) sends text blocks, not a string."""
    blocks = [{"type": "text", "text": COUNT}]
    accepted = api.post("/threads", json={"messages": [{"role": "human", "content": blocks}]})
    assert api.finished(accepted)["status"] == "done"
    view = api.thread(accepted.json()["thread_id"])
    assert view["status"] == "done"
    first = view["messages"][0]
    assert first["text"] == COUNT
    assert "count_emails" in view["answer"]
    refused = api.post("/threads", json={"messages": [{"content": [{"type": "image"}]}]})
    assert refused.status_code == 422
