"""The demo agent (`build_graph`): `create_agent` with `ApprovalMiddleware`; its `model` node
proposes calls, the gate asks a person, `tools` runs what was approved."""

from hitl.graph.builder import build_graph

__all__ = ["build_graph"]
