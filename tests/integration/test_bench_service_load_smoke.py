"""The HTTP load benchmark runs end to end at a tiny size; its ratio is not checked here."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ("--seconds", "3", "--clients", "2")


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


@pytest.mark.slow
def test_service_load_prints_its_figures_with_no_errors_and_no_duplicate_executions() -> None:
    out = _bench(*SMOKE)
    assert re.search(r"machine: \d+ CPUs", out), out
    assert re.search(r"in-process \(baseline\)\s+\d+\.\d/s", out), out
    assert re.search(r"HTTP\s+\d+\.\d/s", out), out
    assert re.search(r"throughput ratio HTTP / in-process: \d+\.\d\d", out), out
    for kind in ("cycle", "start", "approve"):
        assert re.search(
            rf"^  {kind}\s+[\d.]+\s+[\d.]+ │\s+[\d.]+\s+[\d.]+\s+[1-9]\d*", out, re.M
        ), out
    http = re.search(
        r"^  http\s+errors (\d+), outbox lines (\d+), distinct tool_call_ids (\d+), "
        r"duplicates (\d+), approvals accepted (\d+), ledger succeeded (\d+)$",
        out,
        re.M,
    )
    assert http, out
    errors, lines, distinct, duplicates, accepted, succeeded = map(int, http.groups())
    assert (errors, duplicates) == (0, 0), out
    assert lines == distinct == accepted == succeeded > 0, out
    assert "PASS  zero errors" in out, out
    assert "PASS  zero duplicate executions" in out, out
    assert "PASS  executions == approvals" in out, out
    assert "SKIP  throughput ratio" in out, out  # a smoke run: not judged


@pytest.mark.slow
def test_service_load_json_has_the_same_figures() -> None:
    data = json.loads(_bench(*SMOKE, "--json"))
    assert data["machine"]["cpu_count"] >= 1
    assert data["ratio"] > 0
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
