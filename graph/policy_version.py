"""The version of a gate's policy: a hash that changes when its rules do, and only then.

`version_of` hashes the canonical JSON of `fingerprint(value)`, where a rule's plain values
stand for themselves and a function (a `when` predicate, a `description` callable) for its
qualified name, the SHA-256 of its source, the values its closure holds, its defaults, and the
plain values (numbers, strings) it reads from its module's globals. It is stable across
processes and runs (no `id`, no hash randomization), so a process started after a deploy
computes the same version as one before it unless the rules changed.

Limits: a function without source (built-ins, `exec`) counts by name only; an object that is
neither plain data, a dataclass nor a function counts by its type only; what a predicate reads
at run time (a file, a database, a global that is not a plain value) is not part of it.
"""

import dataclasses
import functools
import hashlib
import inspect
import json
import types
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

_PLAIN = (str, int, float, bool, type(None))
_MAX_DEPTH = 12  # a rule is shallow; deeper means a cycle or a large object (counted by type)


def version_of(value: Any) -> str:
    """The SHA-256 of `value`'s fingerprint in canonical JSON."""
    text = json.dumps(fingerprint(value), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(value: Any, depth: int = 0) -> Any:
    """`value` as JSON-able data that is equal for equal rules, in any process."""
    if depth > _MAX_DEPTH:
        return {"type": _name(type(value))}
    deeper = depth + 1
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, timedelta):
        return {"timedelta": value.total_seconds()}
    if isinstance(value, Mapping):
        return {str(k): fingerprint(v, deeper) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [fingerprint(v, deeper) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((fingerprint(v, deeper) for v in value), key=json.dumps)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            f.name: fingerprint(getattr(value, f.name), deeper) for f in dataclasses.fields(value)
        }
        return {"dataclass": _name(type(value)), "fields": fields}
    if isinstance(value, functools.partial):
        return {
            "partial": fingerprint(value.func, deeper),
            "args": fingerprint(value.args, deeper),
            "keywords": fingerprint(value.keywords, deeper),
        }
    if isinstance(value, types.MethodType):
        return {
            "method": fingerprint(value.__func__, deeper),
            "of": fingerprint(value.__self__, deeper),
        }
    if isinstance(value, types.FunctionType):
        return _function(value, deeper)
    return {"type": _name(type(value))}


def _function(function: types.FunctionType, depth: int) -> dict[str, Any]:
    cells = function.__closure__ or ()
    closure = [fingerprint(_cell(c), depth) for c in cells]
    plain_globals = {
        name: function.__globals__[name]
        for name in sorted(function.__code__.co_names)
        if isinstance(function.__globals__.get(name, ...), _PLAIN)
    }
    return {
        "function": _name(function),
        "source": _source_hash(function),
        "closure": closure,
        "defaults": fingerprint(function.__defaults__, depth),
        "kwdefaults": fingerprint(function.__kwdefaults__, depth),
        "globals": plain_globals,
    }


def _cell(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a cell not filled yet
        return None


def _source_hash(function: types.FunctionType) -> str | None:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return None
    return hashlib.sha256(source.encode()).hexdigest()


def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
