"""The extension's side of comm protocol 1, driven by a plain python3 kernel posing as rlm_kernel.

A kernel-opened comm needs no kernel-side target, so ``comm.create_comm`` in an ordinary ipykernel
can send exactly what rlm_kernel's cells driver sends, and record the frontend's replies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import nbformat
import pytest

from .conftest import LabPage

pytestmark = pytest.mark.ui

SETUP = """\
import comm
received = []
c = comm.create_comm(target_name="rlm_kernel", data={"type": "announce", "protocol": 1})
c.on_msg(lambda m: received.append(m["content"]["data"]))
def rlm(session, iteration, role):
    return {"rlm": {"session": session, "iteration": iteration, "role": role}}
base = {"type": "insert_cell", "session": "s1", "iteration": 1, "after_cell_id": None, "run": True}
c.send({**base, "request_id": "r1", "cell_type": "markdown", "collapsed": True,
        "source": "**Model reasoning**: look at P first.", "metadata": rlm("s1", 1, "reasoning")})
c.send({**base, "request_id": "r2", "cell_type": "code", "collapsed": False,
        "source": "x = 40 + 2\\nx", "metadata": rlm("s1", 1, "step")})
c.send({**base, "request_id": "r3", "cell_type": "code", "collapsed": False, "for_session": "another-tab",
        "source": "raise SystemExit('a message for another tab was applied')", "metadata": rlm("s1", 1, "step")})
c.send({"type": "status", "session": "s1", "session_state": "running", "iteration": 1, "max_iterations": 5,
        "tokens": 12345, "cost": None, "in_flight": 0, "elapsed": 1.5, "question": "What is x?"})
"""

KERNEL_EXEC = """async (code) => {
    const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
    const future = kernel.requestExecute({ code });
    let out = '';
    future.onIOPub = msg => {
        if (msg.header.msg_type === 'stream') { out += msg.content.text; }
        if (msg.header.msg_type === 'error') { out += msg.content.ename + ': ' + msg.content.evalue; }
    };
    await future.done;
    return out;
}"""

CELLS = """() => {
    const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
    const result = [];
    for (let i = 0; i < cells.length; i++) {
        const c = cells.get(i);
        result.push({ type: c.type, source: c.sharedModel.getSource(), metadata: c.metadata });
    }
    return result;
}"""


def kernel_exec(lab: LabPage, code: str) -> str:
    return str(lab.evaluate(KERNEL_EXEC, code))


def received(lab: LabPage) -> list[dict[str, Any]]:
    out = kernel_exec(lab, "import json; print(json.dumps(received))")
    return list(json.loads(out))


def wait_received(
    lab: LabPage, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 15.0
) -> list[dict[str, Any]]:
    """Poll the kernel's record of frontend messages until ``done`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        messages = received(lab)
        if done(messages) or time.monotonic() > deadline:
            return messages
        time.sleep(0.2)


def test_insert_run_update_stale_status_and_control(lab: LabPage) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    start = nbformat.v4.new_code_cell(
        SETUP, metadata={"rlm": {"session": "s1", "iteration": 0, "role": "start"}}
    )
    nb.cells = [start, nbformat.v4.new_code_cell("print('the last cell')")]
    nbformat.write(nb, lab.server.root / "protocol.ipynb")
    lab.open_notebook("protocol.ipynb")

    # Run only the %rlm-like cell: the inserts go right after it, in order, and the step runs.
    lab.evaluate(
        """() => { const w = window.jupyterapp.shell.currentWidget; w.content.activeCellIndex = 0;
                   void window.jupyterapp.commands.execute('notebook:run-cell'); }"""
    )
    lab.wait_for_output(2, '"42"')
    cells = lab.evaluate(CELLS)
    assert [(c["type"], c["metadata"].get("rlm", {}).get("role")) for c in cells] == [
        ("code", "start"),
        ("markdown", "reasoning"),
        ("code", "step"),
        ("code", None),
    ]
    assert cells[1]["metadata"]["jupyter"] == {"source_hidden": True}
    assert "another tab" not in json.dumps(cells[1:])  # the for_session filter

    # Replies: hello (answer to announce), cell_inserted and cell_executed for both inserts.
    messages = wait_received(lab, lambda ms: sum(m["type"] == "cell_executed" for m in ms) >= 2)
    kinds = [m["type"] for m in messages]
    assert kinds.count("hello") >= 1, messages
    hello = next(m for m in messages if m["type"] == "hello")
    assert hello["protocol"] == 1
    assert hello["frontend"] == "jupyterlab"
    inserted = {m["request_id"]: m for m in messages if m["type"] == "cell_inserted"}
    assert set(inserted) == {"r1", "r2"}
    assert inserted["r1"]["index"] == 1
    assert inserted["r2"]["index"] == 2
    executed = {m["request_id"]: m for m in messages if m["type"] == "cell_executed"}
    assert executed == {
        request: {
            "type": "cell_executed",
            "request_id": request,
            "cell_id": inserted[request]["cell_id"],
            "ok": True,
        }
        for request in ("r1", "r2")
    }

    # Visuals: badge on the step cell; the status item with Pause / Stop.
    badge = lab.page.locator(".jp-RLM-role-step .jp-RLM-badge")
    assert badge.inner_text() == "RLM · step 1"
    status = lab.page.locator(".jp-RLM-status")
    assert "RLM running · 1/5 · 12.3k tok" in status.inner_text()
    assert [b.inner_text() for b in status.locator("button").all()] == ["Pause", "Stop"]
    lab.screenshot("lab_protocol_inserted")

    # update_cell merges into metadata.rlm, mark_stale greys the iteration, a new status re-renders.
    kernel_exec(
        lab,
        """c.send({"type": "update_cell", "session": "s1", "iteration": 1, "metadata": {"subcalls": 3}})
c.send({"type": "mark_stale", "session": "s1", "from_iteration": 1, "remove": False})
c.send({"type": "status", "session": "s1", "session_state": "paused", "iteration": 1, "max_iterations": 5,
        "tokens": 12345, "cost": 0.5, "in_flight": 0, "elapsed": 3, "question": "What is x?"})""",
    )
    lab.page.wait_for_function("() => document.querySelectorAll('.jp-RLM-stale').length === 2")
    assert badge.inner_text() == "RLM · step 1 · 3 sub-calls · stale"
    assert lab.page.locator(".jp-RLM-role-start.jp-RLM-stale").count() == 0
    assert [b.inner_text() for b in status.locator("button").all()] == ["Step", "Resume", "Stop"]
    lab.screenshot("lab_protocol_stale")

    # A toolbar button sends control on the comm.
    status.locator("button[data-action='stop']").click()
    messages = wait_received(lab, lambda ms: any(m["type"] == "control" for m in ms))
    controls = [m for m in messages if m["type"] == "control"]
    assert controls == [{"type": "control", "action": "stop", "session": "s1"}]

    # mark_stale with remove deletes the iteration's cells, never the start cell.
    kernel_exec(
        lab, 'c.send({"type": "mark_stale", "session": "s1", "from_iteration": 1, "remove": True})'
    )
    lab.page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.content.model.cells.length === 2"
    )
    roles = [c["metadata"].get("rlm", {}).get("role") for c in lab.evaluate(CELLS)]
    assert roles == ["start", None]
