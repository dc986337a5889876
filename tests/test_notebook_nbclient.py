"""A notebook with %rlm executed headlessly by nbclient: iteration blocks, panels, their saved widget
state and HTML fallbacks, and the answer all end up in the saved .ipynb."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from rlm_kernel.testing import ScriptedServer, fence, kernel_env, settings

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def notebook(server: ScriptedServer, kernel_name: str) -> nbformat.NotebookNode:
    setup = "\n".join(f"%config RLM.{k} = {v!r}" for k, v in settings(server).items())
    cells = [
        nbformat.v4.new_code_cell(setup),
        nbformat.v4.new_code_cell(
            "reviews = ['great battery', 'screen cracked', 'battery died fast']"
        ),
        nbformat.v4.new_code_cell('%rlm "What do people complain about?" reviews'),
        nbformat.v4.new_code_cell("print(complaints)"),
    ]
    if kernel_name == "python3":
        cells.insert(0, nbformat.v4.new_code_cell("%load_ext rlm_kernel"))
    return nbformat.v4.new_notebook(cells=cells)


@pytest.mark.parametrize("kernel_name", ["rlm", "python3"])
def test_nbclient_runs_a_notebook_with_rlm(
    serve: Callable[..., ScriptedServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kernel_name: str,
) -> None:
    root = [
        fence("print(len(P))"),
        fence("labels = llm_batch([f'Is this a complaint? {r}' for r in P])\nprint(labels)"),
        fence("complaints = [r for r, l in zip(P, labels) if l == 'yes']\nFINAL(complaints)"),
    ]
    server = serve({"root": root, "sub": lambda r: "no" if "great" in r.prompt else "yes"})
    for key, value in kernel_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    nb = notebook(server, kernel_name)

    NotebookClient(
        nb, kernel_name=kernel_name, timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    path = tmp_path / "executed.ipynb"
    nbformat.write(nb, path)
    saved = nbformat.read(path, as_version=4)

    rlm_cell = saved.cells[-2]
    outputs = rlm_cell.outputs
    html = "\n".join(
        o.get("data", {}).get("text/html", "") for o in outputs if o.output_type == "display_data"
    )
    for n in (1, 2, 3):
        assert f"In [rlm {n}]:" in html
    assert "screen cracked" in html  # the answer block
    assert "Answer" in html
    # The sub-call panel: a widget view and its HTML fallback in the same bundle.
    panels = [o for o in outputs if o.output_type == "display_data" and WIDGET_VIEW in o.data]
    assert panels, "no widget outputs"
    assert all("text/html" in o.data for o in panels)
    assert any("llm_batch 3/3" in o.data["text/html"] for o in panels)
    # The widget state is saved with the notebook, so a trusted reopen renders the panels.
    state = saved.metadata["widgets"][WIDGET_STATE]["state"]
    titles = json.dumps(
        [m["state"].get("titles") for m in state.values() if m["model_name"] == "AccordionModel"]
    )
    assert "llm_batch 1/3" in titles
    assert "llm_batch 3/3" in titles
    # The model's variables are the notebook's.
    assert "screen cracked" in saved.cells[-1].outputs[0]["text"]


def test_sub_tools_from_the_notebook_show_their_calls_in_the_panel(
    serve: Callable[..., ScriptedServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlm_kernel.testing import ChatRequest, Reply, ToolUse

    def sub(request: ChatRequest) -> Reply:
        if not request.tool_results:
            return Reply(tool_calls=[ToolUse("stock", {"item": "bolts"})])
        return Reply("bolts: " + request.tool_results[0]["content"])

    root = [fence("a = llm_query('How many bolts?')\nprint(len(a))"), fence("FINAL(a)")]
    server = serve({"root": root, "sub": sub})
    for key, value in kernel_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    setup = "\n".join(f"%config RLM.{k} = {v!r}" for k, v in settings(server).items())
    tool = 'def stock(item: str) -> int:\n    """Units of an item in stock."""\n    return 12'
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(setup),
            nbformat.v4.new_code_cell(tool + "\nstore = 'a hardware store'"),
            nbformat.v4.new_code_cell('%rlm "How many bolts?" store --sub-tools stock'),
        ]
    )
    NotebookClient(
        nb, kernel_name="rlm", timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = nb.cells[-1].outputs
    panels = [o for o in outputs if o.output_type == "display_data" and WIDGET_VIEW in o.data]
    html = "\n".join(o.data["text/html"] for o in panels)
    assert "llm_query · sub · 1 tool call" in html
    assert "turn 1 · stock({&quot;item&quot;: &quot;bolts&quot;})" in html
    assert "bolts: 12" in html
    # The root model never saw the tool traffic.
    assert not any(r.tools or r.tool_results for r in server.requests if r.model == "root")
