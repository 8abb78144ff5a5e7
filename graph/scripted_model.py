"""A chat model that plays a script: drive your own tools offline, in tests and demos.

`HITL_MODEL=script:replies.json` names a JSON list; the model's n-th turn in a thread gives
the n-th reply. A reply is a string (a final answer) or an object:

    [{"tool_calls": [{"name": "append_line", "args": {"line": "hello"}}]},
     "Done: I appended the line."]

The reply depends only on how many turns the thread has had, so a thread resumed in another
process, or replayed, gets the same reply. Tool call IDs are derived from the thread's turn
(`call_<turn>_<index>`) unless the script gives them.
"""

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, ToolCall
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field, ValidationError

from hitl.graph.errors import ModelConfigError

SCRIPT_ENDED = "(the script has no more replies)"


class ScriptedCall(BaseModel):
    """One tool call of a scripted reply."""

    name: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class ScriptedReply(BaseModel):
    """One turn of the model: text, tool calls, or both."""

    content: str = ""
    tool_calls: list[ScriptedCall] = Field(default_factory=list)


class ScriptedChatModel(BaseChatModel):
    """Replies from a script, by turn; after the last reply, a final answer saying so."""

    replies: list[ScriptedReply]
    tool_names: frozenset[str] | None = None
    """The tools bound (`bind_tools`): a scripted call of any other tool is an error."""

    @classmethod
    def from_file(cls, path: str | Path) -> "ScriptedChatModel":
        """Load a script; a clear `ModelConfigError` for a missing file or a bad shape."""
        file = Path(path)
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelConfigError(
                f"HITL_MODEL=script:{path}: no such file (give a JSON list of replies)"
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelConfigError(
                f"HITL_MODEL=script:{path}: not a readable JSON file: {e}"
            ) from e
        return cls.from_replies(data, source=f"HITL_MODEL=script:{path}")

    @classmethod
    def from_replies(cls, data: object, *, source: str = "the script") -> "ScriptedChatModel":
        if not isinstance(data, list) or not data:
            raise ModelConfigError(f"{source}: give a non-empty JSON list of replies")
        replies = []
        for n, item in enumerate(data):
            try:
                reply = ScriptedReply(content=item) if isinstance(item, str) else None
                replies.append(reply or ScriptedReply.model_validate(item))
            except ValidationError as e:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc']) or 'reply'}: {err['msg']}"
                    for err in e.errors()
                )
                raise ModelConfigError(
                    f"{source}: reply {n} is not a string or "
                    '{"content": ..., "tool_calls": [{"name": ..., "args": {...}}]}: '
                    f"{problems}"
                ) from None
        return cls(replies=replies)

    @property
    def _llm_type(self) -> str:
        return "hitl-scripted"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        names = {t.name for t in tools if isinstance(t, BaseTool)}
        names |= {str(t["name"]) for t in tools if isinstance(t, dict) and "name" in t}
        return self.model_copy(update={"tool_names": frozenset(names)})

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        turn = sum(isinstance(m, AIMessage) for m in messages)
        if turn >= len(self.replies):
            return ChatResult(generations=[ChatGeneration(message=AIMessage(SCRIPT_ENDED))])
        reply = self.replies[turn]
        calls = [
            ToolCall(name=c.name, args=c.args, id=c.id or f"call_{turn}_{n}", type="tool_call")
            for n, c in enumerate(reply.tool_calls)
        ]
        unknown = sorted(
            {c["name"] for c in calls} - (self.tool_names or {c["name"] for c in calls})
        )
        if unknown:
            raise ModelConfigError(
                f"the script's reply {turn} calls {', '.join(unknown)}, which the agent does not "
                f"have; its tools: {', '.join(sorted(self.tool_names or [])) or 'none'}"
            )
        message = AIMessage(content=reply.content, tool_calls=calls)
        return ChatResult(generations=[ChatGeneration(message=message)])
