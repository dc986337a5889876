"""The fast tier runs in this process only: a test here that opens a network connection or starts a
process fails, so a slow dependency cannot creep in unnoticed. Models are ``ScriptedClient``s."""

from __future__ import annotations

import socket
import subprocess
from typing import Any, NoReturn

import pytest


@pytest.fixture(autouse=True)
def in_process_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No connections and no child processes (the loopback-server and kernel tiers have those)."""

    def refuse(what: str) -> Any:
        def refused(*args: Any, **kwargs: Any) -> NoReturn:
            raise AssertionError(f"tests/unit runs in process: {what} is not allowed here")

        return refused

    monkeypatch.setattr(socket.socket, "connect", refuse("a network connection"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("a network connection"))
    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse("a child process"))
