"""What the graph layer refuses: a setting it cannot load, a decision it will not apply, a run
that must stop.

The service turns these into its own domain errors (`hitl.service.errors`), each worded for a
person; nothing here knows about exit codes or HTTP statuses.
"""


class ModelConfigError(ValueError):
    """The model setting names a provider that cannot be loaded."""


class PluginError(ValueError):
    """A `module:attribute` setting that cannot be loaded or has the wrong type."""


class DecisionNotAllowedError(ValueError):
    """A decision type the tool's policy does not accept."""


class CallInProgress(RuntimeError):
    """A live runner elsewhere is executing this call right now; this run must not touch it."""

    def __init__(self, tool_call_id: str) -> None:
        super().__init__(
            f"tool call {tool_call_id!r} is being executed by another live process right now; "
            "this run stops without running it. Try again when that run has finished."
        )


class JournalUnavailable(BaseException):
    """A tool's result could not be journaled: the run must stop, not report a tool failure.

    A `BaseException`, because `ToolNode` turns every `Exception` raised around a tool into an
    error message for the model, which would tell it a tool that ran had failed.
    """

    def __init__(self, tool_call_id: str, cause: BaseException) -> None:
        super().__init__(
            f"tool call {tool_call_id!r} ran, but its result could not be recorded ({cause}); "
            "the run stops and the call will be listed as outcome_unknown for a person."
        )
