"""Tools and policies the services under test load by name (`HITL_TOOLS`, `HITL_POLICY`), as a
user's own would be loaded: `plugin_spec(name)` is the setting that names one."""

import json
import os
import time
from datetime import timedelta
from pathlib import Path

from langchain_core.tools import BaseTool, tool
from langgraph.prebuilt import ToolRuntime

from hitl.graph.demo_tools import count_emails
from hitl.graph.policy import Policy, ToolRule

TOOL_SECONDS = 0.3
"""How long each of `slow_tools` takes (`send_email`: after its side effect), so that runs
queue up."""


def plugin_spec(name: str) -> str:
    """The `module:attribute` setting that loads `name` from this module."""
    return f"{__name__}:{name}"


EXPIRING = Policy(rules={"send_email": ToolRule(expires_after=timedelta(minutes=1))})
"""`send_email` expires a minute after it is asked (the racing deciders and sweepers)."""
ADMINS_ONLY = Policy(rules={"send_email": ToolRule(approvers=["role:admin"])})
"""Only a token with the admin role may approve or edit an email."""
QUICK_DEADLINE = Policy(rules={"send_email": ToolRule(expires_after=timedelta(seconds=1))})
"""`send_email` expires a second after it is asked (the service's periodic sweep)."""


def gate(outbox: Path) -> Path:
    """While this file exists, a gated test tool waits inside its call (so a kill lands there)."""
    return outbox.with_suffix(".gate")


def held(outbox: Path) -> Path:
    """A gated test tool writes this file once it is waiting at the gate."""
    return outbox.with_suffix(".held")


def slow_tools() -> list[BaseTool]:
    """Loaded by the service through HITL_TOOLS: `send_email`, whose side effect (its call ID
    appended to HITL_OUTBOX, synced) comes before a slow return, like an email sent before the
    mail server answers; and `count_emails` (never asked about), slow too.

    While the gate file exists, a tool past its time does not return (and says so in the held
    file): the test closes the gate to be sure its `kill -9` lands mid-tool, whatever the timing.
    """
    outbox = Path(os.environ["HITL_OUTBOX"])

    def finish_slowly() -> None:
        deadline = time.monotonic() + TOOL_SECONDS
        while time.monotonic() < deadline or gate(outbox).exists():
            if time.monotonic() >= deadline:
                held(outbox).touch()
            time.sleep(0.01)

    @tool
    def send_email(message: str, recipient: str, runtime: ToolRuntime) -> str:
        """Send an email.

        Args:
            message: The body of the email.
            recipient: The address to send it to.
        """
        with outbox.open("a", encoding="utf-8") as f:
            f.write(f"{runtime.tool_call_id}\n")
            f.flush()
            os.fsync(f.fileno())
        finish_slowly()
        return f"Email sent to {recipient}."

    @tool
    def count_emails(last_n_days: int) -> str:
        """Count the emails received in the last `last_n_days` days.

        Args:
            last_n_days: How many days back to look, counting today.
        """
        finish_slowly()
        return f"You received {last_n_days * 7} emails in the last {last_n_days} days."

    return [count_emails, send_email]


def gated_tools() -> list[BaseTool]:
    """Loaded by the services through HITL_TOOLS: the demo's `count_emails`, and a
    `send_email` that delivers into HITL_OUTBOX (one JSON line with its call ID and process,
    synced) and then, while the gate file exists, does not return: it writes the held file
    (its call ID and process) and waits, so the test's `kill -9` lands mid-tool.
    """
    outbox = Path(os.environ["HITL_OUTBOX"])

    @tool
    def send_email(message: str, recipient: str, runtime: ToolRuntime) -> str:
        """Send an email.

        Args:
            message: The body of the email.
            recipient: The address to send it to.
        """
        me = {"tool_call_id": runtime.tool_call_id, "pid": os.getpid()}
        with outbox.open("a", encoding="utf-8") as f:
            f.write(json.dumps(me) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if gate(outbox).exists():
            staged = held(outbox).with_suffix(".staged")
            staged.write_text(json.dumps(me), encoding="utf-8")
            staged.replace(held(outbox))  # whole, or not at all
            while gate(outbox).exists():
                time.sleep(0.01)
        return f"Email sent to {recipient}."

    return [count_emails, send_email]


def exits(code: int) -> None:
    raise SystemExit(code)


@tool
def shutdown_switch(last_n_days: int) -> str:
    """Count the emails (a tool with a bug: it exits the process).

    Args:
        last_n_days: How many days back.
    """
    exits(3)
    return "unreachable"


def broken_tools() -> list[BaseTool]:
    """`count_emails` with a bug: it exits the process."""
    shutdown_switch.name = "count_emails"
    return [shutdown_switch]


NAMED_APPROVERS = Policy(
    rules={
        "send_email": ToolRule(
            approvers=["alice", "bob", "role:admin"],
            allow_self_approval=False,
            expires_after=timedelta(hours=1),
        )
    }
)
"""Alice or Bob by name, or an admin, approves an email, but not the one who asked for it;
it expires after an hour (the decision links)."""
