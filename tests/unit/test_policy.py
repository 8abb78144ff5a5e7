"""Which calls need a person: per-tool rules."""

from hitl.graph.policy import Policy, ToolRule, default_policy, recipient_outside


def test_the_demo_policy_asks_for_emails_and_not_for_counting() -> None:
    policy = default_policy()
    assert policy.rule_for("send_email").needs_review({"recipient": "a@example.com"})
    assert not policy.rule_for("count_emails").needs_review({"last_n_days": 3})


def test_a_tool_without_a_rule_is_asked_about() -> None:
    assert Policy().rule_for("rm_rf").needs_review({})


def test_a_predicate_asks_only_for_recipients_outside_the_domain() -> None:
    rule = ToolRule(ask=recipient_outside("example.com"))
    assert not rule.needs_review({"recipient": "Sally@Example.com"})
    assert rule.needs_review({"recipient": "mallory@evil.org"})
    assert rule.needs_review({"recipient": "x@example.com.evil.org"})


def test_the_description_names_the_tool_and_its_args() -> None:
    text = ToolRule(description="Careful").describe(
        {"name": "send_email", "args": {"recipient": "a@b.c"}, "id": "1", "type": "tool_call"}
    )
    assert text.startswith("Careful") and "send_email" in text and "a@b.c" in text
