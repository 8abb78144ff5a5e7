"""The checkpoint serializer checks every object a row names, wherever msgpack nests it."""

import ormsgpack
import pytest
from langchain_core.messages import HumanMessage

from hitl.checkpoints.errors import UntrustedCheckpointError
from hitl.checkpoints.savers import make_strict_serializer
from hitl.compat import DeltaSnapshot

EXT_CONSTRUCTOR_POS_ARGS = 1  # LangGraph's msgpack tag for "import module.name, call it with args"
EXT_DELTA_SNAPSHOT = 7  # LangGraph's msgpack tag for "a channel's value, kept whole"


def test_a_delta_snapshot_of_trusted_values_reads_back_as_one() -> None:
    serde = make_strict_serializer()
    snapshot = DeltaSnapshot([HumanMessage("hi", id="m1")])
    assert serde.loads_typed(serde.dumps_typed(snapshot)) == snapshot


def test_an_object_a_delta_snapshot_names_is_refused_unless_trusted() -> None:
    call = ormsgpack.Ext(EXT_CONSTRUCTOR_POS_ARGS, ormsgpack.packb(("os", "system", ["true"])))
    forged = ormsgpack.packb({"messages": ormsgpack.Ext(EXT_DELTA_SNAPSHOT, ormsgpack.packb(call))})
    with pytest.raises(UntrustedCheckpointError, match=r"os\.system"):
        make_strict_serializer().loads_typed(("msgpack", forged))
