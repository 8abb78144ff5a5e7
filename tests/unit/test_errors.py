"""One errors module per layer, no exception defined twice, and every error the service passes
on has an exit code and an HTTP status.

The exception classes are the ones the package's modules define when imported, found through
`BaseException`'s subclasses, so a class that derives from another error is counted too.
"""

import importlib
import pkgutil
from collections import Counter
from typing import Any

import hitl
from hitl.cli.main import EXIT_CODES
from hitl.server.http_errors import STATUS
from hitl.service import errors

ERRORS_MODULE = {
    "hitl.graph": "hitl.graph.errors",
    "hitl.checkpoints": "hitl.checkpoints.errors",
    "hitl.service": "hitl.service.errors",
}
"""Each layer's one errors module; the front ends (`hitl.cli`, `hitl.server`) have none."""
ELSEWHERE = {
    "_TurnBusy": "hitl.checkpoints.ledger",
    "_BodyTooLarge": "hitl.server.app",
}
"""Private control flow, never seen outside its package: `_TurnBusy` ends one attempt of a
ledger transaction, and `_BodyTooLarge` is an `HTTPException` so FastAPI lets it through to
the handler that answers 413."""


def _our_exceptions() -> list[type[BaseException]]:
    for found in pkgutil.walk_packages(hitl.__path__, "hitl."):
        importlib.import_module(found.name)
    seen: list[type[BaseException]] = []
    pending = list(BaseException.__subclasses__())
    while pending:
        kind = pending.pop()
        pending.extend(kind.__subclasses__())
        if kind.__module__.startswith("hitl.") and kind not in seen:
            seen.append(kind)
    return seen


def _layer(module: str) -> str | None:
    return next((layer for layer in ERRORS_MODULE if module.startswith(layer + ".")), None)


def test_no_exception_name_is_defined_in_two_modules() -> None:
    names = Counter(kind.__name__ for kind in _our_exceptions())
    twice = {
        name: sorted(k.__module__ for k in _our_exceptions() if k.__name__ == name)
        for name, count in names.items()
        if count > 1
    }
    assert not twice, f"defined more than once: {twice}"


def test_every_exception_lives_in_its_layers_errors_module() -> None:
    astray = []
    for kind in _our_exceptions():
        allowed = ELSEWHERE.get(kind.__name__)
        if allowed is not None and kind.__module__.startswith(allowed):
            continue
        layer = _layer(kind.__module__)
        if layer is None or kind.__module__ != ERRORS_MODULE[layer]:
            astray.append(f"{kind.__module__}.{kind.__qualname__}")
    assert not astray, f"exceptions outside their layer's errors module: {sorted(astray)}"


def test_the_ledger_refusals_the_service_passes_on_are_its_own_names() -> None:
    """The service re-exports them (no look-alike class), and each front end maps them."""
    for kind in errors.PASSED_ON:
        assert kind.__module__ == "hitl.checkpoints.errors"
        assert getattr(errors, kind.__name__) is kind
        assert kind in EXIT_CODES, kind
        assert kind in STATUS, kind


def test_an_error_from_the_service_comes_back_as_the_same_class_in_remote_mode() -> None:
    for kind, status in (
        (errors.ArgsChanged, 409),
        (errors.NotPermitted, 403),
        (errors.Busy, 503),
        (errors.ThreadNotFound, 404),
    ):
        made = errors.from_wire({"type": kind.__name__, "message": "as the service said"}, status)
        assert type(made) is kind
        assert str(made) == "as the service said"


def _raised_in_a_node(call: Any) -> BaseException:
    try:
        call()
    except Exception as e:
        e.add_note("During task with name 'tools' and id 'x'")  # as LangGraph notes it
        return e
    raise AssertionError("it did not raise")


def test_a_failure_of_the_agents_own_code_is_agent_failed_and_a_bug_of_ours_is_not() -> None:
    from hitl.graph import gate
    from hitl.service.errors import AgentFailed

    def users_tool() -> None:
        raise KeyError("disk")

    users = AgentFailed.of(_raised_in_a_node(users_tool))
    assert users is not None and users.node == "tools"
    refusal = _raised_in_a_node(lambda: gate.thread_of({}))  # a ValueError we raise on purpose
    assert AgentFailed.of(refusal) is not None
    ours = _raised_in_a_node(lambda: gate.bound_ledger(None))  # type: ignore[arg-type]
    assert isinstance(ours, AttributeError) and AgentFailed.of(ours) is None  # keeps its traceback
