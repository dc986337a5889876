"""Sub-call panels: one collapsible Accordion per iteration, one entry per sub-call.

Entries are titled like ``llm_batch 7/64 · gpt-5-mini · 812 tok · 1.4 s`` and collapsed; each shows the
prompt and response (long text behind an expander), errors in red; a child RLM's entry nests its own
iterations. Every display carries a ``text/html`` rendering in the same bundle, so untrusted notebooks,
GitHub and nbconvert show the same content without widgets.

Sub-call events arrive on the sub-call thread; ipywidgets state updates are safe from there, and the panel
is displayed while its cell is still running, so the output lands in the right cell.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from IPython.core.display_functions import DisplayHandle

from . import _html

# ipywidgets is imported where a widget is built: the RLM kernel loads this module at start-up,
# and ipywidgets would add about 40 ms to it (benchmarks/startup.py).
if TYPE_CHECKING:
    import ipywidgets as widgets


def show(widget: widgets.Widget, fallback_html: str, text: str) -> DisplayHandle:
    """Display ``widget`` with HTML and plain-text fallbacks in the same bundle; returns its handle."""
    handle = DisplayHandle()
    handle.display(bundle(widget, fallback_html, text), raw=True)
    return handle


def bundle(widget: widgets.Widget, fallback_html: str, text: str) -> dict[str, Any]:
    """``widget``'s display bundle, with ``fallback_html`` and ``text`` as its HTML and its repr."""
    data: dict[str, Any] = dict(widget._repr_mimebundle_() or {})
    data["text/html"] = fallback_html
    data["text/plain"] = text  # the widget's own is its repr: VBox(children=(HBox(…
    return data


class IterationPanel:
    """The sub-calls of one iteration; shown on the first sub-call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[widgets.HTML, int]] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []
        import ipywidgets as widgets

        self.accordion = widgets.Accordion(children=[], selected_index=None)
        self._handle: DisplayHandle | None = None

    @property
    def records(self) -> list[dict[str, Any]]:
        """The sub-calls finished so far, in call order."""
        with self._lock:
            return self._finished()

    def _finished(self) -> list[dict[str, Any]]:
        """The finished sub-calls in call order. Locked."""
        return [self._records[i] for i in self._order if i in self._records]

    def started(self, call_id: str, title: str) -> None:
        """Add a "waiting" entry for sub-call ``call_id``; the first one displays the panel."""
        import ipywidgets as widgets

        with self._lock:
            body = widgets.HTML("<i style='color:#666'>waiting for the model…</i>")
            index = len(self._order)
            self._order.append(call_id)
            self._entries[call_id] = (body, index)
            self.accordion.children = (*self.accordion.children, body)
            self.accordion.set_title(index, f"{title} · …")
            if self._handle is None:
                self._handle = show(self.accordion, *self._twins())

    def finished(self, record: dict[str, Any], nested: widgets.Widget | None = None) -> None:
        """Fill the sub-call's entry with its prompt and response and retitle it; ``nested`` (a
        child RLM's view) goes under it."""
        with self._lock:
            entry = self._entries.get(record["id"])
            self._records[record["id"]] = record
            if entry is None:
                return
            body, index = entry
            body.value = _html.subcall_body(record)
            self.accordion.set_title(index, _html.subcall_title(record))
            if nested is not None:
                import ipywidgets as widgets

                children = list(self.accordion.children)
                children[index] = widgets.VBox([body, nested])
                self.accordion.children = tuple(children)

    def _twins(self) -> tuple[str, str]:
        """What shows without widgets: the HTML fallback and the plain text. Locked."""
        records = self._finished()
        pending = len(self._order) - len(records)
        lines = [f"  {_html.subcall_title(r)}" for r in records]
        if pending:
            lines.append(f"  {pending} in flight…")
        return _html.subcalls_fallback(records, pending=pending), "\n".join(lines)

    def close(self) -> None:
        """Refresh the HTML twin with the finished sub-calls."""
        with self._lock:
            if self._handle is not None:
                self._handle.update(bundle(self.accordion, *self._twins()), raw=True)
