"""The IDs a new thread may take: safe in a URL path as they are, so that every thread can be
read and decided over HTTP, in the inbox and in remote mode (which import this, not the
workflow: it loads no LangGraph)."""

import re

from hitl.service.errors import InvalidThreadId

THREAD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$"
"""Letters and digits first, then letters, digits and `._:@-`; 200 characters at most."""


def check_thread_id(thread_id: str) -> str:
    """`thread_id` if a new thread may take it; `InvalidThreadId` if not.

    Only new threads are checked: a thread made before this rule keeps its ID.
    """
    if re.fullmatch(THREAD_ID_PATTERN, thread_id) is None:
        raise InvalidThreadId(thread_id)
    return thread_id
