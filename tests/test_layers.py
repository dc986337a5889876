"""The package's layers import downwards only, and no modules of it import each other in a circle.

Every import counts: at module level, inside a function, under ``TYPE_CHECKING``, and a module named
in a string to ``importlib.import_module``. A lazy import changes when a module is loaded, not which
module depends on which; docs/architecture.md §2 describes the layers below.
"""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rlm_kernel"

# From the bottom: a module may import modules of its own layer and of the layers before it, never of
# a layer after it. A name covers that module and, for a package, everything under it; "__init__" is
# the package face, rlm_kernel/__init__.py.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundations",
        (
            "_version",
            "_environment",
            "errors",
            "_secrets",
            "_strategies",
            "_ranges",
            "_config",
            "_aio",
            "_timeout",
            "_capture",
            "_sandbox",
            "_files",
            "_context",
            "_events",
            "events",
            "_stdjson",
            "_astparse",
            "_pricing",
            "_logging",
            "_rich",
        ),
    ),
    ("models", ("models",)),
    ("executors", ("executors",)),
    ("retrieval", ("retrieval",)),
    (
        "loop parts",
        (
            "_schema",
            "_schema_v1",
            "_prompts",
            "_prompts_rlms",
            "_final",
            "_output",
            "_answers",
            "_namespace",
            "_subtools",
            "_mcp",
            "_subcalls",
            "_snapshot",
            "_history",
            "_trajectory",
            "_records",
            "_iteration",
            "_endings",
            "_guards",
            "_retrieval_tools",
        ),
    ),
    (
        "session",
        (
            "_tree",
            "_preamble",
            "_recorder",
            "_root_model",
            "_children",
            "_closing",
            "_step_review",
            "_session_parts",
            "_session",
            "_reenact",
        ),
    ),
    (
        "records out and back",
        ("exporters", "_replay", "_recovery", "_timeline", "_timeline_view", "_display"),
    ),
    (
        "headless front ends",
        (
            "_async",
            "_api",
            "_progress",
            "_timeline_live",
            "_demo",
            "_examples",
            "_models_list",
            "_cli_index",
            "_cli_parser",
            "cli",
            "install",
        ),
    ),
    ("notebook", ("_notebook",)),
    ("kernel and test tools", ("kernel", "__main__", "testing")),
    ("package face", ("__init__", "_labextension")),
]
CORE = ("foundations", "models", "executors", "retrieval", "loop parts", "session")

# Boundaries named on their own: the layer table implies them, and these say so whatever it becomes.
# (name, who must not import, what they must not import)
RULES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    (
        "only the notebook layer, the kernel, the test tools and the package face import the notebook",
        tuple(
            n
            for layer, names in LAYERS
            for n in names
            if layer not in ("notebook", "kernel and test tools", "package face")
        ),
        ("_notebook",),
    ),
    (
        "the core never imports recovery or replay",
        tuple(n for layer, names in LAYERS if layer in CORE for n in names),
        ("_recovery", "_replay"),
    ),
    (
        "the core (the records included) never imports the exporters",
        tuple(n for layer, names in LAYERS if layer in CORE for n in names),
        ("exporters",),
    ),
]


@dataclass(frozen=True)
class Import:
    source: str  # importing module, relative to rlm_kernel ("__init__" for the package itself)
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} → {self.target} (line {self.line})"


def modules() -> dict[str, Path]:
    """Every module of the package by its name relative to ``rlm_kernel``."""
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        found[".".join(parts)] = path
    return found


def _relative(dotted: str) -> str | None:
    """``rlm_kernel.x.y`` → ``x.y``; the package itself → ``__init__``; outside it → None."""
    if dotted == "rlm_kernel":
        return "__init__"
    if dotted.startswith("rlm_kernel."):
        return dotted[len("rlm_kernel.") :]
    return None


def _target(name: str, known: dict[str, Path]) -> str:
    """The module an imported dotted name means: the deepest prefix that is a module."""
    parts = name.split(".")
    while len(parts) > 1 and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts)


def imports_of(name: str, path: Path, known: dict[str, Path]) -> list[Import]:
    is_package = path.name == "__init__.py"
    qualified = "rlm_kernel" if name == "__init__" else f"rlm_kernel.{name}"
    package = qualified if is_package else qualified.rpartition(".")[0]
    found: list[Import] = []

    def add(dotted: str, line: int) -> None:
        relative = _relative(dotted)
        if relative is None:
            return
        target = relative if relative == "__init__" else _target(relative, known)
        if target != name:
            found.append(Import(name, target, line))

    def absolute(module: str | None, level: int) -> str:
        if not level:
            return module or ""
        base = package.split(".")[: len(package.split(".")) - level + 1]
        return ".".join([*base, *([module] if module else [])])

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node.module, node.level)
            for alias in node.names:
                # ``from . import x`` imports the module x when there is one, else a name of ``.``.
                sub = f"{base}.{alias.name}"
                relative = _relative(sub)
                add(sub if relative is not None and relative in known else base, node.lineno)
        elif (
            isinstance(node, ast.Call)
            and _is_dynamic_import(node.func)
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            value = node.args[0].value
            if isinstance(value, str):
                add(
                    absolute(value.lstrip("."), len(value) - len(value.lstrip("."))),
                    node.lineno,
                )
    return found


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def all_imports() -> list[Import]:
    known = modules()
    return [imp for name, path in known.items() for imp in imports_of(name, path, known)]


def covers(entry: str, module: str) -> bool:
    return module == entry or module.startswith(entry + ".")


def layer_of(module: str) -> int | None:
    for index, (_, names) in enumerate(LAYERS):
        if any(covers(n, module) for n in names):
            return index
    return None


def cycles(edges: Iterable[Import]) -> list[tuple[list[str], list[str]]]:
    """Each group of modules that import each other in circles (Tarjan's strongly connected
    components), sorted, with the shortest circle through its first module."""
    graph: dict[str, set[str]] = defaultdict(set)
    for imp in edges:
        graph[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    found = []
    for group in groups:
        start = min(group)
        # Breadth first inside the group, back to the start: the shortest circle through it.
        paths = {start: [start]}
        queue = [start]
        circle: list[str] | None = None
        while queue and circle is None:
            v = queue.pop(0)
            for w in sorted(graph[v] & group):
                if w == start:
                    circle = [*paths[v], start]
                    break
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    queue.append(w)
        assert circle is not None
        found.append((sorted(group), circle))
    return found


def where(edges: list[Import], circle: list[str]) -> str:
    steps = []
    for a, b in itertools.pairwise(circle):
        lines = sorted({imp.line for imp in edges if imp.source == a and imp.target == b})
        steps.append(f"{a} → {b} (line {', '.join(map(str, lines))} of {a})")
    return " ; ".join(steps)


# --- the tests ------------------------------------------------------------------------------------


def test_the_scan_sees_the_imports_it_must() -> None:
    """The scanner itself: imports inside functions and under TYPE_CHECKING are found."""
    found = {(imp.source, imp.target) for imp in all_imports()}
    assert ("_tree", "models.openai") in found  # inside a function
    assert ("__init__", "_notebook") in found  # inside a function of the package face
    assert ("exporters", "exporters.ipynb") in found  # ``from . import ipynb``
    assert ("_api", "_session") in found


def test_every_module_has_a_layer_and_every_entry_a_module() -> None:
    known = modules()
    assert sorted(m for m in known if layer_of(m) is None) == []
    entries = [n for _, names in LAYERS for n in names]
    assert sorted(n for n in entries if not any(covers(n, m) for m in known)) == []
    assert len(entries) == len(set(entries))


def test_no_import_circles() -> None:
    edges = all_imports()
    found = cycles(edges)
    report = "\n".join(
        f"  among {', '.join(group)}:\n    {' → '.join(c)}\n    {where(edges, c)}"
        for group, c in found
    )
    assert not found, f"{len(found)} import circle(s) among rlm_kernel's modules:\n{report}"


def test_layers_import_downwards_only() -> None:
    upward = []
    for imp in all_imports():
        source, target = layer_of(imp.source), layer_of(imp.target)
        assert source is not None
        assert target is not None
        if target > source:
            upward.append(f"  {imp}: {LAYERS[source][0]} imports {LAYERS[target][0]}")
    report = "\n".join(sorted(upward))
    assert not upward, f"{len(upward)} import(s) of a higher layer:\n{report}"


@pytest.mark.parametrize(("rule", "importers", "imported"), RULES, ids=[r[0] for r in RULES])
def test_named_boundaries(rule: str, importers: tuple[str, ...], imported: tuple[str, ...]) -> None:
    broken = [
        str(imp)
        for imp in all_imports()
        if any(covers(n, imp.source) for n in importers)
        and any(covers(n, imp.target) for n in imported)
    ]
    assert not broken, f"{rule}:\n" + "\n".join(f"  {b}" for b in sorted(broken))
