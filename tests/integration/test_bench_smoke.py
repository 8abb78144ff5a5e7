"""The benchmarks run end to end at a tiny size; what they measure is not checked here."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench(name: str, *args: str) -> str:
    """Run `bench/<name>.py` as `dev.py bench` does; its output, after checking it exited 0."""
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_inbox_benchmark_builds_both_sizes_and_prints_the_ratio_and_the_query_plan() -> None:
    out = _bench("inbox", "--sizes", "200", "1000", "--repeats", "50", "--naive-runs", "1")
    assert re.search(r"inbox first page ratio 1000/200 threads: \d+\.\d\d", out), out
    assert "EXPLAIN QUERY PLAN" in out


@pytest.mark.slow
def test_concurrency_benchmark_runs_two_deciders_without_lost_or_repeated_calls() -> None:
    out = _bench("concurrency", "--threads", "10", "--procs", "1", "2", "--rounds", "1")
    assert re.search(r"throughput ratio 2/1 processes: \d+\.\d\d", out), out


@pytest.mark.slow
def test_long_threads_benchmark_prints_every_ratio_against_its_baselines() -> None:
    out = _bench("long_threads", "--cycles", "12", "--samples", "2", "--no-check")
    assert "one raw SQLite commit" in out
    ratios = ("ratio bytes/cycle 1000÷10", "ratio resume → tool 1000÷10")
    for figure in (*ratios, "stock ÷ ours", "delta ÷ ours"):
        assert figure in out, out
    assert re.search(r"ours +[\d.]+ ms → +[\d.]+ ms: ratio +\d+\.\d\d", out), out


@pytest.mark.slow
def test_retention_benchmark_prunes_and_every_pending_approval_still_resumes() -> None:
    out = _bench("retention", "--finished", "200", "--real", "2", "--pending", "3")
    assert re.search(r"after `hitl prune` \(ratio 0\.\d\d\)", out), out
    assert "3/3 pending approvals resumed to the end, 3 emails sent for 3 distinct calls" in out
    assert "every chain verifies" in out


@pytest.mark.slow
def test_middleware_benchmark_prints_both_agents_rates_commits_and_bytes() -> None:
    out = _bench("middleware_cycle", "--cycles", "5", "--rounds", "1", "--target", "0")
    assert re.search(r"ApprovalMiddleware .* ratio \d+\.\d\d   commits/cycle \d", out), out
    assert "bytes written/cycle" in out


@pytest.mark.slow
def test_peers_benchmark_prints_every_setup_and_target() -> None:
    loose = ("--vs-peer", "0", "--vs-memory", "0", "--cpu", "99", "--service", "0")
    limits = ("--commits", "99", "--service-commits", "99", "--bytes", "99")
    out = _bench("peers", "--cycles", "3", "--rounds", "1", *loose, *limits)
    assert out.count("/s  ÷ peer") == 5, out
    assert re.search(r"commits per cycle, service +\d+\.\d\d +target <= 99", out), out


@pytest.mark.slow
def test_serve_vs_dev_benchmark_drives_both_servers_and_prints_every_target() -> None:
    loose = ("--vs-dev", "0", "--tail", "999")
    out = _bench("serve_vs_dev", "--clients", "1", "2", "--seconds", "1", "--rounds", "1", *loose)
    for server in ("langgraph dev", "hitl serve"):
        assert re.search(rf"^ +2  {server} +\d+\.\d\d +\d+\.\d\d ", out, re.M), out
        assert re.search(rf"^  {server}: tool runs (\d+), approvals answered \1$", out, re.M), out
    assert re.search(r"hitl serve ÷ langgraph dev, 2 client\(s\) +\d+\.\d\d +target >= 0", out)
