"""The kernel's end of the comm with front ends that can insert and run cells (the JupyterLab
extension, or ``rlm_kernel.testing.HeadlessFrontend`` for nbclient).

Presence is decided per execute request: the extension tags every request with
``metadata.rlm_frontend``, and a front end that said ``hello`` from the same client session counts too.
A stale hello from another tab never does, so two tabs on one kernel never both insert cells.

Comm handlers may run on a subshell thread while a cell runs (JupyterLab >= 4.4): they only touch
state under the lock and hand ``control`` actions to a callback that sets flags.

A page reload gives the tab a new client session while a step cell may still be running for the old
one: what that cell sends goes to a page that is gone. The extension's ``hello`` then names the client
it ``replaces`` (kept in the tab's sessionStorage, so only that tab claims it): the kernel addresses the
old client's later messages to the new one. Every ``hello`` (a reload, a second page) is handed to
``on_hello``: the cells driver re-syncs the page from its record of the sessions (``sync``) and runs a
step that waits for a page that is gone.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import comm

from ..errors import ProtocolError
from ._protocol import COMM_TARGET, PROTOCOL_VERSION, validate

ControlHandler = Callable[[str, str], None]  # (action, session id)
# (client session, the client it replaces or None, a function that sends to that page)
HelloHandler = Callable[[str, "str | None", Callable[[dict[str, Any]], None]], None]


class FrontendLink:
    def __init__(self, kernel: Any, on_control: ControlHandler) -> None:
        self._kernel = kernel
        self._on_control = on_control
        self._lock = threading.Lock()
        self._comms: dict[str, Any] = {}  # client session -> its newest comm
        self._replaced: dict[str, str] = {}  # client session -> the one that replaced it (reload)
        self.on_hello: HelloHandler | None = None  # set by the cells driver
        self.errors: list[str] = []
        comm.get_comm_manager().register_target(COMM_TARGET, self._opened)
        if (kernel.get_parent() or {}).get("header"):
            # Loaded by %load_ext from a cell: front ends that attached before the target existed
            # learn of it now, and say hello back.
            self._announce()

    def _announce(self) -> Any:
        opened = comm.create_comm(
            target_name=COMM_TARGET, data={"type": "announce", "protocol": PROTOCOL_VERSION}
        )
        opened.on_msg(lambda msg: self._received(opened, msg))
        return opened

    def close(self) -> None:
        manager = comm.get_comm_manager()
        manager.unregister_target(COMM_TARGET, self._opened)
        with self._lock:
            comms, self._comms = list(self._comms.values()), {}
        for c in comms:
            c.close()

    # --- presence ------------------------------------------------------------------------------
    def requester(self) -> str | None:
        """The client session of the running request if it comes from a cell-inserting front end."""
        parent = self._kernel.get_parent() or {}
        client = parent.get("header", {}).get("session")
        if not client:
            return None
        tagged = bool(parent.get("metadata", {}).get("rlm_frontend"))
        with self._lock:
            known = client in self._comms
        return client if tagged or known else None

    def cell_id(self) -> str | None:
        """JupyterLab's id of the cell being run (nbclient sends none)."""
        parent = self._kernel.get_parent() or {}
        value = parent.get("metadata", {}).get("cellId")
        return value if isinstance(value, str) else None

    # --- sending -------------------------------------------------------------------------------
    def send(self, client: str, message: dict[str, Any]) -> None:
        """Send to ``client``'s front end, inside the running cell (so nbclient sees it too)."""
        validate({**message})
        with self._lock:
            client = self._current(client)
            target = self._comms.get(client)
        if target is None:
            # The front end has not opened a comm yet (Run All races its hello): open one.
            target = self._announce()
            with self._lock:
                self._comms[client] = target
        target.send({**message, "for_session": client})

    def others(self, client: str | None) -> bool:
        """Whether a page other than ``client``'s has said hello."""
        with self._lock:
            mine = self._current(client) if client is not None else None
            return any(c != mine for c in self._comms)

    def send_others(self, client: str | None, message: dict[str, Any]) -> None:
        """Send ``message`` to every other page that said hello (a second page follows the
        session's true state too); a page that is gone never answers, and costs nothing."""
        validate({**message})
        with self._lock:
            mine = self._current(client) if client is not None else None
            others = [(c, comm) for c, comm in self._comms.items() if c != mine]
        for other, target in others:
            target.send({**message, "for_session": other})

    def current(self, client: str) -> str:
        """The client now standing for ``client`` (itself unless its page was reloaded)."""
        with self._lock:
            return self._current(client)

    def _current(self, client: str) -> str:
        """``current``, with the lock held."""
        seen = {client}
        while client in self._replaced and self._replaced[client] not in seen:
            client = self._replaced[client]
            seen.add(client)
        return client

    @staticmethod
    def request_id() -> str:
        return uuid.uuid4().hex[:12]

    # --- receiving ------------------------------------------------------------------------------
    def _opened(self, c: Any, open_msg: dict[str, Any]) -> None:
        c.on_msg(lambda msg: self._received(c, msg))
        self._handle(c, open_msg.get("content", {}).get("data") or {})

    def _received(self, c: Any, msg: dict[str, Any]) -> None:
        self._handle(c, msg.get("content", {}).get("data") or {})

    def _handle(self, c: Any, data: dict[str, Any]) -> None:
        try:
            message = validate(data)
        except ProtocolError as exc:
            with self._lock:
                self.errors.append(str(exc))
            return
        if message["type"] == "hello":
            client = message["session"]
            replaces = data.get("replaces")
            replaced: str | None = None
            with self._lock:
                self._comms[client] = c
                if isinstance(replaces, str) and replaces and replaces != client:
                    # The same tab after a reload: the old client's messages come here now.
                    self._replaced[replaces] = client
                    self._replaced.pop(client, None)
                    self._comms.pop(replaces, None)
                    replaced = replaces
            if self.on_hello is not None:

                def send(out: dict[str, Any]) -> None:
                    validate({**out})
                    c.send({**out, "for_session": client})

                self.on_hello(client, replaced, send)
        elif message["type"] == "control":
            self._on_control(message["action"], message["session"])
