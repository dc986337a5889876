"""``Workspace``: the kernel's user namespace as the magics use it.

The model's code runs there: ``P`` is the context object itself, the model's variables are the user's
afterwards, and the user's variables are the model's to read. So the context and the tools a command
names are looked up there, and a user variable that shares a helper's name is kept aside first.
"""

from __future__ import annotations

import builtins
import difflib
import keyword
import sys
from typing import Any

from IPython.core.error import UsageError

from .._config import RLM
from .._mcp import MCPServer
from .._namespace import RESERVED
from ..executors import Executor, NamespaceExecutor


class Workspace:
    """The user namespace of ``shell``: contexts and tools by name, the executor that runs code in
    it, and the user's variables named like a helper kept in ``rlm_saved``."""

    def __init__(self, shell: Any) -> None:
        self._shell = shell
        self._helper_ids: dict[str, int] = {}
        self._warned: set[str] = set()

    @property
    def user_ns(self) -> dict[str, Any]:
        """The shell's user namespace."""
        namespace: dict[str, Any] = self._shell.user_ns
        return namespace

    def resolve_context(self, name: str) -> object:
        """The context a command names: a variable, or an expression evaluated in the namespace."""
        ns = self.user_ns
        if name.isidentifier() and not keyword.iskeyword(name):
            if name not in ns:
                names = [n for n in ns if not n.startswith("_")]
                close = difflib.get_close_matches(name, names, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise UsageError(
                    f"%rlm: no variable named {name!r} in this notebook.{hint} Define it first, e.g. "
                    f"{name} = rlm_kernel.load_context('path/or/dir')"
                )
            value = ns[name]
        else:
            try:
                value = eval(name, ns)
            except Exception as exc:
                raise UsageError(
                    f"%rlm: the context {name!r} could not be evaluated: {exc}"
                ) from None
        if value is None or (hasattr(value, "__len__") and len(value) == 0):
            raise UsageError(f"%rlm: the context {name!r} is empty; there is nothing to ask about")
        return value

    def executor(self, config: RLM) -> Executor | None:
        """The namespace, with the code's output shown live in the cell as it runs (``None``: the
        configured executor, e.g. the monty sandbox, is made by the session)."""
        if config.executor != "namespace":
            return None
        return NamespaceExecutor(self.user_ns, echo_stdout=sys.stdout, echo_stderr=sys.stderr)

    def tools(self, names: str | None, flag: str = "--tools") -> dict[str, Any] | None:
        """``--tools f,g`` (or ``--sub-tools``): the notebook's functions or ``MCPServer`` specs of
        those names."""
        if not names:
            return None
        tools: dict[str, Any] = {}
        for name in (n.strip() for n in names.split(",") if n.strip()):
            fn = self.user_ns.get(name)
            if not (callable(fn) or isinstance(fn, MCPServer)):
                raise UsageError(
                    f"%rlm {flag}: {name!r} is not a function or an rlm_kernel.MCPServer defined "
                    "in this notebook"
                )
            tools[name] = fn
        return tools

    def output(self, name: str | None) -> object:
        """``--output Model``: the answer's type, a name (or an expression such as ``list[str]``) in
        the notebook: a pydantic model, a TypedDict, a type, or a JSON schema dict."""
        if not name:
            return None
        ns = self.user_ns
        if name.isidentifier() and name not in ns and name not in vars(builtins):
            names = [n for n in ns if not n.startswith("_")]
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UsageError(
                f"%rlm --output: no class, type or schema named {name!r} in this notebook.{hint} "
                "Define it first, e.g. a pydantic model: class Answer(BaseModel): ..."
            )
        try:
            return eval(name, ns)
        except Exception as exc:
            raise UsageError(f"%rlm --output: {name!r} could not be evaluated: {exc}") from None

    def protect_user_names(self, context: object) -> None:
        """Keep the user's own variables that share a helper's name, and say so once. A variable
        that is the very ``context`` given (``%rlm "q" context``) needs no keeping: the session
        binds that same object under the name."""
        ns = self.user_ns
        saved = ns.setdefault("rlm_saved", {})
        for name in RESERVED:
            if name in ns and ns[name] is context:
                continue
            if name in ns and id(ns[name]) != self._helper_ids.get(name):
                saved[name] = ns[name]
                if name not in self._warned:
                    self._warned.add(name)
                    print(
                        f"Note: your variable `{name}` is also an RLM helper's name. Its value is kept in "
                        f"rlm_saved[{name!r}]; rename your variable to keep using it directly."
                    )

    def remember_helpers(self) -> None:
        """Note the helpers a session bound, so the next session does not take them for the user's."""
        ns = self.user_ns
        self._helper_ids = {name: id(ns[name]) for name in RESERVED if name in ns}
