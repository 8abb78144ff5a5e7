"""Where a run's rows commit, on both backends (`CommitPoints`): they wait in memory, and
commit where durability needs them (the step that schedules a tool, the tool's result, an
interrupt, the run's end), as another connection sees."""

import operator
import time
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from hitl.checkpoints.savers import open_saver
from hitl.checkpoints.urls import DatabaseName
from tests.support.fakes import ToolLog
from tests.support.harness import open_harness, open_test_service
from tests.support.prompts import SALLY
from tests.support.sql import checkpoint_table, checkpoints_on_disk, execute, looking_mid_tool


def test_a_runs_steps_commit_together_at_its_interrupt(db: DatabaseName, log: ToolLog) -> None:
    """The steps up to an interrupt are buffered, then committed in one transaction (on
    PostgreSQL each statement was its own): all of them on disk when the run returns."""
    with open_harness(db, log) as parts:
        before = parts.saver.commits
        parts.service.run(SALLY, "t", actor="alice")
        assert parts.saver.commits - before == 1
        assert checkpoints_on_disk(db) == 3  # the input, the agent's step, the one it stopped at


class _Log(TypedDict):
    log: Annotated[list[str], operator.add]


def _tool_step_graph(
    saver: Any,
    seen: dict[str, object],
    db: DatabaseName,
    *,
    writes_late: bool = False,
    stop_before_tools: bool = False,
) -> Any:
    """agent → tools → after, on `saver`; `seen["rows"]`: the tools step's rows on disk, read
    from another connection the moment its writes are put. `writes_late`: those writes are
    put after the next checkpoint (the pool thread saving them runs late)."""
    put_writes = saver.put_writes

    def watched_put_writes(config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        tool = any(value == ["tool ran"] for _, value in writes)
        if tool and writes_late:
            time.sleep(0.2)  # the next step has started: its checkpoint is put
        put_writes(config, writes, task_id, task_path)
        if tool:
            writes = checkpoint_table(db, "writes")
            query = f"SELECT COUNT(*) FROM {writes} WHERE task_id = ?"
            seen["rows"] = execute(db, query, (task_id,))[0][0]

    saver.put_writes = watched_put_writes  # type: ignore[method-assign]
    builder = StateGraph(_Log)
    builder.add_node("agent", lambda s: {"log": ["asked"]})
    builder.add_node("tools", lambda s: {"log": ["tool ran"]})
    pause = 0.5 if writes_late else 0.0  # the next step outlasts the late writes
    builder.add_node("after", lambda s: (time.sleep(pause), {"log": ["after"]})[1])
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "tools")
    builder.add_edge("tools", "after")
    builder.add_edge("after", END)
    return builder.compile(
        checkpointer=saver, interrupt_before=["tools"] if stop_before_tools else None
    )


def test_a_tool_steps_writes_commit_at_once_when_its_next_checkpoint_is_put_first(
    db: DatabaseName,
) -> None:
    """LangGraph saves a step's writes and the next checkpoint on its pool's threads, in either
    order: a saver the ledger does not carry still commits the tool's result at once."""
    seen: dict[str, object] = {}
    config: Any = {"configurable": {"thread_id": "t"}}
    with open_saver(db) as saver:
        _tool_step_graph(saver, seen, db, writes_late=True).invoke(
            {"log": []}, config, durability="sync"
        )
    assert seen["rows"] == 2  # the tool node's update and its edge to the next node


def test_a_tool_step_resumed_by_a_new_process_commits_its_writes_at_once(db: DatabaseName) -> None:
    """The saver that resumes a thread at its tools step (after a restart) knows the step
    from the checkpoint it loads: the tool's result is on disk when the tool returns."""
    config: Any = {"configurable": {"thread_id": "t"}}
    with open_saver(db) as first:
        graph = _tool_step_graph(first, {}, db, stop_before_tools=True)
        graph.invoke({"log": []}, config, durability="sync")
    seen: dict[str, object] = {}
    with open_saver(db) as restarted:
        graph = _tool_step_graph(restarted, seen, db, stop_before_tools=True)
        assert graph.get_state(config).next == ("tools",)
        graph.invoke(None, config, durability="sync")
    assert seen["rows"] == 2  # the tool node's update and its edge to the next node


def test_the_step_before_the_tool_is_on_disk_when_the_tool_starts(db: DatabaseName) -> None:
    seen: list[tuple[int, str]] = []
    look_from_another_connection = looking_mid_tool(db, seen)

    with open_test_service(db, ToolLog(before_run=look_from_another_connection)) as service:
        view = service.run(SALLY, actor="alice")
        at_the_interrupt = checkpoints_on_disk(db)
        service.decide(view.thread_id, {view.pending[0].tool_call_id: "approve"}, actor="bob")
    ((checkpoints, status),) = seen
    assert status == "running"  # the start, journaled
    assert checkpoints > at_the_interrupt  # and the resumed steps up to the tool, with it


def test_a_failed_run_keeps_its_own_error_when_saving_its_steps_fails_too(
    db: DatabaseName, log: ToolLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flush after a run that raised: its failure is told with the run's error, as a
    note, and does not replace it."""

    def failing_stream(*args: object, **kwargs: object) -> Iterator[object]:
        raise RuntimeError("the model failed")
        yield  # (a generator, as the graph's)

    def failing_flush(thread_id: str | None = None) -> None:
        raise RuntimeError("the disk is gone")

    with open_harness(db, log) as parts:
        monkeypatch.setattr(parts.graph, "stream", failing_stream)
        monkeypatch.setattr(parts.saver, "flush", failing_flush)
        with pytest.raises(RuntimeError, match="the model failed") as raised:
            parts.service.run(SALLY, "t", actor="alice")
        monkeypatch.undo()
    assert any("the disk is gone" in note for note in getattr(raised.value, "__notes__", []))
