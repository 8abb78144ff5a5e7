"""The one way a test builds a hitl's environment: its settings as `HITL_*` variables, for the
service in this process, the `hitl` command, `hitl serve` and `langgraph dev` alike."""

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from hitl.checkpoints.urls import DatabaseName

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout: on `PYTHONPATH`, a subprocess can load `tests.support.plugins`."""
HITL = Path(sys.executable).parent / "hitl"
"""The console script of the virtualenv that runs the tests."""


def hitl_environment(
    db: DatabaseName | None = None,
    outbox: Path | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A hitl's settings: its database, its outbox, the offline model, and `extra`
    (`HITL_POLICY`, `HITL_TOOLS`, `HITL_ACTOR`, ... or `PYTHONPATH` for a plugin)."""
    env = {"HITL_MODEL": "offline"}
    if db is not None:
        env["HITL_DB"] = str(db)
    if outbox is not None:
        env["HITL_OUTBOX"] = str(outbox)
    env.update(extra or {})
    return env


def process_environment(hitl: Mapping[str, str]) -> dict[str, str]:
    """The environment of a subprocess with these settings: this process's own without any
    `HITL_*` the shell set (a developer's `HITL_POLICY` must not change a test), nothing sent to
    LangSmith, output unbuffered (a log is complete when a test fails), then `hitl`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HITL_")}
    env.update(
        LANGSMITH_TRACING="false",  # the tests must not talk to the network
        LANGCHAIN_TRACING_V2="false",
        PYTHONUNBUFFERED="1",
    )
    env.update(hitl)
    return env


def importable(*folders: Path) -> dict[str, str]:
    """`PYTHONPATH` with `folders` first: where a subprocess finds a `HITL_TOOLS` or
    `HITL_POLICY` module."""
    path = os.pathsep.join(filter(None, [*map(str, folders), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path}
