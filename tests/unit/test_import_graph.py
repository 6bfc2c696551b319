"""The import graph of fastsio/ has no cycle, lazy (function-level) imports included.

Built from the sources with ``ast``, so it needs no compiled core: an edge for every
``import fastsio.x`` / ``from .x import y`` / ``from . import x`` anywhere in a module,
except under ``if TYPE_CHECKING:`` (never executed). A cycle through a lazy import works
until someone moves that import to the top; it also means two modules that cannot be
understood apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "fastsio"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module of ours that importing ``name`` runs (the longest known prefix)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                # `from pkg import name` runs pkg.name when that is a module, and pkg for a
                # name defined there. A package that contains the importing module has begun
                # running before it (parents are imported first): importing its submodules
                # is no edge back to it.
                subs = [f"{origin}.{alias.name}" for alias in node.names]
                targets = [t for t in subs if t in modules]
                inside = name == origin or name.startswith(origin + ".")
                if not inside or len(targets) < len(subs):
                    targets.append(origin)
            for target in targets:
                ours = _resolve(target, modules)
                if ours is None or ours == name:
                    continue
                if ours != target and name.startswith(ours + "."):
                    continue  # a module not in fastsio/ (the compiled core) under our package
                edges.add(ours)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_fastsio_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph(_modules()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cli_is_not_imported_by_the_library() -> None:
    graph = import_graph(_modules())
    library = [m for m in graph if not m.startswith("fastsio.cli") and m != "fastsio.__main__"]
    for module in library:
        cli = [t for t in graph[module] if t == "fastsio.cli" or t.startswith("fastsio.cli.")]
        assert not cli, f"{module} imports {cli}"


# -- the checker itself finds what it must --------------------------------------------------


def _graph_of(tmp_path: Path, files: dict[str, str]) -> dict[str, set[str]]:
    """The import graph of a package ``fastsio`` made of ``files`` (an empty ``__init__.py``
    unless given)."""
    root = tmp_path / "fastsio"
    for rel, text in {"__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    modules = {}
    for p in sorted(root.rglob("*.py")):
        parts = list(p.relative_to(tmp_path).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = p
    return import_graph(modules)


@pytest.mark.parametrize(
    "files",
    [
        pytest.param(
            {"a.py": "from .b import x\n", "b.py": "from .a import y\n"},
            id="relative",
        ),
        pytest.param(
            {
                "cli/__init__.py": "",
                "cli/main.py": "def f():\n    from ..bench import run\n",
                "bench.py": "from .cli import main\n",
            },
            id="lazy-and-package",
        ),
        pytest.param(
            {"a.py": "import fastsio.b\n", "b.py": "from fastsio import a\n"},
            id="absolute",
        ),
        pytest.param(
            {"__init__.py": "from .a import x\n", "a.py": "from . import __version__\n"},
            id="through-the-package",
        ),
    ],
)
def test_a_cycle_is_found(tmp_path: Path, files: dict[str, str]) -> None:
    assert find_cycle(_graph_of(tmp_path, files)) is not None


def test_imports_under_type_checking_are_not_edges(tmp_path: Path) -> None:
    graph = _graph_of(
        tmp_path,
        {
            "a.py": "from .b import x\n",
            "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import y\n",
        },
    )
    assert find_cycle(graph) is None


# Transports report to the session through the hooks they are given (TransportHooks):
# importing the engine, or what imports it, would tie a link to one session class.
_ABOVE_TRANSPORTS = {"fastsio.engine", "fastsio.eio3", "fastsio.lifecycle", "fastsio.async_client"}


def transport_violations(graph: dict[str, set[str]]) -> list[str]:
    """``module -> layer`` for every module of fastsio.transports that reaches a layer above."""
    found = []
    for module in sorted(graph):
        if module != "fastsio.transports" and not module.startswith("fastsio.transports."):
            continue
        seen: set[str] = set()
        stack = [module]
        while stack:
            for nxt in graph.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        found += [f"{module} -> {above}" for above in sorted(seen & _ABOVE_TRANSPORTS)]
    return found


def test_transports_do_not_import_the_engine() -> None:
    graph = import_graph(_modules())
    assert {"fastsio.transports.websocket", "fastsio.transports.polling"} <= set(graph)
    assert transport_violations(graph) == []


def test_a_transport_importing_the_engine_is_found(tmp_path: Path) -> None:
    graph = _graph_of(
        tmp_path,
        {
            "reasons.py": "",
            "engine.py": "from .transports import x\n",
            "transports/__init__.py": "from .polling import x\n",
            "transports/polling.py": "from ..reasons import y\ndef f():\n    from .. import engine\n",
        },
    )
    assert transport_violations(graph) == [
        "fastsio.transports -> fastsio.engine",
        "fastsio.transports.polling -> fastsio.engine",
    ]
