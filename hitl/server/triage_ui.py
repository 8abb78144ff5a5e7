"""The inbox's triage filter: whose calls, and whether snoozed ones show, read from the page's
address (`?assigned_to=me&snoozed=show`), so a filtered inbox is a link and survives a reload."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from hitl.checkpoints.stores import Token
from hitl.server.api.common import assignees

MAX_ASSIGNEE = 200
"""The longest assignee a filter takes (a hand-edited address is cut, not refused)."""


@dataclass(frozen=True)
class InboxFilter:
    """What the inbox page shows: as typed (for the form) and as an `InboxQuery`'s fields."""

    assigned_to: str = ""
    show_snoozed: bool = False
    query: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """The query string of this filter ('' for the default inbox)."""
        kept = {"assigned_to": self.assigned_to} if self.assigned_to else {}
        kept |= {"snoozed": "show"} if self.show_snoozed else {}
        return "?" + urlencode(kept) if kept else ""


def inbox_filter(params: Mapping[str, str], who: Token) -> InboxFilter:
    """The filter of a page address; anything unreadable is read as no filter."""
    assigned_to = params.get("assigned_to", "").strip()[:MAX_ASSIGNEE]
    show_snoozed = params.get("snoozed") == "show"
    query: dict[str, Any] = {"snoozed": "show" if show_snoozed else "hide"}
    if assigned_to:
        query["assigned_to"] = assignees([assigned_to], who)
    return InboxFilter(assigned_to, show_snoozed, query)
