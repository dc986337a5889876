"""``rlm-kernel examples DIR``: the bundled example notebooks, copied where a person can open them.

The examples ship inside the package (``rlm_kernel/examples`` in the wheel, ``examples/`` in a
checkout), which may be read-only or inside site-packages; the notebooks write exports and
autosaves beside themselves, so they are opened from a copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ._demo import examples_dir
from .errors import ConfigError

# What running the examples leaves beside them (gitignored in a checkout): not part of a fresh copy.
_LEFT_BY_RUNS = ("exported", "quickstart-session.*", "__pycache__", ".ipynb_checkpoints")


def copy_examples(target: Path) -> list[str]:
    """Copy every example notebook with the files it reads into ``target``; the notebooks' names.

    ``target`` must not exist yet or be empty, so nothing a person changed there is overwritten.
    """
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(
            f"{target} already exists and is not an empty folder",
            fix="Name a new folder (rlm-kernel examples DIR), or remove this one first",
        )
    source = examples_dir()
    shutil.copytree(
        source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*_LEFT_BY_RUNS)
    )
    return sorted(p.name for p in target.glob("*.ipynb"))
