"""The PostgreSQL saver's buffers (`ThreadBuffers`), with a writer that stands for the database:
one thread's refused rows never touch another's, a commit point returns only once its rows
are on disk, and a run that goes on from dropped rows is stopped."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from hitl.checkpoints.errors import StepsLost
from hitl.checkpoints.savers._thread_buffers import ThreadBuffers, Writes

ROW: Writes = [("INSERT ...", [("row",)])]


class FakeDatabase:
    """Commits what it is given, refusing a thread's rows while `refuse` names it; a commit
    of `hold`'s rows waits for `release`."""

    def __init__(self) -> None:
        self.committed: list[Writes] = []
        self.refuse: set[str] = set()
        self.hold: str | None = None
        self.holding = threading.Event()
        self.release = threading.Event()

    @contextmanager
    def writer(self) -> Iterator[Callable[[Writes], None]]:
        def write(rows: Writes) -> None:
            names = {str(r[0]) for _, params in rows for r in params}
            if self.hold is not None and self.hold in names:
                self.holding.set()
                assert self.release.wait(10)
            if names & self.refuse:
                raise ValueError("refused")
            self.committed.append(rows)

        yield write


def rows_of(thread_id: str) -> Writes:
    return [("INSERT ...", [(thread_id,)])]


def test_one_threads_refused_rows_leave_the_others_buffered_and_then_committed() -> None:
    db = FakeDatabase()
    buffers = ThreadBuffers(db.writer, where="db")
    buffers.add("a", rows_of("a"), checkpoint_id="a1")
    db.refuse = {"b"}
    number = buffers.add("b", rows_of("b"), checkpoint_id="b1")
    with pytest.raises(ValueError, match="refused"):
        buffers.commit("b", number)
    buffers.commit("a")
    assert db.committed == [rows_of("a")]


def test_a_commit_point_waits_for_a_commit_of_its_rows_under_way() -> None:
    db = FakeDatabase()
    buffers = ThreadBuffers(db.writer, where="db")
    db.hold = "t"
    number = buffers.add("t", rows_of("t"))
    reader = threading.Thread(target=buffers.commit, args=("t",))
    reader.start()  # a read: it takes the rows and its commit waits in the database
    assert db.holding.wait(10)
    returned = threading.Event()
    owner = threading.Thread(target=lambda: (buffers.commit("t", number), returned.set()))
    owner.start()
    assert not returned.wait(0.3)  # the rows are not on disk yet
    db.release.set()
    reader.join(10)
    owner.join(10)
    assert returned.is_set() and db.committed == [rows_of("t")]


def test_a_commit_point_whose_rows_another_commit_dropped_raises() -> None:
    db = FakeDatabase()
    buffers = ThreadBuffers(db.writer, where="db")
    db.hold, db.refuse = "t", {"t"}
    number = buffers.add("t", rows_of("t"))
    reader = threading.Thread(target=lambda: list(buffers.commit_all()))
    reader.start()
    assert db.holding.wait(10)
    failures: list[BaseException] = []

    def commit_point() -> None:
        try:
            buffers.commit("t", number)
        except StepsLost as e:
            failures.append(e)

    owner = threading.Thread(target=commit_point)
    owner.start()
    db.release.set()
    reader.join(10)
    owner.join(10)
    assert len(failures) == 1 and "'t'" in str(failures[0]) and "hitl resume t" in str(failures[0])


def test_a_run_going_on_from_a_dropped_checkpoint_is_stopped_and_one_from_disk_is_not() -> None:
    db = FakeDatabase()
    buffers = ThreadBuffers(db.writer, where="db")
    db.refuse = {"t"}
    buffers.add("t", rows_of("t"), checkpoint_id="c1", follows="c0")
    buffers.add("t", rows_of("t"), checkpoint_id="c2", follows="c1")
    assert [type(e) for e in buffers.commit_all()] == [ValueError]
    with pytest.raises(StepsLost):
        buffers.add("t", ROW, follows="c2")  # the run's next step's writes
    with pytest.raises(StepsLost):
        buffers.add("t", ROW, checkpoint_id="c3", follows="c2")  # or its next checkpoint
    db.refuse = set()
    number = buffers.add("t", rows_of("t"), checkpoint_id="d1", follows="c0")  # from disk
    buffers.commit("t", number)
    assert db.committed == [rows_of("t")]


def test_rows_are_taken_only_once_the_writer_is_open() -> None:
    """A commit that cannot get a connection (a pool timeout) drops nothing."""
    db = FakeDatabase()

    @contextmanager
    def no_connection() -> Iterator[Callable[[Writes], None]]:
        raise TimeoutError("pool exhausted")
        yield db.writer  # (unreachable)

    buffers = ThreadBuffers(no_connection, where="db")
    buffers.add("t", rows_of("t"))
    assert [type(e) for e in buffers.commit_all()] == [TimeoutError]
    buffers._writer = db.writer
    buffers.commit("t")
    assert db.committed == [rows_of("t")]


def test_a_step_added_while_its_parents_commit_is_under_way_is_dropped_if_that_fails() -> None:
    """The run goes on while a read commits its rows: when that commit fails, the step it
    added meanwhile (which follows the dropped ones) is not committed alone."""
    db = FakeDatabase()
    buffers = ThreadBuffers(db.writer, where="db")
    db.hold, db.refuse = "t", {"t"}
    buffers.add("t", rows_of("t"), checkpoint_id="c1", follows="c0")
    reader = threading.Thread(target=lambda: list(buffers.commit_all()))
    reader.start()
    assert db.holding.wait(10)
    number = buffers.add("t", rows_of("t2"), checkpoint_id="c2", follows="c1")
    db.release.set()
    reader.join(10)
    with pytest.raises(StepsLost):
        buffers.commit("t", number)
    with pytest.raises(StepsLost):
        buffers.add("t", ROW, checkpoint_id="c3", follows="c2")
    assert db.committed == []


def test_a_commit_of_one_thread_never_waits_for_another_threads() -> None:
    db = FakeDatabase()
    buffers = ThreadBuffers(db.writer, where="db")
    db.hold = "x"
    buffers.add("x", rows_of("x"))
    held = threading.Thread(target=buffers.commit, args=("x",))
    held.start()
    assert db.holding.wait(10)
    buffers.add("y", rows_of("y"))
    done = threading.Event()
    threading.Thread(target=lambda: (buffers.commit("y"), done.set()), daemon=True).start()
    assert done.wait(5)  # while x's commit is held up
    db.release.set()
    held.join(10)
    assert db.committed == [rows_of("y"), rows_of("x")]
    assert buffers._turns == {}  # no lock kept for a thread nobody commits
