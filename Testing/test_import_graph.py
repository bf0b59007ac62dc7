"""The library's imports flow one way: no module imports, directly or through others, a module
that imports it back, counting imports inside functions too (a function-local import only
hides a cycle until that function runs).

The graph is read from the source with ``ast``: an edge A -> B for every ``import`` or
``from ... import`` in A that names B (a submodule when the imported name is one, else the
module or package named). Imports under ``if TYPE_CHECKING:`` never run and are left out.
Importing a submodule also runs its parent packages' ``__init__``; those implicit edges are left
out, as a package that re-exports its modules would otherwise always be a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "ThighMuscleSegLib"

# Cycles allowed for now, as frozensets of module names, each with its reason. Keep it empty.
KNOWN_CYCLES: dict[frozenset[str], str] = {}


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under ``root / package``."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root: Path, package: str) -> dict[str, dict[str, int]]:
    """module -> {imported module of the package: first line importing it}."""
    files = module_files(root, package)

    def known(name: str) -> str | None:  # the module itself, else its nearest known parent
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for mod, path in files.items():
        here = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in files else source for a in node.names]
            for target in targets:
                if target == package or target.startswith(package + "."):
                    name = known(target)
                    if name and name != mod:
                        edges.setdefault(name, node.lineno)
        graph[mod] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected parts of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(part: list[str], graph: dict[str, dict[str, int]]) -> str:
    lines = []
    for a in part:
        for b, line in sorted(graph[a].items()):
            if b in part:
                lines.append(f"  {a.replace('.', '/')}.py:{line} imports {b}")
    return "\n".join(lines)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_graph_finds_module_level_and_function_level_cycles_on_a_hand_made_package(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "from .a import f\n",
        "pkg/a.py": "from .b import g\ndef f():\n    return g()\n",
        "pkg/b.py": "def g():\n    from .a import f  # hidden in a function: still a cycle\n    return f\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "from .. import a\nfrom ..sub import d\n",
        "pkg/sub/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import X\n"
                        "import pkg.a\n",
        "pkg/e.py": "import pkg.sub.c\n",
    })
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.sub.c"] == {"pkg.a": 1, "pkg.sub.d": 2}
    assert graph["pkg.sub.d"] == {"pkg.a": 4}  # the TYPE_CHECKING import is left out
    assert graph["pkg.e"] == {"pkg.sub.c": 1}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_the_library_has_no_import_cycle():
    graph = import_graph(REPO, PACKAGE)
    assert "ThighMuscleSegLib.inference.predict" in graph and graph["ThighMuscleSegLib.inference.predict"]
    found = [p for p in cycles(graph) if frozenset(p) not in KNOWN_CYCLES]
    assert not found, "import cycles (move what both need into a module of its own):\n" + "\n".join(
        describe(p, graph) for p in found)


def test_known_cycles_are_still_cycles():
    """An allowed cycle that was untangled leaves the list, so the list never hides a new one."""
    parts = {frozenset(p) for p in cycles(import_graph(REPO, PACKAGE))}
    assert [sorted(c) for c in KNOWN_CYCLES if c not in parts] == []
