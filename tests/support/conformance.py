"""LangGraph's checkpointer conformance suite, run on a saver of ours."""

import asyncio
from typing import Any

from langgraph.checkpoint.conformance import validate


def assert_conformant(saver_factory: Any) -> None:
    """LangGraph's checkpointer conformance suite passes on the savers `saver_factory` makes
    (a `checkpointer_test` async generator), every capability ours claim included."""
    report = asyncio.run(validate(saver_factory))
    failures = {
        name: [str(f) for f in result.failures]
        for name, result in report.results.items()
        if result.passed is False
    }
    assert failures == {}
    base = ("put", "put_writes", "get_tuple", "list", "delete_thread")
    assert all(report.results[name].passed for name in base)
    assert report.results["copy_thread"].passed and report.results["delete_for_runs"].passed
    assert report.results["prune"].passed
