"""A page that (re)connects to a kernel with a cells-mode session, in a real JupyterLab (issue 15).

A reload reverts the notebook to its last save and a second page opens the saved copy: neither has
the cells inserted since. The kernel re-syncs the page from its record of the session (``sync``):
the missing cells go back after the ``%rlm`` cell with what each step printed, the toolbar shows
the session's state, and a step cell that waited for the page that is gone runs there. Steps that
must be caught mid-run wait for a file the test creates.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from rlm_kernel.testing import fence

from .conftest import LabPage
from .test_lab_rlm import (
    Serve,
    answered,
    cells,
    notebook,
    of_role,
    role,
    step_number,
    wait_answer,
    wait_for_file_code,
    wait_until,
)

pytestmark = pytest.mark.ui

FOUR_STEPS_THEN_AN_ANSWER = 4 + 1


def reload(lab: LabPage, name: str) -> None:
    """Reload the page (accepting the unsaved-changes prompt) and wait for the extension."""
    lab.page.on("dialog", lambda dialog: dialog.accept())
    lab.console.clear()
    lab.page.reload()
    wait_attached(lab, name)


def wait_attached(lab: LabPage, name: str) -> None:
    """Wait until the page shows ``name`` with a kernel and the extension attached to it (the
    kernel may be busy: a step is running)."""
    lab.page.wait_for_function(
        """(name) => {
            const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            return !!w && !!w.context && w.context.path === name
                && !!w.sessionContext.session && !!w.sessionContext.session.kernel;
        }""",
        arg=name,
    )
    deadline = time.monotonic() + 15
    while not any("[rlm_kernel] attached to kernel" in line for line in lab.console):
        assert time.monotonic() < deadline, lab.console
        time.sleep(0.1)


def save(lab: LabPage) -> None:
    lab.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    lab.page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")


def check_in_place(all_cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The notebook a person wrote, then the session's cells right after its %rlm cell, steps 1-4
    each once and in order, and the answer last; returns the step cells."""
    sources = [c["source"] for c in all_cells]
    start = next(i for i, s in enumerate(sources) if s.startswith("%rlm "))
    summary = [(role(c), c["source"][:30]) for c in all_cells]
    assert all(role(c) is None for c in all_cells[:start]), summary
    session_cells = all_cells[start + 1 :]
    assert all(role(c) is not None for c in session_cells)
    steps = of_role(session_cells, "step")
    assert [step_number(c) for c in steps] == [1, 2, 3, 4]  # none missing, none twice
    assert [role(c) for c in session_cells][-1] == "answer"
    assert "still here" in session_cells[-1]["source"]
    return steps


def test_a_reload_with_unsaved_step_cells_puts_them_back_and_the_run_finishes(
    lab: LabPage, serve: Serve, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    root = [
        fence("print('step one ran')"),
        fence(wait_for_file_code(go, "print('step two ran')")),
        fence("print('step three ran')"),
        fence("FINAL('still here')"),
    ]
    model = serve({"root": root})
    notebook(lab.server, "reload_unsaved.ipynb", model, tmp_path)
    lab.open_notebook("reload_unsaved.ipynb")
    lab.run_all()
    wait_until(lab, lambda cs: len(of_role(cs, "step")) == 2, what="step 2")
    lab.page.locator(".jp-RLM-status[data-rlm-state='running']").wait_for()
    reload(lab, "reload_unsaved.ipynb")  # the step cells were never saved: the notebook reverts
    assert not of_role(cells(lab), "step")
    go.touch()  # step 2 (run by the page that is gone) finishes now
    all_cells = wait_answer(lab)
    steps = check_in_place(all_cells)
    # Steps 1 and 2 ran for the old page: their cells show what the kernel recorded them print.
    assert "step one ran" in steps[0]["outputs"]
    assert "step two ran" in steps[1]["outputs"]
    assert steps[2]["count"]
    assert "step three ran" in steps[2]["outputs"]
    assert steps[3]["count"]
    status = lab.page.locator(".jp-RLM-status")
    assert status.get_attribute("data-rlm-state") == "done"
    assert len([r for r in model.requests if r.model == "root"]) == 4  # nothing asked twice
    lab.screenshot("lab_rlm_reload_unsaved")


def test_a_reload_after_a_save_fills_in_what_came_since_in_place(
    lab: LabPage, serve: Serve, tmp_path: Path
) -> None:
    """Saved while step 2 ran, reloaded while step 3 ran: step 2 (saved unrun) gets its output,
    step 3 comes back after it, and step 4 and the answer follow: nothing at the top."""
    two, three = tmp_path / "two", tmp_path / "three"
    root = [
        fence("print('step one ran')"),
        fence(wait_for_file_code(two, "print('step two ran')")),
        fence(wait_for_file_code(three, "print('step three ran')")),
        fence("FINAL('still here')"),
    ]
    model = serve({"root": root})
    notebook(lab.server, "reload_saved.ipynb", model, tmp_path)
    lab.open_notebook("reload_saved.ipynb")
    lab.run_all()
    wait_until(lab, lambda cs: len(of_role(cs, "step")) == 2, what="step 2")
    save(lab)
    two.touch()
    wait_until(lab, lambda cs: len(of_role(cs, "step")) == 3, what="step 3")
    reload(lab, "reload_saved.ipynb")
    assert len(of_role(cells(lab), "step")) == 2  # the saved copy: steps 1 and 2
    three.touch()
    all_cells = wait_answer(lab)
    steps = check_in_place(all_cells)
    assert "step two ran" in steps[1]["outputs"]  # saved while it ran: filled in from the record
    assert "step three ran" in steps[2]["outputs"]
    assert steps[3]["count"]
    lab.screenshot("lab_rlm_reload_saved")


def test_a_second_page_shows_the_sessions_cells_and_state(
    lab: LabPage, serve: Serve, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    root = [
        fence("print('step one ran')"),
        fence(wait_for_file_code(go, "print('step two ran')")),
        fence("FINAL('still here')"),
    ]
    model = serve({"root": root})
    notebook(lab.server, "second.ipynb", model, tmp_path)
    lab.open_notebook("second.ipynb")
    lab.run_all()
    wait_until(lab, lambda cs: len(of_role(cs, "step")) == 2, what="step 2")
    other = lab.new_tab()
    # The file on disk has no step cells; the kernel is busy with step 2, so no waiting for idle.
    other.page.goto(f"{lab.server.url}/lab/tree/second.ipynb")
    wait_attached(other, "second.ipynb")
    # Its hello is answered between steps: the cells so far are put in after %rlm, unrun.
    go.touch()
    theirs = wait_until(other, lambda cs: len(of_role(cs, "step")) >= 2, what="the second page")
    sources = [c["source"] for c in theirs]
    start = next(i for i, s in enumerate(sources) if s.startswith("%rlm "))
    assert all(role(c) is None for c in theirs[: start + 1])
    steps = of_role(theirs, "step")
    assert [step_number(c) for c in steps][:2] == [1, 2]
    assert "step one ran" in steps[0]["outputs"]
    # The page that drives the session finishes it, and the second page's toolbar follows.
    lab.page.bring_to_front()
    mine = wait_answer(lab)
    assert [step_number(c) for c in of_role(mine, "step")] == [1, 2, 3]
    assert answered(mine)
    other.page.locator(".jp-RLM-status[data-rlm-state='done']").wait_for()
    # ...and so do its cells, unrun: the whole session, the answer last.
    theirs = wait_until(other, answered, what="the second page's answer")
    assert [step_number(c) for c in of_role(theirs, "step")] == [1, 2, 3]
    assert all(c["count"] is None for c in of_role(theirs, "step"))
    assert "step two ran" in of_role(theirs, "step")[1]["outputs"]
    assert role(theirs[-1]) == "answer"
    assert len([r for r in model.requests if r.model == "root"]) == 3  # nothing run twice
    other.screenshot("lab_rlm_second_page")


def test_collapsed_notes_render_and_a_rewind_removes_the_stale_answer(
    lab: LabPage, serve: Serve, tmp_path: Path
) -> None:
    """The smaller items: the model's notes fold under a rendered summary (not raw markdown), the
    note addressed to the model after an edit says so, and a rewind leaves no stale answer."""
    step2 = "The code follows the word 'is'.\n" + fence("y = x * 10\nprint(y)")
    root = [fence("x = 1\nprint(x)"), step2, fence("FINAL(y)"), step2, fence("FINAL(y)")]
    model = serve({"root": root})
    notebook(lab.server, "smaller.ipynb", model, tmp_path)
    lab.open_notebook("smaller.ipynb")
    lab.run_all()
    before = wait_answer(lab)
    [notes] = of_role(before, "reasoning")
    index = next(i for i, c in enumerate(before) if c["id"] == notes["id"])
    summary = lab.page.locator(".jp-Notebook .jp-Cell").nth(index).locator("summary")
    assert summary.inner_text() == "RLM · step 2 · the model's notes"
    rendered = lab.page.locator(".jp-Notebook .jp-Cell").nth(index).inner_text()
    assert "**" not in rendered
    assert "follows the word" not in rendered  # folded
    assert not notes["hidden"]

    first = of_role(before, "step")[0]
    sid = first["rlm"]["session"]
    index = next(i for i, c in enumerate(before) if c["id"] == first["id"])
    lab.edit_and_run(index, f"%%rlm_step {sid} 1\nx = 7\nprint(x)")
    after = wait_until(
        lab,
        lambda cs: any("70" in c["source"] for c in of_role(cs, "answer")),
        what="the new answer",
    )
    edited = next(c for c in after if c["id"] == first["id"])
    assert "Told the model: A person edited your code" in edited["outputs"]
    answers = of_role(after, "answer")
    assert len(answers) == 1  # the superseded answer is gone, not left last
    assert "70" in answers[0]["source"]
    stale = [c for c in after if (c["rlm"] or {}).get("stale")]
    assert [(role(c), c["rlm"]["iteration"]) for c in stale] == [
        ("reasoning", 2),
        ("step", 2),
        ("step", 3),
    ]
    lab.screenshot("lab_rlm_smaller_items")
