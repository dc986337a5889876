"""``rlm-kernel examples DIR``: the bundled example notebooks, copied where a person can open them.

The examples ship inside the package (``rlm_kernel/examples`` in the wheel, ``examples/`` in a
checkout), which may be read-only or inside site-packages; the notebooks write exports and
autosaves beside themselves, so they are opened from a copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import ConfigError

# The recording the demo replays; its presence marks a folder as the bundled examples.
RECORDING = Path("sessions") / "quickstart.jsonl"

# What running the examples leaves beside them (gitignored in a checkout): not part of a fresh copy.
_LEFT_BY_RUNS = ("exported", "quickstart-session.*", "__pycache__", ".ipynb_checkpoints")


def examples_dir() -> Path:
    """The bundled examples: inside the installed package, or beside it in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "examples", here.parent / "examples"):
        if (candidate / RECORDING).is_file():
            return candidate
    raise ConfigError(
        f"The bundled examples ({RECORDING}) are missing from {here}",
        fix="Reinstall rlm_kernel (pip install --force-reinstall rlm_kernel), or run rlm-kernel "
        "from a clone of the repository",
    )


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
