"""Standing approvals: list, create, revoke (`hitl allow` over HTTP)."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from hitl.checkpoints.stores import Token
from hitl.server.api.bodies import NewStanding
from hitl.server.api.common import AsApprover, Service, viewer
from hitl.service.timespec import parse_duration

router = APIRouter()


@router.get("/standing", tags=["standing approvals"])
def list_standing(
    svc: Service,
    include_inactive: Annotated[bool, Query(alias="all")] = False,
    who: Token = viewer,
) -> dict[str, Any]:
    """The active standing approvals, newest first (`all`: revoked and expired ones too)."""
    found = svc.standing_approvals(include_inactive=include_inactive)
    return {"standing": [s.to_json() for s in found]}


@router.post("/standing", tags=["standing approvals"], status_code=201)
def create_standing(body: NewStanding, act: AsApprover) -> dict[str, Any]:
    """Approve calls of a tool (narrowed to `args`, a `requester`, a `thread_id`) without
    asking, until it expires; only someone who may approve the tool's calls can (checked
    against the rules recorded with its newest call)."""
    standing = act.service.allow(
        body.tool,
        actor=act.who.name,
        roles=act.who.roles,
        expires_after=parse_duration(body.expires_in),
        args=body.args,
        requester=body.requester,
        thread_id=body.thread_id,
    )
    return standing.to_json()


@router.delete("/standing/{standing_id}", tags=["standing approvals"])
def revoke_standing(standing_id: str, act: AsApprover) -> dict[str, Any]:
    """Revoke a standing approval: calls asked about from now on wait for a person."""
    return act.service.revoke_standing(standing_id, actor=act.who.name).to_json()
