"""Each private LangGraph name in `hitl/compat.py` still behaves as we rely on, and no other
module reaches into LangGraph's privates.

A LangGraph upgrade that moves or changes one of them fails here, naming it and the LangGraph
module it came from, instead of deep inside a run.
"""

import ast
import contextlib
import datetime
import importlib
import re
from collections.abc import Callable, Collection, Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, TypedDict

import ormsgpack
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.channels.last_value import LastValue
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde import jsonplus
from langgraph.graph import StateGraph
from langgraph.types import Interrupt, Overwrite, Send, interrupt
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("hitl", "graph", "checkpoints", "bench", "tests")
"""Folders whose modules may not import LangGraph's private names (hitl/compat.py aside)."""
LINKS = (ROOT / "hitl" / "graph", ROOT / "hitl" / "checkpoints")
"""Links to the root folders `graph/` and `checkpoints/`: scanned there, not twice."""


def _compat() -> ModuleType:
    return importlib.import_module("hitl.compat")


def _origin(dotted: str) -> Any:
    """The object at `module.name` in LangGraph, imported without going through hitl.compat."""
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


CHECKS: dict[str, tuple[str, Callable[[], None]]] = {}
"""compat name -> (where LangGraph keeps it, a check of the behaviour we rely on)."""


def _checks(name: str, origin: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def register(check: Callable[[], None]) -> Callable[[], None]:
        CHECKS[name] = (origin, check)
        return check

    return register


def _pack(value: Any) -> bytes:
    compat = _compat()
    return ormsgpack.packb(value, default=compat.msgpack_default, option=compat.msgpack_option)


def _unpack(data: bytes) -> Any:
    hook = _compat().create_msgpack_ext_hook(None)
    return ormsgpack.unpackb(data, ext_hook=hook, option=ormsgpack.OPT_NON_STR_KEYS)


def _named_in(data: bytes) -> list[tuple[int, tuple[Any, ...]]]:
    """(extension code, (module, name, args[, method])) of each object LangGraph's msgpack
    form `data` names."""
    named: list[tuple[int, tuple[Any, ...]]] = []

    def record(code: int, payload: bytes) -> Any:
        tup = ormsgpack.unpackb(payload, ext_hook=record, option=ormsgpack.OPT_NON_STR_KEYS)
        named.append((code, tuple(tup)))
        return tup

    ormsgpack.unpackb(data, ext_hook=record, option=ormsgpack.OPT_NON_STR_KEYS)
    return named


class _State(TypedDict, total=False):
    x: int


@cache
def _channels_langgraph_writes() -> frozenset[str]:
    """Channel names a real run checkpoints: a Send, an interrupt, a node that raises."""

    def fan_out(state: _State) -> list[Send]:
        return [Send("ask", {"x": 1})]

    def ask(state: _State) -> _State:
        interrupt("ok?")
        return {}

    def fail(state: _State) -> _State:
        raise RuntimeError("the node failed")

    config: Any = {"configurable": {"thread_id": "compat"}}
    asking = StateGraph(_State)
    asking.add_node("ask", ask)
    asking.add_conditional_edges("__start__", fan_out)
    failing = StateGraph(_State)
    failing.add_node("fail", fail)
    failing.add_edge("__start__", "fail")
    channels: set[str] = set()
    for builder in (asking, failing):
        saver = InMemorySaver()
        with contextlib.suppress(RuntimeError):  # the failing node's error, once it is saved
            builder.compile(checkpointer=saver).invoke({"x": 0}, config)
        for saved in saver.list(config):
            channels.update(write[1] for write in saved.pending_writes or ())
            channels.update(saved.checkpoint["channel_versions"])
    return frozenset(channels)


@_checks("MISSING", "langgraph._internal._typing.MISSING")
def _missing() -> None:
    missing = _compat().MISSING
    assert missing is not None and missing != object(), "not a unique sentinel"
    # our message-log channel returns it for "nothing to save", as LangGraph's channels do
    assert LastValue(int).checkpoint() is missing, "an empty channel no longer checkpoints as it"
    assert not LastValue(int).from_checkpoint(missing).is_available(), (
        "a channel restored from it is not empty"
    )


@_checks("get_overwrite", "langgraph.channels.binop._get_overwrite")
def _get_overwrite() -> None:
    get_overwrite = _compat().get_overwrite
    assert get_overwrite(Overwrite([1, 2])) == (True, [1, 2]), "Overwrite is not recognised"
    is_overwrite, _ = get_overwrite([HumanMessage("hi")])
    assert is_overwrite is False, "a plain value is taken for an Overwrite"


@_checks("SAFE_MSGPACK_TYPES", "langgraph.checkpoint.serde._msgpack.SAFE_MSGPACK_TYPES")
def _safe_types() -> None:
    safe = _compat().SAFE_MSGPACK_TYPES
    _assert_tuples(safe, length=2)
    # the strict serializer refuses every type outside this set: our own checkpoints hold these
    call = {"name": "send_email", "args": {"to": "sally@example.com"}, "id": "call_1"}
    values = [
        HumanMessage("hi", id="m1"),
        AIMessage("", id="m2", tool_calls=[call]),
        ToolMessage("sent", tool_call_id="call_1", id="m3"),
        Send("tools", {"x": 1}),
        Interrupt(value={"action_requests": []}, id="i1"),
        Overwrite([1]),
    ]
    named = {(str(t[0]), str(t[1])) for _, t in _named_in(_pack(values))}
    assert named, "msgpack_default no longer writes (module, name) records"
    assert named <= safe, f"types our checkpoints hold are not in it: {sorted(named - safe)}"


@_checks("SAFE_MSGPACK_METHODS", "langgraph.checkpoint.serde._msgpack.SAFE_MSGPACK_METHODS")
def _safe_methods() -> None:
    safe = _compat().SAFE_MSGPACK_METHODS
    _assert_tuples(safe, length=3)
    now = datetime.datetime.now(datetime.UTC)
    methods = {
        (str(t[0]), str(t[1]), str(t[3]))
        for code, t in _named_in(_pack(now))
        if code == jsonplus.EXT_METHOD_SINGLE_ARG
    }
    assert methods, "a datetime is no longer written as a method call"
    assert methods <= safe, f"methods our checkpoints name are not in it: {sorted(methods - safe)}"


@_checks("msgpack_default", "langgraph.checkpoint.serde.jsonplus._msgpack_default")
def _msgpack_default() -> None:
    _assert_round_trip()


@_checks("msgpack_option", "langgraph.checkpoint.serde.jsonplus._option")
def _msgpack_option() -> None:
    option = _compat().msgpack_option
    assert isinstance(option, int), f"not ormsgpack option flags: {option!r}"
    assert option & ormsgpack.OPT_NON_STR_KEYS, "dicts with non-string keys no longer pack"
    _assert_round_trip()


@_checks("create_msgpack_ext_hook", "langgraph.checkpoint.serde.jsonplus._create_msgpack_ext_hook")
def _create_msgpack_ext_hook() -> None:
    _assert_round_trip()
    # None means strict: a type outside the safe list comes back as data, never built
    unlisted = _unpack(_pack(_Unlisted(value=1)))
    assert not isinstance(unlisted, _Unlisted), "the strict hook built an unlisted type"


@_checks("DeltaSnapshot", "langgraph.checkpoint.serde.types._DeltaSnapshot")
def _delta_snapshot() -> None:
    snapshot = _compat().DeltaSnapshot([1, 2])
    assert snapshot.value == [1, 2], "it no longer holds the channel's value as `value`"
    # our serializer decodes this extension code itself, checking what it holds
    data = _pack(snapshot)
    code = ormsgpack.unpackb(data, ext_hook=lambda code, _: code)
    assert code == jsonplus.EXT_DELTA_SNAPSHOT, f"written as extension {code}, not as ours"
    assert _unpack(data) == snapshot, "it no longer reads back as itself"


@_checks("send_from_args", "langgraph.checkpoint.serde.jsonplus._send_from_args")
def _send_from_args() -> None:
    send_from_args = _compat().send_from_args
    send = Send("tools", {"x": 1})
    # our serializer hands it the args LangGraph wrote for a Send
    (written,) = [t for _, t in _named_in(_pack(send)) if t[:2] == ("langgraph.types", "Send")]
    rebuilt = send_from_args(written[2])
    assert rebuilt == send, f"{written[2]!r} rebuilt as {rebuilt!r}"


def _reserved(name: str, value: str, origin: str) -> Callable[[], None]:
    def check() -> None:
        ours = getattr(_compat(), name)
        assert ours == value, f"{ours!r}, not the {value!r} LangGraph uses"
        checkpoint_lib = importlib.import_module("langgraph.checkpoint.serde.types")
        if hasattr(checkpoint_lib, name):  # what the savers of langgraph-checkpoint compare with
            assert ours == getattr(checkpoint_lib, name), "langgraph-checkpoint disagrees"
        assert ours in _channels_langgraph_writes(), "a real run no longer checkpoints it"

    return check


for _name, _value, _where in (
    ("INTERRUPT", "__interrupt__", "langgraph._internal._constants.INTERRUPT"),
    ("ERROR", "__error__", "langgraph._internal._constants.ERROR"),
    ("TASKS", "__pregel_tasks", "langgraph._internal._constants.TASKS"),
    ("START", "__start__", "langgraph.constants.START"),
):
    _checks(_name, _where)(_reserved(_name, _value, _where))


@_checks("CONFIG_KEY_CHECKPOINTER", "langgraph._internal._constants.CONFIG_KEY_CHECKPOINTER")
def _a_task_config_names_the_runs_checkpointer() -> None:
    """The ledger registers a call in the commit of the checkpointer the run uses, and knows
    it from the task's config."""
    from langgraph.config import get_config

    seen: list[Any] = []

    def node(state: dict[str, Any]) -> dict[str, Any]:
        seen.append(get_config()["configurable"].get(_compat().CONFIG_KEY_CHECKPOINTER))
        return {"n": 1}

    saver = InMemorySaver()
    graph = StateGraph(_Counter).add_node("node", node).add_edge("__start__", "node")
    graph.compile(checkpointer=saver).invoke({"n": 0}, {"configurable": {"thread_id": "t"}})
    assert seen == [saver]


class _Counter(TypedDict):
    n: int


class _Unlisted(BaseModel):
    value: int


def _assert_tuples(values: Collection[Any], length: int) -> None:
    assert isinstance(values, Collection) and values, f"not a non-empty collection: {values!r}"
    wrong = [v for v in values if not (isinstance(v, tuple) and len(v) == length)]
    assert not wrong, f"not {length}-tuples: {wrong[:3]}"
    assert all(isinstance(part, str) for v in values for part in v), "tuples of non-strings"


def _assert_round_trip() -> None:
    call = {"name": "send_email", "args": {"to": "sally@example.com"}, "id": "call_1"}
    value = {
        "messages": [HumanMessage("hi", id="m1"), AIMessage("", id="m2", tool_calls=[call])],
        "send": Send("tools", {"x": 1}),
        "at": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        1: "a non-string key",
    }
    back = _unpack(_pack(value))
    assert back == value, f"round trip changed the value: {back!r}"
    assert isinstance(back["messages"][1], AIMessage), "a message came back as plain data"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_langgraph_private_name_still_behaves_as_we_rely_on(name: str) -> None:
    origin, check = CHECKS[name]
    try:
        ours, theirs = getattr(_compat(), name), _origin(origin)
        assert ours is theirs or ours == theirs, f"{ours!r} is not LangGraph's {theirs!r}"
        check()
    except Exception as e:
        pytest.fail(
            f"hitl.compat.{name} (LangGraph's {origin}) broke with the installed LangGraph: "
            f"{type(e).__name__}: {e}. Update hitl/compat.py, or the version ranges in "
            "pyproject.toml.",
            pytrace=False,
        )


def test_every_compat_name_has_a_check() -> None:
    exported = set(_compat().__all__)
    assert exported == set(CHECKS), (
        f"names without a check: {sorted(exported - set(CHECKS))}; "
        f"checks of names compat no longer exports: {sorted(set(CHECKS) - exported)}"
    )


def _is_private(dotted: str) -> bool:
    return any(p.startswith("_") and not p.endswith("__") for p in dotted.split("."))


def _is_langgraph(module: str | None) -> bool:
    return module is not None and (module == "langgraph" or module.startswith("langgraph."))


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


PRIVATE_IN_TEXT = re.compile(r"\blanggraph(\.\w+)*\._(?!_)|\bjsonplus\._(?!_)")
"""A private LangGraph name in a string (an `importlib.import_module` argument, say)."""


def _private_langgraph_uses(source: str) -> Iterator[int]:
    """Line numbers where `source` imports or reaches a private LangGraph module or name."""
    tree = ast.parse(source)
    bound: set[str] = set()  # local names that refer to a LangGraph module or object
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_langgraph(alias.name):
                    if _is_private(alias.name):
                        yield node.lineno
                    bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_langgraph(node.module):
            if _is_private(node.module or "") or any(_is_private(a.name) for a in node.names):
                yield node.lineno
            bound.update(a.asname or a.name for a in node.names)
    for node in ast.walk(tree):
        if not isinstance(node, ast.expr):
            continue
        reaches = isinstance(node, ast.Attribute) and _is_private(node.attr)
        if (reaches and _root(node) in bound) or _names_private_module(tree, node):
            yield node.lineno


def _names_private_module(tree: ast.Module, node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and PRIVATE_IN_TEXT.search(node.value) is not None
        and not _is_docstring(tree, node)
    )


def _is_docstring(tree: ast.Module, constant: ast.Constant) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and body[0].value is constant:
                return True
    return False


def _scanned_modules() -> Iterator[Path]:
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if any(path.is_relative_to(link) for link in LINKS) or ".venv" in path.parts:
                continue
            if path == Path(__file__).resolve():  # names the private modules it checks
                continue
            yield path


def test_only_compat_imports_private_langgraph_names() -> None:
    compat = ROOT / "hitl" / "compat.py"
    offending = [
        f"{path.relative_to(ROOT)}:{line}: {path.read_text().splitlines()[line - 1].strip()}"
        for path in _scanned_modules()
        if path != compat
        for line in sorted(set(_private_langgraph_uses(path.read_text())))
    ]
    assert not offending, (
        "private LangGraph names outside hitl/compat.py (import them there, with a check in "
        "this file):\n" + "\n".join(offending)
    )


def test_the_scan_finds_private_names_however_they_are_imported() -> None:
    source = (
        "from langgraph._internal._typing import MISSING\n"
        "from langgraph.channels.binop import _get_overwrite\n"
        "from langgraph.checkpoint.serde import (\n    jsonplus,\n    _msgpack,\n)\n"
        "import langgraph.checkpoint.serde.jsonplus as jp\n"
        "option = jsonplus._option\n"
        "hook = jp._create_msgpack_ext_hook\n"
        "module = importlib.import_module('langgraph.checkpoint.serde._msgpack')\n"
        "from langgraph.types import Send\n"
        "print(Send.__name__, self._private)\n"
    )
    assert sorted(set(_private_langgraph_uses(source))) == [1, 2, 3, 8, 9, 10]


def test_the_plain_checkpoint_reader_mirrors_langgraphs_and_our_serializers_names() -> None:
    from langgraph._internal import _constants
    from langgraph.pregel._task_status import CONTROL_WRITES

    from hitl.checkpoints import stored
    from hitl.checkpoints.savers import COMPRESSED, LOG_REF_KEY

    assert stored.EXT_PYDANTIC_V2 == jsonplus.EXT_PYDANTIC_V2
    assert stored.NULL_TASK_ID == _constants.NULL_TASK_ID
    assert frozenset(CONTROL_WRITES) == stored.CONTROL_CHANNELS
    assert (stored.COMPRESSED, stored.LOG_REF_KEY) == (COMPRESSED, LOG_REF_KEY)
    for message in (AIMessage("a"), HumanMessage("h"), ToolMessage("t", tool_call_id="c")):
        assert (type(message).__module__, type(message).__name__) in stored.MESSAGE_CLASSES
