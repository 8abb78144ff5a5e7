"""What the benches share: the bytes this process wrote, and the table of targets met or
missed that decides a bench's exit status."""

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

Check = tuple[str, float, Literal[">=", "<="], float]
"""A figure to check: (label, measured value, sense, target)."""


def written_bytes() -> int:
    """Bytes this process has passed to `write` calls so far (Linux)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def report_targets(checks: Sequence[Check], *, width: int = 28) -> int:
    """Print each figure against its target; the exit status: 1 if one was missed."""
    missed = []
    for label, value, sense, target in checks:
        ok = value >= target if sense == ">=" else value <= target
        print(
            f"  {label:{width}} {value:6.2f}  target {sense} {target:g}  {'ok' if ok else 'MISSED'}"
        )
        if not ok:
            missed.append(label)
    if missed:
        print(f"targets missed: {', '.join(missed)}")
        return 1
    return 0
