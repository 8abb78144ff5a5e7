"""Standing approvals and quorum over the JSON API: approve with `remember`, `/standing`
listed, created and revoked under the token's name, a vote answered `200` with no run, and
refusals in the API's error shape that change nothing."""

from pathlib import Path

from tests.support.http import Answer, Api, assert_error, only_call, open_api
from tests.support.plugins import plugin_spec
from tests.support.prompts import SALLY


def test_an_approval_remembered_over_http_approves_the_next_call_until_revoked(
    api: Api,
) -> None:
    view = api.start(SALLY)
    thread_id, call = view["thread_id"], only_call(view)
    before = api.state()
    assert_error(
        api.post(
            f"/threads/{thread_id}/approve",
            json={"call": call, "remember": {"expires_in": "soon"}},
            by="bob",
        ),
        422,
        "InvalidRequest",
    )
    assert api.state() == before
    remembered = {"expires_in": "7d", "requester": True}
    accepted = api.post(
        f"/threads/{thread_id}/approve", json={"call": call, "remember": remembered}, by="bob"
    )
    api.finished(accepted)
    [standing] = api.get("/standing", by="victor").json()["standing"]
    assert (standing["created_by"], standing["requester"]) == ("bob", "alice")

    second = api.start(SALLY)
    assert second["pending"] == [] and len(api.sent_ids()) == 2

    assert_error(api.call("DELETE", f"/standing/{standing['id']}", by="victor"), 403, "Forbidden")
    revoked = api.call("DELETE", f"/standing/{standing['id']}", by="alice")
    assert revoked.status_code == 200 and revoked.json()["revoked_by"] == "alice"
    assert api.get("/standing").json()["standing"] == []
    assert len(api.get("/standing", params={"all": True}).json()["standing"]) == 1
    assert len(api.start(SALLY)["pending"]) == 1
    assert_error(
        api.call("DELETE", f"/standing/{standing['id']}"), 404, "StandingNotFound", "revoked"
    )


def test_a_standing_approval_created_directly_needs_a_known_tool(api: Api) -> None:
    before = api.state()
    assert_error(
        api.post("/standing", json={"tool": "send_email", "expires_in": "1h"}),
        422,
        "InvalidStanding",
        "no call of 'send_email' was asked about yet",
    )
    assert api.state() == before
    api.start(SALLY)
    created = api.post(
        "/standing", json={"tool": "send_email", "expires_in": "1h", "thread_id": "elsewhere"}
    )
    assert created.status_code == 201, created.text
    assert (created.json()["created_by"], created.json()["thread_id"]) == ("alice", "elsewhere")


def test_a_vote_on_a_quorum_call_answers_200_with_no_run_and_the_second_runs_it(
    tmp_path: Path,
) -> None:
    with open_api(tmp_path, {"HITL_POLICY": plugin_spec("QUORUM_OF_TWO")}) as api:
        view = api.start(SALLY, by="alice")
        thread_id, call = view["thread_id"], only_call(view)
        voted = api.post(f"/threads/{thread_id}/approve", json={"call": call}, by="alice")
        assert voted.status_code == 200 and voted.json()["run"] is None
        [waiting] = api.get("/approvals").json()["pending"]
        assert (waiting["quorum"], waiting["approvals"]) == (2, ["alice"])
        assert_error(
            api.post(f"/threads/{thread_id}/approve", json={"call": call}, by="alice"),
            409,
            "AlreadyVoted",
        )
        assert_error(
            api.post(
                f"/threads/{thread_id}/approve",
                json={"call": call, "remember": {"expires_in": "1d"}},
                by="bob",
            ),
            403,
            "NotPermitted",
            "need 2 approvals",
        )
        assert api.sent_ids() == []
        api.finished(api.post(f"/threads/{thread_id}/approve", json={"call": call}, by="bob"))
        assert api.sent_ids() == [call]


def test_a_standing_approval_too_long_to_expire_is_refused_and_the_list_still_answers(
    api: Api,
) -> None:
    view = api.start(SALLY)
    thread_id, call = view["thread_id"], only_call(view)
    before = api.state()
    for forever in ("999999999999w", "1" + "0" * 400 + "d"):
        direct = {"tool": "send_email", "expires_in": forever}
        assert_error(
            api.post("/standing", json=direct, by="bob"), 422, "InvalidStanding", "at most"
        )
        remembered = {"call": call, "remember": {"expires_in": forever}}
        approved = api.post(f"/threads/{thread_id}/approve", json=remembered, by="bob")
        assert_error(approved, 422, "InvalidStanding", "at most")
    assert api.state() == before
    assert api.get("/standing", params={"all": True}).json()["standing"] == []


def test_text_that_is_not_utf8_in_a_standing_approval_or_a_bulk_filter_is_refused(
    api: Api,
) -> None:
    view = api.start(SALLY)
    before = api.state()
    lone = '"\\ud800"'  # a JSON escape of a lone surrogate: no UTF-8 text holds it

    def posted(path: str, body: str) -> Answer:
        headers = {"Content-Type": "application/json"}
        return api.call("POST", path, content=body, headers=headers, by="bob")

    for field in ("requester", "thread_id"):
        body = f'{{"tool": "send_email", "expires_in": "1h", "{field}": {lone}}}'
        assert_error(posted("/standing", body), 422, "InvalidStanding", "UTF-8")
    body = f'{{"tool": "send_email", "expires_in": "1h", "args": {{"recipient": {lone}}}}}'
    assert_error(posted("/standing", body), 422, "InvalidStanding", "UTF-8")
    bulk = f'{{"decision": "approve", "filter": {{"requester": {lone}}}}}'
    assert_error(posted("/approvals/bulk", bulk), 422, "InvalidTriage", "UTF-8")
    assert api.state() == before and len(view["pending"]) == 1
