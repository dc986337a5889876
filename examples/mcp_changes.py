"""A small change tracker served as an MCP server over stdio, for sub_tools.ipynb.

``python mcp_changes.py`` speaks MCP on stdin and stdout (the mcp SDK's FastMCP, named ``MCPServer``
in mcp 2); ``rlm_kernel.MCPServer(command=[sys.executable, "mcp_changes.py"])`` starts it for a
session. Two tools: a change's record, and the changes that touched a service.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

app = MCPServer("changes")

CHANGES = {
    "CHG-2291": {
        "id": "CHG-2291",
        "title": "checkout-web: tune ledger-db client settings",
        "service": "checkout-web",
        "requested_by": "dana.okafor",
        "approved_by": "li.wei",
        "deployed": "13:55",
        "status": "rolled back",
    },
    "CHG-2288": {
        "id": "CHG-2288",
        "title": "search-api: raise cache TTL to 10 min",
        "service": "search-api",
        "requested_by": "sam.ortiz",
        "approved_by": "li.wei",
        "deployed": "11:20",
        "status": "done",
    },
}


@app.tool()
def change_record(change_id: str) -> dict[str, str]:
    """The change tracker's record of a change: title, service, who requested and approved it, when
    it was deployed, and its status."""
    if change_id not in CHANGES:
        raise ToolError(f"no change {change_id!r} in the tracker")
    return CHANGES[change_id]


@app.tool()
def changes_touching(service: str) -> list[str]:
    """The ids of the changes that touched a service."""
    return [c["id"] for c in CHANGES.values() if c["service"] == service]


if __name__ == "__main__":
    app.run()
