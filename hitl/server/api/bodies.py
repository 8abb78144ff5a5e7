"""The API's request bodies; unknown fields are refused where one could change the meaning."""

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from hitl.checkpoints.records import parse_args_hash
from hitl.service.thread_ids import THREAD_ID_PATTERN, check_thread_id
from hitl.service.timespec import parse_duration

ArgsHash = Annotated[
    str | None,
    Field(
        description="Only if the call's args still hash to this (what you saw).",
        json_schema_extra={"pattern": "^[0-9a-fA-F]{64}$"},
    ),
    AfterValidator(lambda value: None if value is None else parse_args_hash(value)),
]
"""A call's args hash as a body gives it: 64 hex digits, checked (and normalized) here."""


class TextBlock(BaseModel):
    """LangChain's standard text content block, as Agent Chat UI sends it."""

    type: Literal["text"]
    text: str


class UserMessage(BaseModel):
    role: Literal["user", "human"] = "user"
    content: str | list[TextBlock] = Field(min_length=1)

    def text(self) -> str:
        """The message's text: the string, or its text blocks joined."""
        if isinstance(self.content, str):
            return self.content
        return "".join(block.text for block in self.content)


class MessageInput(BaseModel):
    """A prompt, or a list of user messages."""

    prompt: str | None = Field(default=None, min_length=1)
    messages: list[UserMessage] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def one_of(self) -> "MessageInput":
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give either `prompt` or `messages`, not both and not neither")
        return self

    def texts(self) -> list[str]:
        return [self.prompt] if self.prompt is not None else [m.text() for m in self.messages or []]


class StartThread(MessageInput):
    thread_id: str | None = Field(
        default=None,
        description="A new thread's ID (default: a UUID): letters, digits and . _ : @ -",
        json_schema_extra={"pattern": THREAD_ID_PATTERN},
    )

    @field_validator("thread_id")
    @classmethod
    def safe_in_a_url(cls, value: str | None) -> str | None:
        return None if value is None else check_thread_id(value)


class ContinueThread(MessageInput):
    cancel_pending: bool = False


class Decision(BaseModel):
    # a misspelt `call` must not be dropped: without it, the decision is for every pending call
    model_config = ConfigDict(extra="forbid")

    call: str | None = Field(default=None, description="The tool call ID (default: all pending).")
    comment: str | None = None
    args_hash: ArgsHash = None

    @model_validator(mode="after")
    def hash_names_a_call(self) -> "Decision":
        if self.args_hash is not None and self.call is None:
            raise ValueError("`args_hash` needs `call`: a hash names one call's args")
        return self


class RememberApproval(BaseModel):
    """ "Approve and remember": a standing approval for later calls of the same tool."""

    model_config = ConfigDict(extra="forbid")

    expires_in: str = Field(description="How long it stands, e.g. 8h, 7d.")
    args: bool = Field(default=False, description="Only calls with exactly these args.")
    requester: bool = Field(default=False, description="Only calls this call's requester asks.")
    thread: bool = Field(default=False, description="Only calls of this thread.")

    @field_validator("expires_in")
    @classmethod
    def duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class Approve(Decision):
    remember: RememberApproval | None = Field(
        default=None, description="Also approve later calls in this scope, until it expires."
    )


class NewStanding(BaseModel):
    """A standing approval created directly (not from a decision)."""

    model_config = ConfigDict(extra="forbid")

    tool: str = Field(min_length=1)
    expires_in: str = Field(description="How long it stands, e.g. 8h, 7d.")
    args: dict[str, Any] | None = Field(default=None, description="Only calls with these args.")
    requester: str | None = Field(default=None, description="Only calls this person asks.")
    thread_id: str | None = Field(default=None, description="Only calls of this thread.")

    @field_validator("expires_in")
    @classmethod
    def duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class Reject(Decision):
    reason: str | None = None


class Edit(Decision):
    call: str = Field(description="The tool call ID.")
    args: dict[str, Any]


class Respond(Decision):
    call: str = Field(description="The tool call ID.")
    message: str = Field(min_length=1, description="What the model is told instead.")


class Reconcile(BaseModel):
    call: str
    action: Literal["retry", "mark_done", "skip"]
    result: str | None = None


class NewToken(BaseModel):
    name: str
    role: Literal["viewer", "approver", "admin"]


class NewWebhook(BaseModel):
    url: str
    events: list[str] | None = Field(default=None, description="Default: every event.")
    secret: str | None = Field(default=None, description="Default: a new random secret.")


class Prune(BaseModel):
    # a misspelt `older_than` must not turn a deletion by age into a trim of every thread
    model_config = ConfigDict(extra="forbid")

    older_than: str | None = Field(
        default=None,
        description="Delete threads finished longer ago than this (e.g. 30d); "
        "default: keep each finished thread's newest checkpoint.",
    )
    dry_run: bool = Field(default=False, description="Only count what would be deleted.")
    vacuum: bool = Field(default=True, description="Give the freed space back to the system.")

    @field_validator("older_than")
    @classmethod
    def is_a_duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    def seconds(self) -> float | None:
        return None if self.older_than is None else parse_duration(self.older_than)


class Assign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: str | None = Field(
        description="A person's name, `role:NAME`, or `me`; null unassigns the call."
    )


class Snooze(BaseModel):
    model_config = ConfigDict(extra="forbid")

    until: str | None = Field(
        description="A duration from now (2h, 1d) or an ISO 8601 time; null unsnoozes the call."
    )


class BulkCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    thread_id: str
    call: str = Field(description="The tool call ID.")
    args_hash: ArgsHash = None


class BulkFilter(BaseModel):
    """The inbox's filters; every pending call that matches is decided."""

    model_config = ConfigDict(extra="forbid")

    tool: str | None = None
    thread_id: str | None = None
    requester: str | None = None
    assigned_to: list[str] | None = Field(default=None, description="Names, role:NAME or `me`.")
    include_snoozed: bool = False


class Bulk(BaseModel):
    # a misspelt `calls` must not widen a decision to every pending call
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    calls: list[BulkCall] | None = Field(
        default=None, min_length=1, description="The calls to decide (what the decider saw)."
    )
    filter: BulkFilter | None = Field(
        default=None, description="Or: every pending call it matches."
    )
    reason: str | None = Field(default=None, description="With reject: told to the model.")
    comment: str | None = None

    @model_validator(mode="after")
    def one_selection(self) -> "Bulk":
        if (self.calls is None) == (self.filter is None):
            raise ValueError("give either `calls` or `filter`, not both and not neither")
        return self
