"""The running service delivers signed webhooks for what happens through it, retrying a
receiver that fails, and shows the admin the delivery log."""

from pathlib import Path

import pytest

from tests.support.processes import eventually
from tests.support.prompts import SALLY
from tests.support.services import make_token, running_service, start_and_wait
from tests.support.webhooks import ALLOW_LOCAL_RECEIVERS, Receiver, serving

pytestmark = pytest.mark.slow


def events(receiver: Receiver) -> list[str]:
    return [r.event for r in receiver.received if r.valid]


def test_the_service_delivers_each_event_signed_and_retries_a_failing_receiver(
    tmp_path: Path,
) -> None:
    with (
        serving(lambda n: 503 if n == 1 else 204) as receiver,
        running_service(tmp_path, env=ALLOW_LOCAL_RECEIVERS) as service,
        service.client() as admin,
    ):
        added = admin.post("/webhooks", json={"url": receiver.url("/hook")})
        assert added.status_code == 201, added.text
        receiver.secrets["/hook"] = added.json()["secret"]
        with service.client(make_token(service, "bob", "approver")) as bob:
            thread = start_and_wait(bob, SALLY)
            assert bob.post(f"/threads/{thread['thread_id']}/approve", json={}).status_code == 202
        expected = ["approval.requested", "approval.decided", "tool.finished"]
        eventually(lambda: len(receiver.received) == 4)  # one 503, then each event once
        assert sorted(events(receiver)) == sorted([expected[0], *expected])
        assert all(r.valid for r in receiver.received)
        first = receiver.received[0]
        assert [r.delivery for r in receiver.received].count(first.delivery) == 2  # 503, then 204
        decided = next(r.payload for r in receiver.received if r.event == "approval.decided")
        assert (decided["thread_id"], decided["actor"]) == (thread["thread_id"], "bob")

        log = admin.get("/webhooks/deliveries").json()
        assert log["counts"].get("delivered") == 3
        retried = [d for d in log["deliveries"] if d["attempts"] == 2]
        assert len(retried) == 1 and retried[0]["status"] == "delivered"
        assert "503" in str(retried[0]["last_error"]), retried[0]
        with service.client(make_token(service, "vera", "viewer")) as viewer:
            assert viewer.get("/webhooks/deliveries").status_code == 403
