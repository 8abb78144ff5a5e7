"""The approval graph: `agent` proposes calls, `approval` asks a person, `tools` runs them."""

from hitl.graph.builder import build_graph

__all__ = ["build_graph"]
