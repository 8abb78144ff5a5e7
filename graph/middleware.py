"""`ApprovalMiddleware`: LangChain's `HumanInTheLoopMiddleware`, with the ledger behind it.

The same constructor, interrupt values and resume shapes as LangChain's, in both modes, so a
UI built for it (Agent Chat UI, Studio) works unchanged:

- `batched` (the default): one interrupt per model turn, a `HITLRequest` listing the turn's
  calls still waiting, answered with `{"decisions": [...]}` in the same order;
- `per_call`: one `ToolApprovalRequest` interrupt per gated call, raised as the call starts,
  with a `response_schema`, answered by interrupt ID.

With a ledger bound to the graph (`bind_ledger`; `hitl` and `langgraph dev` through this
project do it), every call is registered once with the policy's verdict (`when` included), a
decision made anywhere (CLI, HTTP, web inbox, Studio) is the one that wins, and a tool runs
only under a recorded approval, once, with the approved arguments. Without a ledger it is
LangChain's middleware exactly, with its limits.
"""

import asyncio
import json
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import timedelta
from functools import cache, partial
from typing import Annotated, Any, Literal, NotRequired, cast, get_args

from langchain.agents.middleware import AgentMiddleware, AgentState
from langchain.agents.middleware import HumanInTheLoopMiddleware as _Stock
from langchain.agents.middleware import InterruptOnConfig as _StockConfig
from langchain.agents.middleware.human_in_the_loop import (
    ActionRequest,
    HITLRequest,
    ReviewConfig,
)
from langchain.agents.middleware.types import PrivateStateAttr, ToolCallRequest
from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.config import get_config
from langgraph.prebuilt.tool_node import ToolRuntime
from langgraph.runtime import Runtime, get_runtime
from langgraph.types import Command, interrupt

from hitl.graph import gate
from hitl.graph.blocking import blocking
from hitl.graph.decisions import ALL_DECISIONS, DecisionSchemas, DecisionType
from hitl.graph.ledger import ApprovalLedger, LedgerRecord
from hitl.graph.policy_version import fingerprint, version_of
from hitl.graph.state import Review, runs_tool

InterruptMode = Literal["batched", "per_call"]

DEFAULT_EDIT_NOTICE = (
    "Note: a human reviewer replaced this tool call before it ran. The call recorded in "
    "your message is the one you produced, not the one that executed. This was "
    "intentional and authorized. Do not re-issue your original call."
)
"""LangChain's text, so a drop-in tells the model the same thing."""


class InterruptOnConfig(_StockConfig, total=False):
    """LangChain's `InterruptOnConfig`, plus what the ledger enforces."""

    expires_after: timedelta | float
    """How long a person has to decide; then `hitl sweep` settles it with `on_expire`."""
    on_expire: Literal["reject", "approve"]
    approvers: Collection[str]
    """Who may approve, edit or respond (`role:NAME` admits a role); anyone if absent."""
    allow_self_approval: bool
    """False: the person who started the run may not approve their own agent's call."""
    remind_after: timedelta | float
    """When the sweep reminds (webhook `approval.reminder`) that the call still waits."""
    escalate_after: timedelta | float
    """When the sweep escalates the call: `escalate_to` may decide it too from then on."""
    escalate_to: Collection[str]
    """Who the call escalates to (names, `role:NAME`); needs `escalate_after`."""
    quorum: int
    """How many distinct people must approve a call before it runs (default 1). A quorum call
    takes `approve` and `reject` only (an edit or a respond would be one person's say)."""
    quorum_distinct_roles: bool
    """With a quorum: each approval must come from a role no other approval came from."""
    reject_vetoes: bool
    """With a quorum: one reject rejects the call (default True); False: it takes `quorum`
    rejects, like the approvals."""


class ApprovalState(AgentState[Any]):
    """What the middleware adds to the agent's state."""

    requester: NotRequired[str]
    """Who sent the latest message (the `hitl` front ends set it): recorded with each call."""
    hitl_reviews: NotRequired[Annotated[dict[str, Review], PrivateStateAttr]]
    """The decision applied to each call of the latest turn."""
    hitl_edited_tool_calls: NotRequired[Annotated[dict[str, Any], PrivateStateAttr]]
    """LangChain's own key, used when no ledger is bound."""


class ApprovalMiddleware(AgentMiddleware[ApprovalState, Any, Any]):
    """Ask a person before the tools in `interrupt_on` run; a drop-in for
    `HumanInTheLoopMiddleware` (same arguments) that keeps its promises across processes,
    crashes and concurrent decisions when a ledger is bound.

    Deliberately stricter than LangChain's: the `when` predicate is evaluated once, when the
    model proposes the call, and its verdict is saved (LangChain runs it again on resume, so a
    predicate that flips runs a call the reviewer rejected); a call reaches its tool only with
    a recorded approval, even if another middleware jumps to the tools; and
    `ask_unlisted=True` asks about every tool that has no entry (LangChain runs them).
    """

    state_schema = ApprovalState

    def __init__(
        self,
        interrupt_on: Mapping[str, bool | InterruptOnConfig | _StockConfig],
        *,
        description_prefix: str = "Tool execution requires approval",
        edit_notice: str | None = DEFAULT_EDIT_NOTICE,
        interrupt_mode: InterruptMode = "batched",
        ask_unlisted: bool = False,
        on_policy_change: gate.OnPolicyChange = "reask",
    ) -> None:
        super().__init__()
        if interrupt_mode not in (modes := get_args(InterruptMode)):
            allowed = " or ".join(repr(mode) for mode in modes)
            raise ValueError(f"`interrupt_mode` must be {allowed}, got {interrupt_mode!r}.")
        if on_policy_change not in (changes := get_args(gate.OnPolicyChange)):
            allowed = " or ".join(repr(change) for change in changes)
            raise ValueError(f"`on_policy_change` must be {allowed}, got {on_policy_change!r}.")
        self.on_policy_change: gate.OnPolicyChange = on_policy_change
        self.interrupt_mode: InterruptMode = interrupt_mode
        self.edit_notice = edit_notice
        self.description_prefix = description_prefix
        self.ask_unlisted = ask_unlisted
        self.interrupt_on: dict[str, InterruptOnConfig] = {}
        self._never: set[str] = set()
        for name, config in interrupt_on.items():
            if config is False:
                self._never.add(name)
            elif config is True:
                self.interrupt_on[name] = InterruptOnConfig(allowed_decisions=list(ALL_DECISIONS))
            elif isinstance(config, Mapping) and config.get("allowed_decisions"):
                _check_decisions(name, config["allowed_decisions"])
                _check_ledger_options(name, config)
                self.interrupt_on[name] = cast(InterruptOnConfig, config)
            else:
                keys = sorted(config) if isinstance(config, Mapping) else type(config).__name__
                raise ValueError(
                    f"Invalid `interrupt_on` config for tool '{name}': `allowed_decisions` "
                    "must be a non-empty list of decision types (e.g. ['approve', 'reject']). "
                    f"Got {keys}."
                )
        stock: dict[str, bool | _StockConfig] = {n: c for n, c in self.interrupt_on.items()}
        self._stock = _Stock(
            stock,
            description_prefix=description_prefix,
            edit_notice=edit_notice,
            interrupt_mode=interrupt_mode,
        )
        self._schemas: dict[str, DecisionSchemas] = {}
        self.policy_version = version_of(
            {
                "interrupt_on": {n: fingerprint(c) for n, c in self.interrupt_on.items()},
                "never": sorted(self._never),
                "ask_unlisted": ask_unlisted,
                "description_prefix": description_prefix,
            }
        )
        """The version of this gate's whole policy, recorded with each call (`why`)."""
        self._checks: dict[str, gate.RuleCheck] = {}

    # the hooks

    def after_model(self, state: ApprovalState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Batched mode: register the turn's calls, then ask about those still waiting in one
        interrupt until the ledger has a decision for each.

        An answer that no longer fits (the calls waiting changed since it was shown: a decision
        made elsewhere meanwhile) or that a call's policy refuses is dropped, and the calls
        still waiting are asked about again: a replay of this node never wedges on it.
        """
        if self.interrupt_mode == "per_call":
            return None
        config = get_config()
        ledger = gate.bound_ledger(config)
        if ledger is None:
            self._refuse_unlisted_without_ledger()
            return self._stock.after_model(state, runtime)
        calls = gate.unanswered_calls(state["messages"])
        if not calls:
            return None
        requester = cache(partial(gate.requester_of, state, config, ledger))  # read if needed
        # every verdict first: a predicate that raises leaves nothing half-registered
        verdicts = {cast(str, c["id"]): self._verdict(c, state, runtime, None) for c in calls}
        records = {
            cast(str, call["id"]): gate.register(
                ledger,
                config,
                call,
                partial(verdicts.__getitem__, cast(str, call["id"])),
                requester,
                self.rule_check(call["name"]),
            )
            for call in calls
        }
        _refuse_reused_ids(state["messages"], records)
        while waiting := [c for c in calls if records[cast(str, c["id"])].status == "pending"]:
            reply = interrupt(_batched_request(waiting, records))
            decisions = _decisions(reply, len(waiting))
            schemas = self._schemas_for(None)  # the tools are not known here: any args
            for call, decision in zip(waiting, decisions or [], strict=False):
                call_id = cast(str, call["id"])
                records[call_id] = gate.answer(
                    ledger, config, call, records[call_id], decision, schemas
                )
        reviews = {
            cast(str, c["id"]): gate.review_of(c, records[cast(str, c["id"])]) for c in calls
        }
        answers = [
            gate.answer_message(call, review)
            for call, review in zip(calls, reviews.values(), strict=True)
            if not runs_tool(review)
        ]
        return {"messages": answers, "hitl_reviews": reviews}

    async def aafter_model(
        self, state: ApprovalState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """`after_model` for async runs (`langgraph dev`): in a worker thread, never on the
        event loop (the ledger's calls block)."""
        return await asyncio.to_thread(self.after_model, state, runtime)

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        """The gate: run the call only under a recorded approval, once (per-call mode asks
        here; batched mode asks here only about a call that bypassed `after_model`)."""
        config = request.runtime.config
        ledger = gate.bound_ledger(config)
        if ledger is None:
            self._refuse_unlisted_without_ledger()
            return self._stock.wrap_tool_call(request, handler)
        started = self._start(ledger, request)
        if isinstance(started, ToolMessage):
            return started
        to_run, review = started
        call_id = cast(str, to_run.tool_call["id"])
        with gate.attempt(ledger, config, call_id):
            result = handler(_sync_capable(to_run))
        gate.finish(ledger, config, call_id, result)
        return self._noticed(result, review)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        """`wrap_tool_call` for async runs (`langgraph dev`): the ledger's calls go to a worker
        thread, never onto the event loop."""
        config = request.runtime.config
        ledger = gate.bound_ledger(config)
        if ledger is None:
            self._refuse_unlisted_without_ledger()
            return await self._stock.awrap_tool_call(request, handler)
        started = await asyncio.to_thread(self._start, ledger, request)
        if isinstance(started, ToolMessage):
            return started
        to_run, review = started
        call_id = cast(str, to_run.tool_call["id"])
        try:
            result = await handler(to_run)
        except BaseException as e:
            await asyncio.to_thread(gate.stopped, ledger, config, call_id, e)
            raise
        await asyncio.to_thread(gate.finish, ledger, config, call_id, result)
        return self._noticed(result, review)

    # plumbing

    def _refuse_unlisted_without_ledger(self) -> None:
        """`ask_unlisted` is ours, not LangChain's: without a ledger it cannot be kept, and
        must not fail open."""
        if self.ask_unlisted:
            raise ValueError(
                "ApprovalMiddleware(ask_unlisted=True) needs a ledger: serve the graph with "
                "hitl (HITL_GRAPH) or bind one with hitl.bind_ledger(graph, ledger)"
            )

    def _start(
        self, ledger: ApprovalLedger, request: ToolCallRequest
    ) -> tuple[ToolCallRequest, Review] | ToolMessage:
        config = request.runtime.config
        call = request.tool_call
        state = request.state if isinstance(request.state, Mapping) else {}
        record = gate.register(
            ledger,
            config,
            call,
            lambda: self._verdict(call, cast(ApprovalState, state), None, request),
            partial(gate.requester_of, state, config, ledger),
            self.rule_check(call["name"]),
        )
        _refuse_reused_ids(state.get("messages", []), {cast(str, call["id"]): record})
        schemas = self._schemas_for(request.tool)
        while record.status == "pending":
            schema = schemas.for_call(
                call["name"], cast(list[DecisionType], record.allowed_decisions)
            )
            reply = interrupt(gate.approval_request(call, record), response_schema=schema)  # type: ignore[call-overload]
            record = gate.answer(ledger, config, call, record, reply, schemas)
        review = gate.review_of(call, record)
        if not runs_tool(review):
            return gate.answer_message(call, review)
        started = gate.begin_once(ledger, config, call, review)
        if isinstance(started, ToolMessage):
            return started
        return request.override(tool_call=started), review

    def _noticed(
        self, result: ToolMessage | Command[Any], review: Review
    ) -> ToolMessage | Command[Any]:
        if review["decision"] != "edit" or not self.edit_notice:
            return result
        if not isinstance(result, ToolMessage):
            return result
        executed = f"{review['name']} with arguments {json.dumps(review['args'], default=str)}"
        notice = f"{self.edit_notice} Executed instead: {executed}.\n\nTool response:\n"
        return gate.with_edit_notice(result, notice)

    def _verdict(
        self,
        call: ToolCall,
        state: ApprovalState,
        runtime: Runtime[Any] | None,
        request: ToolCallRequest | None,
    ) -> gate.Verdict:
        """The policy's verdict on a call the ledger has not seen: taken here, once."""
        name = call["name"]
        config = self.interrupt_on.get(name)
        why = dict(self.rule_check(name).why)
        if config is None:
            needs = self.ask_unlisted and name not in self._never
            return gate.Verdict(needs_review=needs, description=self._describe(call), why=why)
        when = config.get("when")
        if when is not None:
            needs = bool(when(request or self._when_request(call, state, runtime)))
            why["when"] = needs
        else:
            needs = True
        description = config.get("description")
        if callable(description):
            text = description(call, state, runtime or get_runtime())
        else:
            text = description if description is not None else self._describe(call)
        expires = config.get("expires_after")
        remind, escalate = config.get("remind_after"), config.get("escalate_after")
        quorum = config.get("quorum", 1)
        allowed = list(config["allowed_decisions"])
        if quorum > 1:  # see `InterruptOnConfig.quorum`
            allowed = [d for d in allowed if d in QUORUM_DECISIONS]
        return gate.Verdict(
            needs_review=needs,
            allowed_decisions=allowed,
            description=text,
            expires_after=_seconds(expires),
            on_expire=config.get("on_expire", "reject"),
            approvers=sorted(config["approvers"]) if "approvers" in config else None,
            allow_self_approval=config.get("allow_self_approval", True),
            why=why,
            remind_after=_seconds(remind),
            escalate_after=_seconds(escalate),
            escalate_to=sorted(config["escalate_to"]) if "escalate_to" in config else None,
            quorum=quorum,
            quorum_distinct_roles=config.get("quorum_distinct_roles", False),
            reject_vetoes=config.get("reject_vetoes", True),
        )

    def rule_check(self, name: str) -> gate.RuleCheck:
        """The rule for `name` now: which entry applies (`interrupt_on`, `never` for a `False`
        entry, `ask_unlisted` or `unlisted` for a tool without one) and its version, which
        only a change to that entry (or, for a tool without one, to `ask_unlisted`) changes."""
        if name in self._checks:
            return self._checks[name]
        entry: Any
        if name in self.interrupt_on:
            rule, entry = "interrupt_on", fingerprint(self.interrupt_on[name])
            if "description" not in self.interrupt_on[name]:
                entry["description_prefix"] = self.description_prefix
        elif name in self._never:
            rule, entry = "never", False
        else:
            rule = "ask_unlisted" if self.ask_unlisted else "unlisted"
            entry = {"description_prefix": self.description_prefix} if self.ask_unlisted else None
        why = {
            "rule": rule,
            "rule_version": version_of({"tool": name, "rule": rule, "entry": entry}),
            "policy_version": self.policy_version,
        }
        check = gate.RuleCheck(why=why, on_change=self.on_policy_change)
        self._checks[name] = check
        return check

    def _describe(self, call: ToolCall) -> str:
        return f"{self.description_prefix}\n\nTool: {call['name']}\nArgs: {call['args']}"

    def _when_request(
        self, call: ToolCall, state: ApprovalState, runtime: Runtime[Any] | None
    ) -> ToolCallRequest:
        """The request LangChain's batched mode gives `when`: no tool, a fresh runtime."""
        assert runtime is not None
        tool_runtime = ToolRuntime(
            state=state,
            context=runtime.context,
            config=get_config(),
            stream_writer=runtime.stream_writer,
            tool_call_id=call["id"],
            store=runtime.store,
            execution_info=getattr(runtime, "execution_info", None),
            server_info=getattr(runtime, "server_info", None),
        )
        return ToolCallRequest(tool_call=call, tool=None, state=state, runtime=tool_runtime)  # type: ignore[arg-type]

    def _schemas_for(self, tool: BaseTool | None) -> DecisionSchemas:
        key = tool.name if tool is not None else ""
        if key not in self._schemas:
            self._schemas[key] = DecisionSchemas([tool] if tool is not None else [])
        return self._schemas[key]


def _sync_capable(request: ToolCallRequest) -> ToolCallRequest:
    """A tool with only an async implementation (MCP tools, `StructuredTool(coroutine=...)`)
    in a sync run (the `hitl` CLI and service run graphs synchronously): its coroutine, run to
    completion on an event loop of its own, so it is gated and run like any other tool."""
    tool = request.tool
    if not isinstance(tool, StructuredTool) or tool.func is not None or tool.coroutine is None:
        return request
    return request.override(tool=tool.model_copy(update={"func": blocking(tool.coroutine)}))


def _check_decisions(name: str, allowed: object) -> None:
    known = set(ALL_DECISIONS)
    if not isinstance(allowed, list | tuple) or not set(allowed) <= known:
        raise ValueError(
            f"Invalid `allowed_decisions` for tool '{name}': {allowed!r}; "
            f"use a list of {', '.join(ALL_DECISIONS)}"
        )


def _check_ledger_options(name: str, config: Mapping[str, Any]) -> None:
    """The options LangChain's config lacks, checked now rather than mid-run."""
    problems = []
    expires = config.get("expires_after")
    if expires is not None and (
        isinstance(expires, bool) or not isinstance(expires, timedelta | int | float)
    ):
        problems.append(f"expires_after={expires!r} must be a timedelta or seconds")
    if config.get("on_expire", "reject") not in ("reject", "approve"):
        problems.append(f"on_expire={config['on_expire']!r} must be 'reject' or 'approve'")
    approvers = config.get("approvers")
    if approvers is not None and (
        isinstance(approvers, str) or not all(isinstance(a, str) for a in approvers)
    ):
        problems.append(f"approvers={approvers!r} must be a list of names (or role:NAME)")
    if not isinstance(config.get("allow_self_approval", True), bool):
        problems.append("allow_self_approval must be True or False")
    problems += _triage_problems(config)
    problems += _quorum_problems(config)
    if problems:
        raise ValueError(f"Invalid `interrupt_on` config for tool '{name}': {'; '.join(problems)}")


QUORUM_DECISIONS = ("approve", "reject")
"""The decisions a quorum call takes: one vote each (see `InterruptOnConfig.quorum`)."""


def _quorum_problems(config: Mapping[str, Any]) -> list[str]:
    quorum = config.get("quorum", 1)
    if isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 1:
        return [f"quorum={quorum!r} must be a whole number of approvers, 1 or more"]
    problems = []
    for option in ("quorum_distinct_roles", "reject_vetoes"):
        if not isinstance(config.get(option, False), bool):
            problems.append(f"{option} must be True or False")
    if quorum > 1 and "approve" not in config.get("allowed_decisions", ()):
        problems.append(f"quorum={quorum} needs 'approve' among allowed_decisions")
    if quorum == 1 and config.get("quorum_distinct_roles"):
        problems.append("quorum_distinct_roles needs a quorum of 2 or more")
    return problems


def _triage_problems(config: Mapping[str, Any]) -> list[str]:
    """What is wrong with a config's reminder and escalation (before its deadline, if any)."""
    problems = []
    deadline = _duration(config.get("expires_after"))
    for key in ("remind_after", "escalate_after"):
        value = config.get(key)
        seconds = _duration(value)
        if value is not None and seconds is None:
            problems.append(f"{key}={value!r} must be a positive timedelta or seconds")
        elif seconds is not None and deadline is not None and seconds >= deadline:
            problems.append(
                f"{key}={value!r} is not before the deadline (expires_after="
                f"{config['expires_after']!r}): it would never happen; make it shorter"
            )
    targets = config.get("escalate_to")
    if targets is not None and (
        isinstance(targets, str) or not targets or not all(isinstance(t, str) for t in targets)
    ):
        problems.append(f"escalate_to={targets!r} must be a non-empty list of names (or role:NAME)")
    if config.get("escalate_after") is not None and targets is None:
        problems.append("escalate_after needs escalate_to: say who the call escalates to")
    if targets is not None and config.get("escalate_after") is None:
        problems.append("escalate_to needs escalate_after: say when the call escalates")
    return problems


def _duration(value: object) -> float | None:
    """Seconds of a positive timedelta or number; None for anything else."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        return None
    return seconds if seconds > 0 else None


def _seconds(value: timedelta | float | None) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else value


def _batched_request(calls: list[ToolCall], records: Mapping[str, LedgerRecord]) -> HITLRequest:
    """LangChain's batched interrupt value for the calls still waiting, in the turn's order."""
    actions: list[ActionRequest] = []
    configs: list[ReviewConfig] = []
    for call in calls:
        record = records[cast(str, call["id"])]
        actions.append(
            ActionRequest(
                name=call["name"], args=dict(call["args"]), description=record.description
            )
        )
        configs.append(
            ReviewConfig(
                action_name=call["name"],
                allowed_decisions=cast(list[DecisionType], list(record.allowed_decisions)),
            )
        )
    return HITLRequest(action_requests=actions, review_configs=configs)


def _decisions(reply: object, expected: int) -> list[object] | None:
    """The positional decisions of a batched answer (`{"decisions": [...]}`), with
    langchain 1.0's `arguments` read as `args`; None for an answer that does not fit the calls
    waiting (ask again)."""
    decisions = reply.get("decisions") if isinstance(reply, Mapping) else reply
    if not isinstance(decisions, list) or len(decisions) != expected:
        return None
    return [_with_args(d) for d in decisions]


def _with_args(decision: object) -> object:
    if not isinstance(decision, Mapping):
        return decision
    action = decision.get("edited_action")
    if isinstance(action, Mapping) and "args" not in action and "arguments" in action:
        legacy = dict(action)
        legacy["args"] = legacy.pop("arguments")
        return {**decision, "edited_action": legacy}
    return decision


SETTLED = frozenset({"rejected", "responded", "expired", "succeeded", "failed", "outcome_unknown"})
"""Statuses of a call that was answered or ran: the only ones an ID reused from an earlier turn
can find (the ledger re-asks a call that has not run, with its new arguments)."""


def _refuse_reused_ids(messages: Sequence[Any], records: Mapping[str, LedgerRecord]) -> None:
    """A call ID the thread already answered in an earlier turn: the ledger keys calls by ID,
    so it would be taken for that call (never asked, or its old result given back).

    Only a settled row can be such a call, so the conversation is read (all of it) only then:
    a fresh turn or a resume reads none of it.
    """
    suspects = {cid for cid, record in records.items() if record.status in SETTLED}
    if not suspects:
        return
    latest = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
    earlier = set()
    for message in messages:
        if message is latest:
            break
        if isinstance(message, ToolMessage):
            earlier.add(message.tool_call_id)
    if reused := sorted(suspects & earlier):
        raise ValueError(
            f"the model reused the tool call ID(s) {', '.join(reused)} of an earlier turn of "
            "this thread; each call needs an ID of its own (the ledger records calls by ID)"
        )
