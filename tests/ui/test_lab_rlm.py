"""RLM sessions in a real JupyterLab (and Notebook 7), end to end in Chromium.

The kernel talks to the loopback ``ScriptedServer``; the notebook points it there with ``%config``.
Each test drives the browser as a person would (Run All, toolbar buttons, Shift+Enter, reload, a second
tab, a kernel restart) and checks the notebook model the extension built: the inserted
``%%rlm_step`` cells with their real outputs, the collapsed reasoning cells, the stale badges and the
answer cell. Steps that must be caught mid-run wait for a file the test creates.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rlm_kernel import Trajectory
from rlm_kernel.testing import ScriptedServer, fence, record_edited_session, settings

from .conftest import LabPage, LabServer

pytestmark = pytest.mark.ui

Serve = Callable[..., ScriptedServer]

CONTEXT = "ctx = 'the vault code is 7781'"
QUESTION = '%rlm "What is the vault code?" ctx'

# The notebook model as plain data: type, source, metadata.rlm, outputs' text, execution count, and
# what the DOM shows (RLM classes, badge text, whether the input is hidden).
CELLS = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const model = panel.content.model;
    const result = [];
    for (let i = 0; i < model.cells.length; i++) {
        const cell = model.cells.get(i);
        const widget = panel.content.widgets[i];
        let text = '';
        if (cell.outputs) {
            for (let j = 0; j < cell.outputs.length; j++) {
                const out = cell.outputs.get(j).toJSON();
                if (out.text) { text += [].concat(out.text).join(''); }
                if (out.data) {
                    text += [].concat(out.data['text/plain'] || '').join('');
                    text += [].concat(out.data['text/html'] || '').join('');
                }
                if (out.ename) { text += out.ename + ': ' + out.evalue; }
            }
        }
        const badge = widget.node.querySelector(':scope > .jp-RLM-badge');
        result.push({
            id: cell.id,
            type: cell.type,
            source: cell.sharedModel.getSource(),
            rlm: cell.getMetadata('rlm') || null,
            outputs: text,
            count: cell.type === 'code' ? cell.executionCount : null,
            hidden: widget.inputHidden,
            classes: widget.node.className,
            badge: badge ? badge.textContent : null,
        });
    }
    return result;
}"""

KERNEL_IDLE = """() => {
    const w = window.jupyterapp.shell.currentWidget;
    return !!w && !!w.sessionContext && w.sessionContext.kernelDisplayStatus === 'idle';
}"""


def notebook(
    server: LabServer,
    name: str,
    model: ScriptedServer,
    tmp: Path,
    *,
    kernel: str = "python3",
    rlm_line: str = QUESTION,
) -> None:
    """Write the notebook a person would: load, configure, a context, the question."""
    config = {**settings(model), "trajectory_dir": str(tmp / "sessions")}
    setup = "\n".join(f"%config RLM.{key} = {value!r}" for key, value in config.items())
    cells = [setup, CONTEXT, rlm_line]
    if kernel == "python3":
        cells.insert(0, "%load_ext rlm_kernel")
    server.write_notebook(name, cells, kernel=kernel)


def cells(lab: LabPage) -> list[dict[str, Any]]:
    return list(lab.evaluate(CELLS))


def role(cell: dict[str, Any]) -> str | None:
    return (cell["rlm"] or {}).get("role")


def of_role(all_cells: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [c for c in all_cells if role(c) == name]


def step_number(cell: dict[str, Any]) -> int:
    header = cell["source"].splitlines()[0]
    match = re.fullmatch(r"%%rlm_step (\w+) (\d+)", header)
    assert match, header
    return int(match.group(2))


def wait_until(
    lab: LabPage,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 30.0,
    what: str = "the notebook",
) -> list[dict[str, Any]]:
    """Poll the notebook model until ``done`` holds for its cells."""
    deadline = time.monotonic() + timeout
    while True:
        current = cells(lab)
        if done(current):
            return current
        if time.monotonic() > deadline:
            summary = [(c["type"], role(c), c["source"][:40], c["outputs"][-80:]) for c in current]
            raise AssertionError(f"timed out waiting for {what}: {summary}")
        time.sleep(0.2)


def answered(all_cells: list[dict[str, Any]]) -> bool:
    answers = [c for c in of_role(all_cells, "answer") if not (c["rlm"] or {}).get("stale")]
    return bool(answers)


def wait_idle(lab: LabPage, timeout: float = 30_000) -> None:
    lab.page.wait_for_function(KERNEL_IDLE, timeout=timeout)


def wait_answer(lab: LabPage, timeout: float = 30.0) -> list[dict[str, Any]]:
    wait_until(lab, answered, timeout, "the answer cell")
    wait_idle(lab)
    return cells(lab)


def run_all_and_answer(
    lab: LabPage, serve: Serve, tmp_path: Path, name: str, kernel: str = "python3"
) -> list[dict[str, Any]]:
    """The Run All flow: three scripted steps (the second with prose), then the answer."""
    root = [
        fence("i = P.find('code')\nprint(i)"),
        "The code follows the word 'is'.\n" + fence("code = P.split()[-1]\nprint(code)"),
        fence("FINAL(code)"),
    ]
    model = serve({"root": root})
    notebook(lab.server, name, model, tmp_path, kernel=kernel)
    lab.open_notebook(name)
    lab.run_all()
    return wait_answer(lab)


def check_run_all(all_cells: list[dict[str, Any]], first_rlm: int) -> str:
    """The Run All notebook: %rlm cell, step 1, notes + step 2, step 3, answer — in that order."""
    assert [(c["type"], role(c)) for c in all_cells[first_rlm:]] == [
        ("code", None),  # the %rlm cell itself
        ("code", "step"),
        ("markdown", "reasoning"),
        ("code", "step"),
        ("code", "step"),
        ("markdown", "answer"),
    ]
    rlm_cell = all_cells[first_rlm]
    assert rlm_cell["source"].startswith("%rlm ")
    assert "its steps follow as cells below" in rlm_cell["outputs"]
    steps = of_role(all_cells, "step")
    assert [step_number(c) for c in steps] == [1, 2, 3]
    sid = steps[0]["rlm"]["session"]
    assert steps[0]["source"] == f"%%rlm_step {sid} 1\ni = P.find('code')\nprint(i)"
    assert "10" in steps[0]["outputs"]  # its real output, in its own cell
    assert "7781" in steps[1]["outputs"]
    counts = [c["count"] for c in [rlm_cell, *steps]]
    assert all(counts), counts  # run...
    assert counts == sorted(counts), counts  # ...in order
    assert [c["badge"] for c in steps] == [
        "RLM · step 1 · 0 sub-calls",
        "RLM · step 2 · 0 sub-calls",
        "RLM · step 3 · 0 sub-calls",
    ]
    [notes] = of_role(all_cells, "reasoning")
    assert "follows the word" in notes["source"]
    # Folded under a rendered summary (a hidden input showed its raw markdown).
    assert notes["source"].startswith("<details><summary>")
    assert not notes["hidden"]
    assert notes["rlm"]["iteration"] == 2
    answer = all_cells[-1]
    assert "7781" in answer["source"]
    assert "jp-RLM-role-answer" in answer["classes"]
    assert answer["badge"] == "RLM · answer"
    return str(sid)


def test_run_all_inserts_and_runs_each_step_then_the_answer(
    lab: LabPage, serve: Serve, tmp_path: Path
) -> None:
    all_cells = run_all_and_answer(lab, serve, tmp_path, "run_all.ipynb")
    check_run_all(all_cells, first_rlm=3)
    status = lab.page.locator(".jp-RLM-status")
    assert "RLM done · 3/" in status.inner_text()
    lab.screenshot("lab_rlm_run_all")


def test_a_looping_model_gets_guard_badges_and_a_loop_answer(
    lab: LabPage, serve: Serve, tmp_path: Path
) -> None:
    """The loop guard in cells: the repeat is run and badged, the second repeat is stopped before
    it runs, and the answer cell comes from the best-answer call."""
    look = "i = P.find('code')\nprint(i)"
    model = serve({"root": [fence(look), fence(look), fence(look), "The code is 7781."]})
    notebook(lab.server, "loop.ipynb", model, tmp_path)
    lab.open_notebook("loop.ipynb")
    lab.run_all()
    all_cells = wait_answer(lab)
    steps = of_role(all_cells, "step")
    assert [step_number(c) for c in steps] == [1, 2, 3]
    assert [c["badge"] for c in steps] == [
        "RLM · step 1 · 0 sub-calls",
        "RLM · step 2 · 0 sub-calls · repeats step 1",
        "RLM · step 3 · loop stopped",  # proposed, not run: no sub-call count
    ]
    assert "Loop guard: step 2 has the same code as step 1" in steps[1]["outputs"]
    [answer] = of_role(all_cells, "answer")
    assert answer["source"].startswith("**RLM · Ended: loop**")
    assert "7781" in answer["source"]


def wait_for_file_code(path: Path, then: str) -> str:
    """Model code that blocks until the test creates ``path`` (so the test can act mid-step)."""
    return (
        "import pathlib, time\n"
        f"while not pathlib.Path({str(path)!r}).exists():\n"
        "    time.sleep(0.05)\n"
        f"{then}"
    )


def root_requests(model: ScriptedServer) -> int:
    return len([r for r in model.requests if r.model == "root"])


@pytest.mark.parametrize("kernel", ["python3", "rlm"])
def test_pause_from_the_toolbar_then_resume(
    lab: LabPage, serve: Serve, tmp_path: Path, kernel: str
) -> None:
    go = tmp_path / "go"
    root = [
        fence(wait_for_file_code(go, "print('step one ran')")),
        fence("print('step two ran')"),
        fence("FINAL('all done')"),
    ]
    model = serve({"root": root})
    notebook(lab.server, f"pause_{kernel}.ipynb", model, tmp_path, kernel=kernel)
    lab.open_notebook(f"pause_{kernel}.ipynb")
    lab.run_all()
    # Step 1 is running (it waits for the file): the toolbar offers Pause.
    wait_until(lab, lambda cs: len(of_role(cs, "step")) == 1, what="step 1")
    pause = lab.page.locator(".jp-RLM-status button[data-action='pause']")
    pause.wait_for()
    assert lab.page.locator(".jp-RLM-status").get_attribute("data-rlm-state") == "running"
    pause.click()
    time.sleep(0.5)  # let the control reach the kernel while step 1 still runs
    go.touch()
    wait_idle(lab)
    status = lab.page.locator(".jp-RLM-status")
    lab.page.wait_for_function(
        "() => document.querySelector('.jp-RLM-status').dataset.rlmState === 'paused'"
    )
    all_cells = cells(lab)
    steps = of_role(all_cells, "step")
    assert "step one ran" in steps[0]["outputs"]
    # Stopped before the next step: either no further cell (the control was handled during step 1,
    # on a subshell) or the next cell is there but did not run its code (handled after step 1; what
    # JupyterLab 4.6 + ipykernel 7.4 do here).
    assert len(steps) in (1, 2), steps
    if len(steps) == 2:
        assert "paused before this step" in steps[1]["outputs"]
        assert "step two ran" not in steps[1]["outputs"]
    else:
        assert "paused" in steps[0]["outputs"]
        assert root_requests(model) == 1  # the model was not even asked for step 2
    assert not of_role(all_cells, "answer")
    assert [b.inner_text() for b in status.locator("button").all()] == ["Step", "Resume", "Stop"]
    lab.screenshot(f"lab_rlm_paused_{kernel}")

    status.locator("button[data-action='resume']").click()
    all_cells = wait_answer(lab)
    steps = [c for c in of_role(all_cells, "step") if "step two ran" in c["outputs"]]
    assert len(steps) == 1
    assert step_number(steps[0]) == 2
    assert "all done" in of_role(all_cells, "answer")[-1]["source"]
    assert status.get_attribute("data-rlm-state") == "done"
    lab.screenshot(f"lab_rlm_resumed_{kernel}")


def test_edit_an_earlier_step_marks_later_ones_stale_and_continues(
    lab: LabPage, serve: Serve, tmp_path: Path
) -> None:
    step2 = fence("y = x * 10\nprint(y)")
    root = [fence("x = 1\nprint(x)"), step2, fence("FINAL(y)"), step2, fence("FINAL(y)")]
    model = serve({"root": root})
    notebook(lab.server, "edit.ipynb", model, tmp_path)
    lab.open_notebook("edit.ipynb")
    lab.run_all()
    before = wait_answer(lab)
    first = of_role(before, "step")[0]
    assert "10" in of_role(before, "answer")[0]["source"]
    sid = first["rlm"]["session"]

    # A person edits step 1's code and runs it with Shift+Enter.
    index = next(i for i, c in enumerate(before) if c["id"] == first["id"])
    lab.edit_and_run(index, f"%%rlm_step {sid} 1\nx = 7\nprint(x)")

    def new_answer(cs: list[dict[str, Any]]) -> bool:
        return any("70" in c["source"] and not c["rlm"].get("stale") for c in of_role(cs, "answer"))

    wait_until(lab, new_answer, what="the new answer")
    wait_idle(lab)
    after = cells(lab)
    edited = next(c for c in after if c["id"] == first["id"])
    assert "7" in edited["outputs"]
    stale = [c for c in after if (c["rlm"] or {}).get("stale")]
    # The old step 2 and step 3 are greyed with a "stale" badge; step 1 is not. The old answer
    # is gone: left in place it would be the notebook's last word.
    assert [(role(c), c["rlm"]["iteration"]) for c in stale] == [("step", 2), ("step", 3)]
    assert len(of_role(after, "answer")) == 1
    assert all("jp-RLM-stale" in c["classes"] and c["badge"].endswith("· stale") for c in stale)
    assert "jp-RLM-stale" not in edited["classes"]
    live_steps = [c for c in of_role(after, "step") if not c["rlm"].get("stale")]
    assert [step_number(c) for c in live_steps] == [1, 2, 3]
    assert "70" in live_steps[1]["outputs"]
    # The new steps follow the edited one, the stale ones come after them.
    ids = [c["id"] for c in after]
    assert ids.index(live_steps[2]["id"]) < ids.index(stale[0]["id"])
    lab.page.locator(".jp-RLM-stale").last.scroll_into_view_if_needed()
    lab.screenshot("lab_rlm_edited_stale")


def test_run_all_with_the_rlm_kernel(lab: LabPage, serve: Serve, tmp_path: Path) -> None:
    all_cells = run_all_and_answer(lab, serve, tmp_path, "run_all_rlm.ipynb", kernel="rlm")
    check_run_all(all_cells, first_rlm=2)
    assert (
        lab.evaluate(
            "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.name"
        )
        == "rlm"
    )
    lab.screenshot("lab_rlm_run_all_rlm_kernel")


@pytest.mark.parametrize("kernel", ["python3", "rlm"])
def test_run_all_in_notebook_7(nb7: LabPage, serve: Serve, tmp_path: Path, kernel: str) -> None:
    assert nb7.server.app == "notebook"
    all_cells = run_all_and_answer(nb7, serve, tmp_path, f"nb7_{kernel}.ipynb", kernel=kernel)
    check_run_all(all_cells, first_rlm=3 if kernel == "python3" else 2)
    assert nb7.page.url.endswith(f"/notebooks/nb7_{kernel}.ipynb")
    nb7.screenshot(f"nb7_rlm_run_all_{kernel}")


def test_two_tabs_on_one_kernel_only_the_requesting_tab_runs(
    lab: LabPage, serve: Serve, tmp_path: Path
) -> None:
    root = [fence("print(len(P))"), fence("FINAL(len(P))")]
    model = serve({"root": root})
    notebook(lab.server, "two_tabs.ipynb", model, tmp_path)
    lab.open_notebook("two_tabs.ipynb")
    other = lab.new_tab()
    other.open_notebook("two_tabs.ipynb")
    kernel_id = "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.id"
    client_id = "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.clientId"
    assert lab.evaluate(kernel_id) == other.evaluate(kernel_id)  # one kernel
    assert lab.evaluate(client_id) != other.evaluate(client_id)  # two clients

    lab.page.bring_to_front()
    lab.run_all()
    mine = wait_answer(lab)
    assert [step_number(c) for c in of_role(mine, "step")] == [1, 2]
    assert len(of_role(mine, "answer")) == 1
    ids = [c["id"] for c in mine]
    assert len(ids) == len(set(ids))
    # The other tab has its own copy of the notebook (no shared document without RTC): it follows
    # the session (its cells, unrun, with what each step printed from the kernel's record) and
    # ran nothing: the model was asked once per step.
    theirs = wait_until(other, answered, what="the other tab's copy")
    assert [c["rlm"] for c in theirs[:4]] == [None] * 4
    assert not theirs[3]["outputs"]  # its %rlm cell did not run there
    assert [step_number(c) for c in of_role(theirs, "step")] == [1, 2]
    assert all(c["count"] is None for c in of_role(theirs, "step"))
    assert "22" in of_role(theirs, "step")[0]["outputs"]  # print(len(P)), from the record
    assert root_requests(model) == 2
    lab.screenshot("lab_rlm_two_tabs_requesting")
    other.screenshot("lab_rlm_two_tabs_other")


def test_kernel_restart_mid_session_leaves_the_trajectory_on_disk(
    lab: LabPage, serve: Serve, tmp_path: Path
) -> None:
    never = tmp_path / "never"
    root = [fence("print('first step')"), fence(wait_for_file_code(never, "print('unreachable')"))]
    model = serve({"root": root})
    notebook(lab.server, "restart.ipynb", model, tmp_path)
    lab.open_notebook("restart.ipynb")
    lab.run_all()
    wait_until(lab, lambda cs: len(of_role(cs, "step")) == 2, what="step 2")
    lab.page.locator(".jp-RLM-status[data-rlm-state='running']").wait_for()
    lab.evaluate(
        "() => { void window.jupyterapp.shell.currentWidget.sessionContext.restartKernel(); }"
    )
    wait_idle(lab)
    # The toolbar no longer claims a running session.
    lab.page.locator(".jp-RLM-status[data-rlm-state='ended']").wait_for()
    assert "kernel restarted" in lab.page.locator(".jp-RLM-status").inner_text()
    assert lab.page.locator(".jp-RLM-status button").count() == 0
    [path] = list((tmp_path / "sessions").glob("*.jsonl"))
    trajectory = Trajectory.load(path)
    assert trajectory.session["question"] == "What is the vault code?"
    assert [it["iteration"] for it in trajectory.iterations] == [1]
    assert "first step" in trajectory.iterations[0]["output"]
    # The restarted kernel works, and a new question starts afresh.
    assert "first step" in of_role(cells(lab), "step")[0]["outputs"]
    lab.screenshot("lab_rlm_kernel_restarted")


def test_reload_mid_session_then_the_steps_go_on(
    lab: LabPage, serve: Serve, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    root = [
        fence(wait_for_file_code(go, "print('step one ran')")),
        fence("print('step two ran after the reload')"),
        fence("FINAL('still here')"),
    ]
    model = serve({"root": root})
    notebook(lab.server, "reload.ipynb", model, tmp_path)
    lab.open_notebook("reload.ipynb")
    client_id = "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.clientId"
    before = lab.evaluate(client_id)
    lab.run_all()
    wait_until(lab, lambda cs: len(of_role(cs, "step")) == 1, what="step 1")
    lab.page.locator(".jp-RLM-status[data-rlm-state='running']").wait_for()
    # Save (so the reloaded page has step 1's cell), then reload while step 1 still runs.
    lab.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    lab.page.on("dialog", lambda dialog: dialog.accept())
    lab.console.clear()
    lab.page.reload()
    lab.page.wait_for_function(
        """() => {
            const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            return !!w && !!w.context && w.context.path === 'reload.ipynb'
                && !!w.sessionContext.session && !!w.sessionContext.session.kernel;
        }"""
    )
    after = lab.evaluate(client_id)
    assert after != before  # a new client session for the same kernel
    deadline = time.monotonic() + 15
    while not any("[rlm_kernel] attached to kernel" in line for line in lab.console):
        assert time.monotonic() < deadline, lab.console
        time.sleep(0.1)

    go.touch()  # step 1 (started by the old page) finishes now
    all_cells = wait_answer(lab)
    steps = of_role(all_cells, "step")
    assert [step_number(c) for c in steps] == [1, 2, 3]  # no duplicates, nothing missing
    assert "step two ran after the reload" in steps[1]["outputs"]
    assert steps[1]["count"]
    assert steps[2]["count"]
    ids = [c["id"] for c in all_cells]
    assert ids.index(steps[0]["id"]) + 1 == ids.index(steps[1]["id"])  # right under step 1
    assert "still here" in all_cells[-1]["source"]
    assert lab.page.locator(".jp-RLM-status").get_attribute("data-rlm-state") == "done"
    lab.screenshot("lab_rlm_reloaded")


def test_a_replay_runs_as_real_cells_with_the_persons_edit(
    lab: LabPage, serve: Serve, tmp_path: Path
) -> None:
    recording = record_edited_session(serve, "the vault code is 7781")  # its server is stopped
    lab.server.write_notebook(
        "replay.ipynb",
        [
            "%load_ext rlm_kernel",
            f"%config RLM.trajectory_dir = {str(tmp_path / 'sessions')!r}",
            CONTEXT,
            f"%rlm replay {recording} ctx",
        ],
    )
    lab.open_notebook("replay.ipynb")
    lab.run_all()
    all_cells = wait_answer(lab)
    steps = of_role(all_cells, "step")
    # Step 1 runs the code the person wrote in the recorded session, not the model's x = 1.
    assert [c["source"].splitlines()[1] for c in steps] == ["x = 41 + 1", "y = x * 2", "FINAL(y)"]
    assert "42" in steps[0]["outputs"]
    assert "84" in steps[1]["outputs"]
    assert "84" in all_cells[-1]["source"]
    lab.screenshot("lab_rlm_replay")
