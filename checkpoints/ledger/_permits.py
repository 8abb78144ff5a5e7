"""Who may make a decision under a call's rules: one rule, for a person deciding and for a
standing approval that decides in its creator's name."""

from collections.abc import Collection, Sequence

from hitl.checkpoints.ledger._triage import ROLE_PREFIX

RUNS_THE_TOOL = ("approve", "edit", "respond")
"""Decisions that need permission: approving, editing or responding (the model then takes
the person's word for the tool's result). Rejecting is always allowed: not running a call
is always safe."""


def refusal(
    *,
    tool: str,
    kind: str,
    actor: str,
    roles: Collection[str],
    approvers: Sequence[str] | None,
    allow_self_approval: bool,
    requester: str | None,
) -> str | None:
    """Why `actor` (with `roles`) may not make a decision of `kind` on a call of `tool` with
    these rules; None if they may."""
    if kind not in RUNS_THE_TOOL:
        return None
    names = {actor, *(f"{ROLE_PREFIX}{r}" for r in roles)}
    if approvers is not None and not names & set(approvers):
        return (
            f"{actor!r} may not {kind} calls of {tool}: only "
            f"{', '.join(approvers) or 'nobody'} may (policy). Ask one of them, or reject it."
        )
    if not allow_self_approval and requester is not None and actor == requester:
        return (
            f"{actor!r} asked for this call and may not {kind} it too (separation of duties): "
            "another person must approve it; you may still reject it."
        )
    return None
