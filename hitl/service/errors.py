"""Domain errors: each says what happened and what to do next.

The service's contract is `DOMAIN_ERRORS`: its own `HitlError`s, and the ledger's refusals it
passes on as they are (`PASSED_ON`: `ArgsChanged`, `NotPermitted`, `NotReconcilable`,
`LedgerTampered`, defined once, in `hitl.checkpoints.errors`, and re-exported here). Where the
ledger already says what a person needs to know, its error is the service's too: a look-alike
class of the same name here would only need a translator, and leave two classes of one name
for every `except` to tell apart. The service translates only where its word differs from the
ledger's (`workflow._translated`): a call someone else decided first (`AlreadyDecided`), a
call it cannot find (`UnknownToolCall`), and the four ways of being held up by another
process (`Busy`).

Front ends import errors from this module, and map each to an exit code (`EXIT_CODES` in
`hitl.cli.main`) or an HTTP status (`STATUS` in `hitl.server.http_errors`), in one table each.
Raised before anything is written, so a refused request leaves the database as it was.
"""

import re
from collections.abc import Sequence
from pathlib import Path

from hitl.checkpoints.errors import AlreadyVoted as AlreadyVoted
from hitl.checkpoints.errors import ArgsChanged as ArgsChanged
from hitl.checkpoints.errors import InvalidStanding as InvalidStanding
from hitl.checkpoints.errors import LedgerError
from hitl.checkpoints.errors import LedgerTampered as LedgerTampered
from hitl.checkpoints.errors import NotPermitted as NotPermitted
from hitl.checkpoints.errors import NotReconcilable as NotReconcilable
from hitl.checkpoints.errors import StandingNotFound as StandingNotFound


class HitlError(Exception):
    """Base class of the service's own errors (`DOMAIN_ERRORS`: every error a user can cause)."""


class ThreadNotFound(HitlError):
    def __init__(self, thread_id: str) -> None:
        super().__init__(
            f"no thread {thread_id!r} in this database. "
            "List threads waiting for a decision with `hitl pending`, or check --db / HITL_DB."
        )


class ThreadExists(HitlError):
    def __init__(self, thread_id: str) -> None:
        super().__init__(
            f"thread {thread_id!r} exists already; continue it with a new message "
            f"(POST /threads/{thread_id}/runs), or start a thread with another ID."
        )


class InvalidThreadId(HitlError, ValueError):
    """A new thread's ID that a URL path would not carry as it is (`/`, `.`, `..`, a space):
    refused where threads are made, so that every thread can be read and decided over HTTP,
    in the inbox and in remote mode. (A `ValueError` too: request bodies validate with it.)"""

    def __init__(self, thread_id: str) -> None:
        super().__init__(
            f"thread ID {thread_id!r} is not allowed: a new thread's ID has 1 to 200 letters, "
            "digits and . _ : @ -, and starts with a letter or digit (it goes into URLs)."
        )


class UnknownCheckpoint(HitlError):
    def __init__(self, thread_id: str, checkpoint_id: str) -> None:
        super().__init__(
            f"thread {thread_id!r} has no checkpoint {checkpoint_id!r}; page back with the "
            f"`next_before` (or the `--before` hint) of the previous page of "
            f"`hitl history {thread_id}`."
        )


class MessagesOutOfRange(HitlError):
    """A page of a thread's conversation it does not have (a stale or hand-made cursor)."""

    def __init__(self, thread_id: str, total: int, count: int, before: int | None) -> None:
        asked = f"{count} messages" + ("" if before is None else f" before position {before}")
        super().__init__(
            f"thread {thread_id!r} holds {total} messages, so it has no page of {asked}; ask "
            f"for at least 1 message, before a position from 1 to {total} (the "
            "`messages_next_before` of the page after it)."
        )


class NothingPending(HitlError):
    def __init__(self, thread_id: str, status: str) -> None:
        super().__init__(
            f"thread {thread_id!r} has no pending approval (status: {status}); "
            f"nothing to decide. See `hitl show {thread_id}`."
        )


class UnknownToolCall(HitlError):
    def __init__(
        self,
        thread_id: str,
        tool_call_id: str,
        pending: Sequence[str],
        elsewhere: Sequence[str] = (),
    ) -> None:
        listed = ", ".join(pending) or "none"
        if elsewhere:
            where = ", ".join(elsewhere)
            super().__init__(
                f"tool call {tool_call_id!r} belongs to thread {where}, not {thread_id!r}; "
                f"check the thread ID (pending calls of {thread_id!r}: {listed})."
            )
        else:
            super().__init__(
                f"thread {thread_id!r} has no tool call {tool_call_id!r}; pending calls: {listed}."
            )


class AlreadyDecided(HitlError):
    """A later or concurrent decision on a call that was decided first by someone else."""

    def __init__(
        self, thread_id: str, tool_call_id: str, by: str, at: str, decision: str, status: str
    ) -> None:
        super().__init__(
            f"tool call {tool_call_id!r} of thread {thread_id!r} was already decided by {by} "
            f"at {at} ({decision}); it is now {status}. A decision cannot be changed and "
            f"nothing was run again. See `hitl audit {thread_id}`."
        )
        self.by, self.at, self.decision, self.status = by, at, decision, status


class Busy(HitlError):
    """The thread or the database is held by another process for longer than we wait."""


class DecisionNotAllowed(HitlError):
    def __init__(self, tool: str, decision: str, allowed: Sequence[str]) -> None:
        super().__init__(
            f"{decision!r} is not allowed for {tool}; allowed decisions: {', '.join(allowed)}."
        )


class InvalidDecision(HitlError):
    """An answer that does not fit the call's response schema (an invalid edit, mostly)."""

    def __init__(self, tool_call_id: str, problems: str) -> None:
        super().__init__(f"invalid decision for tool call {tool_call_id!r}: {problems}")


class PendingApprovalsExist(HitlError):
    def __init__(
        self, thread_id: str, pending: Sequence[str], *, outcome_unknown: bool = False
    ) -> None:
        if outcome_unknown:
            super().__init__(
                f"thread {thread_id!r} has calls whose outcome is unknown ({', '.join(pending)}); "
                f"settle them first with `hitl reconcile {thread_id} --call ID --retry | "
                "--mark-done | --skip`, then send the new message."
            )
            return
        super().__init__(
            f"thread {thread_id!r} is waiting for decisions on {', '.join(pending)}; "
            "decide them first (hitl approve/reject/edit/respond), or pass --cancel-pending "
            "to reject them and continue with the new message."
        )


class AgentFailed(HitlError):
    """The agent's own code (a tool, its model, a node, a policy predicate) raised mid-run."""

    def __init__(self, node: str, error: BaseException) -> None:
        super().__init__(
            f"the agent's node {node!r} raised {type(error).__name__}: {error}. The thread "
            "keeps its last checkpoint: fix the cause, then `hitl resume THREAD` continues it "
            "(a tool that had started waits as outcome_unknown)"
        )
        self.node = node

    @classmethod
    def of(cls, error: BaseException) -> "AgentFailed | None":
        """`error` as the agent's failure, if it came from a graph node (LangGraph notes the
        node on it); None for anything else, and for a bug of ours inside a node (raised by
        this package's code, other than its deliberate refusals and the demo's tools): those
        keep their traceback."""
        if _raised_by_a_bug_of_ours(error):
            return None
        for note in getattr(error, "__notes__", []):
            if found := re.match(r"During task with name '([^']+)'", note):
                return cls(found.group(1), error)
        return None


_OUR_CODE = tuple(
    {
        (Path(__file__).resolve().parents[1] / part).resolve()
        for part in ("", "graph", "checkpoints")
    }
)
"""Where this package's modules are (`graph/` and `checkpoints/` may be folders of their own)."""


def _raised_by_a_bug_of_ours(error: BaseException) -> bool:
    if isinstance(error, ValueError | HitlError):  # what our code raises on purpose
        return False
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    if frame is None:
        return False
    where = Path(frame.tb_frame.f_code.co_filename).resolve()
    return where.name != "demo_tools.py" and any(where.is_relative_to(r) for r in _OUR_CODE)


class LinkNotFound(HitlError):
    """A decision link this database never made (mistyped, cut short, or another database's)."""

    def __init__(self) -> None:
        super().__init__(
            "this decision link is not valid: it may be mistyped or cut short, or come from "
            "another installation. Ask for a new one, or decide in the inbox."
        )


class LinkGone(HitlError):
    """A decision link that can no longer decide: used, expired, or made for other args."""


class InvalidSettings(HitlError):
    """A setting (model, tools, policy, database) that cannot be used."""


class Unauthenticated(HitlError):
    """The HTTP service refused the token (missing, mistyped or revoked)."""


class Forbidden(HitlError):
    """The token's role does not allow this request."""


class ServiceUnavailable(HitlError):
    """The HTTP service could not be reached, or failed in an unexpected way."""


class InvalidTriage(HitlError):
    """An assignment or snooze that cannot be recorded as given (say what to give instead)."""


PASSED_ON: tuple[type[LedgerError], ...] = (
    AlreadyVoted,
    ArgsChanged,
    InvalidStanding,
    StandingNotFound,
    LedgerTampered,
    NotPermitted,
    NotReconcilable,
)
"""The ledger's refusals the service passes on as they are: part of its contract."""
DOMAIN_ERRORS: tuple[type[Exception], ...] = (HitlError, *PASSED_ON)
"""Every error a user can cause: what a front end catches and shows without a traceback."""


def from_wire(error: dict[str, object], status: int) -> Exception:
    """The error the HTTP service answered with, as the same domain error (for remote mode):
    the message is the service's own, so local and remote mode print the same text."""
    name, message = str(error.get("type", "")), str(error.get("message", ""))
    kinds = {k.__name__: k for k in [*_every(HitlError), *PASSED_ON]}
    if status == 401:
        return Unauthenticated(message)
    kind = kinds.get(name) or (Forbidden if status == 403 else ServiceUnavailable)
    made = kind.__new__(kind)  # the message is the service's: skip each class's own wording
    Exception.__init__(made, message)
    recorded = error.get("recorded")
    if isinstance(made, AlreadyDecided) and isinstance(recorded, dict):
        made.by, made.at = str(recorded["decided_by"]), str(recorded["decided_at"])
        made.decision, made.status = str(recorded["decision"]), str(recorded["status"])
    return made


def _every(kind: type[HitlError]) -> list[type[HitlError]]:
    return [kind, *(k for sub in kind.__subclasses__() for k in _every(sub))]
