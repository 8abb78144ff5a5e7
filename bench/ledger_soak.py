"""Soak: the ledger's state-machine test run for many more examples than CI, each run random.

The test is tests/integration/test_ledger_state_machine.py (CI runs it derandomized).

Requests, decisions by several actors (at once, and late), sweeps with a moving clock, crashes
between journal steps, reconciles and SQL tampering, with every invariant checked after each
step. Prints the number of examples and the time taken; exits non-zero on the first failure,
with hypothesis's falsifying example and the decorator that reproduces it.

    python -m bench.ledger_soak [--examples 5000] [--statistics]
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/integration/test_ledger_state_machine.py::test_the_ledger_state_machine"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--examples", type=int, default=5000, help="state-machine examples to run (CI runs 150)"
    )
    parser.add_argument(
        "--statistics", action="store_true", help="print hypothesis's per-rule statistics"
    )
    args = parser.parse_args()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "timeout=0"]
    if args.statistics:
        command.append("--hypothesis-show-statistics")
    environ = os.environ | {"HITL_SOAK_EXAMPLES": str(args.examples)}
    start = time.perf_counter()
    done = subprocess.run([*command, TEST], cwd=ROOT, env=environ)
    took = time.perf_counter() - start
    verdict = "passed" if done.returncode == 0 else "FAILED"
    print(f"ledger state machine: {args.examples} examples {verdict} in {took:.1f} s")
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
