"""Loading user tools and policy from `module:attribute` settings, without editing this package.

`HITL_TOOLS=my_pkg.tools:TOOLS` names a list of tools (or a function returning one), looked
up from the current folder first;
`HITL_POLICY=my_pkg.policy:POLICY` names a `Policy` (or a function returning one);
`HITL_ON_POLICY_CHANGE=reask|keep` says what becomes of a call asked under another version of
its tool's rule (see `ApprovalMiddleware(on_policy_change=...)`).
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from langchain_core.tools import BaseTool

from hitl.graph import loading
from hitl.graph.demo_tools import make_demo_tools
from hitl.graph.errors import PluginError
from hitl.graph.gate import OnPolicyChange
from hitl.graph.policy import Policy, default_policy

DEFAULT_OUTBOX = "checkpoints/outbox.jsonl"


def load_object(spec: str, setting: str) -> Any:
    """Import `module:attribute` (or `./file.py:attribute`, from the current folder, as
    `langgraph.json` resolves it); call it if it is a function of no arguments."""
    obj = loading.load_object(spec, setting)
    return obj() if callable(obj) and not isinstance(obj, (BaseTool, type)) else obj


def load_tools(environ: Mapping[str, str]) -> list[BaseTool]:
    """`HITL_TOOLS`, or the demo tools writing to `HITL_OUTBOX`."""
    spec = environ.get("HITL_TOOLS")
    if not spec:
        return make_demo_tools(Path(environ.get("HITL_OUTBOX") or DEFAULT_OUTBOX))
    tools = load_object(spec, "HITL_TOOLS")
    if not isinstance(tools, list | tuple) or not all(isinstance(t, BaseTool) for t in tools):
        raise PluginError(f"HITL_TOOLS={spec!r} must name a list of LangChain tools")
    return list(tools)


def load_policy(environ: Mapping[str, str]) -> Policy:
    """`HITL_POLICY`, or the demo policy."""
    spec = environ.get("HITL_POLICY")
    if not spec:
        return default_policy()
    policy = load_object(spec, "HITL_POLICY")
    if not isinstance(policy, Policy):
        raise PluginError(f"HITL_POLICY={spec!r} must name a hitl.graph.policy.Policy")
    return policy


def load_on_policy_change(environ: Mapping[str, str]) -> OnPolicyChange:
    """`HITL_ON_POLICY_CHANGE`, or `reask` (the safe default)."""
    value = environ.get("HITL_ON_POLICY_CHANGE") or "reask"
    choices = get_args(OnPolicyChange)
    if value not in choices:
        raise PluginError(
            f"HITL_ON_POLICY_CHANGE={value!r} must be one of {', '.join(choices)}: reask asks a "
            "call again under a changed rule, keep applies its decision under the rule it was "
            "asked under"
        )
    return value  # type: ignore[return-value]
