"""A LangChain `create_agent` agent whose `save_note` tool waits for a person's yes.

Run it offline with its script, from this folder:

    HITL_GRAPH=./create_agent_example.py:agent HITL_MODEL=script:create_agent_script.json \
        hitl run "save a note saying hello"
    hitl pending
    hitl approve THREAD_ID
"""

from pathlib import Path

from langchain.agents import create_agent
from langchain_core.tools import tool

from hitl import ApprovalMiddleware, chat_model

NOTES = Path("notes.txt")


@tool
def save_note(text: str) -> str:
    """Append a note to notes.txt."""
    with NOTES.open("a", encoding="utf-8") as out:
        out.write(text + "\n")
    return f"saved {text!r}"


@tool
def read_notes() -> str:
    """Read notes.txt."""
    return NOTES.read_text(encoding="utf-8") if NOTES.exists() else "(no notes yet)"


agent = create_agent(
    chat_model(),  # HITL_MODEL: the offline model, a script:FILE, or provider:model
    tools=[save_note, read_notes],
    middleware=[
        ApprovalMiddleware(
            interrupt_on={
                "save_note": {"allowed_decisions": ["approve", "edit", "reject"]},
                "read_notes": False,
            },
        )
    ],
)
