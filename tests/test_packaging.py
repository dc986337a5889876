"""What the wheel promises about itself: one version everywhere, and the metadata the ecosystem reads.

The wheel itself is built, installed into a fresh virtual environment and exercised by ``.ci/run``
(demo, kernelspec, labextension, a kernel start); these tests hold the sources those come from.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

import rlm_kernel

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_python_package_the_labextension_and_its_hello_share_one_version() -> None:
    package_json = json.loads((ROOT / "labextension" / "package.json").read_text(encoding="utf-8"))
    version_ts = (ROOT / "labextension" / "src" / "version.ts").read_text(encoding="utf-8")
    sent = re.search(r"EXTENSION_VERSION = '([^']+)'", version_ts)
    assert sent is not None, "labextension/src/version.ts no longer defines EXTENSION_VERSION"
    # npm spells pre-releases 0.2.0-a1 where Python spells 0.2.0a1; compare them as one spelling.
    npm = package_json["version"].replace("-", "")
    assert rlm_kernel.__version__ == npm == sent.group(1).replace("-", "")


def test_jupyterlabs_extension_manager_can_find_the_package() -> None:
    classifiers = PYPROJECT["project"]["classifiers"]
    assert "Framework :: Jupyter :: JupyterLab :: Extensions :: Prebuilt" in classifiers
    # PEP 639: a license expression excludes license classifiers.
    assert not [c for c in classifiers if c.startswith("License ::")]
    assert PYPROJECT["project"]["license"] == "BSD-3-Clause"
    for name in PYPROJECT["project"]["license-files"]:
        assert (ROOT / name).is_file(), name


def test_the_kernel_side_does_not_pull_in_the_jupyter_server_stack() -> None:
    requirements = [
        re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0].lower()
        for r in PYPROJECT["project"]["dependencies"]
    ]
    for server_side in ("jupyterlab", "notebook", "jupyter-server", "jupyter_server"):
        assert server_side not in requirements
    # What `rlm-kernel demo` imports at run time is declared, not inherited by chance.
    for needed in ("nbformat", "nbclient", "jupyter_client", "python-dotenv", "platformdirs"):
        assert needed in requirements, needed


def test_the_package_says_it_is_typed() -> None:
    assert (Path(rlm_kernel.__file__).parent / "py.typed").is_file()
