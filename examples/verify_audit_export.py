"""Verify an audit export (`hitl audit --export FILE`) offline, with Python's standard library.

    python3 verify_audit_export.py audit.jsonl      # or - to read standard input

Recomputes every thread's hash chain as hitl does: entry N stores the hash of entry N-1
(64 zeros for the first) and its own hash, the SHA-256 of `prev_hash + "\\n" + body`, where
body is the canonical JSON (sorted keys, no spaces, UTF-8) of
`[thread_id, seq, repr(at), event, actor, tool_call_id, detail]`. Prints the first entry that
does not verify (its line, thread and seq) and exits 1; else the newest hash of each thread,
to compare with the heads `hitl audit --verify` printed (or that you anchored elsewhere):
deleting a thread's newest entries cannot be seen from the chain alone.
"""

import hashlib
import json
import sys
from typing import Any, TextIO

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def link_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    fields = ("thread_id", "seq", "at", "event", "actor", "tool_call_id", "detail")
    linked = [entry[f] for f in fields]
    linked[2] = repr(float(linked[2]))  # `at`, UNIX seconds, hashed as Python's repr
    body = canonical_json(linked)
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def first_broken(lines: TextIO) -> tuple[str | None, dict[str, str]]:
    """The first problem (None: every chain verifies) and each thread's newest hash."""
    heads: dict[str, str] = {}
    expected: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            thread, seq = str(entry["thread_id"]), int(entry["seq"])
            prev, stored = entry["prev_hash"], entry["hash"]
            recomputed = link_hash(prev, entry)
        except (ValueError, KeyError, TypeError) as e:
            return f"line {number}: not an audit entry ({e})", heads
        where = f"line {number}: thread {thread} entry {seq}"
        if seq != expected.get(thread, 1):
            return f"{where}: expected entry {expected.get(thread, 1)} (one is missing)", heads
        if prev != heads.get(thread, GENESIS):
            return f"{where} does not chain to the entry before it", heads
        if recomputed != stored:
            return f"{where} was altered (its hash does not match)", heads
        heads[thread], expected[thread] = stored, seq + 1
    return None, heads


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python3 verify_audit_export.py FILE|-", file=sys.stderr)
        return 2
    try:
        source = sys.stdin if argv[1] == "-" else open(argv[1], encoding="utf-8")  # noqa: SIM115
    except OSError as e:
        print(f"cannot read {argv[1]}: {e.strerror}", file=sys.stderr)
        return 2
    with source:
        problem, heads = first_broken(source)
    if problem is not None:
        print(f"BROKEN  {problem}")
        return 1
    for thread, head in sorted(heads.items()):
        print(f"head  thread {thread}  {head}")
    threads = f"{len(heads)} thread{'' if len(heads) == 1 else 's'}"
    print(f"{threads}: every chain verifies")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
