"""Writing a trajectory in other formats, and reading back the ones that keep everything.

``export(trajectory, path, format=None, **options)`` picks the format from the file name when none is
given (longest matching suffix wins, so ``run.rlm.jsonl`` is ``rlm-jsonl`` and ``run.jsonl`` is our own
``jsonl``). ``import_trajectory(path, format=None)`` reads ``json`` and ``jsonl`` back exactly; the
other formats are views for people or other tools and drop what they cannot show.

Every export leaves out the context ``P`` (only its fingerprint and what the model itself printed or
sent to sub-models) and scrubs the session's API key and secret-looking environment values.

The exporters import the record module, never the reverse: importing this package installs ``export``
as what ``Trajectory.export`` writes through (``rlm_kernel._trajectory.use_exporter``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._trajectory import Trajectory, use_exporter
from ..errors import TrajectoryError
from . import ipynb, native, rlm_jsonl, sft


@dataclass(frozen=True)
class Format:
    """One export format: its name, file suffixes, writer, reader (None: cannot be read back) and
    what it holds."""

    name: str
    suffixes: tuple[str, ...]
    write: Callable[..., None]
    read: Callable[[Path], Trajectory] | None
    description: str

    @property
    def options(self) -> tuple[str, ...]:
        """The keyword options ``write`` takes after the trajectory and the path."""
        params = inspect.signature(self.write).parameters.values()
        return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("json", (".json",), native.write_json, native.read_json, "the full trajectory"),
        Format(
            "jsonl",
            (".jsonl",),
            native.write_jsonl,
            native.read_jsonl,
            "the full trajectory, one record a line (the autosave format)",
        ),
        Format(
            "rlm-jsonl",
            (".rlm.jsonl",),
            rlm_jsonl.write,
            None,
            "the reference implementation's log, for its visualizer",
        ),
        Format("ipynb", (".ipynb",), ipynb.write, None, "a standalone notebook of the session"),
        Format("sft", (".sft.jsonl",), sft.write, None, "chat-format fine-tuning data"),
    )
}


def infer_format(path: str | Path) -> str:
    """The format a file name implies, by its longest known suffix."""
    name = Path(path).name.lower()
    matches = [(len(s), f.name) for f in FORMATS.values() for s in f.suffixes if name.endswith(s)]
    if not matches:
        known = ", ".join(s for f in FORMATS.values() for s in f.suffixes)
        raise TrajectoryError(
            f"Cannot tell the export format from the file name {Path(path).name!r}",
            fix=f"Use one of the suffixes {known}, or pass format= (one of {', '.join(FORMATS)})",
        )
    return max(matches)[1]


def _format(format: str | None, path: Path) -> Format:
    name = infer_format(path) if format is None else format
    if name not in FORMATS:
        raise TrajectoryError(
            f"Unknown trajectory format {name!r}", fix=f"Use one of {', '.join(FORMATS)}"
        )
    return FORMATS[name]


def export(
    trajectory: Trajectory, path: str | Path, format: str | None = None, **options: Any
) -> Path:
    """Write ``trajectory`` to ``path`` as ``format`` (default: from the suffix); returns the path."""
    target = Path(path)
    chosen = _format(format, target)
    unknown = sorted(set(options) - set(chosen.options))
    if unknown:
        allowed = ", ".join(chosen.options) or "none"
        raise TrajectoryError(
            f"The {chosen.name} format has no option {', '.join(map(repr, unknown))}",
            fix=f"Its options: {allowed}",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    chosen.write(trajectory, target, **options)
    return target


def import_trajectory(path: str | Path, format: str | None = None) -> Trajectory:
    """Read a trajectory written as ``json`` or ``jsonl`` (by ``export``, ``save`` or autosave)."""
    source = Path(path)
    chosen = _format(format, source)
    if chosen.read is None:
        readable = ", ".join(f.name for f in FORMATS.values() if f.read is not None)
        raise TrajectoryError(
            f"The {chosen.name} format cannot be read back: it is {chosen.description}, "
            "which leaves out parts of the trajectory",
            fix=f"Import a file written in one of the formats {readable}",
        )
    return chosen.read(source)


use_exporter(export)

__all__ = ["FORMATS", "Format", "export", "import_trajectory", "infer_format"]
