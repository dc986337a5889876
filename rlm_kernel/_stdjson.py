"""The runtime's own JSON functions: the standard library's, bound when ``rlm_kernel`` is imported.

Code in the namespace executor shares the host process, so ``import json; json.dumps = None`` (or
``json.loads``, ``json.JSONEncoder``, ``json.JSONDecodeError`` rebound) changes the ``json`` module every
thread sees. ``executors/_protect.py`` puts the module back when that block ends, but until then every
other session in the process is still working: writing its trajectory records, building its requests,
reading its answers, and the in-process test server answering them. Those must not break because one
session's code is careless, so the runtime never looks ``json``'s names up at call time: it calls these,
which hold the original functions and classes. The encoder and decoder classes are passed explicitly
(``cls=``) because ``json.dumps``/``json.loads`` otherwise look ``JSONEncoder``/``JSONDecoder`` and their
cached default instances up in the module at each call.

Runtime modules import this as ``from . import _stdjson as json`` (tests/test_concurrent_hostile.py checks
that none imports the standard ``json`` itself). Like ``_protect``, this guards against accidents, not an
adversary: code that means harm can reach ``json.encoder``'s internals or the interpreter itself.
Third-party libraries are not covered: the openai SDK would look ``json.dumps`` up to build each request
body, so ``models/openai.py`` hands it the JSON text made here, but it decodes answers with ``json.loads``
looked up at call time (``OpenAIClient._body`` says so).
"""

from __future__ import annotations

import json as _json
from collections.abc import Callable
from typing import Any

# Bound once, at import, before any model code can run.
_dumps = _json.dumps
_loads = _json.loads
_Encoder = _json.JSONEncoder
_Decoder = _json.JSONDecoder
JSONDecodeError = _json.JSONDecodeError


def dumps(
    obj: Any,
    *,
    ensure_ascii: bool = True,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
    allow_nan: bool = True,
) -> str:
    """``json.dumps(obj, ...)`` as the standard library defines it, whatever ``json`` holds now."""
    return _dumps(
        obj,
        cls=_Encoder,
        ensure_ascii=ensure_ascii,
        indent=indent,
        separators=separators,
        sort_keys=sort_keys,
        default=default,
        allow_nan=allow_nan,
    )


def loads(text: str | bytes | bytearray) -> Any:
    """``json.loads(text)`` as the standard library defines it, whatever ``json`` holds now."""
    return _loads(text, cls=_Decoder)
