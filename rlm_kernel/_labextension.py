"""Where JupyterLab finds the prebuilt labextension that ships inside the package.

The assets in ``rlm_kernel/labextension/`` are built from ``labextension/`` by the hatch build hook
(``pip install .`` / ``pip wheel .``) and installed as shared data under
``share/jupyter/labextensions/rlm-kernel-labextension``; this hook is what
``jupyter labextension develop`` uses to link them from a source checkout.
"""

from __future__ import annotations

LABEXTENSION_NAME = "rlm-kernel-labextension"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": LABEXTENSION_NAME}]
