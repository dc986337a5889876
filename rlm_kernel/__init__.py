"""rlm_kernel: Recursive Language Models with a Jupyter kernel as the REPL.

The context lives in ``P`` inside a persistent namespace; the root model sees only metadata about it,
writes code to inspect it, and delegates pieces to sub-LLM calls or child RLMs from inside that code.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._api import arun, run
from ._async import AsyncSession
from ._config import RLM
from ._context import ContextInfo, Documents, describe_context, load_context
from ._labextension import _jupyter_labextension_paths as _jupyter_labextension_paths
from ._mcp import MCPServer
from ._records import Proposal, Result
from ._recovery import resume
from ._rich import use_renderer
from ._sandbox import sandbox_safe
from ._session import Session
from ._trajectory import Trajectory, use_exporter
from ._version import __version__
from .errors import (
    ConfigError,
    ContextError,
    MCPServerError,
    ModelError,
    ReplayMissError,
    RetrievalError,
    RLMError,
    SessionStateError,
    TrajectoryError,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._timeline_view import TimelineView
    from .exporters import export, import_trajectory
    from .retrieval import index


def __getattr__(name: str) -> Any:
    """``export``, ``import_trajectory``, ``index`` and ``retrieval`` are imported on first use (PEP 562): running a
    session or starting the kernel needs no exporter and no index builder."""
    if name in ("export", "import_trajectory"):
        from . import exporters

        return getattr(exporters, name)
    if name == "index":  # the retrieval package (sqlite3, the builder) only when an index is built
        from .retrieval import index

        return index
    if name == "retrieval":  # `import rlm_kernel; rlm_kernel.retrieval.open_retriever(...)`
        import importlib  # not `from . import`: that asks this very __getattr__ again

        return importlib.import_module("rlm_kernel.retrieval")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _export(
    trajectory: Trajectory, path: str | Path, format: str | None = None, **options: Any
) -> Path:
    """What ``Trajectory.export`` writes through until the exporters are imported: it imports them
    (their import installs ``exporters.export`` in its place)."""
    from .exporters import export

    return export(trajectory, path, format, **options)


use_exporter(_export)


def _render(obj: object, mime: str) -> str | None:
    """What the records' rich displays are built by until ``_display`` is imported: it imports it
    (the timeline's drawing with it) on the first display, and hands over to it."""
    from ._display import render

    use_renderer(render)
    return render(obj, mime)


use_renderer(_render)


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext rlm_kernel``: the %rlm magics and the RLM settings."""
    from ._notebook import load_ipython_extension as load

    load(ip)


def current_session() -> Session | None:
    """The session the latest ``%rlm`` in this IPython shell started, replayed or took up again;
    None outside IPython or before the first one. Its ``trajectory``, ``usage`` and ``answer`` are
    what the cell showed."""
    from ._notebook import current_session as current

    return current()


def timeline(*sources: Any, labels: "Sequence[str] | None" = None) -> "TimelineView":
    """The timeline of each source, one above the other on one time scale: a ``Result``, a
    ``Session`` (one still running is drawn up to now), a ``Trajectory`` or a trajectory file's path;
    with none, the latest ``%rlm`` session's. A lane per root step (a child RLM's steps nested under
    it), each root call, code run and sub-call at its recorded time (parallel ones stacked), cached
    calls faded, and tokens and cost per step beside it. It displays itself in a notebook (Vega-Lite,
    with an SVG for front ends without it); ``.text()`` is the terminal form and ``.save(path)``
    writes ``.html``, ``.svg``, ``.png``, ``.json`` or ``.txt`` (pictures need the ``timeline``
    extra). Drawn from the records alone: a session looks the same live and afterwards."""
    from ._timeline_view import timeline as draw

    if not sources:
        session = current_session()
        sources = (session,) if session is not None else ()
    return draw(*sources, labels=labels)


def unload_ipython_extension(ip: Any) -> None:
    """``%unload_ext rlm_kernel``: the %rlm magics removed again."""
    from ._notebook import unload_ipython_extension as unload

    unload(ip)


# The public API. ``load_ipython_extension``, ``unload_ipython_extension`` and
# ``_jupyter_labextension_paths`` are attributes IPython and JupyterLab look up by name, not API.
__all__ = [
    "RLM",
    "AsyncSession",
    "ConfigError",
    "ContextError",
    "ContextInfo",
    "Documents",
    "MCPServer",
    "MCPServerError",
    "ModelError",
    "Proposal",
    "RLMError",
    "ReplayMissError",
    "Result",
    "RetrievalError",
    "Session",
    "SessionStateError",
    "Trajectory",
    "TrajectoryError",
    "__version__",
    "arun",
    "current_session",
    "describe_context",
    "export",
    "import_trajectory",
    "index",
    "load_context",
    "resume",
    "run",
    "sandbox_safe",
    "timeline",
]
