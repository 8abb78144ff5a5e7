"""Loading user tools and policy from `module:attribute` settings, without editing this package.

`HITL_TOOLS=my_pkg.tools:TOOLS` names a list of tools (or a function returning one);
`HITL_POLICY=my_pkg.policy:POLICY` names a `Policy` (or a function returning one).
"""

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool

from hitl.graph.demo_tools import make_demo_tools
from hitl.graph.policy import Policy, default_policy

DEFAULT_OUTBOX = "checkpoints/outbox.jsonl"


class PluginError(ValueError):
    """A `module:attribute` setting that cannot be loaded or has the wrong type."""


def load_object(spec: str, setting: str) -> Any:
    """Import `module:attribute`; call it if it is a function of no arguments."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise PluginError(f"{setting}={spec!r} must look like package.module:attribute")
    try:
        obj = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        raise PluginError(f"{setting}={spec!r} cannot be loaded: {e}") from e
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
