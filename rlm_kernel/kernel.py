"""``RLMKernel``: an IPython kernel with rlm_kernel preloaded ("RLM (Python 3)" in the launcher)."""

from __future__ import annotations

from typing import Any

from ipykernel.ipkernel import IPythonKernel

from ._notebook._protocol import PROTOCOL_VERSION
from ._version import __version__


class RLMKernel(IPythonKernel):
    """The IPython kernel with ``%load_ext rlm_kernel`` done at start, so the ``rlm_kernel`` comm
    target exists before any cell runs; ``python -m rlm_kernel`` launches it."""

    implementation = "rlm_kernel"
    implementation_version = __version__
    banner = "RLM (Python 3): IPython with the %rlm magics preloaded"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        assert self.shell is not None
        self.shell.extension_manager.load_extension("rlm_kernel")

    @property
    def kernel_info(self) -> dict[str, Any]:
        """IPython's ``kernel_info``, plus ``rlm: {version, protocol}`` for the extension."""
        info: dict[str, Any] = dict(super().kernel_info)
        info["rlm"] = {"version": __version__, "protocol": PROTOCOL_VERSION}
        return info
