"""The offline model turns the demo requests into tool calls, deterministically."""

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from hitl.graph.offline_model import CAPABILITIES, OfflineChatModel, parse_requests


def test_counting_request_becomes_count_emails() -> None:
    calls = parse_requests("how many emails did I get in the last 5 days?")
    assert [(c["name"], c["args"]) for c in calls] == [("count_emails", {"last_n_days": 5})]


def test_send_request_becomes_send_email() -> None:
    calls = parse_requests("Send sally@example.com an email saying 'What's up'")
    assert [(c["name"], c["args"]) for c in calls] == [
        ("send_email", {"message": "What's up", "recipient": "sally@example.com"})
    ]


def test_several_requests_become_parallel_calls_in_prompt_order() -> None:
    calls = parse_requests(
        "count my emails of the last 3 days and send bob@example.com an email saying 'hi' "
        "and send carol@example.org an email saying 'yo'"
    )
    assert [c["name"] for c in calls] == ["count_emails", "send_email", "send_email"]
    assert [c["args"].get("recipient") for c in calls[1:]] == [
        "bob@example.com",
        "carol@example.org",
    ]
    assert len({c["id"] for c in calls}) == 3


def test_anything_else_gets_an_answer_that_explains_how_to_use_a_real_model() -> None:
    reply = OfflineChatModel().invoke([HumanMessage("write me a poem")])
    assert isinstance(reply, AIMessage) and reply.content == CAPABILITIES
    assert "HITL_MODEL" in CAPABILITIES


def test_after_tools_it_summarizes_results_and_acknowledges_rejections() -> None:
    reply = OfflineChatModel().invoke(
        [
            HumanMessage("x"),
            AIMessage("", tool_calls=[{"name": "send_email", "args": {}, "id": "c1"}]),
            ToolMessage(
                "A human reviewer rejected it. Reason: spam",
                tool_call_id="c1",
                name="send_email",
                status="error",
            ),
        ]
    )
    assert "rejected" in str(reply.content) and "spam" in str(reply.content)
