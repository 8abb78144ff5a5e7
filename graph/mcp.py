"""The gate's settings for tools loaded from MCP servers (`langchain-mcp-adapters`), from the
annotations each server gives its tools.

A tool the server marks `readOnlyHint: true` runs without review; every other tool is asked
about: `destructiveHint` and `openWorldHint` default to true in the MCP specification, and a
tool with no annotations is treated as they say (hints are the server's word, not a guarantee,
so the safe reading wins). `overrides` set any tool's entry by name.
"""

from collections.abc import Iterable, Mapping

from langchain_core.tools import BaseTool

from hitl.graph.decisions import ALL_DECISIONS, DecisionType
from hitl.graph.middleware import InterruptOnConfig


def mcp_interrupt_on(
    tools: Iterable[BaseTool],
    *,
    overrides: Mapping[str, bool | InterruptOnConfig] | None = None,
    allowed_decisions: Iterable[DecisionType] = ALL_DECISIONS,
) -> dict[str, bool | InterruptOnConfig]:
    """`interrupt_on` for `ApprovalMiddleware` / `ApprovalToolNode`: each tool's verdict from
    its annotations, unless `overrides` names it."""
    overrides = overrides or {}
    allowed = list(allowed_decisions)
    entries: dict[str, bool | InterruptOnConfig] = {}
    for tool in tools:
        if tool.name in overrides:
            entries[tool.name] = overrides[tool.name]
        elif read_only(tool):
            entries[tool.name] = False
        else:
            entries[tool.name] = InterruptOnConfig(
                allowed_decisions=allowed, description=_why(tool)
            )
    return entries


def read_only(tool: BaseTool) -> bool:
    """Whether the server says the tool changes nothing (`readOnlyHint: true`)."""
    hints = tool.metadata or {}
    return hints.get("readOnlyHint") is True


def _why(tool: BaseTool) -> str:
    hints = tool.metadata or {}
    reasons = []
    if hints.get("destructiveHint") is not False:
        reasons.append("may change or delete data")
    if hints.get("openWorldHint") is not False:
        reasons.append("may reach outside systems")
    said = " and ".join(reasons) or "is not marked read-only"
    title = hints.get("title") or tool.name
    return f"The MCP tool {title!r} {said}, by its server's annotations"
