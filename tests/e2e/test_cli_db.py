"""`hitl db` in real processes: the schema's status and migration, and moving an installation
from a SQLite file to PostgreSQL with its pending approvals."""

import pytest

from hitl.checkpoints.ledger import SCHEMA_VERSION
from tests.support.cli import Workspace, assert_refused, describe
from tests.support.postgres import fresh_database, require_postgres, server_url
from tests.support.prompts import COUNT, PAIR, SALLY
from tests.support.sql import tables


def _populated(workspace: Workspace) -> dict[str, str]:
    """A SQLite installation with a waiting call, two finished threads, a token, a webhook."""
    waiting = workspace.json("run", SALLY)["thread_id"]
    done = workspace.json("run", COUNT)["thread_id"]
    pair = workspace.json("run", PAIR)
    workspace.json("approve", pair["thread_id"], "--as", "bob")
    assert workspace.run("token", "create", "ops", "--role", "admin").returncode == 0
    hook = workspace.run("webhook", "add", "https://example.com/hook", "--as", "ops")
    assert hook.returncode == 0, describe(hook)
    return {"waiting": waiting, "done": done, "pair": pair["thread_id"]}


@pytest.mark.postgres
def test_db_copy_moves_every_thread_and_a_migrated_pending_call_is_approved_on_postgres(
    workspace: Workspace,
) -> None:
    threads = _populated(workspace)
    before = {name: workspace.json("show", t) for name, t in threads.items()}
    sent_before = workspace.sent_ids()
    source = workspace.json("db", "status")
    with fresh_database() as url:
        copied = workspace.json("db", "copy", "--from", f"sqlite:///{workspace.db}", "--to", url)
        assert copied["verified"] is True and copied["mismatches"] == []
        assert copied["threads"] == 3
        for table in ("hitl_approvals", "hitl_audit", "hitl_tokens", "hitl_webhooks"):
            assert copied["rows"][table] == source["rows"][table] > 0, table
        on_pg = {"HITL_DB": url}
        target = workspace.json("db", "status", extra_env=on_pg)
        assert target["up_to_date"] is True and target["backend"] == "postgres"

        # the same threads, the same conversations, the same inbox
        for name, thread_id in threads.items():
            view = workspace.json("show", thread_id, extra_env=on_pg)
            assert view["messages"] == before[name]["messages"], name
            assert view["status"] == before[name]["status"], name
        pending = workspace.json("pending", extra_env=on_pg)["pending"]
        assert [(p["thread_id"], p["status"]) for p in pending] == [(threads["waiting"], "pending")]

        # a person approves the migrated call on PostgreSQL: the tool runs once, the thread ends
        approved = workspace.json("approve", threads["waiting"], "--as", "carol", extra_env=on_pg)
        assert approved["status"] == "done"
        assert workspace.sent_ids() == [*sent_before, pending[0]["tool_call_id"]]
        verified = workspace.run("audit", threads["waiting"], "--verify", extra_env=on_pg)
        assert verified.returncode == 0, describe(verified)

        again = workspace.json(
            "db", "copy", "--from", f"sqlite:///{workspace.db}", "--to", url, exit_code=10
        )
        assert "is not empty" in again["error"]["message"]


def test_db_copy_of_a_file_that_never_had_webhooks_verifies_and_the_copy_is_usable(
    workspace: Workspace,
) -> None:
    """A file only the CLI used has no webhook tables: the target's, made by `migrate`, are
    its own (a cursor row the source lacks is no difference between them)."""
    done = workspace.json("run", COUNT)["thread_id"]
    waiting = workspace.json("run", SALLY)
    target = workspace.folder / "copy.sqlite"

    copied = workspace.json("db", "copy", "--from", str(workspace.db), "--to", str(target))

    assert (copied["verified"], copied["mismatches"], copied["threads"]) == (True, [], 2)
    on_copy = {"HITL_DB": str(target)}
    assert workspace.json("show", done, extra_env=on_copy)["status"] == "done"
    approved = workspace.json("approve", waiting["thread_id"], extra_env=on_copy)
    assert approved["status"] == "done"


def test_db_status_shows_a_missing_schema_and_migrate_creates_it(workspace: Workspace) -> None:
    assert_refused(
        workspace, "db", "status", exit_code=10, says=["no such database file"], as_json=True
    )
    migrated = workspace.json("db", "migrate")
    assert migrated["up_to_date"] is True and migrated["ledger_version"] == SCHEMA_VERSION
    own = {"hitl_schema", "hitl_webhook_cursor"}  # a version row; the outbox's cursor
    assert all(rows == 0 for table, rows in migrated["rows"].items() if table not in own)
    workspace.json("run", SALLY)
    status = workspace.json("db", "status")
    assert status["rows"]["hitl_approvals"] == 1 and status["up_to_date"] is True


@pytest.mark.postgres
def test_db_migrate_on_postgres_applies_every_migration_once(workspace: Workspace) -> None:
    with fresh_database() as url:
        on_pg = {"HITL_DB": url}
        first = workspace.json("db", "migrate", extra_env=on_pg)
        again = workspace.json("db", "migrate", extra_env=on_pg)
    assert first == again
    assert first["up_to_date"] is True
    assert first["checkpoint_version"] == first["checkpoint_target"] > 0
    assert first["ledger_version"] == first["ledger_target"] == SCHEMA_VERSION


def test_a_database_that_is_neither_a_file_nor_postgresql_is_a_usage_error(
    workspace: Workspace,
) -> None:
    refused = workspace.run("--db", "mysql://root@localhost/hitl", "pending")
    assert refused.returncode == 2, describe(refused)
    assert "neither a SQLite file nor a PostgreSQL URL" in refused.stderr


def test_an_unreachable_postgresql_says_what_to_check_and_creates_nothing(
    workspace: Workspace,
) -> None:
    url = "postgresql://postgres:secret@127.0.0.1:1/hitl?connect_timeout=2"
    refused = workspace.json("db", "status", exit_code=10, extra_env={"HITL_DB": url})
    message = refused["error"]["message"]
    assert "PostgreSQL server is running" in message
    assert "refused" in message.lower() or "failed" in message.lower()  # the server's words
    assert "secret" not in message  # the password is masked
    assert not workspace.db.exists()


def test_a_malformed_postgresql_url_is_refused_naming_what_is_wrong_and_reaches_no_server(
    workspace: Workspace,
) -> None:
    refused = workspace.json("pending", exit_code=10, extra_env={"HITL_DB": "postgresql://::::@/"})[
        "error"
    ]
    assert refused["type"] == "InvalidSettings"
    assert "names no database" in refused["message"]
    assert "no user name" in refused["message"]


@pytest.mark.postgres
@pytest.mark.parametrize("command", [("pending",), ("show", "t-1"), ("audit", "--verify")])
def test_a_read_command_on_a_postgresql_database_without_our_tables_creates_none(
    workspace: Workspace, command: tuple[str, ...]
) -> None:
    with fresh_database() as url:
        refused = workspace.json(*command, exit_code=10, extra_env={"HITL_DB": url})
        assert "hitl db migrate" in refused["error"]["message"]
        assert tables(url) == set()


@pytest.mark.postgres
def test_a_database_that_does_not_exist_is_named_at_once_without_the_password(
    workspace: Workspace,
) -> None:
    require_postgres()
    url = f"{server_url().rsplit('/', 1)[0]}/no_such_database_here?password=s3cret"
    refused = workspace.json("db", "status", exit_code=10, extra_env={"HITL_DB": url})
    message = refused["error"]["message"]
    assert "s3cret" not in message
    assert 'database "no_such_database_here" does not exist' in message


@pytest.mark.postgres
def test_prune_on_postgres_trims_the_finished_thread_and_the_waiting_one_resumes(
    workspace: Workspace,
) -> None:
    with fresh_database() as url:
        on_pg = {"HITL_DB": url}
        done = workspace.json("run", COUNT, extra_env=on_pg)["thread_id"]
        waiting = workspace.json("run", SALLY, extra_env=on_pg)
        report = workspace.json("prune", extra_env=on_pg)
        assert (report["threads_trimmed"], report["kept"]) == (1, {"pending": 1})
        assert report["checkpoints_deleted"] > 0 and report["blobs_deleted"] > 0
        assert len(workspace.json("history", done, extra_env=on_pg)["history"]) == 1
        approved = workspace.json("approve", waiting["thread_id"], extra_env=on_pg)
    assert approved["status"] == "done"
    assert workspace.sent_ids() == [waiting["pending"][0]["tool_call_id"]]


@pytest.mark.postgres
def test_a_pool_size_that_is_not_a_number_is_named(workspace: Workspace) -> None:
    with fresh_database() as url:
        refused = workspace.json(
            "pending", exit_code=10, extra_env={"HITL_DB": url, "HITL_PG_POOL_SIZE": "lots"}
        )
    assert "HITL_PG_POOL_SIZE='lots': give a whole number" in refused["error"]["message"]
