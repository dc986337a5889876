"""Install the "RLM (Python 3)" kernelspec (the wheel also ships it; this is for other prefixes)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

KERNEL_NAME = "rlm"
_SPEC = Path(__file__).parent / "kernelspec" / "kernel.json"


def install(*, user: bool = False, prefix: str | None = None) -> str:
    """Install the kernelspec; returns where it went."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = json.loads(_SPEC.read_text(encoding="utf-8"))
        # This Python, by full path, as `ipykernel install` does: Jupyter replaces a bare "python"
        # with its own interpreter, which may be another environment without rlm_kernel.
        spec["argv"][0] = sys.executable
        (Path(tmp) / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
        return str(
            KernelSpecManager().install_kernel_spec(tmp, KERNEL_NAME, user=user, prefix=prefix)
        )
