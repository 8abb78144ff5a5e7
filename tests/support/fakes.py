"""Fakes with scripted behaviour: tools that record every call they really run, a clock that
moves when told."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langchain_core.tools import BaseTool, tool
from langgraph.prebuilt import ToolRuntime


@dataclass
class ToolLog:
    """Every real execution of a recording tool: (tool, tool_call_id, args)."""

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    before_run: Callable[[str, str], None] | None = None
    """Called inside the tool, before it records, with (tool, tool_call_id)."""

    def ids(self, name: str | None = None) -> list[str]:
        return [cid for n, cid, _ in self.calls if name is None or n == name]


def make_recording_tools(log: ToolLog) -> list[BaseTool]:
    """`count_emails` and `send_email` with the demo signatures, recording into `log`."""

    def record(name: str, runtime: ToolRuntime, args: dict[str, Any]) -> None:
        call_id = str(runtime.tool_call_id)
        if log.before_run:
            log.before_run(name, call_id)
        log.calls.append((name, call_id, args))

    @tool
    def count_emails(last_n_days: int, runtime: ToolRuntime) -> str:
        """Count the emails received in the last `last_n_days` days."""
        record("count_emails", runtime, {"last_n_days": last_n_days})
        return f"{last_n_days * 2} emails"

    @tool
    def send_email(message: str, recipient: str, runtime: ToolRuntime) -> str:
        """Send an email."""
        record("send_email", runtime, {"message": message, "recipient": recipient})
        return f"sent to {recipient}"

    return [count_emails, send_email]


@dataclass
class FakeClock:
    """UNIX seconds that move only when a test says so (`now` may also be set)."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
