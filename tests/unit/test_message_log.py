"""The conversation channel: `add_messages` semantics, appends that read nothing, lazy reads
from the newest message back."""

from collections.abc import Sequence

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, RemoveMessage
from langgraph.types import Overwrite

from hitl.graph.message_log import MessageHistory, MessageLogChannel, Node


class FakeSaved:
    """A stored branch held in memory; counts the messages read."""

    def __init__(self, messages: Sequence[AnyMessage]) -> None:
        self.nodes: dict[str, Node] = {}
        parent = None
        for depth, m in enumerate(messages):
            node_id = f"n{depth}"
            self.nodes[node_id] = (node_id, parent, depth, m)
            parent = node_id
        self.tail = parent
        self.length = len(messages)
        self.read = 0
        self.lookups = 0

    def load(self, tail: str, limit: int) -> list[Node]:
        found: list[Node] = []
        node: str | None = tail
        while node is not None and len(found) < limit:
            found.append(self.nodes[node])
            node = self.nodes[node][1]
        self.read += len(found)
        return list(reversed(found))

    def depths_of(self, tail: str, message_ids: Sequence[str]) -> dict[str, int]:
        self.lookups += 1
        return {n[3].id: n[2] for n in self.nodes.values() if n[3].id in message_ids and n[3].id}


def conversation(n: int) -> list[AnyMessage]:
    return [
        HumanMessage(f"q{i}", id=f"h{i}") if i % 2 == 0 else AIMessage(f"a{i}", id=f"a{i}")
        for i in range(n)
    ]


def loaded(messages: list[AnyMessage]) -> tuple[MessageLogChannel, FakeSaved]:
    saved = FakeSaved(messages)
    return MessageLogChannel().from_checkpoint(saved), saved


def test_appending_to_a_long_conversation_reads_none_of_it() -> None:
    channel, saved = loaded(conversation(1000))
    channel.update([[AIMessage("new", id="x")], HumanMessage("more", id="y")])
    history = channel.get()
    assert len(history) == 1002 and saved.read == 0
    assert [n[3].id for n in history.unsaved()] == ["x", "y"]
    assert history.unsaved()[0][1] == saved.tail  # chained onto the stored branch


def test_the_newest_messages_are_read_without_the_rest() -> None:
    channel, saved = loaded(conversation(1000))
    history = channel.get()
    assert history[-1].id == "a999"
    newest = []
    for m in reversed(history):
        newest.append(m.id)
        if len(newest) == 3:
            break
    assert newest == ["a999", "h998", "a997"] and saved.read < 50


def test_reading_from_the_start_reads_every_stored_message_once() -> None:
    messages = conversation(300)
    channel, saved = loaded(messages)
    history = channel.get()
    assert list(history) == messages and list(history) == messages
    assert history == messages and saved.read == 300


def test_a_message_with_a_known_id_replaces_it_as_add_messages_would() -> None:
    messages = conversation(10)
    channel, _ = loaded(messages)
    channel.update([HumanMessage("edited", id="h4")])
    history = channel.get()
    assert len(history) == 10 and history[4].content == "edited"
    assert [m.id for m in history] == [m.id for m in messages]
    assert isinstance(channel.checkpoint(), list)  # rebuilt from the change: stored anew


def test_once_every_stored_message_is_read_an_update_asks_the_saver_nothing() -> None:
    channel, saved = loaded(conversation(6))
    assert channel.get()[-1].id == "a5"  # the first read takes the whole short branch
    channel.update([AIMessage("new", id="x")])
    channel.update([HumanMessage("edited", id="h2")])
    assert saved.lookups == 0
    assert [m.content for m in channel.get()][2] == "edited"
    assert [m.id for m in channel.get()] == ["h0", "a1", "h2", "a3", "h4", "a5", "x"]


def test_a_long_branch_not_read_yet_is_asked_about_by_id() -> None:
    channel, saved = loaded(conversation(1000))
    channel.update([HumanMessage("edited", id="h2")])
    assert saved.lookups == 1  # an indexed lookup, not a read of the branch first
    assert channel.get()[2].content == "edited"


def test_a_replacement_among_the_unsaved_messages_keeps_the_stored_part() -> None:
    channel, _ = loaded(conversation(10))
    channel.update([AIMessage("draft", id="d")])
    channel.update([AIMessage("final", id="d")])
    history = channel.get()
    assert history.is_stored and [n[3].content for n in history.unsaved()] == ["final"]


def test_remove_message_and_overwrite_work() -> None:
    channel, _ = loaded(conversation(6))
    channel.update([RemoveMessage(id="h2")])
    assert [m.id for m in channel.get()] == ["h0", "a1", "a3", "h4", "a5"]
    channel.update([Overwrite([HumanMessage("only", id="o")])])
    assert [m.id for m in channel.get()] == ["o"]


def test_messages_without_an_id_get_one() -> None:
    channel = MessageLogChannel().from_checkpoint(None)
    channel.update([("user", "hi")])
    assert channel.get()[0].id and channel.get()[0].content == "hi"


def test_a_saver_that_does_not_store_the_log_gets_a_plain_list() -> None:
    channel = MessageLogChannel().from_checkpoint([HumanMessage("hi", id="1")])
    channel.update([AIMessage("yo", id="2")])
    stored = channel.checkpoint()
    assert isinstance(stored, list) and [m.id for m in stored] == ["1", "2"]
    again = MessageLogChannel().from_checkpoint(stored)
    assert [m.id for m in again.get()] == ["1", "2"]


def test_a_log_storing_saver_gets_the_history_with_only_the_new_messages_unsaved() -> None:
    channel, _ = loaded(conversation(50))
    channel.update([AIMessage("new", id="x")])
    stored = channel.checkpoint()
    assert isinstance(stored, MessageHistory)
    assert stored.length == 51 and [n[3].id for n in stored.unsaved()] == ["x"]


def test_a_history_pickles_and_copies_as_the_plain_list() -> None:
    import copy
    import pickle

    channel, _ = loaded(conversation(5))
    history = channel.get()
    assert pickle.loads(pickle.dumps(history)) == conversation(5)
    assert copy.deepcopy(history) == conversation(5)


def test_a_node_that_writes_the_history_back_adds_nothing_and_duplicates_nothing() -> None:
    channel, _ = loaded(conversation(6))
    channel.update([channel.get()])
    assert [m.id for m in channel.get()] == [m.id for m in conversation(6)]
    assert channel.get() + [HumanMessage("x", id="x")] == [  # noqa: RUF005 (the operator is the point)
        *conversation(6),
        HumanMessage("x", id="x"),
    ]


def test_overwrite_drops_the_writes_after_it_and_two_are_refused_as_in_add_messages() -> None:
    import pytest
    from langgraph.errors import InvalidUpdateError
    from langgraph.types import Overwrite

    channel, _ = loaded(conversation(4))
    channel.update(
        [
            AIMessage("before", id="b"),
            Overwrite([HumanMessage("reset", id="r")]),
            AIMessage("after", id="a"),
        ]
    )
    assert [m.id for m in channel.get()] == ["r"]
    with pytest.raises(InvalidUpdateError):
        channel.update([Overwrite([]), Overwrite([])])


def test_a_stored_conversation_cut_short_raises_instead_of_looping_or_guessing() -> None:
    import pytest

    saved = FakeSaved(conversation(5))
    saved.length = 9  # the reference claims more than the branch holds
    history = MessageLogChannel().from_checkpoint(saved).get()
    with pytest.raises(LookupError, match="holds 5 of its 9 messages"):
        list(history)
    with pytest.raises(LookupError):
        list(reversed(history))


def test_a_tail_slice_reads_only_the_tail() -> None:
    channel, saved = loaded(conversation(500))
    assert [m.id for m in channel.get()[-3:]] == ["a497", "h498", "a499"]
    assert saved.read < 50


def test_a_slice_reads_from_the_newest_message_back_to_its_start_and_no_further() -> None:
    channel, saved = loaded(conversation(500))
    channel.update([AIMessage("new", id="x")])
    history = channel.get()
    everything = [*conversation(500), AIMessage("new", id="x")]
    for start, stop in ((480, 490), (490, 501), (500, 501), (495, 495), (20, 10)):
        assert [m.id for m in history[start:stop]] == [m.id for m in everything[start:stop]]
    assert saved.read == 20  # positions 480 to 499, each read once
