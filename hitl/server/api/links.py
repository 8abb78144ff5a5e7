"""Decision links: make one for a pending call and one person (see `hitl.service.links`)."""

from typing import Any, cast

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field, field_validator

from hitl.checkpoints.stores import Token
from hitl.server.api.common import approver
from hitl.service.links import DecisionLinks

router = APIRouter()


class LinkRequest(BaseModel):
    """Whom the link is for."""

    for_: str = Field(alias="for", min_length=1, max_length=64)
    """The person who decides with it (the name decisions are recorded as): yourself, or
    anyone if you are an admin. They must be allowed to approve the call."""

    @field_validator("for_")
    @classmethod
    def storable(cls, value: str) -> str:
        if "\x00" in value:  # no name holds one, and PostgreSQL cannot store it
            raise ValueError("a name holds no NUL character")
        return value


@router.post(
    "/approvals/{thread_id}/{tool_call_id}/links",
    tags=["approvals"],
    status_code=201,
    responses={410: {"description": "The call's deadline has passed"}},
)
def make_link(
    thread_id: str,
    tool_call_id: str,
    body: LinkRequest,
    request: Request,
    response: Response,
    who: Token = approver,
) -> dict[str, Any]:
    """A one-click decision link for a pending call and one person: the same link each time
    for the same call, args and person. It starts with `HITL_PUBLIC_URL` (else the address
    this request came to). The link is that person's credential for this call: share it only
    with them."""
    if body.for_ != who.name and not who.may("admin"):
        raise HTTPException(
            403,
            f"{who.name!r} may make a link only for themselves (an approver); a link for "
            f"{body.for_!r} acts as them, so only an admin may make it",
        )
    links = cast(DecisionLinks, request.app.state.links)
    made = links.make(
        thread_id, tool_call_id, body.for_, created_by=who.name, base_url=str(request.base_url)
    )
    response.headers["Cache-Control"] = "no-store"
    return made.to_json()
