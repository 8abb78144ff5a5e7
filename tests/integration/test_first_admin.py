"""Services starting together on one new database make one first admin token between them."""

import threading

from hitl.checkpoints.stores import open_token_store
from hitl.checkpoints.urls import DatabaseName

STARTING = 3


def _start(db: DatabaseName, barrier: threading.Barrier, printed: list[str | None]) -> None:
    """What `hitl serve` does at its start: make an admin token if there is none."""
    with open_token_store(db) as tokens:
        barrier.wait()
        printed.append(tokens.create_first_admin(created_by="hitl serve"))


def test_services_starting_at_once_print_one_first_admin_token(db: DatabaseName) -> None:
    with open_token_store(db):
        pass  # the table exists, as `hitl serve` finds it after opening the store
    for _ in range(5):  # the race window is small: give it several chances
        with open_token_store(db) as tokens:
            for token in tokens.list():
                tokens.revoke(token.name)
        barrier = threading.Barrier(STARTING)
        printed: list[str | None] = []
        starting = [
            threading.Thread(target=_start, args=(db, barrier, printed)) for _ in range(STARTING)
        ]
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join()
        with open_token_store(db) as tokens:
            admins = [t.name for t in tokens.list() if t.role == "admin"]
        assert len(printed) == STARTING  # none of them crashed
        assert len([p for p in printed if p is not None]) == 1
        assert len(admins) == 1
