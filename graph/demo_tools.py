"""The demo tools: one harmless, one with a side effect that must be approved.

`send_email` does not send anything: it appends the email to an outbox file, synced to disk,
so the demo and the tests can count real side effects across processes.
"""

import json
import os
import time
from pathlib import Path

from langchain_core.tools import BaseTool, tool
from langgraph.prebuilt import ToolRuntime


@tool
def count_emails(last_n_days: int) -> str:
    """Count the emails received in the last `last_n_days` days.

    Args:
        last_n_days: How many days back to look, counting today.
    """
    if last_n_days < 0:
        raise ValueError("last_n_days must be zero or more")
    return f"You received {last_n_days * 7} emails in the last {last_n_days} days."


def make_send_email(outbox: Path) -> BaseTool:
    """A `send_email` tool that delivers into `outbox` (one JSON line per email)."""

    @tool
    def send_email(message: str, recipient: str, runtime: ToolRuntime) -> str:
        """Send an email.

        Args:
            message: The body of the email.
            recipient: The address to send it to.
        """
        outbox.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "tool_call_id": runtime.tool_call_id,  # the idempotency key of this call
            "recipient": recipient,
            "message": message,
            "sent_at": time.time(),
        }
        with outbox.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return f"Email sent to {recipient}."

    return send_email


def make_demo_tools(outbox: Path) -> list[BaseTool]:
    """The tools the default graph offers the model."""
    return [count_emails, make_send_email(outbox)]
