"""A checkpoint serializer that never imports or calls anything a database row names.

LangGraph's msgpack format stores objects as (module, name, args) and rebuilds them by
importing `module` and calling `name`. A forged row could name `os.system`. This serializer
refuses, with `UntrustedCheckpointError`, any type outside LangGraph's built-in safe list (plus
an explicit allow-list), refuses pickle, and checks nested objects before anything is built.
"""

import importlib
import threading
import zlib
from collections.abc import Iterable
from typing import Any, NoReturn

import ormsgpack
from langgraph.checkpoint.serde import jsonplus
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Send

from hitl import compat
from hitl.checkpoints.errors import UntrustedCheckpointError

_CHECKED_CODES = {
    jsonplus.EXT_CONSTRUCTOR_SINGLE_ARG,
    jsonplus.EXT_CONSTRUCTOR_POS_ARGS,
    jsonplus.EXT_CONSTRUCTOR_KW_ARGS,
    jsonplus.EXT_METHOD_SINGLE_ARG,
    jsonplus.EXT_PYDANTIC_V1,
    jsonplus.EXT_PYDANTIC_V2,
}


class StrictSerializer(JsonPlusSerializer):
    """`JsonPlusSerializer` with msgpack types limited to an allow-list and no pickle."""

    def __init__(
        self, allowed: Iterable[tuple[str, str]] = (), *, max_inflated: int | None = None
    ) -> None:
        self._trusted = frozenset(compat.SAFE_MSGPACK_TYPES) | frozenset(allowed)
        self._max_inflated = MAX_INFLATED if max_inflated is None else max_inflated
        super().__init__(pickle_fallback=False, allowed_msgpack_modules=None)
        self._stock_hook = compat.create_msgpack_ext_hook(None)
        self._refused = threading.local()  # the refusal, past ormsgpack's own ValueError

    def _refuse(self, what: str) -> NoReturn:
        error = UntrustedCheckpointError(what)
        self._refused.error = error
        raise error

    def _checked_hook(self, code: int, data: bytes) -> Any:
        if code == jsonplus.EXT_DELTA_SNAPSHOT:  # a channel's value, whole: checked like any
            return compat.DeltaSnapshot(
                ormsgpack.unpackb(data, ext_hook=self._checked_hook, option=_OPTION)
            )
        if code not in _CHECKED_CODES:
            self._refuse(f"the extension type {code}")
        # decoding with this same hook checks every nested object before the outer one is built
        tup = ormsgpack.unpackb(data, ext_hook=self._checked_hook, option=_OPTION)
        module, name, payload = str(tup[0]), str(tup[1]), tup[2]
        if code == jsonplus.EXT_METHOD_SINGLE_ARG:
            if (module, name, str(tup[3])) not in compat.SAFE_MSGPACK_METHODS:
                self._refuse(f"the method {module}.{name}.{tup[3]}")
        elif (module, name) not in self._trusted:
            self._refuse(f"the Python object {module}.{name}")
        target = getattr(importlib.import_module(module), name)
        if code == jsonplus.EXT_CONSTRUCTOR_SINGLE_ARG:
            return target(payload)
        if code == jsonplus.EXT_CONSTRUCTOR_POS_ARGS:
            return compat.send_from_args(payload) if target is Send else target(*payload)
        if code == jsonplus.EXT_CONSTRUCTOR_KW_ARGS:
            return target(**payload)
        if code == jsonplus.EXT_METHOD_SINGLE_ARG:
            return getattr(target, str(tup[3]))(payload)
        try:  # pydantic models: validate, else rebuild without validation like LangGraph does
            return target(**payload)
        except Exception:
            construct = "construct" if code == jsonplus.EXT_PYDANTIC_V1 else "model_construct"
            return getattr(target, construct)(**payload)

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        """msgpack, compressed when that saves a tenth or more: a checkpoint is mostly the
        same channel names and version strings over again."""
        if obj is None or isinstance(obj, bytes | bytearray):
            return super().dumps_typed(obj)
        type_, data = (
            "msgpack",
            ormsgpack.packb(obj, default=_default, option=compat.msgpack_option),
        )
        if len(data) > COMPRESS_ABOVE:
            packed = _compressed(data)
            if len(packed) < 0.9 * len(data):
                return COMPRESSED, packed
        return type_, data

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        type_, payload = data
        if type_ == COMPRESSED:
            type_, payload = "msgpack", _inflated(payload, self._max_inflated)
        if type_ == "msgpack":
            try:
                return ormsgpack.unpackb(payload, ext_hook=self._checked_hook, option=_OPTION)
            except ValueError:  # ormsgpack replaces the hook's exception with its own
                refused, self._refused.error = getattr(self._refused, "error", None), None
                if refused is not None:
                    raise refused from None
                raise
        if type_ in ("null", "bytes", "bytearray"):
            return super().loads_typed(data)
        raise UntrustedCheckpointError(f"the serialization format {type_!r}")


_OPTION = ormsgpack.OPT_NON_STR_KEYS
COMPRESSED = "msgpack+zlib"
COMPRESS_ABOVE = 512
"""Bytes of msgpack below which compressing is not worth a try (a short message)."""
COMPRESSION_LEVEL = 1
MAX_INFLATED = 1 << 30
"""A stored value that inflates past this is refused (a forged row, not a checkpoint)."""


def _compressed(data: bytes) -> bytes:
    """zlib with a 4 KiB window and small hash tables: most values are a few KiB, and setting
    up zlib's defaults (a 32 KiB window, ≈ 256 KiB of state) costs three times what
    compressing them does. Any zlib reader inflates it (`_inflated`, and older versions)."""
    packer = zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, WINDOW_BITS, MEMORY_LEVEL)
    return packer.compress(data) + packer.flush()


WINDOW_BITS = 12
MEMORY_LEVEL = 4


def _default(obj: Any) -> Any:
    """LangGraph's msgpack fallback, and a lazy conversation written as its plain list (a node
    that returns the history it was given)."""
    as_list = getattr(obj, "as_message_list", None)
    if callable(as_list):
        return as_list()
    return compat.msgpack_default(obj)


def _inflated(payload: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(payload, limit)
    except zlib.error as e:
        raise UntrustedCheckpointError(f"compressed data that does not inflate ({e})") from None
    if inflater.unconsumed_tail or inflater.unused_data or not inflater.eof:
        raise UntrustedCheckpointError("compressed data that is cut short or inflates too far")
    return data


def make_strict_serializer(
    allowed: Iterable[tuple[str, str]] = (), *, max_inflated: int = MAX_INFLATED
) -> StrictSerializer:
    """The serializer every saver of this project uses; a compressed value that inflates past
    `max_inflated` bytes is refused."""
    return StrictSerializer(allowed, max_inflated=max_inflated)
