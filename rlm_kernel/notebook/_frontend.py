"""The kernel's end of the comm with front ends that can insert and run cells (the JupyterLab
extension, or ``rlm_kernel.testing.HeadlessFrontend`` for nbclient).

Presence is decided per execute request: the extension tags every request with
``metadata.rlm_frontend``, and a front end that said ``hello`` from the same client session counts too.
A stale hello from another tab never does, so two tabs on one kernel never both insert cells.

Comm handlers may run on a subshell thread while a cell runs (JupyterLab >= 4.4): they only touch
state under the lock and hand ``control`` actions to a callback that sets flags.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import comm

from ._protocol import COMM_TARGET, PROTOCOL_VERSION, ProtocolError, validate

ControlHandler = Callable[[str, str], None]  # (action, session id)


class FrontendLink:
    def __init__(self, kernel: Any, on_control: ControlHandler) -> None:
        self._kernel = kernel
        self._on_control = on_control
        self._lock = threading.Lock()
        self._comms: dict[str, Any] = {}  # client session -> its newest comm
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
            target = self._comms.get(client)
        if target is None:
            # The front end has not opened a comm yet (Run All races its hello): open one.
            target = self._announce()
            with self._lock:
                self._comms[client] = target
        target.send({**message, "for_session": client})

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
            with self._lock:
                self._comms[message["session"]] = c
        elif message["type"] == "control":
            self._on_control(message["action"], message["session"])
