"""A gate's policy version: the same in every process for the same rules, changed by a change to
a tool's rule (its predicate's code or closure included), and a tool's own rule version changed
by nothing but its own rule."""

import json
import os
import subprocess
import sys

import pytest

from hitl.graph.builder import interrupt_on
from hitl.graph.middleware import ApprovalMiddleware
from hitl.graph.policy import Policy, ToolRule, recipient_outside
from tests.support.environment import REPO_ROOT
from tests.support.fakes import ToolLog, make_recording_tools

TOOLS = make_recording_tools(ToolLog())
SET_APPROVERS = Policy(
    rules={
        "send_email": ToolRule(approvers={"carol", "dave", "erin", "role:admin"}),
        "count_emails": ToolRule(ask=recipient_outside("example.com")),
    }
)
"""Approvers in a set (its order changes with the hash seed) and a predicate with a closure."""


def _gate(policy: Policy) -> ApprovalMiddleware:
    return ApprovalMiddleware(interrupt_on(policy, TOOLS))


def _versions(policy: Policy) -> dict[str, str]:
    gate = _gate(policy)
    return {
        "policy": gate.policy_version,
        **{
            name: str(gate.rule_check(name).why["rule_version"])
            for name in ("send_email", "count_emails")
        },
    }


def test_the_same_policy_has_the_same_versions_in_processes_with_other_hash_seeds() -> None:
    code = (
        "import json; from tests.unit.test_policy_version import SET_APPROVERS, _versions; "
        "print(json.dumps(_versions(SET_APPROVERS)))"
    )
    seen = []
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        seen.append(json.loads(result.stdout))
    assert seen == [_versions(SET_APPROVERS)] * 2


def test_a_predicates_new_threshold_changes_its_tools_rule_version() -> None:
    low = Policy(rules={"count_emails": ToolRule(ask=lambda a: a["last_n_days"] > 7)})
    high = Policy(rules={"count_emails": ToolRule(ask=lambda a: a["last_n_days"] > 30)})

    assert _versions(low)["count_emails"] != _versions(high)["count_emails"]
    assert _versions(low)["send_email"] == _versions(high)["send_email"]


def test_a_predicate_made_for_another_domain_changes_the_version_and_the_same_one_does_not() -> (
    None
):
    def asking(domain: str) -> Policy:
        return Policy(rules={"send_email": ToolRule(ask=recipient_outside(domain))})

    assert _versions(asking("a.org")) == _versions(asking("a.org"))
    assert _versions(asking("a.org"))["send_email"] != _versions(asking("b.org"))["send_email"]


def test_a_change_to_another_tools_rule_changes_the_policy_version_only() -> None:
    before = Policy(rules={"count_emails": ToolRule(ask="never")})
    after = Policy(rules={"count_emails": ToolRule(ask="always")})

    assert _versions(before)["policy"] != _versions(after)["policy"]
    assert _versions(before)["send_email"] == _versions(after)["send_email"]
    assert _versions(before)["count_emails"] != _versions(after)["count_emails"]


def test_the_rule_that_applies_is_named_for_each_kind_of_entry() -> None:
    gate = ApprovalMiddleware({"send_email": True, "count_emails": False}, ask_unlisted=True)
    relaxed = ApprovalMiddleware({"send_email": True})

    assert gate.rule_check("send_email").why["rule"] == "interrupt_on"
    assert gate.rule_check("count_emails").why["rule"] == "never"
    assert gate.rule_check("other").why["rule"] == "ask_unlisted"
    assert relaxed.rule_check("other").why["rule"] == "unlisted"


def test_an_unknown_on_policy_change_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="'reask' or 'keep'"):
        ApprovalMiddleware({}, on_policy_change="ask")  # type: ignore[arg-type]
