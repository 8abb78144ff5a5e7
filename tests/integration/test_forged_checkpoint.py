"""A row written into the database by someone else cannot make the program import or call code."""

import sqlite3
from pathlib import Path

import ormsgpack
import pytest

from hitl.checkpoints.errors import UntrustedCheckpointError
from tests.fakes import ToolLog
from tests.integration.conftest import ONE_EMAIL, open_test_service

pytestmark = pytest.mark.sqlite_only  # reads and writes the SQLite file itself


EXT_CONSTRUCTOR_POS_ARGS = 1  # LangGraph's msgpack tag for "import module.name, call it with args"


def _forge_newest_checkpoint(db: Path, thread_id: str, payload: tuple[str, bytes]) -> None:
    conn = sqlite3.connect(db)
    with conn:
        row = conn.execute(
            "SELECT checkpoint_ns, checkpoint_id, metadata FROM checkpoints WHERE thread_id = ? "
            "ORDER BY checkpoint_id DESC LIMIT 1",
            (thread_id,),
        ).fetchone()
        conn.execute(
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, type, checkpoint, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (thread_id, row[0], row[1][:-1] + "z", row[1], *payload, row[2]),
        )
    conn.close()


def _checkpoint_calling(module: str, name: str, args: list[object]) -> bytes:
    ext = ormsgpack.Ext(EXT_CONSTRUCTOR_POS_ARGS, ormsgpack.packb((module, name, args)))
    return ormsgpack.packb(
        {
            "v": 4,
            "id": "forged",
            "ts": "2026-01-01T00:00:00+00:00",
            "channel_values": {"messages": ext},
            "channel_versions": {},
            "versions_seen": {},
        }
    )


def test_a_forged_row_naming_os_system_is_refused_and_nothing_runs(
    tmp_path: Path, db: Path, log: ToolLog
) -> None:
    marker = tmp_path / "pwned"
    with open_test_service(db, log) as service:
        thread_id = service.run(ONE_EMAIL, actor="alice").thread_id
    _forge_newest_checkpoint(
        db, thread_id, ("msgpack", _checkpoint_calling("os", "system", [f"touch {marker}"]))
    )
    with open_test_service(db, log) as service, pytest.raises(UntrustedCheckpointError) as error:
        service.show(thread_id)
    assert "os.system" in str(error.value) and "nothing was imported or called" in str(error.value)
    assert not marker.exists()


def test_a_pickled_row_is_refused_without_unpickling(
    tmp_path: Path, db: Path, log: ToolLog
) -> None:
    with open_test_service(db, log) as service:
        thread_id = service.run(ONE_EMAIL, actor="alice").thread_id
    # a pickle that would call os.system if it were ever loaded
    marker = tmp_path / "pwned"
    evil = b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."
    _forge_newest_checkpoint(db, thread_id, ("pickle", evil))
    with (
        open_test_service(db, log) as service,
        pytest.raises(UntrustedCheckpointError, match="pickle"),
    ):
        service.show(thread_id)
    assert not marker.exists()
