"""A thread's lease on SQLite is an `flock` on a file beside the database: races between a
holder releasing, another taking, and a third looking; and a file another user may take over."""

import fcntl
import os
import stat
import threading
from pathlib import Path

import pytest

from hitl.checkpoints.ledger import _leases as leases
from hitl.checkpoints.ledger import open_ledger

pytestmark = pytest.mark.sqlite_only  # the lease files beside a SQLite file


def test_a_look_racing_a_release_and_a_new_hold_names_the_new_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = leases.lease_file(str(tmp_path / "hitl.sqlite"), "t")
    first, _ = leases.try_file_lease(path, "holder-A")
    assert first is not None
    taken: list[int | None] = []
    real_flock = fcntl.flock

    def release_and_retake_first(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_SH | fcntl.LOCK_NB and not taken:  # the look, after its open
            assert first is not None
            leases.drop_file_lease(path, first)
            taken.append(leases.try_file_lease(path, "holder-B")[0])
        real_flock(fd, operation)

    monkeypatch.setattr(leases.fcntl, "flock", release_and_retake_first)
    seen = leases.file_lease_holder(path)
    monkeypatch.setattr(leases.fcntl, "flock", real_flock)
    assert taken[0] is not None and seen == "holder-B"


def test_a_look_at_a_dead_holders_file_does_not_keep_another_from_taking_it(
    tmp_path: Path,
) -> None:
    path = leases.lease_file(str(tmp_path / "hitl.sqlite"), "t")
    Path(path).parent.mkdir(parents=True)
    Path(path).write_text("a process killed -9")  # nobody holds its lock
    looking = os.open(path, os.O_RDONLY)
    fcntl.flock(looking, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a look, mid-way
    threading.Timer(0.0005, os.close, (looking,)).start()  # which lasts microseconds
    fd, holder = leases.try_file_lease(path, "holder-C")
    assert (fd is not None, holder) == (True, None)


@pytest.mark.parametrize("left", ["a much longer name of a process killed -9", "x"])
def test_a_lease_taken_over_from_a_dead_holder_names_only_the_new_holder(
    tmp_path: Path, left: str
) -> None:
    path = leases.lease_file(str(tmp_path / "hitl.sqlite"), "t")
    Path(path).parent.mkdir(parents=True)
    Path(path).write_text(left)  # nobody holds its lock
    fd, _ = leases.try_file_lease(path, "holder-D")
    assert fd is not None
    assert Path(path).read_text() == "holder-D" == leases.file_lease_holder(path)


def test_a_look_while_a_dead_holders_longer_name_is_replaced_sees_only_the_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = leases.lease_file(str(tmp_path / "hitl.sqlite"), "t")
    Path(path).parent.mkdir(parents=True)
    Path(path).write_text("host~abcd1234:42:cafebabe:cafebabedbeef")  # nobody holds its lock
    seen: list[str | None] = []
    real_ftruncate = os.ftruncate

    def look_first(fd: int, length: int) -> None:  # between the new name and the cut
        seen.append(leases.file_lease_holder(path))
        real_ftruncate(fd, length)

    monkeypatch.setattr(leases.os, "ftruncate", look_first)
    fd, _ = leases.try_file_lease(path, "host~abcd1234:7:01234567")
    assert fd is not None and seen == ["host~abcd1234:7:01234567"]


def test_a_lease_file_may_be_taken_over_by_another_user(tmp_path: Path) -> None:
    db = tmp_path / "hitl.sqlite"
    with open_ledger(db) as ledger, ledger.lease("t"):
        path = Path(leases.lease_file(str(db), "t"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o666  # whatever the umask


def test_the_lease_folder_is_open_to_whoever_may_write_the_database(tmp_path: Path) -> None:
    db = tmp_path / "hitl.sqlite"
    with open_ledger(db) as ledger:
        db.chmod(0o666)  # a database several users run
        old_umask = os.umask(0o022)
        try:
            with ledger.lease("t"):
                folder = Path(leases.lease_file(str(db), "t")).parent
                assert stat.S_IMODE(folder.stat().st_mode) == 0o777
        finally:
            os.umask(old_umask)
