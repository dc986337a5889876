"""``ast.parse`` that concurrent sessions can share on CPython 3.11.

CPython 3.11's AST constructor, the step that turns the parser's tree into ``ast`` objects, keeps its
recursion count in per-interpreter state rather than per thread, and checks it when it finishes
(python/cpython#106905). When two threads parse at once and the interpreter switches between them
mid-way (the cycle collector running a finalizer is enough), one of them gets ``SystemError: AST
constructor recursion depth mismatch`` for code that is fine. With 50 sessions on threads, that came
out of ``rlm_kernel.run`` about once in a thousand sessions (benchmarks/soak.py). 3.10, 3.12 and 3.13
did not show it under the same load.

So a parse that meets that error is done again: each parse starts the count afresh, so a repeat is
a clean parse. (Not a lock around the runtime's parses: under 50 threads one lock became a convoy,
and blocks waited on it past their time limit; nor would it cover parses that are not the runtime's,
the model's own ``ast.parse`` or IPython reading a cell.)
"""

from __future__ import annotations

import ast

_ATTEMPTS = 10  # a race needs another parse in flight at that moment: ten in a row do not happen


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse(source, filename)`` (mode ``exec``), raising only what the code's parse raises."""
    attempt = 1
    while True:
        try:
            return ast.parse(source, filename=filename, mode="exec")
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or attempt >= _ATTEMPTS:
                raise
            attempt += 1
