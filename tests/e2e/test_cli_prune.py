"""`hitl prune` in real processes: its JSON report, its exit codes, and a thread that still
resumes afterwards."""

import sqlite3
from contextlib import closing

from tests.support.cli import Workspace, assert_refused, describe
from tests.support.prompts import COUNT, SALLY


def checkpoints_of(workspace: Workspace, thread_id: str) -> int:
    with closing(sqlite3.connect(workspace.db)) as conn:
        return int(
            conn.execute(
                "SELECT COUNT(*) FROM checkpoints WHERE thread_id = ?", (thread_id,)
            ).fetchone()[0]
        )


def test_prune_trims_the_finished_thread_reports_it_as_json_and_the_waiting_one_resumes(
    workspace: Workspace,
) -> None:
    done = workspace.json("run", COUNT)["thread_id"]
    waiting = workspace.json("run", SALLY)
    history = checkpoints_of(workspace, done)

    dry = workspace.json("prune", "--dry-run")
    assert (dry["dry_run"], dry["threads_trimmed"]) == (True, 1)
    assert checkpoints_of(workspace, done) == history > 1
    report = workspace.json("prune")

    assert report["threads_examined"] == 2
    assert (report["threads_trimmed"], report["threads_deleted"]) == (1, 0)
    assert report["kept"] == {"pending": 1} and report["threads_kept"] == 1
    assert report["checkpoints_deleted"] == dry["checkpoints_deleted"] > 0
    assert report["bytes_after"] < report["bytes_before"]
    assert checkpoints_of(workspace, done) == 1
    assert workspace.json("show", done)["status"] == "done"
    approved = workspace.json("approve", waiting["thread_id"])
    assert approved["status"] == "done"
    assert workspace.sent_ids() == [waiting["pending"][0]["tool_call_id"]]


def test_prune_prints_one_summary_line_for_people(workspace: Workspace) -> None:
    workspace.json("run", COUNT)
    result = workspace.run("prune", "--older-than", "30d", "--no-vacuum")
    assert result.returncode == 0, describe(result)
    assert result.stdout.startswith("1 threads: 0 trimmed, 0 deleted, 1 untouched (1 recent);")
    assert len(result.stdout.splitlines()) == 1


def test_prune_refuses_a_bad_age_and_a_missing_database(workspace: Workspace) -> None:
    assert_refused(
        workspace, "prune", "--older-than", "soon", exit_code=2, says=["90s, 30m"], as_json=False
    )
    assert_refused(
        workspace,
        "prune",
        exit_code=10,
        says=["no such database file"],
        as_json=True,
        error_type="DatabaseError",
    )
    assert not workspace.db.exists()
