"""`run` answers with the view `show` gives right after it, built from what the run streamed
(no second load of the checkpoint): the same in every state a run can leave a thread in."""

from typing import Any

from hitl.checkpoints.urls import DatabaseName
from hitl.graph.policy import Policy, ToolRule
from hitl.service.views import MESSAGES_PAGE, ThreadView
from hitl.service.workflow import ApprovalService, EveryPending
from tests.support.fakes import ToolLog
from tests.support.harness import open_test_service
from tests.support.prompts import SALLY, TWO_EMAILS

QUORUM = Policy(rules={"send_email": ToolRule(quorum=2)})


def run_as_shown(service: ApprovalService, *args: Any, **kwargs: Any) -> ThreadView:
    """`service.run(...)`, checked against `show` at once (before anything else moves it)."""
    view = service.run(*args, actor="alice", **kwargs)
    assert view.to_json() == service.show(view.thread_id).to_json()
    return view


def test_the_view_a_run_returns_is_the_one_show_gives_after_it(
    db: DatabaseName, log: ToolLog
) -> None:
    with open_test_service(db, log) as service:
        waiting = run_as_shown(service, SALLY)
        two = run_as_shown(service, TWO_EMAILS)
        statuses = [waiting.status, two.status, run_as_shown(service, "hello there").status]
        service.decide(waiting.thread_id, EveryPending("approve"), actor="bob")
        statuses.append(run_as_shown(service, SALLY, waiting.thread_id).status)  # a second turn
        # the new message rejects what waited, and runs
        statuses.append(run_as_shown(service, "no", two.thread_id, cancel_pending=True).status)
        long = run_as_shown(service, "hello there")
        for _ in range(MESSAGES_PAGE // 2):  # past one page: the page, and the newest apart
            long = run_as_shown(service, "hello again", long.thread_id)
        assert long.messages_total > MESSAGES_PAGE
        assert statuses == ["interrupted", "interrupted", "done", "interrupted", "done"]


def test_a_run_that_waits_on_a_quorum_call_shows_it_as_show_does(
    db: DatabaseName, log: ToolLog
) -> None:
    with open_test_service(db, log, QUORUM) as service:
        assert run_as_shown(service, SALLY).pending[0].quorum == 2
