"""Wire shapes of approvals (LangChain v1's vocabulary) and the pure logic that applies a decision.

A gated call is raised as one interrupt whose value is a `ToolApprovalRequest`; it is answered
with one `Decision`, or with the shorthand `"approve"` / `"reject"`. The per-call response schema
pins an edit to the same tool and validates its args against the tool's own argument schema, so
LangGraph refuses a bad answer before anything is saved.
"""

from collections.abc import Collection, Sequence
from functools import partial
from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,  # pydantic needs these on Python < 3.12
    Union,
    cast,
)

from langchain_core.messages import ToolCall
from langchain_core.tools import BaseTool
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    TypeAdapter,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from hitl.graph.errors import DecisionNotAllowedError
from hitl.graph.state import Review

DecisionType = Literal["approve", "edit", "reject", "respond"]
ALL_DECISIONS: tuple[DecisionType, ...] = ("approve", "edit", "reject", "respond")
Shorthand = Literal["approve", "reject"]


class ToolApprovalRequest(TypedDict):
    """The interrupt value raised once per tool call that needs a person's decision."""

    type: Literal["tool_approval"]
    """Always `"tool_approval"`; tells clients how to read this interrupt."""
    tool_call_id: str
    """ID of the model's tool call this approval is about; decisions are keyed by it."""
    name: str
    """Tool name, as the model requested it."""
    args: dict[str, Any]
    """Tool arguments, as the model requested them."""
    description: str
    """Text shown to the reviewer."""
    allowed_decisions: list[DecisionType]
    """The decision types this tool's policy accepts."""
    requester: NotRequired[str]
    """Who started the run that proposed this call."""
    expires_at: NotRequired[str]
    """When the policy settles the call if nobody decides (ISO 8601, UTC)."""


class Action(TypedDict):
    """A tool call as a reviewer wants it run."""

    name: str
    """The tool; an edit may not change it."""
    args: dict[str, Any]
    """The arguments to run the tool with."""


class ApproveDecision(TypedDict):
    """Run the call as proposed."""

    type: Literal["approve"]


class EditDecision(TypedDict):
    """Run the call with other arguments; the model is told a reviewer changed them."""

    type: Literal["edit"]
    edited_action: Action
    """The same tool, with the arguments to use instead."""


class RejectDecision(TypedDict):
    """Do not run the call; the model receives an error saying so, with the reason."""

    type: Literal["reject"]
    message: NotRequired[str]
    """Why the call was rejected, passed to the model."""


class RespondDecision(TypedDict):
    """Do not run the call; `message` becomes the tool's result."""

    type: Literal["respond"]
    message: str
    """The answer the model receives in place of the tool's output."""


Decision = ApproveDecision | EditDecision | RejectDecision | RespondDecision

REJECTED_WITHOUT_REASON = "no reason given"


def normalize(answer: Decision | Shorthand | dict[str, Any] | str) -> Decision:
    """Expand the shorthand strings into decision objects; pass objects through."""
    if answer == "approve":
        return {"type": "approve"}
    if answer == "reject":
        return {"type": "reject"}
    if isinstance(answer, dict) and isinstance(answer.get("type"), str):
        return cast(Decision, answer)
    raise DecisionNotAllowedError(
        f"not a decision: {answer!r}; expected 'approve', 'reject' or an object with a 'type'"
    )


def _edit_args_type(tool: BaseTool | None) -> object:
    """The tool's own argument model (what the model sees), or any object if it has none.

    Closed, unless the tool's schema takes any argument: pydantic would drop an argument the
    tool does not declare, and the reviewer's edit would run without it, silently."""
    schema = tool.tool_call_schema if tool else None
    name = tool.name if tool else ""
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        if schema.model_config.get("extra") == "allow":
            return schema
        closed = type(
            schema.__name__,
            (schema,),
            {
                "model_config": ConfigDict(extra="forbid"),  # merged into the tool's own
                "__module__": schema.__module__,
                "__doc__": schema.__doc__,
            },
        )
        declared = {
            key
            for field_name, field in schema.model_fields.items()
            for key in (field_name, field.alias)
            if key
        }
        return Annotated[closed, BeforeValidator(partial(_declared_only, name, declared))]
    shown = schema if isinstance(schema, dict) else {"type": "object"}
    properties = shown.get("properties")
    if not isinstance(properties, dict) or shown.get("additionalProperties", False) is not False:
        return Annotated[dict[str, Any], WithJsonSchema(shown)]
    check = partial(_declared_only, name, set(properties))
    closed_schema = shown | {"additionalProperties": False}
    return Annotated[dict[str, Any], WithJsonSchema(closed_schema), BeforeValidator(check)]


def _declared_only(tool: str, declared: Collection[str], args: object) -> object:
    """`args` if every key of it is an argument the tool declares; else one error naming the
    others (pydantic's own "extra inputs" error would come once per key, without the tool)."""
    if not isinstance(args, dict):
        return args  # the type's own check says what is wrong
    unknown = sorted(str(k) for k in args if k not in declared)
    if not unknown:
        return args
    raise PydanticCustomError(
        "unknown_argument",
        "{tool} takes no argument {unknown}; its arguments are {declared}: leave the others out",
        {
            "tool": tool or "the tool",
            "unknown": ", ".join(map(repr, unknown)),
            "declared": ", ".join(sorted(declared)) or "none",
        },
    )


class DecisionSchemas:
    """The response schema of each tool's approvals, built once per tool (pydantic is slow).

    `for_call` is what `interrupt()` validates with; `validate` checks one answer against the
    branch its `type` names, so an invalid answer gets one precise error per field.
    """

    def __init__(self, tools: Sequence[BaseTool]) -> None:
        self._tools = {t.name: t for t in tools}
        self._by_type: dict[str, dict[DecisionType, object]] = {}
        self._args: dict[str, object] = {}
        self._for_call: dict[tuple[str, tuple[DecisionType, ...]], object] = {}
        self._adapters: dict[tuple[str, DecisionType], TypeAdapter[Any]] = {}

    def _args_type(self, name: str) -> object:
        if name not in self._args:
            self._args[name] = _edit_args_type(self._tools.get(name))
        return self._args[name]

    def _members(self, name: str) -> dict[DecisionType, object]:
        if name not in self._by_type:
            fields: dict[str, Any] = {
                "name": (Literal[name], ...),  # an edit may not switch tools
                "args": (self._args_type(name), ...),
            }
            edited_action = create_model(f"{name}_EditedAction", **fields)
            edit_fields: dict[str, Any] = {
                "type": (Literal["edit"], ...),
                "edited_action": (edited_action, ...),
            }
            edit = create_model(f"{name}_EditDecision", **edit_fields)
            self._by_type[name] = {
                "approve": ApproveDecision,
                "edit": edit,
                "reject": RejectDecision,
                "respond": RespondDecision,
            }
        return self._by_type[name]

    def for_call(self, name: str, allowed: Sequence[DecisionType]) -> object:
        """The per-call `response_schema`: the allowed decisions, plus the allowed shorthands.

        A type, not a JSON schema, because LangGraph validates answers only against Python
        types; it publishes the type's JSON schema to clients such as Studio.
        """
        key = (name, tuple(dict.fromkeys(allowed)))
        if key not in self._for_call:  # the same object each time: LangGraph caches by it
            members = tuple(self._members(name)[d] for d in key[1])
            objects: object = (
                members[0]
                if len(members) == 1
                else Annotated[Union[members], Discriminator("type")]  # noqa: UP007
            )
            shorthands = tuple(s for s in ("approve", "reject") if s in allowed)
            self._for_call[key] = (
                Union[Literal[shorthands], objects] if shorthands else objects  # noqa: UP007
            )
        return self._for_call[key]

    def json_schema(self, name: str, allowed: Sequence[DecisionType]) -> dict[str, Any]:
        """The JSON schema of `for_call`, as clients (Studio, the web inbox) see it."""
        adapter: TypeAdapter[Any] = TypeAdapter(cast(Any, self.for_call(name, allowed)))
        schema: dict[str, Any] = adapter.json_schema()
        return schema

    def args_json_schema(self, name: str) -> dict[str, Any]:
        """The JSON schema of the tool's arguments: what an edit must fit."""
        adapter: TypeAdapter[Any] = TypeAdapter(cast(Any, self._args_type(name)))
        schema: dict[str, Any] = adapter.json_schema()
        return schema

    def validate(self, name: str, allowed: Sequence[DecisionType], answer: object) -> Decision:
        """Check one answer; raise `DecisionNotAllowedError` or pydantic's `ValidationError`."""
        decision = normalize(answer)  # type: ignore[arg-type]
        kind = decision.get("type")
        if kind not in allowed:
            raise DecisionNotAllowedError(
                f"{kind!r} is not allowed for {name}; allowed: {', '.join(allowed)}"
            )
        if (name, kind) not in self._adapters:
            member: Any = self._members(name)[kind]
            self._adapters[(name, kind)] = TypeAdapter(member)
        return as_decision(self._adapters[(name, kind)].validate_python(decision))


def as_decision(validated: object) -> Decision:
    """A validated answer (shorthand, plain object or edit model) as a plain decision."""
    if isinstance(validated, BaseModel):
        edited = validated.model_dump(mode="json")["edited_action"]
        return {"type": "edit", "edited_action": {"name": edited["name"], "args": edited["args"]}}
    return normalize(cast(Decision | str, validated))


def apply_decision(call: ToolCall, decision: Decision, allowed: Sequence[DecisionType]) -> Review:
    """Turn one reviewer decision into the review the tools node acts on."""
    call_id = cast(str, call["id"])
    if decision["type"] not in allowed:
        raise DecisionNotAllowedError(
            f"{decision['type']!r} is not allowed for {call['name']}; allowed: {', '.join(allowed)}"
        )
    base = {"tool_call_id": call_id, "name": call["name"]}
    if decision["type"] == "edit":  # the arguments may change; the tool may not
        args = dict(decision["edited_action"]["args"])
        return cast(Review, base | {"decision": "edit", "args": args})
    if decision["type"] == "approve":
        return cast(Review, base | {"decision": "approve", "args": dict(call["args"])})
    message = decision.get("message")
    if decision["type"] == "reject":
        message = message or REJECTED_WITHOUT_REASON
    return cast(
        Review,
        base | {"decision": decision["type"], "args": dict(call["args"]), "message": message or ""},
    )


def answer_text(review: Review) -> str:
    """What the model reads in place of the tool's output for a rejected or answered call."""
    if review["decision"] == "respond":
        return review.get("message", "")
    if review.get("expired"):
        return (
            f"Nobody decided on the call to `{review['name']}` before its deadline, so it "
            f"expired and was NOT run ({review.get('message')}). Tell the user it expired; "
            "do not retry it unless they ask again."
        )
    return (
        f"A human reviewer rejected the call to `{review['name']}`; it was NOT run. "
        f"Reason: {review.get('message') or REJECTED_WITHOUT_REASON}. "
        "Do not retry it unless the user asks again."
    )
