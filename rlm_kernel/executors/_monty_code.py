"""The sandbox's side of the monty executor: the code it feeds besides the model's, the import policy,
the prompt note, and how monty's errors are put to the model.

Helpers live on the host and reach the sandbox as the functions of one external module, ``rlm``; a
hidden prelude imports them under their usual names once, so they persist like any other import.
``FINAL_VAR`` is the exception: it must read a *sandbox* variable by name, so it is a small function
defined in the sandbox that hands the value to the host. ``__rlm__`` keeps the originals, which lets
one cheap feed after each block find (and undo) helpers the model overwrote. It also keeps the host
module and the builtins the bookkeeping feeds call (``type``, ``len``, ``zip``, ``locals``: names a
model may well rebind), behind a per-session token: a ``__rlm__`` or ``__rlm_host__`` the code rebound
is found and put back after the block (``BOOKKEEPING``), so ``FINAL_VAR`` and the sync go on working.
(A rebuilt ``__rlm__`` takes those builtins as the module sees them then: code that rebinds ``__rlm__``
after shadowing one of them gets the old outcome, the block undone from the last dump.)
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence

from .. import _astparse
from ._monty_pool import SandboxLimits

HOST_MODULE = "rlm"
# The helpers _namespace.Helpers binds besides the data (P, context, answer); any other callable is a
# user tool. tests/unit/test_repl_helpers.py holds this equal to _namespace.RESERVED.
HELPERS = frozenset(
    {
        "llm_query",
        "llm_batch",
        "llm_query_batched",
        "rlm_query",
        "rlm_query_batched",
        "FINAL",
        "FINAL_VAR",
        "SUBMIT",
        "SHOW_VARS",
    }
)
ANSWER = "answer"
# Helpers that are defined inside the sandbox rather than imported from the host module.
SHIMMED = frozenset({"FINAL_VAR"})

# Modules monty 1.4 implements that are useful for text work. ``os``, ``sys`` and ``pathlib`` exist in
# monty but only as inert stand-ins (no environment, no files); refusing them up front gives the model
# a clear message instead of a confusing half-module.
ALLOWED_MODULES = (
    "asyncio",
    "base64",
    "binascii",
    "bisect",
    "collections",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "functools",
    "hashlib",
    "itertools",
    "json",
    "math",
    "random",
    "re",
    "time",
    "tomllib",
    "typing",
    "unicodedata",
)

_FINAL_VAR_SHIM = '''
def FINAL_VAR(__rlm_name__):
    """Submit the variable called `name` (a string) as the final answer."""
    __rlm_key__ = __rlm_name__.strip().strip("'\\"") if isinstance(__rlm_name__, str) else ""
    if __rlm_key__.isidentifier() and __rlm_key__ not in ("None", "True", "False"):
        try:
            __rlm_value__ = eval(__rlm_key__)
        except NameError:
            return __rlm_host__.FINAL_VAR(__rlm_name__)
        return __rlm_host__.FINAL_VAR(__rlm_name__, __rlm_value__)
    return __rlm_host__.FINAL_VAR(__rlm_name__)
'''

_INPUT_NAME = re.compile(r"<python-input-\d+>")
# The first iterable of a comprehension is evaluated in the enclosing (module) scope.
VARS_KEYWORD = "__rlm_vars__"
_VARS_ARGUMENT = f"{VARS_KEYWORD}=[(__k, type(__v).__name__) for __k, __v in locals().items()]"


def prepare(code: str) -> tuple[str, str | None]:
    """The code to feed, and the first module it imports that the sandbox does not offer (if any)."""
    try:
        tree = _astparse.parse(code)
    # Monty's dialect is newer than the host's parser, and its parser reports code too deeply nested
    # for the host's (MemoryError, RecursionError) as the model's SyntaxError: let monty judge.
    except (SyntaxError, MemoryError, RecursionError):
        return code, None
    blocked = _blocked_import(tree)
    if blocked is not None:
        return code, blocked
    return _pass_variables_to_show_vars(code, tree), None


def _blocked_import(tree: ast.AST) -> str | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        for name in names:
            root = name.split(".")[0]
            if root not in ALLOWED_MODULES:
                return root
    return None


class _ModuleLevelShowVars(ast.NodeVisitor):
    """``SHOW_VARS()`` calls made at module level (not inside a function, class or comprehension)."""

    def __init__(self) -> None:
        self.calls: list[ast.Call] = []

    def visit_Call(self, node: ast.Call) -> None:
        if (
            isinstance(node.func, ast.Name)
            and node.func.id == "SHOW_VARS"
            and not node.args
            and not node.keywords
        ):
            self.calls.append(node)
        self.generic_visit(node)

    def _skip(self, node: ast.AST) -> None:
        return None

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = _skip
    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _skip


def _pass_variables_to_show_vars(code: str, tree: ast.AST) -> str:
    """Make module-level ``SHOW_VARS()`` hand over the current variables.

    A host function cannot look into the sandbox while the block runs, and no sandbox function can
    see module globals (there is no ``globals()``), so the call site passes them: without this,
    ``x = 1; SHOW_VARS()`` could only list the variables from before the block.
    """
    if "SHOW_VARS" not in code:
        return code
    finder = _ModuleLevelShowVars()
    finder.visit(tree)
    lines = code.splitlines(keepends=True)
    ends = sorted(
        ((c.end_lineno, c.end_col_offset) for c in finder.calls if c.end_lineno is not None),
        reverse=True,
    )
    for line_no, col in ends:
        if col is None or not 1 <= line_no <= len(lines):
            return code
        raw = lines[line_no - 1].encode()  # ast offsets count UTF-8 bytes
        if raw[col - 1 : col] != b")":
            return code  # the lines do not match the parser's view: leave the code alone
        lines[line_no - 1] = (raw[: col - 1] + _VARS_ARGUMENT.encode() + raw[col - 1 :]).decode()
    return "".join(lines)


def import_error(module: str) -> str:
    return (
        f"ImportError: module {module!r} is not available in the sandbox (RLM.executor = 'monty'), "
        f"so nothing in this block ran. Modules you can import: {', '.join(ALLOWED_MODULES)}."
    )


# The sandbox's own names: the model's code must not rebind them (it is told when it does).
BOOKKEEPING = ("__rlm__", "__rlm_host__")
# ``__rlm__`` is (token, the host module, type, len, zip, locals, *the guarded originals).
_KEPT_BUILTINS = ("type", "len", "zip", "locals")
_FIRST_GUARDED = 2 + len(_KEPT_BUILTINS)


def prelude(
    imported: Sequence[str],
    guarded: Sequence[str],
    aliases: Mapping[str, str] | None = None,
    token: str = "",
) -> str:
    """Import the host helpers, define the shims, bind each alias to the input it names (``context``
    is ``P``: sent once, not twice), and remember the originals of ``guarded`` under ``token``."""
    lines = [f"import {HOST_MODULE} as __rlm_host__"]
    lines += [f"{alias} = {name}" for alias, name in (aliases or {}).items()]
    if imported:
        lines.append(f"from {HOST_MODULE} import {', '.join(imported)}")
    if "FINAL_VAR" in guarded:
        lines.append(_FINAL_VAR_SHIM)
    kept = "".join(f"{name}, " for name in (*_KEPT_BUILTINS, *guarded))
    lines.append(f"__rlm__ = ({token!r}, __rlm_host__, {kept})")
    return "\n".join(lines)


def sync_snippet(guarded: Sequence[str], hidden: Sequence[str], token: str = "") -> str:
    """The value of the last line: None when ``__rlm__`` itself was rebound, else [whether
    ``__rlm_host__`` is intact, overwritten helper names, the answer dict, (name, type) of each
    variable]. It calls only the builtins kept in ``__rlm__``, which the code cannot have rebound."""
    names = "(" + "".join(f"{n!r}, " for n in guarded) + ")"
    current = "(" + "".join(f"{n}, " for n in guarded) + ")"
    skip = "(" + "".join(f"{n!r}, " for n in hidden) + ")"
    type_, _len, zip_, locals_ = (f"__rlm__[{2 + i}]" for i in range(len(_KEPT_BUILTINS)))
    return (
        "try:\n"
        f"    __rlm_ok__ = __rlm__[0] == {token!r}\n"
        "except:\n"
        "    __rlm_ok__ = False\n"
        "if __rlm_ok__:\n"
        f"    __rlm_sync__ = [__rlm_host__ is __rlm__[1], [__n for __n, __a, __b in {zip_}({names}, "
        f"{current}, __rlm__[{_FIRST_GUARDED}:]) if __a is not __b], {ANSWER}, "
        f"[(__k, {type_}(__v).__name__) for __k, __v in {locals_}().items() "
        f"if not __k.startswith('_') and __k not in {skip}]]\n"
        "else:\n"
        "    __rlm_sync__ = None\n"
        "__rlm_sync__"
    )


def rebind_snippet(names: Sequence[str], guarded: Sequence[str], host: bool = False) -> str:
    """Put the originals of ``names`` back (``del`` does not exist in the sandbox; rebinding does),
    and the host module when ``host``."""
    lines = [f"{name} = __rlm__[{_FIRST_GUARDED + guarded.index(name)}]" for name in names]
    if host:
        lines.append("__rlm_host__ = __rlm__[1]")
    return "\n".join(lines)


def traceback_text(text: str, label: str) -> str:
    """Name the model's code as the namespace executor does, instead of monty's ``<python-input-N>``."""
    return _INPUT_NAME.sub(f"<rlm {label}>", text).rstrip()


def prompt_note(limits: SandboxLimits) -> str:
    timeout = f"{limits.timeout:g} s of running time, " if limits.timeout else ""
    return (
        "The REPL is a sandbox (pydantic-monty): a subset of Python with no access to files, the "
        "network or the environment. Keep to what it supports, or the step is wasted:\n"
        f"- You can import only: {', '.join(ALLOWED_MODULES)}. No os, sys, pathlib, io, string, "
        "textwrap, heapq, statistics, numpy or other packages.\n"
        "- Not supported: class inheritance (so no custom exception classes, Enum or ABC), "
        "generators and `yield`, `del`, `@property`/`@staticmethod`/`@classmethod`, "
        "`from x import *`, `globals()`, `dir()`, `vars()`, `re.sub` with a function as the "
        "replacement. Plain classes, dataclasses, closures, comprehensions, `match` and f-strings "
        "work.\n"
        "- Unsupported syntax is rejected before any line of the block runs: rewrite the block "
        "without it.\n"
        f"- Each block gets {timeout}{limits.memory_mb:,} MB of memory and a recursion depth of "
        f"{limits.max_recursion:,}. A block that breaks a limit is stopped and the REPL goes back to "
        "its state before that block."
    )
