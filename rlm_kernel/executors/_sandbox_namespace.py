"""The host's view of a sandbox's namespace, for the code that treats an executor's namespace as a
mapping (``Helpers.bind``/``restore``, ``answer_submission``, prose ``FINAL_VAR``).

It holds what the host bound (``P``, the helpers, ``answer``) and, after every block, what the sandbox
reported for those names. What the host writes later (a fresh ``answer`` after a refused submission, a
helper put back) is queued and reaches the sandbox with the next feed; writing back the value the
sandbox already holds queues nothing. Other names are read from the sandbox on demand, between feeds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

_MISSING = object()


class Replaced:
    """Stands for a helper the model overwrote (the sandbox already has the original back)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name} was overwritten in the sandbox>"


class SandboxNamespace(MutableMapping[str, Any]):
    def __init__(self, read: Callable[[str], Any]) -> None:
        # ``read(name)`` fetches a sandbox variable; it raises KeyError when there is none, or when
        # the sandbox cannot be asked right now (not started, or in the middle of a feed).
        self._read = read
        self._host: dict[str, Any] = {}
        self._sandbox: dict[str, Any] = {}  # what the sandbox holds, as of the last sync
        self._pending: dict[str, Any] = {}
        self._overlay: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name in self._overlay:
            return self._overlay[name]
        if name in self._host:
            return self._host[name]
        return self._read(name)

    def __setitem__(self, name: str, value: Any) -> None:
        self._host[name] = value
        if self._sandbox.get(name, _MISSING) is value:
            self._pending.pop(name, None)
        else:
            self._pending[name] = value

    def __delitem__(self, name: str) -> None:
        # Only the host's record goes: the sandbox has no ``del``.
        del self._host[name]
        self._pending.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._host)

    def __len__(self) -> int:
        return len(self._host)

    # --- the executor's side ----------------------------------------------------------------------
    def host_items(self) -> dict[str, Any]:
        return dict(self._host)

    def synced(self, name: str, value: Any, *, shown: Any = _MISSING) -> None:
        """The sandbox holds ``value`` under ``name``; the host sees ``shown`` (default: the value)."""
        self._sandbox[name] = value
        self._host[name] = value if shown is _MISSING else shown
        self._pending.pop(name, None)

    def started(self) -> None:
        """A fresh sandbox received everything the host holds (its prelude binds them)."""
        self._sandbox = dict(self._host)
        self._pending.clear()

    def take_pending(self) -> dict[str, Any]:
        """Values to bind in the sandbox before the next feed (a feed binds them before any code).

        Functions cannot travel this way (an input is data); the executor puts helpers back itself.
        """
        pending, self._pending = self._pending, {}
        sent = {name: value for name, value in pending.items() if not callable(value)}
        self._sandbox.update(sent)
        return sent

    def requeue(self, values: dict[str, Any]) -> None:
        """A feed that carried ``values`` did not complete: send them again with the next one."""
        for name, value in values.items():
            self._pending.setdefault(name, value)
            self._sandbox.pop(name, None)

    @contextmanager
    def overlay(self, name: str, value: Any) -> Iterator[None]:
        """Let host code read a sandbox value by name while a feed runs (FINAL_VAR's lookup)."""
        self._overlay[name] = value
        try:
            yield
        finally:
            self._overlay.pop(name, None)
