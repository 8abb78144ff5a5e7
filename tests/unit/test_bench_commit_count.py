"""The benches' commit count: what a cycle makes durable, not how many transactions it opens."""

import importlib.util
from pathlib import Path
from types import ModuleType


def _targets() -> ModuleType:
    path = Path(__file__).parents[2] / "bench" / "_targets.py"
    spec = importlib.util.spec_from_file_location("bench_targets", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_read_transaction_is_not_counted_as_a_commit() -> None:
    statements = ["BEGIN", "SELECT 1 FROM hitl_approvals", "COMMIT"]
    assert _targets().commit_count(statements) == 0


def test_each_transaction_that_wrote_counts_once() -> None:
    statements = [
        "BEGIN IMMEDIATE",
        "INSERT INTO hitl_audit VALUES (1)",
        "UPDATE hitl_approvals SET audit_seq = 1",
        "COMMIT",
        "BEGIN",
        "SELECT 1",
        "COMMIT",
        "BEGIN",
        "  insert or replace into checkpoints values (1)",
        "COMMIT",
    ]
    assert _targets().commit_count(statements) == 2


def test_a_rolled_back_write_is_not_counted() -> None:
    statements = ["BEGIN", "DELETE FROM hitl_leases", "ROLLBACK", "BEGIN", "SELECT 1", "COMMIT"]
    assert _targets().commit_count(statements) == 0


def test_a_commit_under_synchronous_normal_is_not_counted_as_synced() -> None:
    statements = [
        "PRAGMA synchronous=NORMAL",
        "BEGIN IMMEDIATE",
        "DELETE FROM hitl_leases",
        "COMMIT",
        "PRAGMA synchronous=FULL",
        "BEGIN IMMEDIATE",
        "UPDATE hitl_approvals SET status = 'approved'",
        "COMMIT",
    ]
    assert _targets().commit_count(statements) == 2
    assert _targets().commit_count(statements, synced_only=True) == 1
