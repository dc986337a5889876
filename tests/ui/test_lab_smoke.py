"""JupyterLab loads with the rlm_kernel extension active, and a plain python3 notebook runs."""

from __future__ import annotations

import pytest

from .conftest import LabPage

pytestmark = pytest.mark.ui


def test_lab_loads_with_the_extension_and_runs_a_cell(lab: LabPage) -> None:
    lab.server.write_notebook(
        "smoke.ipynb",
        [
            "1+1",
            "md = get_ipython().parent_header['metadata']\nmd['rlm_frontend']",
        ],
    )
    lab.open_notebook("smoke.ipynb")

    # The extension is active: its DOM marker and its console line.
    assert lab.evaluate("() => document.body.dataset.rlmKernelExtension") == "0.1.0"
    assert any("[rlm_kernel] extension 0.1.0 activated" in line for line in lab.console), (
        lab.console
    )

    lab.run_all()
    lab.wait_for_output(0, '"2"')
    # Every execute_request from the notebook carries metadata.rlm_frontend (the Run All race fix),
    # with this connection's clientId as the session.
    lab.wait_for_output(1, "'version': 1")
    client_id = lab.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.clientId"
    )
    lab.wait_for_output(1, client_id)
    assert any("[rlm_kernel] attached to kernel python3" in line for line in lab.console)
    # The status item stays hidden until a kernel sends a status.
    assert lab.page.locator(".jp-RLM-status").is_hidden()
    lab.screenshot("lab_smoke")
