"""When a buffering saver must commit: the points both our savers commit at.

A run's rows wait in memory and commit, in order, at these points: an interrupt or error
(the run stops); the writes of a side-effect step (its results must survive a crash); a
checkpoint that schedules a side-effect node (the decision is on disk before the tool
starts); a checkpoint that schedules nothing (the run ends). A crash loses at most the
steps buffered since the last commit, which have no side effects and simply run again.
"""

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from langgraph.checkpoint.base import Checkpoint, CheckpointTuple

from hitl.compat import ERROR, INTERRUPT, START, TASKS

RUN_ENDING_CHANNELS = frozenset({INTERRUPT, ERROR})
SIDE_EFFECT_STEPS_KEPT = 4096
"""How many of the newest side-effect steps a saver remembers: far more than can be running
in one process at once, and a bounded memory for a process that runs for months."""


def scheduled_nodes(checkpoint: Checkpoint) -> set[str]:
    """The nodes the step after this checkpoint runs (empty: the run ends here)."""
    values = checkpoint["channel_values"]
    nodes = {key.removeprefix("branch:to:") for key in values if key.startswith("branch:to:")}
    nodes.update(getattr(send, "node", "") for send in values.get(TASKS) or ())
    if START in values:
        nodes.add(START)
    return nodes


class CommitPoints:
    """Which of a run's checkpoints and writes commit at once (see the module doc).

    `carried`: the side-effect points are left to another writer's commit (the ledger's
    tool start, which carries the saver's rows on SQLite).
    """

    def __init__(self, side_effect_nodes: Iterable[str] = ("tools",)) -> None:
        self._side_effect_nodes = frozenset(side_effect_nodes)
        # checkpoints whose next step has side effects, the newest `SIDE_EFFECT_STEPS_KEPT`
        # (a step's writes may come after its next checkpoint: LangGraph saves out of order)
        self._side_effect_steps: dict[str, None] = {}
        self._lock = threading.Lock()
        self.carried = False

    def checkpoint_commits(self, checkpoint: Checkpoint) -> bool:
        """Whether this checkpoint commits at once (noting a side-effect step it schedules)."""
        scheduled = scheduled_nodes(checkpoint)
        runs_side_effects = self.note(checkpoint["id"], scheduled)
        return (runs_side_effects and not self.carried) or not scheduled

    def writes_commit(self, checkpoint_id: str, writes: Sequence[tuple[str, Any]]) -> bool:
        """Whether these writes of a step after `checkpoint_id` commit at once."""
        side_effects = checkpoint_id in self._side_effect_steps
        return (side_effects and not self.carried) or any(
            channel in RUN_ENDING_CHANNELS for channel, _ in writes
        )

    def loaded(self, found: CheckpointTuple | None) -> CheckpointTuple | None:
        """A checkpoint read back, noted (a run may resume from it: this process's first
        sight of it), and returned."""
        if found is not None:
            self.note(found.checkpoint["id"], scheduled_nodes(found.checkpoint))
        return found

    def note(self, checkpoint_id: str, scheduled: set[str]) -> bool:
        """Whether the step after a checkpoint (scheduling these nodes) runs side effects;
        noted if so (its writes then commit at once), the newest `SIDE_EFFECT_STEPS_KEPT` kept."""
        if not scheduled & self._side_effect_nodes:
            return False
        with self._lock:
            self._side_effect_steps[checkpoint_id] = None
            if len(self._side_effect_steps) > SIDE_EFFECT_STEPS_KEPT:  # the oldest: done
                del self._side_effect_steps[next(iter(self._side_effect_steps))]
        return True
