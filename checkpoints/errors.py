"""What the storage layer refuses: the database, a checkpoint it will not load, the ledger,
the service's stores (tokens, webhooks), a copy to another database.

Each exception carries what the caller needs to explain it. The ledger's refusals that a person
reads as they are (`ArgsChanged`, `NotPermitted`, `NotReconcilable`, `LedgerTampered`) are
worded for that person, and say what to do next: the service passes them on unchanged, as part
of its own contract (`hitl.service.errors`), instead of defining look-alikes of the same name.
"""

from collections.abc import Sequence
from pathlib import Path

from hitl.checkpoints.records import ApprovalRecord
from hitl.checkpoints.urls import display, is_postgres, scrub


class LedgerError(Exception):
    """A request the ledger refuses; nothing was written."""


class CallNotFound(LedgerError):
    """No approval for this call in this thread (maybe in another one)."""

    def __init__(self, thread_id: str, tool_call_id: str, elsewhere: Sequence[str]) -> None:
        super().__init__(thread_id, tool_call_id)
        self.thread_id, self.tool_call_id, self.elsewhere = thread_id, tool_call_id, elsewhere


class NotPending(LedgerError):
    """The call was already decided (or settled); carries the recorded row."""

    def __init__(self, record: ApprovalRecord) -> None:
        super().__init__(record.thread_id, record.tool_call_id, record.status)
        self.record = record


class NotPermitted(LedgerError):
    """The policy saved with the call forbids this actor's decision (separation of duties)."""


class AlreadyVoted(NotPermitted):
    """This person already voted on this quorum call: one person, one vote."""


class StandingNotFound(LedgerError):
    """No standing approval has this ID (or it is already revoked)."""


class InvalidStanding(LedgerError):
    """A standing approval that cannot be created as asked (unknown tool, bad scope)."""


class NotReconcilable(LedgerError):
    """Only a call whose outcome is unknown can be reconciled."""

    def __init__(self, record: ApprovalRecord) -> None:
        super().__init__(
            f"tool call {record.tool_call_id!r} of thread {record.thread_id!r} is "
            f"{record.status}, not outcome_unknown; only a call whose outcome is unknown can be "
            "reconciled. See `hitl pending` for the calls that need it."
        )
        self.record = record


class ThreadBusy(LedgerError):
    """Another live runner holds the thread's lease for longer than we may wait."""

    def __init__(self, thread_id: str, holder: str) -> None:
        super().__init__(
            f"thread {thread_id!r} is being run by another process ({holder}); "
            "try again when it has finished."
        )
        self.thread_id, self.holder = thread_id, holder


class LedgerTampered(LedgerError):
    """A call's row contradicts its audit trail (say, it may run without a recorded approval)."""

    def __init__(self, thread_id: str, tool_call_id: str, problem: str | None = None) -> None:
        said = problem or "was approved, but its audit trail records no such approval"
        super().__init__(
            f"the ledger's row of tool call {tool_call_id!r} of thread {thread_id!r} {said}: "
            "the database was changed outside this program. Nothing was run. Check it with "
            "`hitl audit --verify`."
        )
        self.thread_id, self.tool_call_id = thread_id, tool_call_id


class ArgsChanged(LedgerError):
    """The call was asked about again with other args since the decider looked at it."""

    def __init__(self, record: ApprovalRecord) -> None:
        thread_id, args_hash = record.thread_id, record.args_hash
        super().__init__(
            f"the arguments of tool call {record.tool_call_id!r} of thread {thread_id!r} "
            f"changed since you looked (they now hash to {args_hash[:12]}…); nothing was "
            f"recorded. Look again with `hitl show {thread_id}` and decide on what it asks now."
        )
        self.record = record


class DatabaseError(RuntimeError):
    """The database file cannot be opened or written."""

    def __init__(self, path: Path | str, cause: BaseException) -> None:
        check = (
            "Check that the PostgreSQL server is running and that the URL's user may connect "
            "and create tables, or choose another database with --db or HITL_DB."
            if is_postgres(path)
            else "Check that the file and its folder exist and are writable by this user, "
            "or choose another file with --db or HITL_DB."
        )
        said = scrub(str(cause).strip(), path)  # a driver's message may quote the URL's password
        super().__init__(f"cannot use the database {display(path)!r}: {said}. {check}")
        self.path = display(path)


class DatabaseReadOnly(DatabaseError):
    """This user may not write the database: a backup, another user's file, a read-only folder."""

    def __init__(self, path: Path | str, cause: BaseException) -> None:
        RuntimeError.__init__(
            self,
            f"the database {display(path)!r} is read-only for this user ({str(cause).strip()}): "
            "nothing was written. `hitl pending`, `show`, `history` and `audit` read it as it "
            "is; to decide or run, use a database this user may write (--db or HITL_DB).",
        )
        self.path = display(path)


class SchemaMissing(DatabaseError):
    """The database has none of our tables, and this command may not create them."""

    def __init__(self, path: Path | str) -> None:
        RuntimeError.__init__(
            self,
            f"the database {display(path)!r} has no hitl tables: nothing was created there. "
            "Check --db / HITL_DB; to start a new database, create them with `hitl db migrate` "
            "(or start a thread with `hitl run`).",
        )
        self.path = display(path)


class DatabaseCorrupt(DatabaseError):
    """SQLite found the file damaged: a page it cannot read."""

    def __init__(self, path: Path | str, cause: BaseException) -> None:
        RuntimeError.__init__(
            self,
            f"the database {display(path)!r} is damaged ({str(cause).strip()}); this command "
            "stopped. Stop every process that uses it and restore it from a backup (see "
            "docs/operations.md, Backups); `sqlite3 FILE .recover` can rescue what is still "
            "readable into a new file, to check with `hitl audit --verify` before use.",
        )
        self.path = display(path)


class DatabaseBusy(RuntimeError):
    """Another process held the database's write lock for longer than we wait."""

    def __init__(self, path: Path | str, waited: float) -> None:
        super().__init__(
            f"the database {display(path)!r} stayed locked by another process for {waited:.0f} s "
            "(a backup or a migration?); nothing was written. Try again when it is released."
        )
        self.path = display(path)


class PoolExhausted(DatabaseBusy):
    """Every pooled connection of this process stayed in use while we waited for one."""

    def __init__(self, path: str, waited: float) -> None:
        RuntimeError.__init__(
            self,
            f"no connection to {display(path)!r} came free in this process within "
            f"{waited:.0f} s; nothing was written. Try again, or give the process a "
            "larger pool (HITL_PG_POOL_SIZE) if it stays this busy.",
        )
        self.path = display(path)


class UntrustedCheckpointError(ValueError):
    """A stored checkpoint names code this program will not import or call."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"refusing to load checkpoint data that names {what}, which is not on the list of "
            "types this program trusts: nothing was imported or called. The database may have "
            "been modified by someone else; restore it from a backup or delete the thread."
        )


class StepsLost(DatabaseError):
    """The database refused a commit of a thread's buffered steps (maybe in another operation's
    commit): the run that made them cannot go on from them."""

    def __init__(self, path: Path | str, thread_id: str, reason: str) -> None:
        said = scrub(reason.strip(), path)
        RuntimeError.__init__(
            self,
            f"thread {thread_id!r}: the database {display(path)!r} refused to commit steps of "
            f"this run ({said}), so the run stopped; nothing after the thread's last commit "
            f"was saved. Resume the thread (`hitl resume {thread_id}`) to run those steps again.",
        )
        self.path = display(path)
        self.thread_id = thread_id


class MissingMessage(LookupError):
    """A checkpoint would refer to a stored message that is no longer there."""

    def __init__(self, thread_id: str) -> None:
        super().__init__(
            f"thread {thread_id!r} lost a stored message this run needs: the thread was "
            "deleted meanwhile (hitl prune --older-than?) or the database was altered. The run "
            "stopped without saving a reference to it; send the message again to start the "
            "thread anew, or restore a backup."
        )


class TokenError(ValueError):
    """A token request that cannot be done; the message says why and what to do."""


class TokenExists(TokenError):
    """An active token has that name already."""


class TokenNotFound(TokenError):
    """No active token has that name."""


class WebhookError(ValueError):
    """A webhook request we refuse (bad URL, unknown event or endpoint); nothing was written."""


class SwallowedFailure(RuntimeError):
    """A write reached its COMMIT after one of its statements failed, the error caught and
    dropped on the way (a bug of the caller's): nothing of it was written."""

    def __init__(self) -> None:
        super().__init__(
            "a statement of this write failed and its error was swallowed: nothing was written"
        )


class CopyError(RuntimeError):
    """The copy cannot start, or the counts differ after it; the message says what to do."""


class NotPlain(Exception):
    """A checkpoint holds something only the graph can read faithfully (`stored`): ask the
    graph."""
