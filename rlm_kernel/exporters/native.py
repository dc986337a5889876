"""``json`` and ``jsonl``: the trajectory itself, as ``Trajectory.save`` writes it and ``load`` reads it.

``save``/``load`` choose JSON Lines by the ``.jsonl`` suffix, so an explicit format must agree with the
file name; writing through them keeps one serializer and lets these files be read back exactly.
"""

from __future__ import annotations

from pathlib import Path

from .._trajectory import Trajectory
from ..errors import TrajectoryError


def write_json(trajectory: Trajectory, path: Path) -> None:
    """Write the full trajectory as one JSON document through ``save`` (which scrubs it); the name
    must not end in ``.jsonl``."""
    _check_suffix(path, "json")
    trajectory.save(path)  # scrubs


def write_jsonl(trajectory: Trajectory, path: Path) -> None:
    """Write the full trajectory one record a line, as autosave does, through ``save`` (which scrubs
    it); the name must end in ``.jsonl``."""
    _check_suffix(path, "jsonl")
    trajectory.save(path)  # scrubs


def read_json(path: Path) -> Trajectory:
    """The trajectory a ``json`` export holds, read back exactly."""
    _check_suffix(path, "json")
    return Trajectory.load(path)


def read_jsonl(path: Path) -> Trajectory:
    """The trajectory a ``jsonl`` export or an autosave file holds, read back exactly."""
    _check_suffix(path, "jsonl")
    return Trajectory.load(path)


def _check_suffix(path: Path, name: str) -> None:
    if (path.suffix == ".jsonl") != (name == "jsonl"):
        wanted = "ending in .jsonl" if name == "jsonl" else "not ending in .jsonl"
        raise TrajectoryError(
            f"The {name} format needs a file name {wanted}; {path.name!r} does not fit",
            fix=f"Rename the file, or use format={'json' if name == 'jsonl' else 'jsonl'!r}",
        )
