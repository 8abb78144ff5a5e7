"""Benchmark: how long `hitl --help`, `hitl pending` and `hitl show ID` take, from process start
to exit, beside `python -c pass` measured in the same run.

It builds two SQLite databases in a temp dir (deleted at the end): one with a single thread
waiting for an approval, and one of `--threads` threads (`--pending-percent` of them waiting),
cloned in SQL from real ones as `bench/inbox.py` does. Each round runs every command once, in
the same order, so machine noise hits them alike; it prints min / median / max over the rounds
and each median's excess over the baseline's. Target: every median ≤ baseline + 0.25 s.

    python -m bench.cli_startup [--rounds 7] [--threads 2000] [--pending-percent 1]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.inbox import PROMPT, build_database

TARGET_EXCESS = 0.25
"""Seconds a command's median may exceed `python -c pass`'s median."""


def hitl_command() -> str:
    """The `hitl` script beside this interpreter (the venv's)."""
    found = Path(sys.executable).parent / "hitl"
    return str(found) if found.exists() else shutil.which("hitl") or "hitl"


def clean_environment(work: Path) -> dict[str, str]:
    """This process's environment without `HITL_*` settings, so only `--db` names the data."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HITL_")}
    return env | {"HITL_ACTOR": "bench", "HOME": os.environ.get("HOME", str(work))}


def run(command: Sequence[str], cwd: Path, env: dict[str, str]) -> str:
    """Run `command` to its end; its output, after checking that it succeeded."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr or done.stdout}")
    return done.stdout


def timed(command: Sequence[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall-clock seconds of one run of `command`, from spawn to exit."""
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed


def one_pending(db: Path, hitl: str, cwd: Path, env: dict[str, str]) -> str:
    """Start one thread that waits for an approval, through the CLI; its thread ID."""
    started = json.loads(run([hitl, "--db", str(db), "run", PROMPT, "--json"], cwd, env))
    if started["status"] != "interrupted":
        sys.exit(f"the first thread did not wait for an approval: {started}")
    return str(started["thread_id"])


def newest_pending(db: Path, hitl: str, cwd: Path, env: dict[str, str]) -> tuple[str, int]:
    """The thread ID of the newest card in the inbox, and how many cards wait in all.

    The newest is one of the real threads the clones were made from (clones are dated
    earlier, and lack the message log's rows, which `hitl show` reads)."""
    page = json.loads(run([hitl, "--db", str(db), "pending", "--desc", "--json"], cwd, env))
    if not page["pending"]:
        sys.exit(f"nothing waits in {db}")
    return str(page["pending"][0]["thread_id"]), int(page["total"])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="runs of every command")
    parser.add_argument("--threads", type=int, default=2000, help="threads in the larger database")
    parser.add_argument(
        "--pending-percent", type=float, default=1.0, help="of them waiting for an approval"
    )
    args = parser.parse_args()
    hitl = hitl_command()

    with tempfile.TemporaryDirectory(prefix="hitl-bench-cli-") as tmp:
        work = Path(tmp)  # also the commands' folder: no langgraph.json of a project is read
        env = clean_environment(work)
        small, many = work / "one.sqlite", work / "many.sqlite"
        small_thread = one_pending(small, hitl, work, env)
        waiting = max(2, round(args.threads * args.pending_percent / 100))
        built = build_database(many, work / "outbox.jsonl", args.threads, waiting)
        many_thread, total = newest_pending(many, hitl, work, env)
        print(
            f"databases: 1 thread waiting; {args.threads:,} threads ({total:,} waiting, "
            f"{many.stat().st_size / 2**20:,.1f} MiB, built in {built:.1f} s)"
        )
        commands: dict[str, list[str]] = {
            "python -c pass (baseline)": [sys.executable, "-c", "pass"],
            "hitl --help": [hitl, "--help"],
            "hitl pending (1 thread)": [hitl, "--db", str(small), "pending"],
            f"hitl pending ({args.threads:,} threads)": [hitl, "--db", str(many), "pending"],
            "hitl show ID (1 thread)": [hitl, "--db", str(small), "show", small_thread],
            f"hitl show ID ({args.threads:,} threads)": [
                hitl,
                "--db",
                str(many),
                "show",
                many_thread,
            ],
        }
        for command in commands.values():  # warm-up: the file system cache, .pyc files
            timed(command, work, env)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, command in commands.items():
                samples[name].append(timed(command, work, env))

    missed = report(samples, args.rounds)
    if missed:
        sys.exit(f"target missed (median ≤ baseline + {TARGET_EXCESS} s): {', '.join(missed)}")


def report(samples: dict[str, list[float]], rounds: int) -> list[str]:
    """Print each command's figures against the baseline; the commands that miss the target."""
    names = list(samples)
    base = statistics.median(samples[names[0]])
    print(f"\nwall-clock seconds per run, {rounds} interleaved rounds; ratios to the baseline:")
    print(
        f"  {'command':<34} {'min':>6} {'median':>7} {'max':>6} │ {'ratio':>6} │ "
        f"{'− baseline':>10} │ target"
    )
    missed = []
    for name in names:
        values = samples[name]
        median = statistics.median(values)
        excess = median - base
        verdict = "" if name == names[0] else "met" if excess <= TARGET_EXCESS else "MISSED"
        if verdict == "MISSED":
            missed.append(name)
        print(
            f"  {name:<34} {min(values):>6.3f} {median:>7.3f} {max(values):>6.3f} │ "
            f"{median / base:>6.1f} │ {excess:>+9.3f}s │ {verdict}"
        )
    print(f"\ntarget: each median ≤ baseline + {TARGET_EXCESS} s — {'MISSED' if missed else 'met'}")
    return missed


if __name__ == "__main__":
    main()
