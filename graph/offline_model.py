"""A deterministic chat model that needs no key and no network, for the demo and the tests.

It recognises the demo requests (count emails, send an email; several in one prompt become
parallel tool calls), and after tools have run it summarises their results, including rejections.
"""

import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolCall, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool

from hitl.graph.errors import ModelConfigError

_COUNT = re.compile(
    r"(?:how many emails|count (?:my |the )?emails)\D*?(?:last|past)\s+(\d+)\s+days?", re.I
)
_SEND = re.compile(
    r"send\s+(?P<recipient>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)\s+an\s+email\s+saying\s+"
    r"(?P<q>['\"\u2018\u201c])(?P<message>.*?)['\"\u2019\u201d](?=[\s.,!?;:]|$)",
    re.I,
)

CAPABILITIES = (
    "I am the offline demo model, so I only understand two requests: "
    '"how many emails did I get in the last 5 days?" and '
    "\"send sally@example.com an email saying 'hi'\" (several in one prompt are fine). "
    "For anything else, configure a real chat model with HITL_MODEL=provider:model, "
    "for example HITL_MODEL=openai:gpt-4.1-mini after pip install 'hitl-approvals[openai]'."
)


def parse_requests(text: str) -> list[ToolCall]:
    """The tool calls a prompt asks for, in the order they appear in it."""
    found: list[tuple[int, str, dict[str, Any]]] = []
    for m in _COUNT.finditer(text):
        found.append((m.start(), "count_emails", {"last_n_days": int(m.group(1))}))
    for m in _SEND.finditer(text):
        args = {"message": m.group("message"), "recipient": m.group("recipient")}
        found.append((m.start(), "send_email", args))
    return [
        ToolCall(name=name, args=args, id=f"call_{uuid.uuid4().hex[:24]}", type="tool_call")
        for _, name, args in sorted(found, key=lambda f: f[0])
    ]


def summarize(results: Sequence[ToolMessage]) -> str:
    """The final answer after a turn of tool calls: one line per call."""
    lines = []
    for r in results:
        text = r.text
        if r.status == "error" and "rejected" in text:
            lines.append(f"- {r.name}: not done, a reviewer rejected it. {text}")
        elif r.status == "error":
            lines.append(f"- {r.name}: failed. {text}")
        else:
            lines.append(f"- {r.name}: {text}")
    return "Here is what happened:\n" + "\n".join(lines)


class ToolAwareChatModel(BaseChatModel):
    """A chat model of ours that knows the tools it is bound to, so a reply asking for any
    other is a clear error (`tools_it_lacks`), not a call the agent cannot run."""

    tool_names: frozenset[str] | None = None
    """The tools bound (`bind_tools`); None: not bound, any tool name passes."""

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """A copy that remembers the tools' names."""
        names = {t.name for t in tools if isinstance(t, BaseTool)}
        names |= {str(t["name"]) for t in tools if isinstance(t, dict) and "name" in t}
        return self.model_copy(update={"tool_names": frozenset(names)})

    def tools_it_lacks(self, calls: Sequence[ToolCall]) -> str | None:
        """The tools `calls` ask for that are not bound, with the ones that are, or None."""
        asked = {c["name"] for c in calls}
        missing = sorted(asked - (self.tool_names if self.tool_names is not None else asked))
        if not missing:
            return None
        have = ", ".join(sorted(self.tool_names or [])) or "none"
        return f"{', '.join(missing)}, which the agent does not have (its tools: {have})"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    def _reply(self, messages: Sequence[BaseMessage]) -> AIMessage:
        raise NotImplementedError


class OfflineChatModel(ToolAwareChatModel):
    """Turns the demo requests into tool calls, and tool results into an answer."""

    @property
    def _llm_type(self) -> str:
        return "hitl-offline"

    def _reply(self, messages: Sequence[BaseMessage]) -> AIMessage:
        trailing_results: list[ToolMessage] = []
        for m in reversed(messages):
            if not isinstance(m, ToolMessage):
                break
            trailing_results.insert(0, m)
        if trailing_results:
            return AIMessage(content=summarize(trailing_results))
        last_human = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
        calls = parse_requests(last_human.text) if last_human else []  # a string or text blocks
        if lacking := self.tools_it_lacks(calls):
            raise ModelConfigError(
                f"the offline demo model asks for {lacking}; it only knows the demo tools: use "
                "a script (HITL_MODEL=script:FILE) or a real model"
            )
        if calls:
            return AIMessage(content="", tool_calls=calls)
        return AIMessage(content=CAPABILITIES)
