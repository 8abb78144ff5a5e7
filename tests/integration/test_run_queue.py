"""The run queue on a SQLite file: order per thread, dead runners, poison runs, owners."""

from pathlib import Path

from hitl.checkpoints.ledger import mark_done, mark_live, new_token
from hitl.checkpoints.stores import MAX_ATTEMPTS, RunQueue, open_run_queue


def live() -> str:
    token = new_token()
    mark_live(token)
    return token


def test_runs_of_one_thread_are_claimed_one_at_a_time_in_order(tmp_path: Path) -> None:
    with open_run_queue(tmp_path / "q.sqlite") as queue:
        first = queue.enqueue("t", "message", {"messages": ["a"]}, actor="x")
        second = queue.enqueue("t", "resume", {}, actor="x")
        other = queue.enqueue("u", "resume", {}, actor="x")
        runner = live()
        assert queue.claim(runner).run_id == first.run_id  # type: ignore[union-attr]
        assert queue.claim(runner).run_id == other.run_id  # type: ignore[union-attr]
        assert queue.claim(runner) is None  # t's second waits for its first
        queue.finish(first.run_id, runner)
        assert queue.claim(runner).run_id == second.run_id  # type: ignore[union-attr]


def test_a_run_whose_runner_died_is_claimed_again(tmp_path: Path) -> None:
    with open_run_queue(tmp_path / "q.sqlite") as queue:
        run = queue.enqueue("t", "resume", {}, actor="x")
        dead = live()
        assert queue.claim(dead) is not None
        assert queue.claim(live()) is None  # alive: nobody else takes it
        mark_done(dead)  # what the kernel does when its process dies
        again = queue.claim(live())
        assert again is not None and again.run_id == run.run_id and again.attempts == 2


def test_a_run_that_kills_its_runner_every_time_is_given_up_and_the_thread_moves_on(
    tmp_path: Path,
) -> None:
    with open_run_queue(tmp_path / "q.sqlite") as queue:
        poison = queue.enqueue("t", "resume", {}, actor="x")
        after = queue.enqueue("t", "resume", {}, actor="x")
        for _ in range(MAX_ATTEMPTS):
            runner = live()
            claimed = queue.claim(runner)
            assert claimed is not None and claimed.run_id == poison.run_id
            mark_done(runner)  # died mid-run
        assert queue.claim(live()) is None  # this claim gives the poison run up
        given_up = queue.get(poison.run_id)
        assert given_up is not None and (given_up.status, given_up.error_type) == (
            "failed",
            "GaveUp",
        )
        assert queue.claim(live()).run_id == after.run_id  # type: ignore[union-attr]


def test_waiting_for_a_busy_thread_is_not_an_attempt(tmp_path: Path) -> None:
    with open_run_queue(tmp_path / "q.sqlite") as queue:
        run = queue.enqueue("t", "resume", {}, actor="x")
        for _ in range(MAX_ATTEMPTS + 2):
            runner = live()
            assert queue.claim(runner) is not None
            queue.postpone(run.run_id, runner, 0.0, "busy")
            mark_done(runner)
        claimed = queue.claim(live())
        assert claimed is not None and claimed.attempts == 1


def test_only_the_runner_that_holds_a_run_records_its_end(tmp_path: Path) -> None:
    with open_run_queue(tmp_path / "q.sqlite") as queue:
        run = queue.enqueue("t", "resume", {}, actor="x")
        stale = live()
        queue.claim(stale)
        mark_done(stale)  # taken for dead ...
        fresh = live()
        assert queue.claim(fresh) is not None  # ... and claimed again
        assert queue.finish(run.run_id, stale) is None  # the late report changes nothing
        queue.postpone(run.run_id, stale, 0.0, "late")
        assert queue.get(run.run_id).status == "running"  # type: ignore[union-attr]
        done = queue.finish(run.run_id, fresh)
        assert done is not None and done.status == "done"


def test_a_resume_is_queued_only_if_the_thread_has_no_open_run(tmp_path: Path) -> None:
    with open_run_queue(tmp_path / "q.sqlite") as queue:
        assert queue.enqueue_resume("t", actor="sweep") is not None
        assert queue.enqueue_resume("t", actor="sweep") is None
        runner = live()
        run = queue.claim(runner)
        assert run is not None
        queue.finish(run.run_id, runner)
        assert queue.enqueue_resume("t", actor="sweep") is not None


def test_the_queue_survives_reopening(tmp_path: Path) -> None:
    db = tmp_path / "q.sqlite"
    with open_run_queue(db) as queue:
        run = queue.enqueue("t", "resume", {}, actor="x")
    with open_run_queue(db) as queue:
        assert isinstance(queue, RunQueue)
        assert queue.get(run.run_id) is not None
