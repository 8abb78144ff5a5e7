"""A user's MCP server (stdio): notes in the file `NOTES_FILE` names, one per line.

`list_notes` is marked read-only; `delete_notes` destructive; `add_note` has no annotations.
"""

import os
from pathlib import Path

from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations

server = FastMCP("notes")
NOTES = Path(os.environ["NOTES_FILE"])


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def list_notes() -> str:
    """List the notes."""
    return NOTES.read_text(encoding="utf-8") if NOTES.exists() else "(no notes)"


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True))
def delete_notes() -> str:
    """Delete every note."""
    NOTES.unlink(missing_ok=True)
    return "deleted"


@server.tool()
def add_note(text: str) -> str:
    """Add a note."""
    with NOTES.open("a", encoding="utf-8") as out:
        out.write(text + "\n")
    return "added"


if __name__ == "__main__":
    server.run("stdio")
