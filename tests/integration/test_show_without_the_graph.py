"""`hitl show` reads a thread from its stored rows, without LangGraph (`Reader.show`), so it
answers at once. Where it answers, it answers exactly what the graph (`ApprovalService.show`)
does, in every state a thread of the demo agent or of a user's graph can be in; where it
cannot read faithfully, it says so (None) and the CLI asks the graph."""

from pathlib import Path
from typing import Any

import pytest

from hitl.app import assemble, open_reader
from hitl.service.workflow import ApprovalService, EveryPending
from tests.support.harness import ToolLog, hitl_settings, open_test_service
from tests.support.prompts import SALLY, TWO_EMAILS
from tests.support.user_agents import two_appends, user_settings

pytestmark = pytest.mark.sqlite_only  # the plain reader reads SQLite files only


class Died(BaseException):
    """The process dies inside the tool."""


def fast_view(db: Path, thread_id: str) -> dict[str, Any] | None:
    with open_reader(hitl_settings(db)) as reader:
        view = reader.show(thread_id)
    return None if view is None else view.to_json()


def demo_threads(service: ApprovalService, db: Path) -> dict[str, str]:
    """A thread of the demo agent in each state it can be in."""
    threads: dict[str, str] = {}
    threads["waiting"] = service.run(SALLY, actor="alice").thread_id
    partial = service.run(TWO_EMAILS, actor="alice")
    service.decide(partial.thread_id, {partial.pending[0].tool_call_id: "approve"}, actor="bob")
    threads["one of two decided"] = partial.thread_id
    for kind in ("approve", "reject", "respond", "edit"):
        view = service.run(SALLY, actor="alice")
        call = view.pending[0].tool_call_id
        answer: Any = {
            "approve": "approve",
            "reject": {"type": "reject", "message": "no"},
            "respond": {"type": "respond", "message": "done by hand"},
            "edit": service.edit_answer(
                view.thread_id, call, {"recipient": "bo@example.com", "message": "hey"}
            ),
        }[kind]
        service.decide(view.thread_id, {call: answer}, actor="bob")
        threads[f"{kind}d, done"] = view.thread_id
    threads["no tool call"] = service.run("hello there", actor="alice").thread_id
    again = service.run(SALLY, actor="alice")
    service.decide(again.thread_id, EveryPending("approve"), actor="bob")
    service.run(SALLY, again.thread_id, actor="alice")
    threads["second turn waiting"] = again.thread_id
    return threads


def test_the_plain_reader_shows_each_demo_thread_as_the_graph_does(tmp_path: Path) -> None:
    db = tmp_path / "hitl.sqlite"
    with open_test_service(db, ToolLog()) as service:
        threads = demo_threads(service, db)
    crashed = None

    def die(name: str, tool_call_id: str) -> None:
        raise Died

    with open_test_service(db, ToolLog(before_run=die)) as service:
        crashed = service.run(SALLY, actor="alice").thread_id
        with pytest.raises(Died):
            service.decide(crashed, EveryPending("approve"), actor="bob")
    threads["died in the tool"] = crashed
    with open_test_service(db, ToolLog()) as service:
        service.pending()  # flags the dead call outcome_unknown
        graph_views = {name: service.show(t).to_json() for name, t in threads.items()}
    answered = {}
    for name, thread_id in threads.items():
        fast = fast_view(db, thread_id)
        if fast is not None:
            assert fast == graph_views[name], name
            answered[name] = fast["status"]
    # the states a person looks at most are read without the graph
    assert answered.get("waiting") == "interrupted"
    assert answered.get("approved, done") == "done"
    assert answered.get("second turn waiting") == "interrupted"


@pytest.mark.parametrize("graph", ["handmade", "agent"])
def test_the_plain_reader_shows_a_users_graph_as_the_graph_does(
    tmp_path: Path, graph: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hand-built graph (one interrupt per call, `Send`) and `create_agent` (batched)."""
    db = tmp_path / "hitl.sqlite"
    users = user_settings(tmp_path, graph, two_appends())
    for name, value in users.items():  # the user's module reads its own settings
        monkeypatch.setenv(name, value)
    settings = hitl_settings(db, extra=users)
    with assemble(settings) as parts:
        service = parts.service
        for thread_id in ("waiting", "half", "done"):
            service.run("append two lines", thread_id, actor="alice")
        first = service.show("half").pending[0].tool_call_id
        service.decide("half", {first: "approve"}, actor="bob")
        service.decide("done", EveryPending("approve"), actor="bob")
        graph_views = {t: service.show(t).to_json() for t in ("waiting", "half", "done")}
    for thread_id, expected in graph_views.items():
        fast = fast_view(db, thread_id)
        assert fast is None or fast == expected, thread_id
    assert [graph_views[t]["status"] for t in graph_views] == ["interrupted", "interrupted", "done"]
