"""The conversation stored once per message: checkpoints that do not grow with the history,
an approval path that reads only the newest messages, and state, history, forks and edits
that still see the whole conversation."""

import sqlite3
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.sqlite import SqliteSaver

from hitl.checkpoints.savers import LOG_REF_KEY, SqliteMessageSource, make_strict_serializer
from hitl.service.workflow import ApprovalService
from tests.support.fakes import ToolLog
from tests.support.harness import graph_without_ledger, open_harness, open_test_service
from tests.support.prompts import COUNT, SALLY

pytestmark = pytest.mark.sqlite_only  # reads and writes the SQLite file itself


def grow(service: ApprovalService, thread_id: str, turns: int) -> None:
    for _ in range(turns):
        service.run(COUNT, thread_id, actor="alice")


def newest_checkpoint_bytes(db: Path, thread_id: str) -> int:
    with sqlite3.connect(db) as conn:
        (size,) = conn.execute(
            "SELECT length(checkpoint) FROM checkpoints WHERE thread_id = ? "
            "ORDER BY checkpoint_id DESC LIMIT 1",
            (thread_id,),
        ).fetchone()
    return int(size)


def stored_bytes(db: Path) -> int:
    """Bytes of every checkpoint, write and message row: what the saver has written."""
    with sqlite3.connect(db) as conn:
        return sum(
            conn.execute(query).fetchone()[0] or 0
            for query in (
                "SELECT SUM(length(checkpoint) + length(metadata)) FROM checkpoints",
                "SELECT SUM(length(value)) FROM writes",
                "SELECT SUM(length(value)) FROM hitl_messages",
            )
        )


def test_a_cycle_writes_the_same_bytes_on_a_long_conversation_as_on_a_short_one(
    db: Path, log: ToolLog
) -> None:
    with open_test_service(db, log) as service:
        grow(service, "short", 2)
        grow(service, "long", 60)
        cost = {}
        for thread_id in ("short", "long"):
            before = stored_bytes(db)
            grow(service, thread_id, 1)
            cost[thread_id] = stored_bytes(db) - before
        assert service.show("long").messages_total == 4 * 61
    assert cost["long"] <= 1.05 * cost["short"], cost
    assert newest_checkpoint_bytes(db, "long") <= newest_checkpoint_bytes(db, "short") + 64
    assert newest_checkpoint_bytes(db, "long") <= 4096


def test_the_same_graph_on_the_stock_saver_writes_more_as_the_conversation_grows(
    tmp_path: Path,
) -> None:
    """The control: what the test above would see without the log."""
    db = tmp_path / "stock.sqlite"
    with SqliteSaver.from_conn_string(str(db)) as saver:
        graph = graph_without_ledger(saver, ToolLog())
        for n in range(30):
            graph.invoke({"messages": [("user", COUNT)]}, {"configurable": {"thread_id": "t"}})
            if n == 1:
                short = newest_checkpoint_bytes(db, "t")
    assert newest_checkpoint_bytes(db, "t") > 5 * short


def test_each_message_is_stored_once(db: Path, log: ToolLog) -> None:
    with open_test_service(db, log) as service:
        grow(service, "t", 5)
        view = service.run(SALLY, "t", actor="alice")
        service.decide("t", {view.pending[0].tool_call_id: "approve"}, actor="bob")
        messages = service.show("t").messages_total
    with sqlite3.connect(db) as conn:
        (rows,) = conn.execute("SELECT COUNT(*) FROM hitl_messages").fetchone()
    assert rows == messages == 24


def test_resuming_to_the_tool_reads_only_the_newest_messages(db: Path, log: ToolLog) -> None:
    with open_test_service(db, log) as service:
        grow(service, "t", 50)
        call_id = service.run(SALLY, "t", actor="alice").pending[0].tool_call_id
    read: list[int] = []
    load = SqliteMessageSource.load

    def counting(self: SqliteMessageSource, tail: str, limit: int) -> list[object]:
        found = load(self, tail, limit)
        read.append(len(found))
        return list(found)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SqliteMessageSource, "load", counting)
        read_when_the_tool_ran: list[int] = []
        log.before_run = lambda name, cid: read_when_the_tool_ran.append(sum(read))
        with open_test_service(db, log) as service:  # a fresh process, days later
            service.decide("t", {call_id: "approve"}, actor="bob")
            view = service.show("t")
    assert log.ids("send_email") == [call_id]
    assert read_when_the_tool_ran and read_when_the_tool_ran[0] <= 16, read_when_the_tool_ran
    assert view.messages_total == 4 * 51 and view.status == "done"
    assert sum(read) >= 4 * 51  # the model's turn after the tool reads it all: the control


def test_state_and_history_see_the_whole_conversation_and_forks_keep_both_branches(
    db: Path, log: ToolLog
) -> None:
    config = {"configurable": {"thread_id": "t"}}
    with open_harness(db, log) as parts:
        service = parts.service
        grow(service, "t", 6)
        graph = parts.graph
        state = graph.get_state(config)
        assert [m.type for m in state.values["messages"]][:4] == ["human", "ai", "tool", "ai"]
        assert len(state.values["messages"]) == 24
        lengths = [len(s.values.get("messages", [])) for s in graph.get_state_history(config)]
        assert lengths == sorted(lengths, reverse=True) and lengths[0] == 24
        older = next(
            s for s in graph.get_state_history(config) if len(s.values.get("messages", [])) == 8
        )
        forked = graph.update_state(older.config, {"messages": [HumanMessage("fork", id="f")]})
        fork_ids = [m.id for m in graph.get_state(forked).values["messages"]]
        main_ids = [m.id for m in graph.get_state(state.config).values["messages"]]
    assert fork_ids[:8] == main_ids[:8] and fork_ids[8:] == ["f"] and len(main_ids) == 24


def test_an_edit_of_an_old_message_replaces_it_and_survives_a_reload(
    db: Path, log: ToolLog
) -> None:
    config = {"configurable": {"thread_id": "t"}}
    with open_harness(db, log) as parts:
        service = parts.service
        grow(service, "t", 5)
        target = parts.graph.get_state(config).values["messages"][4]
        parts.graph.update_state(config, {"messages": [HumanMessage("edited", id=target.id)]})
    with open_harness(db, log) as parts:
        messages = list(parts.graph.get_state(config).values["messages"])
    assert len(messages) == 20 and messages[4].content == "edited" and messages[4].id == target.id


def test_a_thread_saved_by_the_stock_saver_continues_and_is_then_stored_as_a_log(
    db: Path, log: ToolLog
) -> None:
    with SqliteSaver.from_conn_string(str(db)) as stock:
        stock.serde = make_strict_serializer()
        graph_without_ledger(stock, log).invoke(
            {"messages": [("user", COUNT)]}, {"configurable": {"thread_id": "t"}}
        )
    with open_test_service(db, log) as service:
        grow(service, "t", 1)
        assert len(service.show("t").messages) == 8
    assert LOG_REF_KEY in _newest_values(db, "t")["messages"]


def test_copied_threads_keep_their_messages_and_deleted_ones_leave_none(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        service = parts.service
        grow(service, "t", 3)
        parts.saver.copy_thread("t", "copy")
        graph = parts.graph
        copied = graph.get_state({"configurable": {"thread_id": "copy"}}).values["messages"]
        assert list(copied) == list(
            graph.get_state({"configurable": {"thread_id": "t"}}).values["messages"]
        )
        parts.saver.delete_thread("t")
    with sqlite3.connect(db) as conn:
        left = dict(conn.execute("SELECT thread_id, COUNT(*) FROM hitl_messages GROUP BY 1"))
    assert left == {"copy": 12}


def delete_elsewhere(db: Path, thread_id: str) -> None:
    """What `hitl prune --older-than` in another process does to a thread."""
    with sqlite3.connect(db) as conn:
        for table in ("checkpoints", "writes", "hitl_messages"):
            conn.execute(f"DELETE FROM {table} WHERE thread_id = ?", (thread_id,))


def _newest_values(db: Path, thread_id: str) -> dict[str, object]:
    """The channel values of the thread's newest checkpoint, as stored."""
    with sqlite3.connect(db) as conn:
        type_, blob = conn.execute(
            "SELECT type, checkpoint FROM checkpoints WHERE thread_id = ? "
            "ORDER BY checkpoint_id DESC LIMIT 1",
            (thread_id,),
        ).fetchone()
    return dict(make_strict_serializer().loads_typed((type_, blob))["channel_values"])


def test_a_plain_add_messages_graph_on_this_saver_keeps_its_plain_lists(db: Path) -> None:
    """Only the project's message channel is stored as a log: another graph's list stays one."""
    from typing import Annotated

    from langchain_core.messages import AIMessage, AnyMessage
    from langgraph.graph import START, StateGraph
    from langgraph.graph.message import add_messages
    from typing_extensions import TypedDict

    from hitl.checkpoints.savers import open_saver

    class Plain(TypedDict):
        messages: Annotated[list[AnyMessage], add_messages]

    builder = StateGraph(Plain)
    builder.add_node("echo", lambda s: {"messages": [AIMessage(f"{len(s['messages'])}")]})
    builder.add_edge(START, "echo")
    with open_saver(db) as saver:
        graph = builder.compile(checkpointer=saver)
        for _ in range(3):
            out = graph.invoke({"messages": [("user", "hi")]}, {"configurable": {"thread_id": "p"}})
    assert [m.content for m in out["messages"]][-2:] == ["hi", "5"]
    assert isinstance(_newest_values(db, "p")["messages"], list)


def test_a_failing_read_does_not_discard_the_rows_another_run_has_buffered(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        service = parts.service
        grow(service, "t", 1)
        saver = parts.saver
        config = {"configurable": {"thread_id": "t"}}
        latest = saver.get_tuple(config)
        assert latest is not None
        saver.put_writes(latest.config, [("late", "buffered")], "task-1")  # not yet committed
        with pytest.raises(RuntimeError), saver.cursor(transaction=False) as cur:
            cur.execute("SELECT 1")
            raise RuntimeError("a reader's own failure")
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM writes WHERE channel = 'late'").fetchone()
    assert rows == (1,)


def test_a_run_whose_conversation_was_deleted_meanwhile_fails_and_refers_to_nothing_missing(
    db: Path, log: ToolLog
) -> None:
    from hitl.checkpoints.errors import MissingMessage

    with open_test_service(db, log) as service:
        grow(service, "t", 2)
        call_id = service.run(SALLY, "t", actor="alice").pending[0].tool_call_id
        log.before_run = lambda name, call_id: delete_elsewhere(db, "t")
        with pytest.raises(MissingMessage, match="lost a stored message this run needs"):
            service.decide("t", {call_id: "approve"}, actor="bob")
    with sqlite3.connect(db) as conn:
        saved = conn.execute("SELECT COUNT(*) FROM checkpoints WHERE thread_id = 't'").fetchone()
    assert saved == (0,)


def test_the_async_methods_read_the_conversation_in_their_worker_thread(
    db: Path, log: ToolLog
) -> None:
    """`langgraph dev` refuses blocking calls on its event loop: what `aget_tuple` and `alist`
    return must need no database read afterwards."""
    import asyncio

    from hitl.checkpoints.savers import SqliteMessageSource

    config = {"configurable": {"thread_id": "t"}}
    with open_harness(db, log) as parts:
        service = parts.service
        grow(service, "t", 3)
        saver = parts.saver

        async def read() -> tuple[object, list[object]]:
            return await saver.aget_tuple(config), [t async for t in saver.alist(config, limit=5)]

        latest, page = asyncio.run(read())
        reads: list[str] = []
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(SqliteMessageSource, "load", lambda *a: reads.append("load") or [])
            loaded = latest.checkpoint["channel_values"]["messages"]  # type: ignore[attr-defined]
            assert loaded.in_memory and len(loaded.load(loaded.tail, 100)) == 12
            for found in page:
                stored = found.checkpoint["channel_values"].get("messages")  # type: ignore[attr-defined]
                if stored is not None and stored.tail is not None:
                    assert len(stored.load(stored.tail, 100)) == stored.length
        assert reads == []
