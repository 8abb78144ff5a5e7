"""Triage over the JSON API: assignment and snooze (and their filters), bulk decisions with a
report per call, and the refusals that change nothing."""

import re
import time
from pathlib import Path
from typing import Any

from tests.support.http import Api, assert_error, only_call, open_api
from tests.support.plugins import plugin_spec


def _ids(page: dict[str, Any]) -> list[str]:
    return [p["tool_call_id"] for p in page["pending"]]


def test_the_inbox_filters_by_assignee_with_me_as_the_tokens_name(api: Api) -> None:
    first, second = api.start(), api.start()
    c1, c2 = only_call(first), only_call(second)
    assigned = api.post(f"/approvals/{first['thread_id']}/{c1}/assign", json={"assignee": "me"})
    assert assigned.status_code == 200 and assigned.json()["assignee"] == "alice"
    api.post(f"/approvals/{second['thread_id']}/{c2}/assign", json={"assignee": "role:approver"})

    def ids(by: str, *names: str) -> list[str]:
        return _ids(api.get("/approvals", params={"assigned_to": list(names)}, by=by).json())

    assert ids("alice", "me") == [c1, c2]  # her name, and her role
    assert ids("bob", "alice") == [c1]
    assert ids("victor", "me") == []  # a viewer: not assigned, nor his role
    listed = api.get("/approvals").json()["pending"]
    assert [p["assignee"] for p in listed] == ["alice", "role:approver"]


def test_a_snoozed_call_is_listed_only_when_asked_for(api: Api) -> None:
    first, second = api.start(), api.start()
    c1 = only_call(first)
    snoozed = api.post(f"/approvals/{first['thread_id']}/{c1}/snooze", json={"until": "2h"})
    assert snoozed.status_code == 200 and snoozed.json()["snoozed_until"] is not None

    assert _ids(api.get("/approvals").json()) == [only_call(second)]
    assert _ids(api.get("/approvals", params={"snoozed": "only"}).json()) == [c1]
    api.post(f"/approvals/{first['thread_id']}/{c1}/snooze", json={"until": None})
    assert len(api.get("/approvals").json()["pending"]) == 2


def test_a_bad_snooze_is_422_naming_the_field_and_a_viewer_may_not_triage(api: Api) -> None:
    view = api.start()
    path = f"/approvals/{view['thread_id']}/{only_call(view)}"
    before = api.state()
    error = assert_error(
        api.post(f"{path}/snooze", json={"until": "soon"}), 422, "InvalidRequest", "'soon'"
    )
    assert error["fields"][0]["field"] == "body.until"
    assert_error(
        api.post(f"{path}/snooze", json={"until": "2001-01-01T00:00:00Z"}),
        422,
        "InvalidTriage",
        "not in the future",
    )
    assert_error(api.post(f"{path}/assign", json={"assignee": "x"}, by="victor"), 403, "Forbidden")
    assert api.state() == before


def test_a_bulk_approval_decides_each_call_and_reports_the_one_decided_before(api: Api) -> None:
    views = [api.start() for _ in range(3)]
    calls = [(v["thread_id"], only_call(v)) for v in views]
    api.finished(api.post(f"/threads/{calls[0][0]}/reject", json={"call": calls[0][1]}, by="bob"))
    body = {
        "decision": "approve",
        "calls": [{"thread_id": t, "call": c} for t, c in calls],
        "comment": "all checked",
    }

    report = api.post("/approvals/bulk", json=body).json()

    assert report["counts"] == {"already_decided": 1, "decided": 2}
    first, *rest = report["items"]
    assert (first["outcome"], first["decided_by"]) == ("already_decided", "bob")
    assert [i["outcome"] for i in rest] == ["decided", "decided"]
    for thread_id, _ in calls[1:]:
        audit = api.get(f"/threads/{thread_id}/audit").json()["audit"]
        assert [e["actor"] for e in audit if e["event"] == "decided"] == ["alice"]


def test_a_bulk_rejection_by_filter_takes_only_the_matching_calls(api: Api) -> None:
    mine, other = api.start(), api.start()
    api.post(f"/approvals/{mine['thread_id']}/{only_call(mine)}/assign", json={"assignee": "bob"})
    body = {"decision": "reject", "filter": {"assigned_to": ["bob"]}, "reason": "not today"}

    report = api.post("/approvals/bulk", json=body, by="bob").json()

    assert [(i["tool_call_id"], i["outcome"]) for i in report["items"]] == [
        (only_call(mine), "decided")
    ]
    assert _ids(api.get("/approvals").json()) == [only_call(other)]


def test_a_bulk_body_with_both_or_neither_selection_is_422_and_decides_nothing(api: Api) -> None:
    view = api.start()
    before = api.state()
    call = {"thread_id": view["thread_id"], "call": only_call(view)}
    for body in (
        {"decision": "approve"},
        {"decision": "approve", "calls": [call], "filter": {}},
        {"decision": "respond", "calls": [call]},
    ):
        assert_error(api.post("/approvals/bulk", json=body), 422, "InvalidRequest")
    assert api.state() == before


def test_a_thread_page_says_a_call_expired_rather_than_that_someone_rejected_it(
    tmp_path: Path,
) -> None:
    with open_api(tmp_path, {"HITL_POLICY": plugin_spec("QUICK_DEADLINE")}) as api:
        view = api.start()
        time.sleep(1.1)
        assert api.post("/sweep", by="root").status_code == 200
        page = api.get(f"/threads/{view['thread_id']}", headers={"Accept": "text/html"})

    rows = re.findall(r'<td data-label="Decision"[^>]*>(.*?)</td>', page.text, re.S)
    assert [r.strip() for r in rows] == ["expired: nobody decided before the deadline; not run"]


def test_text_with_a_nul_character_is_422_on_every_backend_and_changes_nothing(api: Api) -> None:
    view = api.start()
    thread_id, call = view["thread_id"], only_call(view)
    before = api.state()
    nul = "bob\x00"  # PostgreSQL cannot store it in a text column; SQLite would, silently
    refused = [
        api.post(f"/approvals/{thread_id}/{call}/assign", json={"assignee": nul}, by="bob"),
        api.post(f"/approvals/{thread_id}/{call}/links", json={"for": nul}, by="root"),
        api.post("/standing", json={"tool": "send_email", "expires_in": "1h", "requester": nul}),
        api.post("/approvals/bulk", json={"decision": "approve", "filter": {"requester": nul}}),
        api.post(f"/threads/{thread_id}/reject", json={"call": call, "reason": nul}, by="bob"),
    ]
    for answer in refused:
        assert answer.status_code == 422, answer.text
        said = answer.json()["error"]["message"]
        assert "NUL" in said or "\\x00" in said, answer.text  # named, or shown as it came
    assert api.state() == before
