"""``HeadlessFrontend``: plays the JupyterLab extension's part for nbclient, so cells mode runs in CI
without a browser and the executed notebook contains the inserted iteration cells.

    client = NotebookClient(nb, kernel_name="rlm")
    HeadlessFrontend(client)
    client.execute()

nbclient runs ``for index, cell in enumerate(nb.cells)``, so a cell inserted right after the running
one runs next. A cell inserted with ``run=False`` (step mode) gets nbclient's ``skip-execution`` tag,
as a person would leave it unexecuted.
"""

from __future__ import annotations

import uuid
from typing import Any

import nbformat
from nbclient.util import run_sync

from .._notebook._protocol import COMM_TARGET, PROTOCOL_VERSION, validate
from .._version import __version__


class HeadlessFrontend:
    """Stand in for the JupyterLab extension on an nbclient ``NotebookClient``.

    ``HeadlessFrontend(client)`` hooks into ``client`` before ``client.execute()``: it opens the
    ``rlm_kernel`` comm and says ``hello``, inserts the cells the kernel asks for, marks and updates
    them, and keeps every kernel message in ``received`` and the latest ``status`` message in
    ``status``. A malformed message raises ``ProtocolError``.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.comm_id = uuid.uuid4().hex
        self.received: list[dict[str, Any]] = []
        self.status: dict[str, Any] | None = None
        self._current = 0
        self._opened: set[str] = set()
        self._gone = False  # detach(): the page is gone, the kernel's messages reach nobody
        self._replaces: str | None = None
        client.on_notebook_start = self._start
        client.on_cell_start = self._cell_start
        client.comm_open_handlers[COMM_TARGET] = self._adopt

    @property
    def session(self) -> str:
        """The client session id the kernel knows this frontend by (``for_session``)."""
        return str(self.client.kc.session.session)

    def _hello(self) -> dict[str, Any]:
        hello = {
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "frontend": "nbclient",
            "version": __version__,
            "session": self.session,
        }
        if self._replaces is not None:
            hello["replaces"] = self._replaces
        return hello

    def detach(self) -> None:
        """The page goes away (a reload under way, a closed tab): kernel messages reach nobody."""
        self._gone = True

    def reload(self, saved: int, *, same_tab: bool = True) -> None:
        """Reload the page: the notebook reverts to its first ``saved`` cells (its last save), the
        page gets a new client session, opens a new comm and says hello (naming the client it
        replaces when ``same_tab``, as the extension does from the tab's sessionStorage)."""
        old = self.session
        del self.client.nb.cells[saved:]
        self._current = saved - 1
        self.client.kc.session.session = uuid.uuid4().hex
        self._replaces = old if same_tab else None
        self._gone = False
        self.comm_id = uuid.uuid4().hex
        self.client.comm_objects[self.comm_id] = self
        kc = self.client.kc
        hello = kc.session.msg(
            "comm_open",
            {"comm_id": self.comm_id, "target_name": COMM_TARGET, "data": self._hello()},
        )
        kc.shell_channel.send(hello)
        # nbclient reads IOPub only for the cell it runs: what answers the hello is read here.
        get = run_sync(kc.iopub_channel.get_msg)
        while True:
            msg = get(timeout=30)
            if msg["parent_header"].get("msg_id") != hello["header"]["msg_id"]:
                continue
            if msg["msg_type"] == "comm_msg" and msg["content"]["comm_id"] == self.comm_id:
                self.handle_msg(msg)
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return

    def _start(self, notebook: Any = None, **_: Any) -> None:
        # Open our own comm, as the extension does on attach; the RLM kernel has the target at start.
        # A plain ipykernel gets it only at %load_ext, and answers this with an error we can ignore:
        # the extension announces itself then, and _adopt replies.
        self.client.comm_objects[self.comm_id] = self
        self._send(
            "comm_open",
            {"comm_id": self.comm_id, "target_name": COMM_TARGET, "data": self._hello()},
        )

    def _adopt(self, msg: dict[str, Any]) -> HeadlessFrontend:
        comm_id = msg["content"]["comm_id"]
        self._opened.add(comm_id)
        self._send("comm_msg", {"comm_id": comm_id, "data": self._hello()})
        return self

    def _send(self, msg_type: str, content: dict[str, Any]) -> None:
        kc = self.client.kc
        kc.shell_channel.send(kc.session.msg(msg_type, content))

    def control(self, action: str, session: str) -> None:
        """Press a toolbar button (pause, resume, step, stop) for ``session``."""
        data = {"type": "control", "action": action, "session": session}
        self._send("comm_msg", {"comm_id": self.comm_id, "data": validate(data)})

    def _cell_start(self, cell: Any = None, cell_index: int = 0, **_: Any) -> None:
        self._current = cell_index

    def handle_msg(self, msg: dict[str, Any]) -> None:
        """Apply one comm message from the kernel (nbclient calls this for the comm it holds)."""
        validate(msg["content"]["data"])
        data: dict[str, Any] = dict(msg["content"]["data"])
        if self._gone or data.get("for_session") not in (None, self.session):
            return
        self.received.append(data)
        kind = data["type"]
        if kind == "insert_cell":
            self._insert(data)
        elif kind == "mark_stale":
            self._mark_stale(data)
        elif kind == "update_cell":
            for cell in self._cells_of(
                data["session"], data["iteration"], data.get("role", "step")
            ):
                cell.metadata["rlm"].update(data["metadata"])
        elif kind == "status":
            self.status = data
        elif kind == "sync":
            self._sync(data)

    def _sync(self, data: dict[str, Any]) -> None:
        """Insert the session's cells this notebook lacks, each after the one before it (the first
        after the ``%rlm`` cell, else at the end), unrun, with the outputs the kernel recorded."""
        cells = self.client.nb.cells
        ids = [c.get("id") for c in cells]
        anchor = ids.index(data["start_cell_id"]) if data.get("start_cell_id") in ids else None
        for item in data["cells"]:
            ids = [c.get("id") for c in cells]
            if item["cell_id"] in ids:
                anchor = ids.index(item["cell_id"])
                continue
            index = len(cells) if anchor is None else anchor + 1
            metadata = {"rlm": dict(item["metadata"]["rlm"])}
            if item["cell_type"] == "markdown":
                cell = nbformat.v4.new_markdown_cell(item["source"], metadata=metadata)
            else:
                cell = nbformat.v4.new_code_cell(item["source"], metadata=metadata)
                cell.metadata["tags"] = ["skip-execution"]
                cell.outputs = [nbformat.from_dict(o) for o in item["outputs"]]
            cell.id = item["cell_id"]
            cells.insert(index, cell)
            anchor = index

    def _insert(self, data: dict[str, Any]) -> None:
        cells = self.client.nb.cells
        existing = next(
            (c for c in cells if data.get("cell_id") and c.get("id") == data["cell_id"]), None
        )
        if existing is not None:
            # A re-delivery of a cell this notebook has: the extension runs it. nbclient only runs
            # cells ahead of the current one, so one already passed is run again as a copy below.
            if data["run"]:
                tags = [t for t in existing.metadata.get("tags", []) if t != "skip-execution"]
                if cells.index(existing) > self._current:
                    existing.metadata["tags"] = tags
                else:
                    again = nbformat.v4.new_code_cell(
                        existing.source, metadata={**existing.metadata, "tags": tags}
                    )
                    cells.insert(self._current + 1, again)
            return
        index = self._current + 1
        if data.get("after_cell_id"):
            ids = [c.get("id") for c in cells]
            if data["after_cell_id"] in ids:
                index = ids.index(data["after_cell_id"]) + 1
        # Keep several inserts for one request in order: after any cell already inserted for it.
        while (
            index < len(cells)
            and cells[index].metadata.get("rlm", {}).get("request") == data["request_id"]
        ):
            index += 1
        metadata = {"rlm": {**data["metadata"]["rlm"], "request": data["request_id"]}}
        if data["cell_type"] == "markdown":
            cell = nbformat.v4.new_markdown_cell(data["source"], metadata=metadata)
        else:
            cell = nbformat.v4.new_code_cell(data["source"], metadata=metadata)
            if not data["run"]:
                cell.metadata["tags"] = ["skip-execution"]
        if data.get("cell_id"):
            cell.id = data["cell_id"]
        cells.insert(index, cell)

    def _mark_stale(self, data: dict[str, Any]) -> None:
        roles = ("step", "reasoning", "answer")
        cells = self.client.nb.cells
        # The answer the re-run step (from_iteration - 1) gave is superseded as well.
        stale = [
            c
            for c in cells
            if c.metadata.get("rlm", {}).get("session") == data["session"]
            and c.metadata["rlm"].get("role") in roles
            and c.metadata["rlm"].get("iteration", 0)
            >= data["from_iteration"] - (c.metadata["rlm"]["role"] == "answer")
        ]
        for cell in stale:
            # A superseded answer goes, as the extension removes it; removing a cell before the
            # running one would shift nbclient's enumeration.
            answer = cell.metadata["rlm"]["role"] == "answer"
            if (data["remove"] or answer) and cells.index(cell) > self._current:
                cells.remove(cell)
            else:
                cell.metadata["rlm"]["stale"] = True
                tags = cell.metadata.setdefault("tags", [])
                if "skip-execution" not in tags:
                    tags.append("skip-execution")

    def _cells_of(self, session: str, iteration: int, role: str) -> list[Any]:
        return [
            c
            for c in self.client.nb.cells
            if c.metadata.get("rlm", {}).get("session") == session
            and c.metadata["rlm"].get("iteration") == iteration
            and c.metadata["rlm"].get("role") == role
        ]
