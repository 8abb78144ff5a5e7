"""A tool's reminder and escalation options are checked when the gate is built: a clear
`ValueError` naming the tool and the problem, never a surprise mid-run; the demo policy's
`ToolRule` reaches the ledger with the same options."""

from datetime import timedelta
from typing import Any

import pytest

from hitl.graph.builder import interrupt_on
from hitl.graph.middleware import ApprovalMiddleware
from hitl.graph.policy import Policy, ToolRule
from tests.support.fakes import ToolLog, make_recording_tools

APPROVE = {"allowed_decisions": ["approve", "reject"]}


def _build(**options: Any) -> ApprovalMiddleware:
    return ApprovalMiddleware({"wire_money": APPROVE | options})


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"escalate_after": 60}, "escalate_after needs escalate_to"),
        ({"escalate_to": ["carol"]}, "escalate_to needs escalate_after"),
        ({"remind_after": 0}, "remind_after=0 must be a positive timedelta or seconds"),
        ({"remind_after": "10m"}, "remind_after='10m' must be a positive"),
        ({"escalate_after": 60, "escalate_to": "carol"}, "must be a non-empty list of names"),
        ({"escalate_after": 60, "escalate_to": []}, "must be a non-empty list of names"),
        (
            {"expires_after": timedelta(minutes=30), "remind_after": timedelta(hours=1)},
            "is not before the deadline",
        ),
        (
            {"expires_after": 600, "escalate_after": 600, "escalate_to": ["carol"]},
            "escalate_after=600 is not before the deadline (expires_after=600)",
        ),
    ],
)
def test_a_reminder_or_escalation_that_cannot_happen_is_refused_naming_it(
    options: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match="for tool 'wire_money'") as refused:
        _build(**options)
    assert problem in str(refused.value)


def test_a_reminder_and_an_escalation_before_the_deadline_are_accepted() -> None:
    middleware = _build(
        expires_after=timedelta(hours=1),
        remind_after=timedelta(minutes=10),
        escalate_after=1800,
        escalate_to=["role:lead", "carol"],
    )
    assert middleware.interrupt_on["wire_money"]["escalate_to"] == ["role:lead", "carol"]


def test_a_tool_rule_hands_its_reminder_and_escalation_to_the_gate() -> None:
    rule = ToolRule(
        expires_after=timedelta(hours=1),
        remind_after=timedelta(minutes=10),
        escalate_after=timedelta(minutes=30),
        escalate_to={"carol", "role:lead"},
    )
    tools = make_recording_tools(ToolLog())
    config = interrupt_on(Policy(rules={"send_email": rule}), tools)["send_email"]
    assert isinstance(config, dict)
    assert (config["remind_after"], config["escalate_after"], config["escalate_to"]) == (
        timedelta(minutes=10),
        timedelta(minutes=30),
        ["carol", "role:lead"],
    )
    ApprovalMiddleware(interrupt_on(Policy(rules={"send_email": rule}), tools))  # valid
