"""The project's commands, needing only Python 3.11: `python3 dev.py serve|demo|test|bench|lint`.

Each command first makes sure `.venv` exists with the project and its dev tools installed
(again only when `pyproject.toml` changed).
"""

import argparse
import contextlib
import hashlib
import json
import os
import shlex
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed-pyproject-sha256"
DEMO_PROMPT = "Send sally@example.com an email saying 'hi'"


def setup() -> None:
    """Create `.venv` and install the project with its dev and postgres extras, if not done
    already (the tests run on PostgreSQL too)."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print(f"creating {VENV.relative_to(ROOT)} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    print("installing the project and its dev tools ...", flush=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev,postgres]"], check=True)
    STAMP.write_text(wanted)


def demo() -> None:
    """Start a thread that needs approval, approve it from a second process, show the result."""
    hitl = str(BIN / "hitl")

    def step(title: str, *args: str) -> dict[str, object]:
        print(f"\n## {title}\n$ hitl {shlex.join(args)}", flush=True)
        done = subprocess.run(
            [hitl, *args, "--json"], cwd=ROOT, check=True, text=True, capture_output=True
        )
        data: dict[str, object] = json.loads(done.stdout)
        human = (
            subprocess.run(
                [hitl, "show", str(data["thread_id"])],
                cwd=ROOT,
                check=True,
                text=True,
                capture_output=True,
            )
            if "thread_id" in data
            else None
        )
        print((human.stdout if human else done.stdout).rstrip())
        return data

    def plain(title: str, *args: str) -> None:
        print(f"\n## {title}\n$ hitl {shlex.join(args)}", flush=True)
        subprocess.run([hitl, *args], cwd=ROOT, check=True)

    started = step(
        "1. The agent proposes a tool call and pauses for a person",
        *("run", DEMO_PROMPT, "--as", "alice"),
    )
    thread_id = str(started["thread_id"])
    plain("2. Any process can list what waits for a decision (the ledger's inbox)", "pending")
    step(
        "3. Another person approves it by thread ID, from a second process; the tool runs once",
        *("approve", thread_id, "--as", "bob", "--comment", "checked the recipient"),
    )
    sent = (ROOT / "checkpoints/outbox.jsonl").read_text().splitlines()[-1]
    print(f"\n## 4. The side effect (demo outbox)\n{sent}")
    plain("5. Who asked, who decided, what ran: the hash-chained audit trail", "audit", thread_id)
    plain("6. Every chain still verifies", "audit", "--verify")
    print(f"\nThe thread lives in checkpoints/hitl.sqlite: try `hitl history {thread_id}`.")


def serve(extra: list[str]) -> None:
    """The main job: the HTTP service and web inbox on the embedded default (SQLite file,
    offline model), with one demo approval waiting so the inbox is not empty; `extra` goes to
    `hitl serve` (`--port 8101`)."""
    command = [str(BIN / "hitl"), "serve", "--demo", *extra]
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how the service is stopped
        subprocess.run(command, cwd=ROOT, check=True)


def test(extra: list[str]) -> None:
    """The whole test suite, slow tests included."""
    subprocess.run([str(BIN / "python"), "-m", "pytest", *extra], cwd=ROOT, check=True)


BENCHMARKS = (
    "approval_cycle",
    "middleware_cycle",
    "peers",
    "postgres_cycle",
    "inbox",
    "concurrency",
    "service_load",
    "serve_vs_dev",
    "long_threads",
    "retention",
    "cli_startup",
    "ledger_soak",
)
"""Modules of `bench/`, run in this order by `python3 dev.py bench`."""


def bench_help() -> str:
    """What `dev.py bench --help` prints: how to run the benchmarks, and which there are."""
    return (
        "usage: python3 dev.py bench [NAME [OPTIONS]]\n\n"
        "Runs every benchmark in bench/, in this order, or the one NAME with its own options\n"
        "(see docs/performance.md):\n"
        + "".join(f"  {name}\n" for name in BENCHMARKS)
        + "\nA benchmark's options: python3 dev.py bench NAME --help"
    )


def bench(extra: list[str]) -> None:
    """Every benchmark, or one with its own options: `dev.py bench inbox --sizes 200 2000`."""
    if extra and extra[0] not in BENCHMARKS:
        sys.exit(
            f"dev.py bench: name the benchmark before its options ({', '.join(BENCHMARKS)}), "
            f"e.g. python3 dev.py bench approval_cycle {shlex.join(extra)}"
        )
    for name in extra[:1] or BENCHMARKS:
        print(f"\n## bench/{name}.py", flush=True)
        # -m from ROOT imports this checkout's packages, whichever one the venv was installed from
        command = [str(BIN / "python"), "-m", f"bench.{name}", *extra[1:]]
        subprocess.run(command, cwd=ROOT, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=["setup", "serve", "demo", "test", "bench", "lint"])
    parser.add_argument(
        "extra",
        nargs=argparse.REMAINDER,
        help="passed on: to hitl serve, pytest, or the benchmark named first (bench --help)",
    )
    args = parser.parse_args()
    if args.command == "bench" and args.extra[:1] in (["-h"], ["--help"]):
        print(bench_help())  # before the set-up: asking how to run it installs nothing
        return
    setup()
    python = str(BIN / "python")
    try:
        if args.command == "serve":
            serve(args.extra)
        elif args.command == "demo":
            demo()
        elif args.command == "test":
            test(args.extra)
        elif args.command == "bench":
            bench(args.extra)
        elif args.command == "lint":
            subprocess.run([python, "-m", "ruff", "check", "."], cwd=ROOT, check=True)
            subprocess.run([python, "-m", "ruff", "format", "--check", "."], cwd=ROOT, check=True)
            subprocess.run([python, "-m", "mypy"], cwd=ROOT, check=True)
            # the layers and package faces declared in pyproject.toml
            subprocess.run([str(BIN / "lint-imports")], cwd=ROOT, check=True)
    except subprocess.CalledProcessError as e:
        sys.exit(e.returncode or 1)


if __name__ == "__main__":
    main()
