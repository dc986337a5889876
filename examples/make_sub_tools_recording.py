"""Write sessions/sub_tools.jsonl, the recording sub_tools.ipynb replays offline.

Like make_typed_recording.py, this one is scripted: rlm_kernel's loopback ScriptedServer plays the
root model and the sub-model, so that the notebook shows a tool error and the sub-model's correction
every time. The tools are real: the change tracker is the MCP server mcp_changes.py, started over stdio,
and team_of is the Python function below (sub_tools.ipynb defines the same). The code runs for real on
ops-log.txt. Run it from examples/: ``python make_sub_tools_recording.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import rlm_kernel
from rlm_kernel.testing import ChatRequest, Reply, ScriptedServer, ToolUse, fence

HERE = Path(__file__).resolve().parent
QUESTION = (
    "Who requested and who approved the change behind incident #4417, and in which teams are they?"
)
TEAMS = {"dana.okafor": "payments", "li.wei": "platform", "sam.ortiz": "search"}


def team_of(person: str) -> str:
    """The team a person (user name, e.g. 'li.wei') belongs to."""
    return TEAMS[person]


ROOT = [
    fence('hits = [line for line in P.splitlines() if "#4417" in line]\nprint("\\n".join(hits))'),
    fence(
        'who = llm_query(\n    "Incident notes:\\n" + "\\n".join(hits) + "\\n\\nWhich change caused '
        "this incident? Look it up in the change tracker and say who requested it and who approved "
        'it, with their teams."\n)\nprint(who)'
    ),
    fence("FINAL(who)"),
]


def sub(request: ChatRequest) -> Reply:
    """The sub-model: a change id mistyped, then the right one, then both people's teams."""
    results = request.tool_results
    if not results:
        return Reply(tool_calls=[ToolUse("change_record", {"change_id": "CHG-229"})])
    if len(results) == 1:  # the tracker said there is no such change: the id was cut short
        return Reply(tool_calls=[ToolUse("change_record", {"change_id": "CHG-2291"})])
    if len(results) == 2:
        record = json.loads(results[-1]["content"])
        return Reply(
            tool_calls=[
                ToolUse("team_of", {"person": record["requested_by"]}, id="call_requester"),
                ToolUse("team_of", {"person": record["approved_by"]}, id="call_approver"),
            ]
        )
    record = json.loads(results[1]["content"])
    return Reply(
        f"{record['id']} ({record['title']}) caused it: requested by {record['requested_by']} "
        f"({results[2]['content']}), approved by {record['approved_by']} ({results[3]['content']})."
    )


def main() -> None:
    # As the notebook starts it: relative to examples/, so the recording names no path of this machine.
    changes = rlm_kernel.MCPServer(command=["python", "mcp_changes.py"], cwd=str(HERE))
    with ScriptedServer({"scripted": ROOT, "scripted-sub": sub}) as server:
        result = rlm_kernel.run(
            QUESTION,
            HERE / "ops-log.txt",
            sub_tools=[changes, team_of],
            base_url=server.base_url,
            model="scripted",
            sub_model="scripted-sub",
            max_retries=0,
            autosave=False,
        )
    assert result.ok, result.message
    path = result.trajectory.save(HERE / "sessions" / "sub_tools.jsonl")
    print(f"{path}: {result.answer}")


if __name__ == "__main__":
    main()
