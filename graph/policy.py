"""Which tool calls need a person's decision, and which decisions each tool accepts.

A policy is evaluated once per call, by the router after `agent`, and its verdict is saved with
the call: a resume in another process, with another policy loaded, cannot change whether a
call was asked about or which decisions it accepts.
"""

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from langchain_core.messages import ToolCall

from hitl.graph.decisions import ALL_DECISIONS, DecisionType

Ask = Literal["always", "never"] | Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class ToolRule:
    """How one tool is gated.

    `ask` is `"always"`, `"never"` (auto-approve) or a predicate on the call's arguments that
    returns True when a person must decide. `expires_after` gives a person that long to decide;
    then `hitl sweep` settles the call with `on_expire`. `approvers` names who may approve,
    edit or respond (None: anyone; `role:NAME` admits a role); `allow_self_approval=False`
    forbids the person who started the run from approving their own agent's call.
    `remind_after` and `escalate_after` (to `escalate_to`) nudge a call before its deadline
    (see docs/triage.md).
    `quorum` asks for that many distinct approvers (`quorum_distinct_roles`: from distinct
    roles; `reject_vetoes=False`: it takes as many rejects to reject), see
    docs/standing-and-quorum.md.
    """

    ask: Ask = "always"
    allowed_decisions: Sequence[DecisionType] = ALL_DECISIONS
    description: str | None = None
    expires_after: timedelta | None = None
    on_expire: Literal["reject", "approve"] = "reject"
    approvers: Collection[str] | None = None
    allow_self_approval: bool = True
    remind_after: timedelta | None = None
    escalate_after: timedelta | None = None
    escalate_to: Collection[str] | None = None
    quorum: int = 1
    quorum_distinct_roles: bool = False
    reject_vetoes: bool = True

    def needs_review(self, args: Mapping[str, Any]) -> bool:
        """Whether a call with these arguments waits for a person."""
        if self.ask == "always":
            return True
        if self.ask == "never":
            return False
        return bool(self.ask(args))

    def describe(self, call: ToolCall) -> str:
        """The text a reviewer reads on the approval card."""
        intro = self.description or "Tool execution requires approval"
        return f"{intro}\n\nTool: {call['name']}\nArgs: {json.dumps(call['args'], sort_keys=True)}"


@dataclass(frozen=True)
class Policy:
    """Rules by tool name; a tool without a rule uses `default` (ask, to fail safe)."""

    rules: Mapping[str, ToolRule] = field(default_factory=dict)
    default: ToolRule = ToolRule()

    def rule_for(self, tool_name: str) -> ToolRule:
        """The rule that applies to calls of this tool."""
        return self.rules.get(tool_name, self.default)


def recipient_outside(domain: str, arg: str = "recipient") -> Callable[[Mapping[str, Any]], bool]:
    """A predicate: ask only when the address in `arg` is not at `domain`."""
    suffix = "@" + domain.lower()

    def outside(args: Mapping[str, Any]) -> bool:
        return not str(args.get(arg, "")).lower().endswith(suffix)

    outside.__name__ = f"recipient_outside_{domain}"
    return outside


def default_policy() -> Policy:
    """The demo policy: counting emails is harmless, sending one always needs a yes."""
    return Policy(
        rules={
            "count_emails": ToolRule(ask="never"),
            "send_email": ToolRule(
                ask="always", description="The agent wants to send an email on your behalf"
            ),
        }
    )
