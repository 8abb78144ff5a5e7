"""The long maintenance commands (`hitl prune`, `hitl db migrate`, `hitl db copy`) show their
progress to a person at a terminal, and to nobody else."""

from pathlib import Path

import pytest

from tests.support.cli import Workspace, describe, hitl_at_a_terminal
from tests.support.prompts import COUNT, SALLY
from tests.support.sql import copy_database

TABLES = 16
"""On SQLite: `checkpoints`, `writes` and this project's 14 (`hitl db status` lists them)."""
COMMANDS = {
    "prune": (
        ("prune",),
        ["hitl prune: threads 3/3 (100%)", "free space given back to the file system 1/1"],
    ),
    "db migrate": (
        ("db", "migrate"),
        [
            "hitl db migrate: parts of the schema created or migrated 4/4",
            f"tables counted {TABLES}/{TABLES}",
        ],
    ),
    "db copy": (
        ("db", "copy", "--from", "{db}", "--to", "{copy}"),
        ["hitl db copy: rows of hitl_audit ", "hitl db copy: threads 3/3 (100%)"],
    ),
}


@pytest.fixture(scope="module")
def three_threads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two finished threads and one waiting for a decision."""
    workspace = Workspace(tmp_path_factory.mktemp("progress"))
    workspace.json("run", COUNT)
    workspace.json("run", COUNT)
    workspace.json("run", SALLY)
    return workspace.db


def _workspace(three_threads: Path, folder: Path) -> Workspace:
    folder.mkdir()
    workspace = Workspace(folder)
    copy_database(three_threads, workspace.db)
    return workspace


def _args(workspace: Workspace, command: tuple[str, ...]) -> list[str]:
    target = workspace.folder / "copy.sqlite"
    return [a.format(db=workspace.db, copy=target) for a in command]


@pytest.mark.parametrize("name", COMMANDS)
def test_a_long_command_shows_its_progress_on_a_terminal_and_prints_only_its_report(
    three_threads: Path, tmp_path: Path, name: str
) -> None:
    command, shown = COMMANDS[name]
    workspace = _workspace(three_threads, tmp_path / "terminal")

    result, terminal = hitl_at_a_terminal(
        *_args(workspace, command), env=workspace.env(), cwd=workspace.folder
    )

    assert result.returncode == 0, describe(result) + terminal
    for line in shown:
        assert line in terminal, terminal
    assert "%)" not in result.stdout, result.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_a_long_command_is_quiet_with_json_or_when_stderr_is_no_terminal(
    three_threads: Path, tmp_path: Path, name: str
) -> None:
    command, _ = COMMANDS[name]
    as_json = _workspace(three_threads, tmp_path / "json")
    result, terminal = hitl_at_a_terminal(
        *_args(as_json, command), "--json", env=as_json.env(), cwd=as_json.folder
    )
    assert result.returncode == 0, describe(result) + terminal
    assert terminal == ""

    piped = _workspace(three_threads, tmp_path / "piped")
    result = piped.run(*_args(piped, command))
    assert result.returncode == 0, describe(result)
    assert result.stderr == ""
