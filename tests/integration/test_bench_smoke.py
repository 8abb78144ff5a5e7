"""The benchmarks run end to end at a tiny size; what they measure is not checked here."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOST_WIDE = {"hitl-live", "hitl-live/.host-id"}
"""What any hitl process leaves in the temp folder by design: the host's folder of runner
locks, shared by its processes, with the host's ID (a few bytes, made once, not per run)."""


def _bench(tmp_path: Path, name: str, *args: str) -> str:
    """Run `bench/<name>.py` as `dev.py bench` does, with a temp folder of its own; its
    output, after checking it exited 0 and left that folder empty."""
    temp = tmp_path / "tmpdir"
    temp.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *args],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(temp)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    left = sorted(str(p.relative_to(temp)) for p in temp.rglob("*"))
    assert set(left) <= HOST_WIDE, f"bench/{name}.py left files in the temp folder: {left}"
    return done.stdout


@pytest.mark.slow
def test_approval_cycle_benchmark_prints_every_savers_rate_and_cleans_up(tmp_path: Path) -> None:
    out = _bench(tmp_path, "approval_cycle", "--cycles", "3", "--rounds", "1")
    assert re.search(r"InMemorySaver \(baseline\) +[\d.]+/s", out), out


@pytest.mark.slow
def test_inbox_benchmark_builds_both_sizes_and_prints_the_ratio_and_the_query_plan(
    tmp_path: Path,
) -> None:
    out = _bench(
        tmp_path, "inbox", "--sizes", "200", "1000", "--repeats", "50", "--naive-runs", "1"
    )
    assert re.search(r"inbox first page ratio 1000/200 threads: \d+\.\d\d", out), out
    assert "EXPLAIN QUERY PLAN" in out


@pytest.mark.slow
def test_concurrency_benchmark_runs_two_deciders_without_lost_or_repeated_calls(
    tmp_path: Path,
) -> None:
    out = _bench(tmp_path, "concurrency", "--threads", "10", "--procs", "1", "2", "--rounds", "1")
    assert re.search(r"throughput ratio 2/1 processes: \d+\.\d\d", out), out


@pytest.mark.slow
def test_long_threads_benchmark_prints_every_ratio_against_its_baselines(tmp_path: Path) -> None:
    out = _bench(tmp_path, "long_threads", "--cycles", "12", "--samples", "2", "--no-check")
    assert "one raw SQLite commit" in out
    ratios = ("ratio bytes/cycle 1000÷10", "ratio resume → tool 1000÷10")
    for figure in (*ratios, "stock ÷ ours", "delta ÷ ours"):
        assert figure in out, out
    assert re.search(r"ours +[\d.]+ ms → +[\d.]+ ms: ratio +\d+\.\d\d", out), out
    assert re.search(r"service's growth ÷ the graph's: \d+\.\d\d", out), out


@pytest.mark.slow
def test_retention_benchmark_prunes_and_every_pending_approval_still_resumes(
    tmp_path: Path,
) -> None:
    out = _bench(tmp_path, "retention", "--finished", "200", "--real", "2", "--pending", "3")
    assert re.search(r"after `hitl prune` \(ratio 0\.\d\d\)", out), out
    assert "3/3 pending approvals resumed to the end, 3 emails sent for 3 distinct calls" in out
    assert "every chain verifies" in out


@pytest.mark.slow
def test_middleware_benchmark_prints_both_agents_rates_commits_and_bytes(tmp_path: Path) -> None:
    out = _bench(tmp_path, "middleware_cycle", "--cycles", "5", "--rounds", "1", "--target", "0")
    assert re.search(r"ApprovalMiddleware .* ratio \d+\.\d\d   commits/cycle \d", out), out
    assert "bytes written/cycle" in out


@pytest.mark.slow
def test_peers_benchmark_prints_every_setup_and_target(tmp_path: Path) -> None:
    loose = ("--vs-peer", "0", "--vs-memory", "0", "--cpu", "99", "--service", "0")
    limits = ("--commits", "99", "--service-commits", "99", "--bytes", "99")
    out = _bench(tmp_path, "peers", "--cycles", "3", "--rounds", "1", *loose, *limits)
    assert out.count("/s  ÷ peer") == 5, out
    assert re.search(r"commits per cycle, service +\d+\.\d\d +target <= 99", out), out


@pytest.mark.slow
def test_serve_vs_dev_benchmark_drives_both_servers_and_prints_every_target(
    tmp_path: Path,
) -> None:
    loose = ("--vs-dev", "0", "--tail", "999")
    tiny = ("--clients", "1", "2", "--seconds", "1", "--rounds", "1")
    out = _bench(tmp_path, "serve_vs_dev", *tiny, *loose)
    for server in ("langgraph dev", "hitl serve"):
        assert re.search(rf"^ +2  {server} +\d+\.\d\d +\d+\.\d\d ", out, re.M), out
        assert re.search(rf"^  {server}: tool runs (\d+), approvals answered \1$", out, re.M), out
    assert re.search(r"hitl serve ÷ langgraph dev, 2 client\(s\) +\d+\.\d\d +target >= 0", out)


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_cycle_benchmark_prints_both_databases_commits_and_round_trips(
    tmp_path: Path,
) -> None:
    from tests.support.postgres import require_postgres, server_url

    require_postgres()
    args = ("--url", server_url(), "--cycles", "3", "--rounds", "1", "--target", "99")
    out = _bench(tmp_path, "postgres_cycle", *args)
    assert re.search(r"postgres .* commits +\d+\.\d +round trips +\d+\.\d", out), out
    assert re.search(r"cpu ÷ SQLite's +\d+\.\d\d +target <= 99 +ok", out), out
