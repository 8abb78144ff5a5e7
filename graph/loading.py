"""The user's own graph, named the way `langgraph.json` names graphs, made ready to serve.

`HITL_GRAPH=./path/file.py:attr` (a file, relative to the current folder) or
`package.module:attr` (importable from the current folder, as `langgraph.json` resolves it)
names a compiled graph without a checkpointer, a `StateGraph`, or a function of no arguments
returning either. The service supplies the checkpointer and binds its ledger to the graph's
gates (`ApprovalMiddleware`, `ApprovalToolNode`).
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
        if inspect.iscoroutinefunction(obj) or len(inspect.signature(obj).parameters) > 0:
            raise PluginError(
                f"HITL_GRAPH={spec!r} names a function that takes arguments or is async; "
                "name a graph, or a plain function of no arguments that returns one"
            )
        obj = _built(spec, "calling it", obj)
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
    """Refuse a graph with no approval gate: serving it would run every tool unasked, behind
    an approval service that looks as if it guarded them (`allow_ungated` serves it, with a
    warning, for a graph whose gate is of another kind)."""
    if has_gate(graph):
        return
    message = (
        f"HITL_GRAPH={spec!r} has no approval gate, so its tools would run without anyone "
        "being asked: add ApprovalMiddleware to create_agent's middleware, or use "
        "ApprovalToolNode in place of ToolNode (see docs/your-own-agent.md)"
    )
    if not allow_ungated:
        raise PluginError(message + "; HITL_ALLOW_UNGATED=1 serves it anyway")
    warnings.warn(message, stacklevel=2)


def has_gate(graph: CompiledStateGraph[Any]) -> bool:
    """Whether any approval gate of ours is in the graph (or a subgraph node of it)."""
    from hitl.graph.middleware import ApprovalMiddleware
    from hitl.graph.tool_node import ApprovalToolNode

    for node in graph.nodes.values():
        bound = node.bound
        owner = getattr(getattr(bound, "func", None), "__self__", None)  # a middleware's hook
        if isinstance(owner, ApprovalMiddleware) or isinstance(bound, ApprovalToolNode):
            return True
        if isinstance(bound, CompiledStateGraph) and has_gate(bound):
            return True
    return False


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
