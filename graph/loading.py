"""The user's own graph, named the way `langgraph.json` names graphs, made ready to serve.

`HITL_GRAPH=./path/file.py:attr` (a file, relative to the current folder) or
`package.module:attr` (importable from the current folder, as `langgraph.json` resolves it)
names a compiled graph without a checkpointer, a `StateGraph`, or a function (plain or async)
of no arguments returning either. The service supplies the checkpointer and binds its ledger to
the graph's gates (`ApprovalMiddleware`, `ApprovalToolNode`).
"""

import importlib
import importlib.util
import inspect
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode

from hitl.graph.blocking import run_to_completion
from hitl.graph.errors import PluginError
from hitl.graph.gate import bind_ledger
from hitl.graph.ledger import ApprovalLedger


def load_object(spec: str, setting: str) -> Any:
    """`./file.py:attr` or `package.module:attr`, imported from the current folder."""
    target, sep, attribute = spec.rpartition(":")
    if not sep or not target or not attribute:
        raise PluginError(
            f"{setting}={spec!r} must look like package.module:attribute "
            "or ./path/file.py:attribute"
        )
    try:
        module = _import(target)
        return getattr(module, attribute)
    except PluginError as e:
        raise PluginError(f"{setting}={spec!r}: {e}") from None
    except ModuleNotFoundError as e:
        raise PluginError(
            f"{setting}={spec!r} cannot be loaded: No module named {e.name!r} "
            f"(looked in {Path.cwd()} and the installed packages)"
        ) from e
    except AttributeError as e:
        raise PluginError(f"{setting}={spec!r}: {e}") from e
    except Exception as e:  # the user's module failed while importing: say where
        raise PluginError(f"{setting}={spec!r} cannot be loaded: {type(e).__name__}: {e}") from e


def _import(target: str) -> Any:
    if target.endswith(".py") or "/" in target or target.startswith("."):
        path = Path(target).resolve()
        if not path.is_file():
            raise PluginError(f"no such file {target!r} (paths are relative to {Path.cwd()})")
        name = f"hitl_user_{path.stem}_{abs(hash(str(path))):x}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise PluginError(f"{target!r} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        if str(path.parent) not in sys.path:  # its own imports, as when run as a script
            sys.path.insert(0, str(path.parent))
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    cwd = str(Path.cwd())
    if cwd not in sys.path:  # as `langgraph.json` resolves modules: from the project's folder
        sys.path.insert(0, cwd)
    return importlib.import_module(target)


def load_graph(spec: str) -> CompiledStateGraph[Any]:
    """The graph `spec` names, compiled, without a checkpointer; a clear `PluginError` for
    anything else."""
    obj = load_object(spec, "HITL_GRAPH")
    if callable(obj) and not isinstance(obj, StateGraph | CompiledStateGraph):
        if len(inspect.signature(obj).parameters) > 0:
            raise PluginError(
                f"HITL_GRAPH={spec!r} names a function that takes arguments; name a graph, "
                "or a function (plain or async) of no arguments that returns one"
            )
        factory = obj
        if inspect.iscoroutinefunction(factory):  # e.g. one that loads MCP tools first
            obj = _built(spec, "calling it", lambda: run_to_completion(factory))
        else:
            obj = _built(spec, "calling it", factory)
    if isinstance(obj, StateGraph):
        obj = _built(spec, "compiling it", obj.compile)
    if not isinstance(obj, CompiledStateGraph):
        raise PluginError(
            f"HITL_GRAPH={spec!r} names a {type(obj).__name__}; name a StateGraph, a compiled "
            "graph (create_agent's result, StateGraph.compile()) or a function returning one"
        )
    if obj.checkpointer not in (None, False):
        raise PluginError(
            f"HITL_GRAPH={spec!r} is compiled with its own checkpointer; compile it without one "
            "(hitl supplies the checkpointer, as langgraph dev does)"
        )
    if obj.interrupt_before_nodes or obj.interrupt_after_nodes:
        raise PluginError(
            f"HITL_GRAPH={spec!r} is compiled with static breakpoints (interrupt_before/after): "
            "they pause the thread with nothing for a person to decide, so it would wait "
            "forever; compile it without them (the approval gate does the pausing)"
        )
    if "messages" not in obj.channels:
        raise PluginError(
            f"HITL_GRAPH={spec!r}: its state has no 'messages' key; hitl serves graphs whose "
            "state holds the conversation as `messages` (MessagesState, create_agent's state)"
        )
    return obj


def _built(spec: str, doing: str, make: Callable[[], Any]) -> Any:
    try:
        return make()
    except Exception as e:  # the user's code: say where it failed, not a traceback
        raise PluginError(
            f"HITL_GRAPH={spec!r} failed while {doing}: {type(e).__name__}: {e}"
        ) from e


def require_gate(graph: CompiledStateGraph[Any], spec: str, *, allow_ungated: bool) -> None:
    """Refuse a graph with tools no approval gate guards: serving it would run them unasked,
    behind an approval service that looks as if it guarded them (`allow_ungated` serves it,
    with a warning, for a graph whose gate is of another kind)."""
    ungated = ungated_tools(graph)
    if not ungated:
        return
    message = (
        f"HITL_GRAPH={spec!r} has no approval gate in front of {', '.join(ungated)}, so those "
        "tools would run without anyone being asked: add ApprovalMiddleware to create_agent's "
        "middleware, or use ApprovalToolNode in place of ToolNode (see docs/your-own-agent.md)"
    )
    if not allow_ungated:
        raise PluginError(message + "; HITL_ALLOW_UNGATED=1 serves it anyway")
    warnings.warn(message, stacklevel=2)


def ungated_tools(graph: CompiledStateGraph[Any]) -> list[str]:
    """What runs tools with no gate of ours: each `ToolNode` that is not an `ApprovalToolNode`,
    in a graph (or subgraph, `outer/inner`) without `ApprovalMiddleware`; and a graph with no
    tools node and no gate at all, whose tools (if any) we cannot see."""
    found = _ungated(graph, "")
    if found is None:
        return ["its tools (no tools node and no gate: the tools it calls cannot be seen)"]
    return found


def _ungated(graph: CompiledStateGraph[Any], prefix: str) -> list[str] | None:
    """The ungated tools nodes, or None when the graph has neither a tools node nor a gate."""
    from hitl.graph.middleware import ApprovalMiddleware
    from hitl.graph.tool_node import ApprovalToolNode

    owners = [
        getattr(getattr(n.bound, "func", None), "__self__", None) for n in graph.nodes.values()
    ]
    middleware = any(isinstance(o, ApprovalMiddleware) for o in owners)  # wraps its ToolNode
    seen_any = middleware
    ungated: list[str] = []
    for name, node in graph.nodes.items():
        if isinstance(node.bound, ApprovalToolNode):
            seen_any = True
        elif isinstance(node.bound, ToolNode):
            seen_any = True
            if not middleware:
                ungated.append(prefix + name)
        elif isinstance(node.bound, CompiledStateGraph):
            inner = _ungated(node.bound, f"{prefix}{name}/")
            if inner is not None:
                seen_any = True
                ungated += inner
    return ungated if seen_any else None


def serve(
    graph: CompiledStateGraph[Any],
    *,
    checkpointer: BaseCheckpointSaver[Any] | None,
    ledger: ApprovalLedger,
) -> CompiledStateGraph[Any]:
    """`graph` on the service's checkpointer, its gates recording to `ledger`."""
    served = graph.copy(update={"checkpointer": checkpointer}) if checkpointer else graph
    return bind_ledger(served, ledger)


def tools_of(graph: CompiledStateGraph[Any]) -> list[BaseTool]:
    """The tools of every `ToolNode` in the graph (what an edit's arguments must fit)."""
    found: dict[str, BaseTool] = {}
    for node in graph.nodes.values():
        if isinstance(node.bound, ToolNode):
            found.update(node.bound.tools_by_name)
        elif isinstance(node.bound, CompiledStateGraph):
            found.update({t.name: t for t in tools_of(node.bound)})
    return list(found.values())
