"""The seam between the records and their rich displays: ``Result``, ``Trajectory`` and
``UsageSummary`` live low in the layers (loop parts, models), the HTML and Markdown that show them
is built above the timeline (``_display``, records out and back). Their ``_repr_html_``,
``_repr_markdown_`` and ``__repr__`` ask ``render`` here; the package face installs ``_display``'s
renderer with ``use_renderer``, the way ``Trajectory.export`` reaches the exporters.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Renderer", "render", "use_renderer"]

# (the object, a MIME type: text/html, text/markdown or text/plain) -> the text, or None.
Renderer = Callable[[object, str], "str | None"]

_renderer: Renderer | None = None


def use_renderer(renderer: Renderer) -> None:
    """Install what builds the displays (the package face does, with ``_display.render``)."""
    global _renderer
    _renderer = renderer


def render(obj: object, mime: str) -> str | None:
    """``obj`` shown as ``mime``; None before a renderer is installed (the caller falls back)."""
    return None if _renderer is None else _renderer(obj, mime)
