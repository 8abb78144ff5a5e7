"""A hand-built `StateGraph`: a retrieval step, then the model, then the gated tools.

Run it offline with its script, from this folder:

    HITL_GRAPH=./state_graph_example.py:graph HITL_MODEL=script:state_graph_script.json \
        hitl run "file two tickets"
    hitl pending                      # both calls wait at once
    hitl approve THREAD_ID --call ID  # each is decided on its own
"""

from pathlib import Path

from langchain_core.messages import AnyMessage, SystemMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph

from hitl import ApprovalToolNode, chat_model, route_to_tools

TICKETS = Path("tickets.txt")


@tool
def file_ticket(title: str) -> str:
    """File a ticket (appends it to tickets.txt)."""
    with TICKETS.open("a", encoding="utf-8") as out:
        out.write(title + "\n")
    return f"filed {title!r}"


TOOLS = [file_ticket]
model = chat_model().bind_tools(TOOLS)


def retrieve(state: MessagesState) -> dict[str, list[AnyMessage]]:
    """Stands in for a retrieval step: what the model should know before it acts."""
    return {"messages": [SystemMessage("Open tickets: none. File one ticket per problem.")]}


def call_model(state: MessagesState) -> dict[str, list[AnyMessage]]:
    return {"messages": [model.invoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("retrieve", retrieve)
builder.add_node("agent", call_model)
builder.add_node("tools", ApprovalToolNode(TOOLS, interrupt_on={"file_ticket": True}))
builder.add_edge(START, "retrieve")
builder.add_edge("retrieve", "agent")
builder.add_conditional_edges("agent", route_to_tools, ["tools", END])
builder.add_edge("tools", "agent")
graph = builder.compile()
