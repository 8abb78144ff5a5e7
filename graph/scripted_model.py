"""A chat model that plays a script: drive your own tools offline, in tests and demos.

`HITL_MODEL=script:replies.json` names a JSON list; the model's n-th turn in a thread gives
the n-th reply. A reply is a string (a final answer) or an object:

    [{"tool_calls": [{"name": "append_line", "args": {"line": "hello"}}]},
     "Done: I appended the line."]

The reply depends only on how many turns the thread has had, so a thread resumed in another
process, or replayed, gets the same reply. Tool call IDs are derived from the conversation's
first message and the turn (`call_<conversation>_<turn>_<index>`), so they differ between
threads and turns and stay the same on a replay, unless the script gives them.
"""

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolCall
from pydantic import BaseModel, Field, ValidationError

from hitl.graph.errors import ModelConfigError
from hitl.graph.offline_model import ToolAwareChatModel

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


class ScriptedChatModel(ToolAwareChatModel):
    """Replies from a script, by turn; after the last reply, a final answer saying so."""

    replies: list[ScriptedReply]

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

    def _reply(self, messages: Sequence[BaseMessage]) -> AIMessage:
        turn = sum(isinstance(m, AIMessage) for m in messages)
        if turn >= len(self.replies):
            return AIMessage(SCRIPT_ENDED)
        reply = self.replies[turn]
        thread = _conversation_key(messages)
        calls = [
            ToolCall(
                name=c.name, args=c.args, id=c.id or f"call_{thread}_{turn}_{n}", type="tool_call"
            )
            for n, c in enumerate(reply.tool_calls)
        ]
        if lacking := self.tools_it_lacks(calls):
            raise ModelConfigError(f"the script's reply {turn} calls {lacking}")
        return AIMessage(content=reply.content, tool_calls=calls)


def _conversation_key(messages: Sequence[BaseMessage]) -> str:
    """A short, stable name of the conversation: its first message's ID (set when the message
    was saved), else its text."""
    first = messages[0] if messages else None
    seed = (first.id or first.text) if first is not None else ""
    return hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()[:8]
