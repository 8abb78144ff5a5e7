"""Checkpoint values are stored compressed when that pays, and a forged compressed value is
refused before anything is decoded."""

import zlib

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from hitl.checkpoints.errors import UntrustedCheckpointError
from hitl.checkpoints.savers import COMPRESSED, make_strict_serializer


def test_a_large_value_is_stored_compressed_and_reads_back_equal() -> None:
    serde = make_strict_serializer()
    value = {"versions": {f"channel-{i}": f"{i:032}.abc123" for i in range(40)}}
    type_, blob = serde.dumps_typed(value)
    assert type_ == COMPRESSED and len(blob) < len(zlib.decompress(blob)) / 2
    assert serde.loads_typed((type_, blob)) == value


def test_a_short_message_is_stored_as_plain_msgpack() -> None:
    serde = make_strict_serializer()
    message = HumanMessage("hi", id="1")
    type_, blob = serde.dumps_typed(message)
    assert type_ == "msgpack" and serde.loads_typed((type_, blob)) == message


def test_uncompressed_rows_written_before_compression_still_read() -> None:
    serde = make_strict_serializer()
    message = AIMessage("x" * 2000, id="2")
    _, compressed = serde.dumps_typed(message)
    plain = zlib.decompress(compressed)
    assert serde.loads_typed(("msgpack", plain)) == message


@pytest.mark.parametrize(
    "payload",
    [
        b"not zlib at all",
        zlib.compress(b"\0" * 10_000)[:-4],
        zlib.compress(b"\0" * (1 << 20)),
        zlib.compress(b"\x90") + b"trailing",
    ],
    ids=["garbage", "cut short", "inflates too far", "trailing data"],
)
def test_a_forged_compressed_value_is_refused(payload: bytes) -> None:
    with pytest.raises(UntrustedCheckpointError):
        make_strict_serializer(max_inflated=1 << 16).loads_typed((COMPRESSED, payload))


def test_a_lazy_conversation_inside_a_write_is_stored_as_its_plain_list() -> None:
    from hitl.graph.message_log import MessageHistory

    serde = make_strict_serializer()
    messages = [HumanMessage("hi", id="1"), AIMessage("yo", id="2")]
    stored = serde.loads_typed(
        serde.dumps_typed({"messages": MessageHistory.from_messages(messages)})
    )
    assert stored == {"messages": messages}
