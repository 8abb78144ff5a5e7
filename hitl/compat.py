"""Every private name of LangGraph we rely on, in one place.

LangGraph keeps these private, so any release may move them. Each one is imported here and
nowhere else; `tests/unit/test_compat.py` checks each against the installed LangGraph and says
which one broke, so an upgrade fails loudly at one line instead of deep inside a run.
"""

from langgraph._internal._constants import CONFIG_KEY_CHECKPOINTER
from langgraph._internal._typing import MISSING
from langgraph.channels.binop import _get_overwrite as get_overwrite
from langgraph.checkpoint.serde import _msgpack as _lg_msgpack
from langgraph.checkpoint.serde import jsonplus as _jsonplus
from langgraph.checkpoint.serde.types import _DeltaSnapshot as DeltaSnapshot

SAFE_MSGPACK_TYPES = _lg_msgpack.SAFE_MSGPACK_TYPES
"""(module, name) pairs LangGraph's own serializer rebuilds without asking."""
SAFE_MSGPACK_METHODS = _lg_msgpack.SAFE_MSGPACK_METHODS
"""(module, name, method) triples LangGraph's serializer calls without asking."""
create_msgpack_ext_hook = _jsonplus._create_msgpack_ext_hook
# `DeltaSnapshot(value)`: a channel's whole value, as a `DeltaChannel` checkpoints it
send_from_args = _jsonplus._send_from_args
msgpack_option = _jsonplus._option
msgpack_default = _jsonplus._msgpack_default

# LangGraph's reserved channel names: stable strings it keeps private
INTERRUPT = "__interrupt__"
ERROR = "__error__"
TASKS = "__pregel_tasks"
START = "__start__"

__all__ = [
    "CONFIG_KEY_CHECKPOINTER",
    "ERROR",
    "INTERRUPT",
    "MISSING",
    "SAFE_MSGPACK_METHODS",
    "SAFE_MSGPACK_TYPES",
    "START",
    "TASKS",
    "DeltaSnapshot",
    "create_msgpack_ext_hook",
    "get_overwrite",
    "msgpack_default",
    "msgpack_option",
    "send_from_args",
]
