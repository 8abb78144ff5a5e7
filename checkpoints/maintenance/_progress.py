"""How a long maintenance operation says how far it got: a callback it calls, never a print."""

from typing import Protocol


class Progress(Protocol):
    """Told, as an operation goes, how much of one of its stages is done."""

    def __call__(self, stage: str, done: int, total: int, /) -> None:
        """`done` of `total` units of `stage` (threads, rows, tables) are done; a stage ends
        when `done == total`, and is reported again only with more done."""


def no_progress(stage: str, done: int, total: int) -> None:
    """The default: nobody is told."""
