"""Choosing the chat model: the offline one by default, a real provider with one setting."""

import os

from langchain_core.language_models import BaseChatModel

from hitl.graph.errors import ModelConfigError
from hitl.graph.offline_model import OfflineChatModel
from hitl.graph.scripted_model import ScriptedChatModel

OFFLINE = "offline"
SCRIPT = "script:"


def make_model(setting: str | None) -> BaseChatModel:
    """`None`/`"offline"`: the offline model; `"script:FILE"`: a scripted model (a JSON list of
    replies, see `scripted_model`); `"provider:model"`: LangChain's `init_chat_model`."""
    if not setting or setting == OFFLINE:
        return OfflineChatModel()
    if setting.startswith(SCRIPT):
        return ScriptedChatModel.from_file(setting.removeprefix(SCRIPT))
    if ":" not in setting:
        raise ModelConfigError(
            f"HITL_MODEL={setting!r} is not of the form provider:model "
            "(for example openai:gpt-4.1-mini); unset it to use the offline model"
        )
    try:
        from langchain.chat_models import init_chat_model  # type: ignore[import-not-found,unused-ignore]
    except ImportError as e:
        raise ModelConfigError(
            f"HITL_MODEL={setting!r} needs the 'langchain' package and the provider's package: "
            f"pip install 'hitl-approvals[{setting.split(':', 1)[0]}]'"
        ) from e
    try:
        model: BaseChatModel = init_chat_model(setting)
        return model
    except (ImportError, ValueError) as e:
        raise ModelConfigError(f"cannot load the chat model {setting!r}: {e}") from e


def chat_model(setting: str | None = None) -> BaseChatModel:
    """The chat model `setting` names, or `HITL_MODEL` from the environment when it is None:
    what a user's own graph calls, so `hitl` and `langgraph dev` choose its model the same way."""
    return make_model(setting if setting is not None else os.environ.get("HITL_MODEL"))
