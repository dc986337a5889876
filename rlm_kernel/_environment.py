"""Where rlm_kernel reads the environment from, and where its files go by default.

Two sources, in order: the process environment, then the ``.env`` file that python-dotenv's
``find_dotenv(usecwd=True)`` finds from the working directory upwards. The file is parsed by python-dotenv
itself (``dotenv_values``), so inline comments, quotes, escapes and ``${VAR}`` interpolation mean what
they mean everywhere else people use .env files. Values are read, never written into ``os.environ``:
the model's code runs in this process, and a key loaded into the environment is a key it can print.

The settings (``_config``) and the secrets scrubber (``_secrets``) both read through ``dotenv()``, so
the scrubber always knows the secrets of the very file the settings were read from. This module
imports nothing from rlm_kernel, which keeps both of them free of an import circle.
"""

from __future__ import annotations

import io
import os
import re
import threading
from pathlib import Path

# python-dotenv and platformdirs are imported where they are used: `import rlm_kernel` should not
# pay for them (about 10 ms together) before a setting is read.

APP_NAME = "rlm_kernel"

# python-dotenv's interpolation syntax: ${NAME} or ${NAME:-default}. The names a file refers to decide
# whether a cached parse is still right after the process environment changed.
_REFERENCE = re.compile(r"\$\{([^}:]*)")

_lock = threading.Lock()
# One parse per file: (text, the referenced environment values) -> values. Keyed on the text rather
# than the modification time, whose granularity can hide a rewrite made in the same tick; reading a
# small file costs a few microseconds, parsing it a few hundred.
_cache: dict[Path, tuple[str, tuple[str | None, ...], dict[str, str]]] = {}


def dotenv_path() -> Path | None:
    """The ``.env`` file in effect: the first one from the working directory upwards, if any."""
    from dotenv import find_dotenv

    try:
        found = find_dotenv(usecwd=True)
    except OSError:  # the working directory was removed under us
        return None
    return Path(found) if found else None


def read_dotenv(path: Path) -> dict[str, str]:
    """The values in the ``.env`` file at ``path`` as python-dotenv reads them (``{}`` if unreadable).

    Names written without a value (a bare ``NAME`` line) are left out. Parses are cached, and a file
    whose text changed, or whose ``${VAR}`` references changed in the environment, is parsed again.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    references = tuple(os.environ.get(name) for name in _REFERENCE.findall(text))
    key = path.resolve()
    with _lock:
        cached = _cache.get(key)
    if cached is not None and cached[0] == text and cached[1] == references:
        return cached[2]
    from dotenv import dotenv_values

    parsed = dotenv_values(stream=io.StringIO(text), interpolate=True)
    values = {name: value for name, value in parsed.items() if value is not None}
    with _lock:
        _cache[key] = (text, references, values)
    return values


def dotenv() -> dict[str, str]:
    """The values of the ``.env`` file in effect (see ``dotenv_path``); ``{}`` when there is none.

    The returned dict is shared with the cache: read it, do not change it.
    """
    path = dotenv_path()
    return read_dotenv(path) if path is not None else {}


def env_value(name: str) -> str | None:
    """``name`` from the process environment, else from the ``.env`` file; None when empty or unset.

    Never written back to ``os.environ``.
    """
    value = os.environ.get(name)
    if value:
        return value
    return dotenv().get(name) or None


def user_data_dir() -> Path:
    """rlm_kernel's data directory by the platform's convention (platformdirs).

    Linux: ``$XDG_DATA_HOME/rlm_kernel`` (``~/.local/share/rlm_kernel``); macOS:
    ``~/Library/Application Support/rlm_kernel``; Windows: ``%LOCALAPPDATA%\\rlm_kernel``.
    """
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def user_cache_dir() -> Path:
    """rlm_kernel's cache directory by the platform's convention (platformdirs).

    Linux: ``$XDG_CACHE_HOME/rlm_kernel`` (``~/.cache/rlm_kernel``); macOS:
    ``~/Library/Caches/rlm_kernel``; Windows: ``%LOCALAPPDATA%\\rlm_kernel\\Cache``.
    """
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
