"""The notebook face of rlm_kernel: the IPython extension, magics, inline driver, panels, status bar."""

from __future__ import annotations

from typing import Any

from .._config import RLM
from .._session import Session
from .magics import RLMMagics

_ATTR = "_rlm_kernel_magics"


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext rlm_kernel``: register the magics and the ``RLM`` settings (``%config RLM``)."""
    if getattr(ip, _ATTR, None) is not None:
        return
    settings = RLM(parent=ip)  # reads ipython_config.py and --RLM.x=… from the kernel's argv
    ip.configurables.append(settings)
    magics = RLMMagics(ip, settings)
    ip.register_magics(magics)
    setattr(ip, _ATTR, magics)


def unload_ipython_extension(ip: Any) -> None:
    """``%unload_ext rlm_kernel``: remove the magics and the settings; sessions are stopped."""
    magics: RLMMagics | None = getattr(ip, _ATTR, None)
    if magics is None:
        return
    for entry in magics.sessions:
        if entry.session.state in ("idle", "paused"):
            entry.session.stop()
    if magics.cells is not None:
        magics.cells.link.close()
    for kind, names in (("line", ("rlm",)), ("cell", ("rlm", "rlm_step"))):
        for name in names:
            ip.magics_manager.magics[kind].pop(name, None)
    ip.magics_manager.registry.pop(type(magics).__name__, None)
    ip.configurables[:] = [
        c for c in ip.configurables if c is not magics and c is not magics.settings
    ]
    setattr(ip, _ATTR, None)


def get_magics(ip: Any) -> RLMMagics | None:
    """The loaded RLMMagics of a shell (for front-end drivers and tests)."""
    return getattr(ip, _ATTR, None)


def current_session() -> Session | None:
    """The session the latest ``%rlm`` in this IPython shell started (``rlm_kernel.current_session``)."""
    from IPython.core.getipython import get_ipython

    shell = get_ipython()
    magics = get_magics(shell) if shell is not None else None
    entry = magics.sessions.current if magics is not None else None
    return entry.session if entry is not None else None
