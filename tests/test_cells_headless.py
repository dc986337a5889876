"""Cells mode without a browser: nbclient + HeadlessFrontend play JupyterLab's part, and the executed
notebook holds the inserted step cells, their outputs and the answer."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from rlm_kernel.testing import (
    HeadlessFrontend,
    ScriptedServer,
    fence,
    record_edited_session,
    settings,
)

KERNELS = pytest.mark.parametrize("kernel_name", ["rlm", "python3"])


def make_notebook(server: ScriptedServer, kernel_name: str, rlm_line: str, **overrides: Any) -> Any:
    setup = "\n".join(f"%config RLM.{k} = {v!r}" for k, v in settings(server, **overrides).items())
    cells = [
        nbformat.v4.new_code_cell(setup),
        nbformat.v4.new_code_cell("ctx = 'the vault code is 7781'"),
        nbformat.v4.new_code_cell(rlm_line),
    ]
    if kernel_name == "python3":
        cells.insert(0, nbformat.v4.new_code_cell("%load_ext rlm_kernel"))
    return nbformat.v4.new_notebook(cells=cells)


class Run:
    """An nbclient run with a headless front end; cells can be added and run as a person would."""

    def __init__(self, nb: Any, kernel_name: str, tmp_path: Path) -> None:
        self.nb = nb
        self.client = NotebookClient(
            nb,
            kernel_name=kernel_name,
            timeout=120,
            resources={"metadata": {"path": str(tmp_path)}},
        )
        self.frontend = HeadlessFrontend(self.client)
        self.index = 0

    def run_pending(self) -> None:
        """Run every cell not run yet, including the ones the kernel inserts meanwhile."""
        while self.index < len(self.nb.cells):
            self.client.execute_cell(self.nb.cells[self.index], self.index)
            self.index += 1

    def add(self, source: str) -> None:
        self.nb.cells.append(nbformat.v4.new_code_cell(source))
        self.run_pending()

    def cells(self, role: str) -> list[Any]:
        return [c for c in self.nb.cells if c.metadata.get("rlm", {}).get("role") == role]


def text(cell: Any) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(out.get("data", {}).get("text/html", ""))
    return "\n".join(parts)


@KERNELS
def test_run_all_inserts_and_runs_each_step_then_the_answer(
    serve: Callable[..., ScriptedServer], env: Path, kernel_name: str
) -> None:
    root = [
        fence("i = P.find('code')\nprint(i)"),
        "The code follows the word 'is'.\n" + fence("code = P.split()[-1]\nprint(code)"),
        fence("FINAL(code)"),
    ]
    server = serve({"root": root})
    nb = make_notebook(server, kernel_name, '%rlm "What is the vault code?" ctx')
    run = Run(nb, kernel_name, env)
    with run.client.setup_kernel():
        run.run_pending()
    steps = run.cells("step")
    assert [c.source.splitlines()[0].split()[-1] for c in steps] == ["1", "2", "3"]
    sid = steps[0].metadata["rlm"]["session"]
    assert steps[0].source == f"%%rlm_step {sid} 1\ni = P.find('code')\nprint(i)"
    assert "10" in text(steps[0])  # its real output, in its own cell
    assert "7781" in text(steps[1])
    assert all(c.execution_count for c in steps)
    [notes] = run.cells("reasoning")
    assert "follows the word" in notes.source
    # Folded under a summary that renders (a hidden input showed the raw "**RLM · step 2 ...**").
    assert notes.source.startswith("<details><summary><b>RLM · step 2 · the model's notes</b>")
    [answer] = run.cells("answer")
    assert "7781" in answer.source
    assert nb.cells.index(answer) == len(nb.cells) - 1
    assert steps[1].metadata["rlm"]["subcalls"] == 0
    path = env / "cells.ipynb"
    nbformat.write(nb, path)
    nbformat.validate(nbformat.read(path, as_version=4))


def test_step_mode_inserts_the_next_cell_unrun(
    serve: Callable[..., ScriptedServer], env: Path
) -> None:
    server = serve({"root": [fence("x = 1\nprint(x)"), fence("FINAL(x)")]})
    run = Run(make_notebook(server, "rlm", '%rlm "q" ctx --step'), "rlm", env)
    with run.client.setup_kernel():
        run.run_pending()
        [step] = run.cells("step")
        assert "skip-execution" in step.metadata["tags"]
        assert not step.get("outputs")
        # The person reads it and runs it: the cell's code, as a person would re-run it.
        run.add(step.source)
        later = run.cells("step")
        assert len(later) == 2
        assert "skip-execution" in later[-1].metadata["tags"]


def test_step_runs_the_waiting_step_cell_and_inserts_the_next_unrun(
    serve: Callable[..., ScriptedServer], env: Path
) -> None:
    server = serve({"root": [fence("x = 41\nprint(x)"), fence("FINAL(x + 1)")]})
    run = Run(make_notebook(server, "rlm", '%rlm "q" ctx --step'), "rlm", env)
    with run.client.setup_kernel():
        run.run_pending()
        run.add("%rlm step")  # what the toolbar's Step button asks for
        steps = run.cells("step")
        ran = [c for c in steps if c.get("outputs")]
        assert [c.metadata["rlm"]["iteration"] for c in ran] == [1]
        assert "41" in text(ran[0])
        [waiting] = [c for c in steps if c.metadata["rlm"]["iteration"] == 2]
        assert "skip-execution" in waiting.metadata["tags"]
        assert len(server.requests) == 2
        assert "waiting in its cell" not in text(nb_cell(run, "%rlm step"))


def nb_cell(run: Run, source: str) -> Any:
    return next(c for c in run.nb.cells if c.source == source)


def test_an_edited_step_rewinds_marks_later_steps_stale_and_continues(
    serve: Callable[..., ScriptedServer], env: Path
) -> None:
    step2 = fence("y = x * 10\nprint(y)")
    server = serve(
        {"root": [fence("x = 1\nprint(x)"), step2, fence("FINAL(y)"), step2, fence("FINAL(y)")]}
    )
    run = Run(make_notebook(server, "rlm", '%rlm "q" ctx'), "rlm", env)
    with run.client.setup_kernel():
        run.run_pending()
        first = run.cells("step")
        sid = first[0].metadata["rlm"]["session"]
        assert "10" in run.cells("answer")[0].source
        run.add(f"%%rlm_step {sid} 1\nx = 7\nprint(x)")
        edited = nb_cell(run, f"%%rlm_step {sid} 1\nx = 7\nprint(x)")
    # The note is the model's (its next observation says it): the person is told so.
    assert "Told the model: A person edited your code" in text(edited)
    stale = [c for c in first[1:] if c.metadata["rlm"].get("stale")]
    assert len(stale) == 2  # the old steps 2 and 3 (and the old answer) are marked
    assert run.cells("answer")[0].metadata["rlm"].get("stale")
    assert "70" in run.cells("answer")[-1].source


def test_the_toolbar_elapsed_time_leaves_out_time_paused(
    serve: Callable[..., ScriptedServer], env: Path
) -> None:
    """The status message's elapsed is the session's running time (what wall_timeout counts),
    not wall time since it started: the seconds it sat paused in step mode are not in it."""
    server = serve({"root": [fence("x = 1\nprint(x)"), fence("FINAL(x)")]})
    run = Run(make_notebook(server, "rlm", '%rlm "q" ctx --step'), "rlm", env)
    with run.client.setup_kernel():
        began = time.monotonic()
        run.run_pending()
        time.sleep(1.5)  # paused, waiting for the person
        run.add("%rlm step")
        wall = time.monotonic() - began
    assert run.frontend.status is not None
    assert run.frontend.status["session_state"] == "paused"
    assert run.frontend.status["elapsed"] <= wall - 1.5


def test_pause_from_the_toolbar_stops_before_the_next_cell(
    serve: Callable[..., ScriptedServer], env: Path
) -> None:
    server = serve({"root": [fence("print(1)"), fence("print(2)"), fence("FINAL(3)")]})
    run = Run(make_notebook(server, "rlm", '%rlm "q" ctx'), "rlm", env)
    pressed: list[str] = []

    # nbclient calls this hook right after sending the cell's execute request: the press reaches the
    # kernel while step 1 runs, as a click during the step would.
    def press_pause_during_step_1(cell: Any = None, cell_index: int = 0, **kw: Any) -> None:
        rlm = cell.metadata.get("rlm", {})
        if rlm.get("role") == "step" and rlm.get("iteration") == 1 and not pressed:
            pressed.append(rlm["session"])
            run.frontend.control("pause", rlm["session"])

    run.client.on_cell_complete = press_pause_during_step_1
    with run.client.setup_kernel():
        run.run_pending()
        steps = run.cells("step")
        assert len(steps) == 2
        assert "paused before this step" in text(steps[1])
        assert not run.cells("answer")
        assert len([r for r in server.requests if r.model == "root"]) == 2
        run.add("%rlm resume")
    assert "3" in run.cells("answer")[-1].source


def test_without_a_front_end_the_same_notebook_runs_inline(
    serve: Callable[..., ScriptedServer], env: Path
) -> None:
    server = serve({"root": [fence("print(len(P))"), fence("FINAL(len(P))")]})
    nb = make_notebook(server, "rlm", '%rlm "q" ctx')
    NotebookClient(
        nb, kernel_name="rlm", timeout=120, resources={"metadata": {"path": str(env)}}
    ).execute()
    assert len(nb.cells) == 3  # nothing inserted
    assert "In [rlm 2]:" in text(nb.cells[-1])


def replay_run(serve: Callable[..., ScriptedServer], env: Path) -> Run:
    """A notebook that replays the recording in which a person edited step 1 (answer 84)."""
    path = record_edited_session(serve, "the vault code is 7781")
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("ctx = 'the vault code is 7781'"),
            nbformat.v4.new_code_cell(f"%rlm replay {path} ctx"),
        ]
    )
    return Run(nb, "rlm", env)


def test_a_replay_inserts_real_cells_and_re_enacts_a_persons_edit(
    serve: Callable[..., ScriptedServer], env: Path
) -> None:
    run = replay_run(serve, env)
    with run.client.setup_kernel():
        run.run_pending()
    steps = run.cells("step")
    assert [c.source.splitlines()[1] for c in steps] == ["x = 41 + 1", "y = x * 2", "FINAL(y)"]
    assert "42" in text(steps[0])
    [answer] = run.cells("answer")
    assert "84" in answer.source


def test_a_replay_edited_past_its_recording_holds_and_can_be_stopped(
    serve: Callable[..., ScriptedServer], env: Path
) -> None:
    run = replay_run(serve, env)
    nb = run.nb
    with run.client.setup_kernel():
        run.run_pending()
        sid = run.cells("step")[0].metadata["rlm"]["session"]
        # A person changes step 2: the recording has no answer for what the model is asked next.
        run.add(f"%%rlm_step {sid} 2\ny = x * 3\nprint(y)")
        edited = nb.cells[-1]
        assert "126" in text(edited)
        assert "The recording holds no response" in text(edited)
        assert "--live-fallback" in text(edited)
        run.add("%rlm status")
        assert "paused" in text(nb.cells[-1])
        wrong = nbformat.v4.new_code_cell(f"%%rlm_step {sid} 9\nprint(1)")
        wrong.metadata["tags"] = ["raises-exception"]  # a UsageError fails the cell, by design
        nb.cells.append(wrong)
        run.run_pending()
        assert "UsageError: %%rlm_step" in text(wrong)
        assert "step 9 does not exist" in text(wrong)
        assert "Traceback" not in text(wrong)
        run.add("%rlm stop")
        assert f"Session {sid} is done (stopped)" in text(nb.cells[-1])


def losing_page(run_box: list[Run], answers: list[str], lose_at: int) -> Callable[[Any], str]:
    """A root script that makes the page go away while the model writes step ``lose_at``: its
    cell is asked of a page that is gone (what a reload mid-run does)."""
    replies = iter(answers)
    count = 0

    def root(request: Any) -> str:
        nonlocal count
        count += 1
        if count == lose_at:
            run_box[0].frontend.detach()
        return next(replies)

    return root


THREE_STEPS = [
    fence("print('one ran')"),
    "The second step prints.\n" + fence("print('two ran')"),
    fence("FINAL('done')"),
]


def test_a_page_reloaded_mid_run_gets_the_cells_back_and_the_run_goes_on(
    serve: Callable[..., ScriptedServer], env: Path
) -> None:
    """The notebook reverts to its last save (the %rlm cell, no step cells) and the kernel asked
    the gone page for step 2: the reloaded page is re-synced from the kernel's record (step 1 with
    what it printed, step 2's notes and cell) and runs step 2; the run ends with its answer."""
    box: list[Run] = []
    server = serve({"root": losing_page(box, THREE_STEPS, lose_at=2)})
    run = Run(make_notebook(server, "rlm", '%rlm "q" ctx'), "rlm", env)
    box.append(run)
    with run.client.setup_kernel():
        run.run_pending()
        assert [c.metadata["rlm"]["iteration"] for c in run.cells("step")] == [1]
        run.frontend.reload(saved=3)  # same tab: its hello names the client it replaces
        sync = [m for m in run.frontend.received if m["type"] == "sync"]
        assert len(sync) == 1
        assert run.frontend.status is not None
        assert run.frontend.status["session_state"] == "running"
        run.index = 3
        run.run_pending()
    roles = [
        (c.metadata.get("rlm", {}).get("role"), c.metadata.get("rlm", {}).get("iteration"))
        for c in run.nb.cells[3:]
    ]
    assert roles == [("step", 1), ("reasoning", 2), ("step", 2), ("step", 3), ("answer", 3)]
    step1, _notes, step2, _step3, answer = run.nb.cells[3:]
    assert "one ran" in text(step1)  # from the kernel's record: the page that ran it is gone
    assert "two ran" in text(step2)
    assert step2.execution_count
    assert "done" in answer.source
    assert run.frontend.status["session_state"] == "done"
    assert len(server.requests) == 3  # nothing asked twice


def test_a_second_page_sees_the_true_state_and_resume_runs_the_waiting_step(
    serve: Callable[..., ScriptedServer], env: Path
) -> None:
    """A page that is not the one that drove the session (no ``replaces``) gets the cells and the
    toolbar's status at once; a step asked moments ago is left to its page. ``%rlm resume`` there
    runs the step no page ran, where it used to refuse ("running, not paused")."""
    box: list[Run] = []
    server = serve({"root": losing_page(box, THREE_STEPS, lose_at=2)})
    run = Run(make_notebook(server, "rlm", '%rlm "q" ctx'), "rlm", env)
    box.append(run)
    with run.client.setup_kernel():
        run.run_pending()
        run.frontend.reload(saved=3, same_tab=False)
        assert run.frontend.status is not None
        assert run.frontend.status["session_state"] == "running"
        inserted = [m for m in run.frontend.received if m["type"] == "insert_cell"]
        assert not [m for m in inserted if m["run"] and m["iteration"] == 2]  # not taken over
        recreated = [c.metadata["rlm"]["role"] for c in run.nb.cells[3:]]
        assert recreated == ["step", "reasoning", "step"]
        assert "one ran" in text(run.nb.cells[3])
        run.index = len(run.nb.cells)
        run.add("%rlm resume")
        assert "was waiting for step 2" in text(nb_cell(run, "%rlm resume"))
    # nbclient runs only cells ahead of it, so the waiting cell runs as a copy under the %rlm resume
    # cell (JupyterLab runs the cell itself); the re-created one stays unrun, without output.
    steps = [c for c in run.cells("step") if c.get("outputs")]
    assert [c.metadata["rlm"]["iteration"] for c in steps] == [1, 2, 3]
    assert "two ran" in text(steps[1])
    assert "done" in run.cells("answer")[-1].source
    assert run.frontend.status is not None
    assert run.frontend.status["session_state"] == "done"
