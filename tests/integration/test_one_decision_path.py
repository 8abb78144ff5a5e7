"""Every front end decides through `ApprovalService.decide`, the one decision workflow, and
nothing else records a decision: the ledger's `decide` is called once per front-end decision.
Studio's answers, which arrive inside the graph, reach the same ledger operation."""

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from fastapi.testclient import TestClient
from langgraph.types import Command

from hitl.app import open_service
from hitl.checkpoints.database import store_connection
from hitl.checkpoints.ledger import Ledger
from hitl.checkpoints.stores import TokenStore
from hitl.checkpoints.urls import DatabaseName
from hitl.cli.main import cli as hitl_cli
from hitl.server.app import ServerOptions, create_app
from hitl.service.settings import Settings
from hitl.service.workflow import ApprovalService
from tests.support.environment import hitl_environment
from tests.support.fakes import ToolLog
from tests.support.harness import hitl_settings, open_harness
from tests.support.processes import eventually
from tests.support.prompts import SALLY

OPTIONS = ServerOptions(sweep_interval=0, webhooks=False)


class Calls:
    """Who recorded decisions: the service's one method, and the ledger operation under it."""

    def __init__(self) -> None:
        self.service: list[str] = []
        self.ledger: list[str] = []
        self._lock = threading.Lock()

    def saw(self, kind: str, thread_id: str) -> None:
        with self._lock:
            getattr(self, kind).append(thread_id)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    seen = Calls()
    decide, record = ApprovalService.decide, Ledger.decide

    def service_decide(self: ApprovalService, thread_id: str, *a: Any, **kw: Any) -> Any:
        seen.saw("service", thread_id)
        return decide(self, thread_id, *a, **kw)

    def ledger_decide(self: Ledger, thread_id: str, *a: Any, **kw: Any) -> Any:
        seen.saw("ledger", thread_id)
        return record(self, thread_id, *a, **kw)

    monkeypatch.setattr(ApprovalService, "decide", service_decide)
    monkeypatch.setattr(Ledger, "decide", ledger_decide)
    return seen


def _settings(tmp_path: Path) -> Settings:
    return hitl_settings(tmp_path / "hitl.sqlite", tmp_path / "out")


def _start_thread(settings: Settings) -> tuple[str, str]:
    with open_service(settings) as service:
        view = service.run(SALLY, actor="alice")
    return view.thread_id, view.pending[0].tool_call_id


def _token(settings: Settings, name: str = "bob") -> str:
    store = TokenStore(store_connection(settings.db), path=str(settings.db))
    try:
        return store.create(name, "admin", created_by="test")[1]
    finally:
        store.close()


def _sent(tmp_path: Path) -> int:
    out = tmp_path / "out"
    return len(out.read_text().splitlines()) if out.exists() else 0


def test_the_cli_decides_through_the_one_service_method(tmp_path: Path, calls: Calls) -> None:
    settings = _settings(tmp_path)
    thread_id, _ = _start_thread(settings)
    env = hitl_environment(settings.db, tmp_path / "out")
    result = CliRunner().invoke(hitl_cli, ["approve", thread_id, "--as", "bob"], env=env)
    assert result.exit_code == 0, result.output
    assert calls.service == [thread_id] and calls.ledger == [thread_id]
    assert _sent(tmp_path) == 1


@pytest.mark.parametrize("kind", ["approve", "reject", "edit", "respond"])
def test_every_http_decision_route_decides_through_the_one_service_method(
    tmp_path: Path, calls: Calls, kind: str
) -> None:
    """The web inbox posts to these very routes (`inbox.js`: /threads/{id}/{kind})."""
    settings = _settings(tmp_path)
    thread_id, call_id = _start_thread(settings)
    body: dict[str, Any] = {"call": call_id}
    if kind == "edit":
        body["args"] = {"recipient": "sally@example.com", "message": "hello"}
    if kind == "respond":
        body["message"] = "done by hand"
    with TestClient(create_app(settings, OPTIONS)) as client:
        client.headers["Authorization"] = f"Bearer {_token(settings)}"
        answer = client.post(f"/threads/{thread_id}/{kind}", json=body)
        assert answer.status_code == 202, answer.text
        eventually(lambda: client.get(f"/threads/{thread_id}").json()["status"] == "done")
    assert calls.service == [thread_id] and calls.ledger == [thread_id]


def test_a_bulk_decision_decides_each_call_through_the_one_service_method(
    tmp_path: Path, calls: Calls
) -> None:
    """The inbox's "Approve all shown" posts here."""
    settings = _settings(tmp_path)
    thread_id, call_id = _start_thread(settings)
    with TestClient(create_app(settings, OPTIONS)) as client:
        client.headers["Authorization"] = f"Bearer {_token(settings)}"
        body = {"decision": "approve", "calls": [{"thread_id": thread_id, "call": call_id}]}
        answer = client.post("/approvals/bulk", json=body)
        assert answer.is_success, answer.text
        eventually(lambda: client.get(f"/threads/{thread_id}").json()["status"] == "done")
    assert calls.service == [thread_id] and calls.ledger == [thread_id]
    assert _sent(tmp_path) == 1


def test_the_web_inbox_posts_its_decisions_to_the_http_decision_routes() -> None:
    """What the inbox's buttons send: the routes tested above, nothing of their own. Its
    other POSTs make a decision link, assign or snooze a call (none of which decides), or
    decide the calls shown through the bulk route, which decides each through the service."""
    script = Path(__file__).parents[2] / "hitl" / "server" / "static" / "inbox.js"
    text = script.read_text()
    posts = [line.strip() for line in text.splitlines() if 'method: "POST"' in line]
    assert "fetch(`/threads/${encodeURIComponent(thread)}/${kind}`" in text
    assert len(posts) == 3, posts  # decisions; links; the triage helper `post`
    posted_to = sorted(
        line.split("await post(", 1)[1].split(",", 1)[0]
        for line in text.splitlines()
        if "await post(" in line
    )
    assert posted_to == ['"/approvals/bulk"', "path"], posted_to
    triage_table = text[text.index("const TRIAGE = {") :].split("};", 1)[0]
    assert set(re.findall(r'\w+: \["(\w+)"', triage_table)) == {"assign", "snooze"}


@contextmanager
def _served(settings: Settings) -> Iterator[str]:
    config = uvicorn.Config(create_app(settings, OPTIONS), host="127.0.0.1", port=0)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually(lambda: server.started and bool(server.servers))
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_remote_cli_decides_through_the_one_service_method(
    tmp_path: Path, calls: Calls
) -> None:
    settings = _settings(tmp_path)
    thread_id, call_id = _start_thread(settings)
    token = _token(settings)
    with _served(settings) as url:
        result = CliRunner().invoke(
            hitl_cli, ["--url", url, "--token", token, "approve", thread_id, "--call", call_id]
        )
    assert result.exit_code == 0, result.output
    assert "done" in result.output
    assert calls.service == [thread_id] and calls.ledger == [thread_id]
    assert _sent(tmp_path) == 1


def test_an_answer_given_in_studio_reaches_the_same_ledger_operation(
    db: DatabaseName, log: ToolLog, calls: Calls
) -> None:
    """Studio resumes the graph itself; the approval node records the answer in the ledger, as
    Studio's, and the tool runs once."""
    with open_harness(db, log) as parts:
        view = parts.service.run(SALLY, actor="alice")
        pending = view.pending[0]
        config = {"configurable": {"thread_id": view.thread_id}}
        parts.graph.invoke(
            Command(resume={"decisions": [{"type": "approve"}]}), config, durability="sync"
        )
        record = parts.ledger.get(view.thread_id, pending.tool_call_id)
    assert calls.service == [] and calls.ledger == [view.thread_id]
    assert record is not None and record.decided_by == "studio"
    assert log.ids("send_email") == [pending.tool_call_id]
