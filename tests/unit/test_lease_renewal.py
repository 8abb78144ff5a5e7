"""One thread renews every held lease: each every third of its TTL, none after it is dropped,
and a drop waits for a renewal of it in flight."""

import threading
import time

from hitl.checkpoints.errors import DatabaseBusy
from hitl.checkpoints.ledger import LeaseRenewer


class Renewals:
    """A renew function that records each beat; it can be made to hang, or to fail once."""

    def __init__(self) -> None:
        self.beats: list[tuple[str, str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail_next = False

    def __call__(self, thread_id: str, holder: str, ttl: float) -> None:
        self.entered.set()
        self.release.wait(10)
        if self.fail_next:
            self.fail_next = False
            raise DatabaseBusy("db", 0.1)
        self.beats.append((thread_id, holder))


def test_each_held_lease_is_renewed_every_third_of_its_ttl_and_never_after_its_drop() -> None:
    renew = Renewals()
    renewer = LeaseRenewer(renew, linger=0.1)
    renewer.hold("t", "a", 0.3)
    renewer.hold("u", "b", 3.0)
    time.sleep(0.55)
    renewer.drop("a")
    by_a = renew.beats.count(("t", "a"))
    time.sleep(0.3)

    assert 2 <= by_a <= 6, renew.beats
    assert renew.beats.count(("t", "a")) == by_a
    assert ("u", "b") not in renew.beats  # its first beat is due after a second
    renewer.drop("b")


def test_a_drop_returns_only_once_the_renewal_in_flight_has_ended() -> None:
    renew = Renewals()
    renew.release.clear()
    renewer = LeaseRenewer(renew, linger=0.1)
    renewer.hold("t", "a", 0.03)
    assert renew.entered.wait(5)
    dropped = threading.Event()
    dropping = threading.Thread(target=lambda: (renewer.drop("a"), dropped.set()))
    dropping.start()

    assert not dropped.wait(0.2)  # the beat still writes
    renew.release.set()
    assert dropped.wait(5)
    dropping.join()


def test_a_failed_beat_is_tried_again_and_a_hold_after_an_idle_spell_is_renewed() -> None:
    renew = Renewals()
    renew.fail_next = True
    renewer = LeaseRenewer(renew, linger=0.05)
    renewer.hold("t", "a", 0.15)
    time.sleep(0.4)
    renewer.drop("a")
    assert ("t", "a") in renew.beats  # after the failed one
    time.sleep(0.3)  # idle longer than it lingers: its thread ends

    renewer.hold("t", "b", 0.15)
    time.sleep(0.3)
    renewer.drop("b")

    assert ("t", "b") in renew.beats
