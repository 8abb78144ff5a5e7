"""The gate one tool call passes before it runs, inside any graph: shared by `ApprovalMiddleware`
(LangChain's `create_agent`) and `ApprovalToolNode` (hand-built `StateGraph`s).

The ledger is the gate's memory. The first time a call is seen, the policy's verdict is taken
and saved with the call's row; every later look (a resume, a replay, another process) reads
that row and never asks the policy again. A call runs only under a recorded approval, with the
approved arguments, journaled before and after so that no replay runs it twice.

The ledger reaches the gate through the run's config (`bind_ledger`), because users build their
graph before the service opens the database: the service (and `langgraph dev`, through
`graph/studio.py`) binds its ledger to the graph it runs.
"""

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, cast

from langchain_core.messages import AIMessage, AnyMessage, ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphBubbleUp
from langgraph.pregel import Pregel
from langgraph.types import Interrupt, interrupt

from hitl.compat import CONFIG_KEY_CHECKPOINTER
from hitl.graph.decisions import (
    ALL_DECISIONS,
    DecisionSchemas,
    DecisionType,
    ToolApprovalRequest,
    answer_text,
    apply_decision,
    as_decision,
)
from hitl.graph.errors import CallInProgress, JournalUnavailable
from hitl.graph.ledger import POLICY_ACTOR, ApprovalLedger, LedgerRecord
from hitl.graph.state import Review, runs_tool

LEDGER_KEY = "__hitl_ledger__"
"""The `configurable` key that carries the ledger to the gates of a running graph (a live
object: LangGraph keeps it out of checkpoint metadata)."""

GraphT = TypeVar("GraphT", bound=Pregel[Any, Any, Any, Any])


def bind_ledger(graph: GraphT, ledger: ApprovalLedger) -> GraphT:
    """`graph`, with every gate in it recording to `ledger` (a copy; `graph` is unchanged)."""
    return graph.with_config(configurable={LEDGER_KEY: ledger})


def bound_ledger(config: RunnableConfig) -> ApprovalLedger | None:
    """The ledger bound to the running graph, if any."""
    ledger = config.get("configurable", {}).get(LEDGER_KEY)
    return cast(ApprovalLedger | None, ledger)


def thread_of(config: RunnableConfig) -> str:
    """The thread the run belongs to; a gate needs one (the ledger is keyed by it)."""
    thread_id = config.get("configurable", {}).get("thread_id")
    if thread_id is None:
        raise ValueError(
            "an approval gate needs a thread: invoke the graph with "
            '{"configurable": {"thread_id": ...}} and a checkpointer'
        )
    return str(thread_id)


def graph_actor(config: RunnableConfig) -> str:
    """Who answered an interrupt given straight to the graph (Studio): the platform's
    authenticated user if there is one."""
    user = config.get("configurable", {}).get("langgraph_auth_user_id")
    return f"studio:{user}" if user else "studio"


def interrupt_id(config: RunnableConfig) -> str:
    """The ID LangGraph gives an interrupt raised by the task running with `config`."""
    return Interrupt.from_ns(None, config.get("configurable", {}).get("checkpoint_ns", "")).id


OnPolicyChange = Literal["reask", "keep"]
"""What a gate does with a call asked under another version of its tool's rule whose tool may
still run: ask it again under its own rules, or apply the recorded decision under the rules it
was asked under (and record that it did)."""


@dataclass(frozen=True)
class RuleCheck:
    """The gate's rule for one call's tool now, to compare with the one the call was asked
    under (its recorded `why`)."""

    why: Mapping[str, Any]
    """The rule that applies and its versions (`rule`, `rule_version`, `policy_version`)."""
    on_change: OnPolicyChange = "reask"


@dataclass(frozen=True)
class Verdict:
    """The policy's answer about one call, taken once and saved with it."""

    needs_review: bool
    allowed_decisions: Sequence[DecisionType] = ALL_DECISIONS
    description: str = ""
    expires_after: float | None = None
    """Seconds a person has to decide (None: no deadline)."""
    on_expire: str = "reject"
    approvers: Sequence[str] | None = None
    allow_self_approval: bool = True
    why: Mapping[str, Any] | None = None
    """Why: the rule that matched (and a `when` predicate's answer), the versions of that rule
    and of the whole policy; recorded with the request."""
    remind_after: float | None = None
    """Seconds until the sweep sends one reminder (None: none)."""
    escalate_after: float | None = None
    """Seconds until the sweep lets `escalate_to` decide too (None: no escalation)."""
    escalate_to: Sequence[str] | None = None
    quorum: int = 1
    """Distinct approvers needed before the call runs."""
    quorum_distinct_roles: bool = False
    reject_vetoes: bool = True


def register(
    ledger: ApprovalLedger,
    config: RunnableConfig,
    call: ToolCall,
    verdict: Callable[[], Verdict],
    requester: Callable[[], str | None],
    check: RuleCheck | None = None,
) -> LedgerRecord:
    """The call's row: the one saved, or a new one with the verdict and the requester taken
    now (only then).

    With `check`, a saved call whose tool's rule has changed since it was asked and whose tool
    may still run is asked again under the rule now (`reask`: the verdict is taken again), or
    recorded as applied under the rules it was asked under (`keep`).
    """
    thread_id = thread_of(config)
    call_id = cast(str, call["id"])
    found = ledger.get(thread_id, call_id)
    same = found is not None and found.args == _as_json(call["args"])
    if found is not None and same:
        if check is None or not _rule_changed(found, check):
            return found
        if check.on_change == "keep":
            return ledger.keep_recorded_rules(thread_id, call_id, current=check.why) or found
    taken = verdict()
    return ledger.request(
        thread_id=thread_id,
        tool_call_id=call_id,
        interrupt_id=interrupt_id(config),
        tool=call["name"],
        args=call["args"],
        requester=requester() or graph_actor(config),
        needs_review=taken.needs_review,
        allowed_decisions=list(taken.allowed_decisions),
        description=taken.description,
        expires_after=taken.expires_after,
        on_expire=taken.on_expire,
        approvers=list(taken.approvers) if taken.approvers is not None else None,
        allow_self_approval=taken.allow_self_approval,
        why=taken.why,
        reask=same,
        remind_after=taken.remind_after,
        escalate_after=taken.escalate_after,
        escalate_to=list(taken.escalate_to) if taken.escalate_to is not None else None,
        quorum=taken.quorum,
        quorum_distinct_roles=taken.quorum_distinct_roles,
        reject_vetoes=taken.reject_vetoes,
        # committed with the interrupt that asks about it (or the tool's start): one commit
        committed_by=config.get("configurable", {}).get(CONFIG_KEY_CHECKPOINTER),
    )


MAY_STILL_RUN = frozenset({"pending", "approved", "edited"})
"""Statuses of a call whose tool may still run and has not started (and `expired` with an
approval): a policy change concerns them (the ledger has the last word: see
`checkpoints/ledger/_policy.py`); a call that will not run stands under any policy."""


def _rule_changed(record: LedgerRecord, check: RuleCheck) -> bool:
    """Whether a call whose tool may still run was asked under another version of its tool's
    rule (known to both)."""
    may_run = record.status in MAY_STILL_RUN or (
        record.status == "expired" and (record.decision or {}).get("type") == "approve"
    )
    recorded = (record.why or {}).get("rule_version")
    current = check.why.get("rule_version")
    return may_run and None not in (recorded, current) and recorded != current


def answer(
    ledger: ApprovalLedger,
    config: RunnableConfig,
    call: ToolCall,
    record: LedgerRecord,
    reply: object,
    schemas: DecisionSchemas | None = None,
) -> LedgerRecord:
    """Record an answer given straight to the graph (Studio, Agent Chat UI); the ledger's
    first decision wins (one made meanwhile by the CLI or the service stands, this one is
    dropped). An answer the call's policy does not allow, or that is not a decision (an edit
    of another tool, a `respond` without a message), is dropped too: the call is asked again.
    `schemas` knows the tool's own argument schema, for edits (else any object passes here,
    and the tool checks its arguments when it runs). `record` is the call's row as it asked."""
    thread_id, call_id = thread_of(config), cast(str, call["id"])
    allowed = cast(list[DecisionType], list(record.allowed_decisions))
    try:
        decision = (schemas or DecisionSchemas([])).validate(call["name"], allowed, reply)
    except ValueError:  # DecisionNotAllowedError, pydantic's ValidationError
        return record
    return ledger.answer_from_graph(
        thread_id, call_id, cast(Mapping[str, Any], decision), actor=graph_actor(config)
    )


REQUESTER_KEY = "hitl_requester"
"""The `configurable` key the service sets to the person who sent the run's message."""


def requester_of(state: Mapping[str, Any], config: RunnableConfig, ledger: ApprovalLedger) -> str:
    """Who asked for the calls of this turn: the state's `requester` (the demo agent and
    `ApprovalMiddleware`'s state have one), else the run's (the service sets it), else whoever
    asked for the thread's latest call before (a resume by a decider keeps the requester),
    else the platform's user (Studio)."""
    given = state.get("requester") or config.get("configurable", {}).get(REQUESTER_KEY)
    if given:
        return str(given)
    return ledger.latest_requester(thread_of(config)) or graph_actor(config)


def approval_request(call: ToolCall, record: LedgerRecord) -> ToolApprovalRequest:
    """The per-call interrupt value: LangChain's `ToolApprovalRequest`, plus who asked and
    the deadline."""
    request = ToolApprovalRequest(
        type="tool_approval",
        tool_call_id=cast(str, call["id"]),
        name=call["name"],
        args=dict(call["args"]),
        description=record.description,
        allowed_decisions=cast(list[DecisionType], list(record.allowed_decisions)),
    )
    if record.requester:
        request["requester"] = record.requester
    if record.expires_at is not None:
        request["expires_at"] = datetime.fromtimestamp(record.expires_at, UTC).isoformat()
    return request


def review_of(call: ToolCall, record: LedgerRecord) -> Review:
    """The review the ledger's recorded decision makes of this call."""
    if record.args != _as_json(call["args"]):
        return cast(
            Review,
            {
                "tool_call_id": call["id"],
                "name": call["name"],
                "decision": "reject",
                "args": dict(call["args"]),
                "message": f"this call was already settled ({record.status}) with other "
                "arguments; it is not run again",
            },
        )
    # what the ledger recorded stands: it checked the reviewer's choice when it was made, and
    # an expiry or a cancellation need not be among the reviewer's choices
    review = apply_decision(call, as_decision(record.decision), ALL_DECISIONS)
    review["decided_by"] = record.decided_by or ""
    if record.decided_by == POLICY_ACTOR and review["decision"] == "approve":
        review["decision"] = "auto"  # nobody was asked
    if record.status == "expired":
        review["expired"] = True
    return review


def answer_message(call: ToolCall, review: Review) -> ToolMessage:
    """What the model reads in place of the tool's output for a call that does not run."""
    return ToolMessage(
        content=answer_text(review),
        name=call["name"],
        tool_call_id=review["tool_call_id"],
        status="error" if review["decision"] == "reject" else "success",
    )


def begin_once(
    ledger: ApprovalLedger, config: RunnableConfig, call: ToolCall, review: Review
) -> ToolCall | ToolMessage:
    """Journal that one approved call starts: the call to run (with the approved arguments),
    or the message to give the model instead of running it.

    A call that finished gets its journaled result instead of running again; one whose earlier
    attempt never finished is raised to a person (`outcome_unknown`) rather than run again;
    one a live process is running stops this run (`CallInProgress`). Run the returned call
    inside `attempt` and hand its result to `finish`.
    """
    assert runs_tool(review), "begin_once takes an approved call"
    thread_id, call_id = thread_of(config), cast(str, call["id"])
    approved = cast(ToolCall, {**call, "args": review["args"]})
    while True:
        begun = ledger.begin(thread_id, [(call_id, approved["args"])])[call_id]
        if begun.action == "run":
            return approved
        if begun.action == "done" and begun.record is not None:
            return journaled(call, begun.record)
        if begun.action == "busy":
            raise CallInProgress(call_id)
        if begun.action == "ask":  # the approval was for other arguments
            return ToolMessage(
                content="Not run: these arguments are not the ones a person approved.",
                name=call["name"],
                tool_call_id=call_id,
                status="error",
            )
        reply = interrupt(outcome_unknown_request([approved]))
        for cid, action, text in reconcile_answers(reply, [call_id]):
            ledger.reconcile_from_graph(
                thread_id, cid, action, actor=graph_actor(config), result=text
            )


@contextmanager
def attempt(ledger: ApprovalLedger, config: RunnableConfig, call_id: str) -> Iterator[None]:
    """Around a started call: see `stopped`."""
    try:
        yield
    except BaseException as e:
        stopped(ledger, config, call_id, e)
        raise


def stopped(
    ledger: ApprovalLedger, config: RunnableConfig, call_id: str, error: BaseException
) -> None:
    """A started call raised: one that asked for input (an interrupt) starts again on resume;
    any other leaves no result, so a replay finds it `outcome_unknown`."""
    if isinstance(error, GraphBubbleUp):
        ledger.unbegin(thread_of(config), call_id)
    else:
        ledger.abandon(thread_of(config), call_id)


def finish(ledger: ApprovalLedger, config: RunnableConfig, call_id: str, result: object) -> None:
    """Journal a started call's result, the moment it returns."""
    message = message_for(result, call_id)
    try:
        ledger.finish(
            thread_of(config),
            call_id,
            ok=message is None or message.status != "error",
            result=_text(message) if message else "(the tool returned no message)",
        )
    except Exception as e:
        raise JournalUnavailable(call_id, e) from e


def with_edit_notice(result: ToolMessage, notice: str) -> ToolMessage:
    """The tool's result, prefixed with the notice that a reviewer changed its arguments."""
    if isinstance(result.content, str):
        return result.model_copy(update={"content": notice + result.content})
    return result.model_copy(
        update={"content": [{"type": "text", "text": notice}, *result.content]}
    )


def message_for(result: Any, tool_call_id: str) -> ToolMessage | None:
    """The tool message a tool's result carries: itself, or inside a `Command`'s update."""
    if isinstance(result, ToolMessage):
        return result
    update = getattr(result, "update", None)
    messages = update.get("messages", []) if isinstance(update, dict) else []
    return next(
        (m for m in messages if isinstance(m, ToolMessage) and m.tool_call_id == tool_call_id),
        None,
    )


def journaled(call: ToolCall, record: LedgerRecord) -> ToolMessage:
    """The result journaled when the call ran, given back instead of running it again."""
    return ToolMessage(
        content=record.result or "",
        name=call["name"],
        tool_call_id=cast(str, call["id"]),
        status="error" if record.result_status == "error" else "success",
    )


def outcome_unknown_request(calls: Sequence[ToolCall]) -> dict[str, Any]:
    """The interrupt that asks a person to settle calls whose process died mid-run."""
    return {
        "type": "outcome_unknown",
        "tool_calls": [
            {"tool_call_id": c["id"], "name": c["name"], "args": c["args"]} for c in calls
        ],
        "description": "These calls started but their process died before they finished; "
        "whether they took effect is unknown. Settle each with `hitl reconcile THREAD --call "
        "ID --retry | --mark-done [--result TEXT] | --skip`, or answer "
        '{"tool_call_id": ..., "action": "retry" | "mark_done" | "skip", "result": ...}.',
    }


def reconcile_answers(answer: object, unknown: Sequence[str]) -> list[tuple[str, str, str | None]]:
    """The settlements an `outcome_unknown` answer gives, for the calls it asked about."""
    items = answer if isinstance(answer, list) else [answer]
    found = []
    for item in items:
        if isinstance(item, dict) and item.get("tool_call_id") in unknown:
            found.append((str(item["tool_call_id"]), str(item.get("action")), item.get("result")))
    return found


def current_turn(messages: Sequence[AnyMessage]) -> tuple[AIMessage | None, set[str]]:
    """The newest model message if it asked for tools, and the IDs of its calls that already
    have a result (or an answer in place of one).

    Reads from the newest message back to that turn only: the approval path never reads the
    whole conversation.
    """
    answered: set[str] = set()
    for m in reversed(messages):
        if isinstance(m, ToolMessage):
            answered.add(m.tool_call_id)
        elif isinstance(m, AIMessage):
            return (m if m.tool_calls else None), answered
    return None, answered


def unanswered_calls(messages: Sequence[AnyMessage]) -> list[ToolCall]:
    """The calls of the model's newest turn that have no result (or answer) yet."""
    turn, answered = current_turn(messages)
    return [c for c in (turn.tool_calls if turn else []) if c["id"] not in answered]


def _text(message: ToolMessage) -> str:
    """A tool's result as the journal keeps it: its text (content blocks joined)."""
    return message.content if isinstance(message.content, str) else message.text


def _as_json(args: Mapping[str, Any]) -> Any:
    """`args` as the ledger stores them (JSON), for comparison with a row's."""
    return json.loads(json.dumps(dict(args), default=str))
