"""The user's project the gate tests serve (`tests/user_project/`): where its graphs are, and
the settings that name them with a script for the model."""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.environment import REPO_ROOT

USER_PROJECT = REPO_ROOT / "tests" / "user_project"
AGENTS = USER_PROJECT / "agents.py"


def graph_spec(name: str) -> str:
    """`HITL_GRAPH` for one of the project's graphs (`agent`, `handmade`, ...)."""
    return f"{AGENTS}:{name}"


def write_script(folder: Path, replies: list[Any]) -> Path:
    """A `HITL_MODEL=script:` file of these replies."""
    path = folder / "script.json"
    path.write_text(json.dumps(replies), encoding="utf-8")
    return path


def one_append(line: str = "hello") -> list[Any]:
    """A turn that appends one line, then a final answer."""
    return [{"tool_calls": [{"name": "append_line", "args": {"line": line}}]}, "Done."]


def two_appends(first: str = "one", second: str = "two") -> list[Any]:
    """A turn of two parallel appends, then a final answer."""
    calls = [{"name": "append_line", "args": {"line": line}} for line in (first, second)]
    return [{"tool_calls": calls}, "Done."]


def user_settings(
    folder: Path, graph: str, replies: list[Any], *, mode: str = "batched"
) -> dict[str, str]:
    """The `HITL_*` settings (and the agent's own) that serve `graph` with a script."""
    return {
        "HITL_GRAPH": graph_spec(graph),
        "HITL_MODEL": f"script:{write_script(folder, replies)}",
        "SIDE_FILE": str(folder / "side.txt"),
        "GATE_MODE": mode,
    }


def side_lines(settings: Mapping[str, str]) -> list[str]:
    """The lines the agent's tool appended: one per time it really ran."""
    path = Path(settings["SIDE_FILE"])
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []
