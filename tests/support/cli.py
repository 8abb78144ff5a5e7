"""Running the real `hitl` command in subprocesses and reading what it left on disk."""

import hashlib
import json
import os
import pty
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.environment import HITL, hitl_environment, importable, process_environment
from tests.support.sql import copy_database, database_fingerprint

TIMEOUT_SECONDS = 60
SETPRIV = "setpriv"
"""util-linux's command that runs another command with fewer privileges."""
WITHOUT_FILE_PRIVILEGES = (SETPRIV, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--")
"""Root without the capabilities that let it read and write past file permissions: a file
mode 0444 stops it as it stops any user (the checkout may sit in a folder only root enters,
so running as another user would not do)."""

LEDGER_TABLES = frozenset(
    {"hitl_schema", "hitl_approvals", "hitl_audit", "hitl_leases", "hitl_votes", "hitl_standing"}
)
"""The approvals ledger's tables: a refused command must leave them as they were too."""

STRICT_RULE = 'ToolRule(ask="always", allowed_decisions=("approve", "reject"))'
"""send_email may only be approved or rejected."""
RELAXED_RULE = 'ToolRule(ask="never")'
"""send_email runs without asking anyone."""


def hitl(
    *args: str, env: Mapping[str, str], cwd: Path, restricted: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run `hitl ARGS` in a new process and capture its output (`restricted`: as root without
    the privileges that bypass file permissions, which would otherwise stop no test run as
    root)."""
    assert HITL.exists(), f"{HITL} is missing; install the project in this virtualenv"
    prefix = list(WITHOUT_FILE_PRIVILEGES) if restricted else []
    return subprocess.run(
        [*prefix, str(HITL), *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def hitl_at_a_terminal(
    *args: str, env: Mapping[str, str], cwd: Path
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run `hitl ARGS` with its stderr on a pseudo-terminal, as a person at a terminal runs it
    (stdout captured as `hitl` captures it); also what the terminal showed."""
    leader, follower = pty.openpty()
    shown: list[bytes] = []

    def read_the_terminal() -> None:  # while it runs: a full terminal would block the writer
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: every writer has closed the terminal
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=read_the_terminal, daemon=True)
    reader.start()
    try:
        result = subprocess.run(
            [str(HITL), *args],
            env=dict(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    finally:
        os.close(follower)
        reader.join(TIMEOUT_SECONDS)
        os.close(leader)
    return result, b"".join(shown).decode("utf-8", "replace")


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """A failed command, for assertion messages."""
    return (
        f"$ {' '.join(map(str, result.args))}\nexit {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


def file_tree(folder: Path) -> dict[str, str]:
    """Every path under `folder` with a hash of its content (`dir` for folders)."""
    return {
        str(p.relative_to(folder)): (
            "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        )
        for p in sorted(folder.rglob("*"))
    }


@dataclass(frozen=True)
class Workspace:
    """One database and one outbox in a folder of their own, and `hitl` run on them."""

    folder: Path
    restricted: bool = False
    """`hitl` runs as root without the privileges that bypass file permissions."""

    @classmethod
    def copy_of(cls, source_db: Path, folder: Path) -> "Workspace":
        """A workspace in `folder` whose database starts as a copy of `source_db`."""
        workspace = cls(folder)
        copy_database(source_db, workspace.db)
        return workspace

    @property
    def db(self) -> Path:
        return self.folder / "hitl.sqlite"

    @property
    def outbox(self) -> Path:
        return self.folder / "outbox.jsonl"

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of `hitl` on this workspace, with `extra` settings."""
        return process_environment(hitl_environment(self.db, self.outbox, extra))

    def run(
        self, *args: str, extra_env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`hitl ARGS` on this workspace."""
        return hitl(*args, env=self.env(extra_env), cwd=self.folder, restricted=self.restricted)

    def json(
        self, *args: str, exit_code: int = 0, extra_env: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """`hitl ARGS --json`: check the exit code, parse stdout (it must be one JSON object)."""
        result = self.run(*args, "--json", extra_env=extra_env)
        assert result.returncode == exit_code, describe(result)
        try:
            data = json.loads(result.stdout)
        except json.JSONDecodeError as e:
            raise AssertionError(f"stdout is not JSON ({e})\n{describe(result)}") from None
        assert isinstance(data, dict), describe(result)
        return data

    def sent(self) -> list[dict[str, Any]]:
        """The emails `send_email` delivered, one per line of the outbox, oldest first."""
        if not self.outbox.exists():
            return []
        return [json.loads(line) for line in self.outbox.read_text().splitlines() if line]

    def sent_ids(self) -> list[str]:
        return [email["tool_call_id"] for email in self.sent()]

    def state(self) -> tuple[dict[str, tuple[int, str]] | None, list[dict[str, Any]]]:
        """What a refused command must leave as it was: the outbox and the rows of every table,
        the checkpoints' and the ledger's (approvals, audit trail, leases, schema version)."""
        return database_fingerprint(self.db), self.sent()

    def write_policy(self, send_email_rule: str) -> dict[str, str]:
        """A policy module in this folder with this `ToolRule` source for `send_email`.

        Returns the environment that selects it.
        """
        module = f"hitl_e2e_policy_{hashlib.sha256(send_email_rule.encode()).hexdigest()[:8]}"
        (self.folder / f"{module}.py").write_text(
            "from hitl.graph.policy import Policy, ToolRule\n\n"
            f"POLICY = Policy(rules={{'send_email': {send_email_rule}}})\n"
        )
        return {"HITL_POLICY": f"{module}:POLICY", **importable(self.folder)}


@contextmanager
def read_only_copy(source_db: Path, *, folder_writable: bool = False) -> Iterator[Workspace]:
    """A workspace on a copy of `source_db` that its `hitl` may read but not write, as a backup
    or another user's file: the file is read-only, and so is its folder unless
    `folder_writable`; as root (whom no permission stops) `hitl` runs without the privileges
    that bypass permissions. Skips the test where that cannot be arranged."""
    restricted = False
    if os.geteuid() == 0:
        if shutil.which(SETPRIV) is None:
            pytest.skip(f"running as root without {SETPRIV}: cannot make a file root may not write")
        restricted = True
    with tempfile.TemporaryDirectory(prefix="hitl-read-only-") as folder:
        workspace = Workspace(Path(folder), restricted=restricted)
        copy_database(source_db, workspace.db)
        workspace.db.chmod(0o444)
        workspace.folder.chmod(0o777 if folder_writable else 0o555)
        try:
            yield workspace
        finally:
            workspace.folder.chmod(0o755)


def calls_by_recipient(view: dict[str, Any]) -> dict[str, str]:
    """The pending `send_email` calls of a thread view, by recipient.

    Not by position: the approvals of one turn are registered concurrently (see
    `test_pending_calls_are_listed_in_the_models_order_whichever_registered_first`).
    """
    return {p["args"]["recipient"]: p["tool_call_id"] for p in view["pending"]}


def assert_refused(
    workspace: Workspace,
    *args: str,
    exit_code: int,
    says: Sequence[str],
    as_json: bool,
    error_type: str | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> str:
    """Run a command that must fail: its exit code, its message, and nothing written.

    Returns the error message (the JSON error's `message`, or stderr in human mode).
    """
    before = workspace.state()
    tables, _ = before
    if tables is not None:  # else a missing ledger table would pass unnoticed
        missing = LEDGER_TABLES - tables.keys()
        assert not missing, f"the database has no {', '.join(sorted(missing))}"
    result = workspace.run(*args, *(["--json"] if as_json else []), extra_env=extra_env)
    message = error_message(result, exit_code=exit_code, as_json=as_json, error_type=error_type)
    for fragment in says:
        assert fragment in message, f"{fragment!r} not in the message\n{describe(result)}"
    assert workspace.state() == before, f"a refused command changed the files\n{describe(result)}"
    return message


def error_message(
    result: subprocess.CompletedProcess[str],
    *,
    exit_code: int,
    as_json: bool,
    error_type: str | None = None,
) -> str:
    """Check a failed command's exit code and error shape; return its message.

    With `--json` the error is one JSON object on stdout; without, the message is on stderr.
    """
    assert result.returncode == exit_code, describe(result)
    if not as_json:
        assert result.stdout == "", describe(result)
        return result.stderr
    try:
        error = json.loads(result.stdout)["error"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise AssertionError(f"no JSON error on stdout\n{describe(result)}") from None
    assert error["exit_code"] == exit_code, describe(result)
    if error_type is not None:
        assert error["type"] == error_type, describe(result)
    return str(error["message"])
