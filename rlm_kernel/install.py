"""Install the "RLM (Python 3)" kernelspec (the wheel also ships it; this is for other places).

The options mean what they mean for ``python -m ipykernel install``: ``name`` is the kernelspec's
directory name (what ``jupyter kernelspec list`` shows and a notebook's metadata records), the display
name defaults to the name when only a name is given, and ``env`` goes into kernel.json's ``"env"``.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager

KERNEL_NAME = "rlm"
_SPEC_DIR = Path(__file__).parent / "kernelspec"
# jupyter_client's rule for kernelspec names (it lowercases a name before checking it).
_VALID_NAME = re.compile(r"^[a-z0-9._\-]+$")


def check_name(name: str) -> str:
    """``name`` lowercased, as Jupyter stores it; ValueError when Jupyter would refuse it."""
    lowered = name.lower()
    if not _VALID_NAME.match(lowered):
        raise ValueError(
            f"{name!r} is not a kernelspec name: use only ASCII letters, digits, '.', '_' and '-'"
        )
    return lowered


def kernel_dict(
    display_name: str | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The kernel.json this Python would run, with the display name and environment given."""
    spec: dict[str, Any] = json.loads((_SPEC_DIR / "kernel.json").read_text(encoding="utf-8"))
    # This Python, by full path, as `ipykernel install` does: Jupyter replaces a bare "python"
    # with its own interpreter, which may be another environment without rlm_kernel.
    spec["argv"][0] = sys.executable
    if display_name:
        spec["display_name"] = display_name
    if env:
        spec["env"] = dict(env)
    return spec


def install(
    *,
    user: bool = False,
    prefix: str | None = None,
    name: str = KERNEL_NAME,
    display_name: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Install the kernelspec (kernel.json and the logos) and return the directory it went to.

    Without ``user`` or ``prefix`` it goes system-wide, as with ipykernel; an existing kernelspec of
    the same name is replaced.
    """
    name = check_name(name)
    if display_name is None and name != KERNEL_NAME:
        display_name = name  # as ipykernel does: two installs are told apart in the launcher
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / name
        # The logos travel with kernel.json: Jupyter finds them as the spec's resources.
        shutil.copytree(_SPEC_DIR, staged, ignore=shutil.ignore_patterns("__pycache__"))
        spec = kernel_dict(display_name, env)
        (staged / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
        manager = KernelSpecManager()
        return str(manager.install_kernel_spec(str(staged), name, user=user, prefix=prefix))
