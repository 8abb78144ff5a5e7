"""The HTTP load benchmark runs end to end at a tiny size; its ratio is not checked here."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.postgres import require_postgres, server_url

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ("--seconds", "3", "--clients", "2")
NOWHERE = "postgresql://postgres@127.0.0.1:1/nothing"
"""A PostgreSQL server that is not there (port 1 refuses at once)."""


def _bench(*args: str) -> str:
    """Run `bench/service_load.py` as `dev.py bench` does; its output, after checking it
    exited 0 (a smoke run under 30 s does not judge the ratio, only errors and duplicates)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.service_load", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _counts(out: str, label: str) -> tuple[int, ...]:
    """A phase's line of "errors, executions and approvals": errors, outbox lines, distinct
    tool_call_ids, duplicates, approvals accepted, ledger succeeded."""
    found = re.search(
        rf"^  {re.escape(label)}\s+errors (\d+), outbox lines (\d+), distinct tool_call_ids "
        r"(\d+), duplicates (\d+), approvals accepted (\d+), ledger succeeded (\d+)$",
        out,
        re.M,
    )
    assert found, out
    return tuple(map(int, found.groups()))


def _every_approval_ran_once(out: str, label: str) -> None:
    errors, lines, distinct, duplicates, accepted, succeeded = _counts(out, label)
    assert (errors, duplicates) == (0, 0), out
    assert lines == distinct == accepted == succeeded > 0, out


@pytest.mark.slow
def test_service_load_prints_its_figures_with_no_errors_and_no_duplicate_executions() -> None:
    out = _bench(*SMOKE, "--pg-url", NOWHERE)
    assert re.search(r"^note: PostgreSQL at \S+ is not reachable .*only the SQLite", out, re.M)
    assert re.search(r"machine: \d+ CPUs", out), out
    assert re.search(r"in-process \(baseline\)\s+\d+\.\d/s", out), out
    assert re.search(r"HTTP\s+\d+\.\d/s", out), out
    assert re.search(r"throughput ratio HTTP / in-process: \d+\.\d\d", out), out
    for kind in ("cycle", "start", "approve"):
        assert re.search(
            rf"^  {kind}\s+[\d.]+\s+[\d.]+ │\s+[\d.]+\s+[\d.]+\s+[1-9]\d*", out, re.M
        ), out
    _every_approval_ran_once(out, "http")
    assert "HTTP, PostgreSQL" not in out, out
    assert "PASS  zero errors" in out, out
    assert "PASS  zero duplicate executions" in out, out
    assert "PASS  executions == approvals" in out, out
    assert "SKIP  throughput ratio" in out, out  # a smoke run: not judged


@pytest.mark.slow
def test_service_load_json_has_the_same_figures() -> None:
    data = json.loads(_bench(*SMOKE, "--no-pg", "--json"))
    assert data["machine"]["cpu_count"] >= 1
    assert data["ratio"] > 0
    assert data["postgres"]["configurations"] == []
    for phase in (*data["http"], *data["in_process"]):
        assert phase["clients"] == 2
        assert phase["cycles"] > 0 and phase["cycles_per_second"] > 0
        assert {"cycle", "start", "approve"} <= phase["latency_ms"].keys()
        assert phase["errors"] == 0 and phase["duplicates"] == 0, phase
        assert (
            phase["outbox_lines"]
            == phase["distinct_tool_call_ids"]
            == phase["approvals_accepted"]
            == phase["ledger_succeeded"]
        ), phase
    verdicts = {t["name"]: t["passed"] for t in data["targets"]}
    assert verdicts["zero errors"] is True
    assert verdicts["zero duplicate executions"] is True
    assert verdicts["executions == approvals"] is True


@pytest.mark.slow
@pytest.mark.postgres
def test_service_load_on_two_postgres_processes_runs_every_approval_once() -> None:
    require_postgres()
    out = _bench(*SMOKE, "--pg-processes", "2", "--pg-url", server_url())
    assert "2 hitl serve process(es) on a fresh schema each" in out, out
    row = re.search(
        r"^  HTTP, PostgreSQL, 2 processes\s+(\d+\.\d)\s+(\d+\.\d\d)\s+[\d.]+\s+[\d.]+\s+(\d+)"
        r"  (\d+) = (\d+)\s+(\d+)",
        out,
        re.M,
    )
    assert row, out
    rate, ratio, errors, runs, approvals, duplicates = row.groups()
    assert float(rate) > 0 and float(ratio) > 0, out
    assert (int(errors), int(duplicates)) == (0, 0), out
    assert int(runs) == int(approvals) > 0, out
    for label in ("http", "pg×2"):
        _every_approval_ran_once(out, label)
    assert "PASS  executions == approvals" in out, out
