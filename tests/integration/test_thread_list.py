"""`GET /threads`: every thread, newest first, with its status; filtered by status, searched by
an ID prefix, paged; bad input in the documented error shape. On each backend."""

from typing import Any

import pytest

from tests.support.http import Api, assert_error, only_call
from tests.support.prompts import SALLY


def start(api: Api, thread_id: str) -> None:
    api.finished(api.post("/threads", json={"prompt": SALLY, "thread_id": thread_id}))


def listed(api: Api, **params: Any) -> tuple[int, list[tuple[str, str]]]:
    answer = api.get("/threads", params=params, by="victor")  # a viewer may list
    assert answer.status_code == 200, answer.text
    page = answer.json()
    return page["total"], [(t["thread_id"], t["status"]) for t in page["threads"]]


def test_threads_are_listed_newest_first_with_their_status_filtered_searched_and_paged(
    api: Api,
) -> None:
    for thread_id in ("order-1", "order-2", "invoice-1"):
        start(api, thread_id)
    call = only_call(api.thread("order-1"))
    api.finished(api.post("/threads/order-1/approve", json={"call": call}))

    assert listed(api) == (
        3,
        [("order-1", "finished"), ("invoice-1", "waiting"), ("order-2", "waiting")],
    )
    assert listed(api, status="waiting") == (2, [("invoice-1", "waiting"), ("order-2", "waiting")])
    assert listed(api, status="finished") == (1, [("order-1", "finished")])
    assert listed(api, status="all", prefix="order") == (
        2,
        [("order-1", "finished"), ("order-2", "waiting")],
    )
    assert listed(api, status="waiting", prefix="order-") == (1, [("order-2", "waiting")])
    assert listed(api, prefix="ORDER") == (0, [])  # IDs are case-sensitive
    assert listed(api, prefix="order-1x") == (0, [])
    assert listed(api, limit=1, offset=1) == (3, [("invoice-1", "waiting")])

    page = api.get("/threads", params={"limit": 2}, by="victor").json()
    assert (page["offset"], page["limit"]) == (0, 2)
    finished, waiting = page["threads"]
    assert (finished["waiting"], waiting["waiting"]) == (0, 1)
    assert finished["updated_at"] > waiting["updated_at"]  # ISO 8601 in UTC: they sort
    assert finished["updated_at"].endswith("+00:00")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "done"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 2**63}, "offset"),
        ({"prefix": "x" * 201}, "prefix"),
    ],
)
def test_a_bad_thread_list_parameter_is_422_naming_it(
    api: Api, params: dict[str, Any], field: str
) -> None:
    answer = api.get("/threads", params=params, by="victor")

    error = assert_error(answer, 422, "InvalidRequest", field)
    assert [f["field"] for f in error["fields"]] == [f"query.{field}"]


def test_listing_threads_needs_a_token(api: Api) -> None:
    assert_error(api.get("/threads", by=None), 401, "Unauthenticated")
