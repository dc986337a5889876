"""Keep the runtime's standard library working whatever the model's code rebinds in it.

Code in the namespace executor runs in the host process, so ``import json; json.dumps = None`` would
break the trajectory writer (a raw ``TypeError`` out of ``run()``), and ``time.sleep = None`` or
``sys.stdout = None`` the loop itself. Before each block the public attributes of the modules the
runtime relies on are noted; after it, any that were replaced or deleted are put back and their names
returned, so the model is told in the step's notes (as for its helpers, ``_namespace.Helpers.restore``).
Names the code *added* are left alone. The monty sandbox needs none of this: its modules are its own.

This guards against accidents and careless code, not an adversary: code that means harm has the
kernel's powers (``ctypes``, ``gc``, the modules' private state). The sandbox is the answer there.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

# Modules whose public attributes are restored (only those already imported are looked at).
_MODULES = (
    "json",
    "os",
    "os.path",
    "re",
    "time",
    "threading",
    "io",
    "traceback",
    "linecache",
    "ast",
    "contextlib",
    "contextvars",
    "signal",
    "ctypes",
    "uuid",
    "datetime",
    "math",
    "copy",
    "functools",
    "itertools",
    "collections",
    "operator",
    "types",
    "typing",
    "dataclasses",
    "inspect",
    "weakref",
    "pathlib",
    "tempfile",
    "shutil",
    "difflib",
    "hashlib",
    "base64",
    "random",
    "string",
    "textwrap",
    "codecs",
    "asyncio",
    "concurrent.futures",
    "queue",
    "selectors",
    "socket",
    "ssl",
    "http.client",
    "urllib.parse",
    "gc",
    "atexit",
    "errno",
    "struct",
    "zlib",
    "unicodedata",
    "html",
)
# Modules where only some names are the runtime's: the rest is state that other threads change on
# purpose (``warnings.catch_warnings`` rebinds ``filters`` and ``showwarning``; the capture proxy
# is put on and taken off ``sys.stdout`` by whichever session starts first and ends last).
_NAMED: dict[str, tuple[str, ...]] = {
    "sys": (
        "stdin",
        "modules",
        "path",
        "meta_path",
        "path_hooks",
        "excepthook",
        "exit",
        "exc_info",
        "getrecursionlimit",
        "setrecursionlimit",
        "settrace",
        "gettrace",
        "_getframe",
        "_current_frames",
    ),
    "warnings": ("warn", "warn_explicit", "simplefilter", "filterwarnings", "catch_warnings"),
    "builtins": ("__import__", "__build_class__"),  # with every public builtin, below
}
_MISSING = object()


def _names(name: str, module: ModuleType) -> dict[str, Any]:
    values = vars(module)
    if name == "builtins":
        picked = {k: v for k, v in values.items() if not k.startswith("_")}
        picked.update({k: values[k] for k in _NAMED["builtins"] if k in values})
        return picked
    if name in _NAMED:
        return {k: values[k] for k in _NAMED[name] if k in values}
    return {k: v for k, v in values.items() if not k.startswith("_")}


def snapshot() -> dict[str, dict[str, Any]]:
    """The attributes to keep, by module name, as they are now."""
    taken: dict[str, dict[str, Any]] = {}
    for name in ("builtins", *_MODULES, *(n for n in _NAMED if n != "builtins")):
        module = sys.modules.get(name)
        if isinstance(module, ModuleType):
            taken[name] = _names(name, module)
    return taken


def restore(
    taken: dict[str, dict[str, Any]], streams: dict[str, object], *, dry_run: bool = False
) -> list[str]:
    """Put back what changed since ``taken`` (and ``sys.stdout``/``sys.stderr`` if they are no
    longer ``streams``'s); returns the dotted names put back (with ``dry_run``, that would be)."""
    put_back: list[str] = []
    for name, values in taken.items():
        module = sys.modules.get(name)
        if not isinstance(module, ModuleType):
            continue
        current = vars(module)
        for key, value in values.items():
            if current.get(key, _MISSING) is not value:
                if not dry_run:
                    setattr(module, key, value)
                put_back.append(f"{name}.{key}")
    for key, stream in streams.items():
        if getattr(sys, key, None) is not stream:
            if not dry_run:
                setattr(sys, key, stream)
            put_back.append(f"sys.{key}")
    return put_back


# Blocks that run at once (sessions on threads) put back what the first of them found: a block's own
# snapshot, taken while another block's code had ``json.dumps = None``, holds that None, and putting
# it back would leave it rebound for good once the other block had been restored (the soak's
# json-replaced sessions did that). A name is put back to that shared snapshot's value whenever it
# differs at a block's end, and the block is told only of names that changed while it ran. A name
# another running block replaced is then put back early, when the first of them ends.
_lock = threading.Lock()
_running = 0
_shared: tuple[dict[str, dict[str, Any]], dict[str, object]] | None = None


def _streams() -> dict[str, object]:
    return {key: getattr(sys, key) for key in ("stdout", "stderr")}


@contextmanager
def protected(put_back: list[str]) -> Iterator[None]:
    """Restore the runtime's modules when the ``with`` block ends; fill ``put_back`` with the names."""
    global _running, _shared
    own = snapshot(), _streams()
    with _lock:
        if _shared is None:
            _shared = own
        _running += 1
        taken, streams = _shared
    try:
        yield
    finally:
        with _lock:
            changed = set(restore(own[0], own[1], dry_run=True))
            put_back.extend(n for n in restore(taken, streams) if n in changed)
            _running -= 1
            if not _running:
                _shared = None


def note(put_back: list[str]) -> str:
    """What the model is told about the names it replaced."""
    shown = ", ".join(put_back[:8]) + (
        f" and {len(put_back) - 8} more" if len(put_back) > 8 else ""
    )
    return (
        f"Your code replaced {shown}, which the runtime relies on; the original "
        f"{'was' if len(put_back) == 1 else 'were'} put back. Do not rebind standard-library names: "
        "use your own variables."
    )
