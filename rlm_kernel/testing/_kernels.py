"""Real kernels for tests: one started with jupyter_client as a front end starts it, what an execute
request produced on IOPub, and the isolated environment they run in."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Any

from rlm_kernel.testing._helpers import ENDPOINT_VARIABLES, settings
from rlm_kernel.testing._server import ScriptedServer


class KernelRun:
    """What one execute request produced on IOPub."""

    def __init__(self, messages: list[dict[str, Any]], reply: dict[str, Any]) -> None:
        self.messages = messages
        self.reply = reply

    def _of(self, kind: str) -> list[dict[str, Any]]:
        return [m["content"] for m in self.messages if m["msg_type"] == kind]

    @property
    def stdout(self) -> str:
        """What the cell printed to stdout."""
        return "".join(c["text"] for c in self._of("stream") if c["name"] == "stdout")

    @property
    def stderr(self) -> str:
        """What the cell printed to stderr."""
        return "".join(c["text"] for c in self._of("stream") if c["name"] == "stderr")

    @property
    def html(self) -> str:
        """The HTML of every display and result, joined."""
        shown = (
            self._of("display_data") + self._of("update_display_data") + self._of("execute_result")
        )
        return "\n".join(c["data"].get("text/html", "") for c in shown)

    @property
    def text(self) -> str:
        """The HTML outputs as a person reads them: tags dropped, entities decoded."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.html))

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The error messages (tracebacks) the cell raised."""
        return self._of("error")


class Kernel:
    """A real kernel driven over jupyter_client, as a front end would."""

    def __init__(self, kernel_name: str, env: dict[str, str], cwd: Path) -> None:
        from jupyter_client.manager import KernelManager

        self.manager = KernelManager(kernel_name=kernel_name, transport="ipc")
        self.manager.start_kernel(env=env, cwd=str(cwd))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 60) -> KernelRun:
        """Execute ``code`` and collect what it produced."""
        messages: list[dict[str, Any]] = []
        reply = self.client.execute_interactive(
            code, timeout=timeout, output_hook=messages.append, allow_stdin=False
        )
        return KernelRun(messages, reply)

    def shutdown(self) -> None:
        """Stop the channels and the kernel."""
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def kernel_env(tmp_path: Path) -> dict[str, str]:
    """This environment without endpoints or keys, with Jupyter's and rlm_kernel's data under
    ``tmp_path``: what a kernel under test is started with."""
    env = {k: v for k, v in os.environ.items() if k not in ENDPOINT_VARIABLES}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    return env


def configure(k: Kernel, server: ScriptedServer, **overrides: Any) -> None:
    """Point the kernel's RLM settings at ``server`` through %config."""
    lines = [
        f"%config RLM.{name} = {value!r}" for name, value in settings(server, **overrides).items()
    ]
    run = k.run("\n".join(lines))
    assert not run.errors, run.errors
