"""Package-level import cycles and imports inside functions, for docs/architecture.md.

    PYTHONPATH=src python scripts/import_graph.py [-v]

A "package" is a direct child of ``mercato`` (``mercato.orders``, ``mercato.kit``, or a
top-level module such as ``mercato.app``). Every import counts, including the ones inside
functions; imports under ``if TYPE_CHECKING:`` do not (they never run). Exits 1 when a
cycle remains. ``-v`` lists every import inside a function.
"""

from __future__ import annotations

import ast
import pathlib
import sys
from collections import defaultdict

import grimp

ROOT = pathlib.Path(__file__).resolve().parent.parent / "src" / "mercato"


def package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def package_cycles() -> list[list[str]]:
    graph = grimp.build_graph("mercato", exclude_type_checking_imports=True)
    edges: dict[str, set[str]] = defaultdict(set)
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = package(module), package(imported)
            if a != b and "mercato" not in (a, b):
                edges[a].add(b)
    # Tarjan's strongly connected components; a component of two or more packages is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            components.append(sorted(component))

    for node in sorted({package(m) for m in graph.modules} - {"mercato"}):
        if node not in index:
            visit(node)
    return [c for c in components if len(c) > 1]


def imports_in_functions() -> list[tuple[str, int, str, bool]]:
    """(file, line, statement, of mercato) for every import inside a function."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations/versions" in path.as_posix():
            continue
        name = path.relative_to(ROOT.parent).as_posix()

        def walk(node: ast.AST, in_function: bool, name: str = name) -> None:
            for child in ast.iter_child_nodes(node):
                if in_function and isinstance(child, ast.Import | ast.ImportFrom):
                    module = child.names[0].name if isinstance(child, ast.Import) else child.module or ""
                    found.append((name, child.lineno, ast.unparse(child), module.startswith("mercato")))
                walk(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef), name)

        walk(ast.parse(path.read_text()), False)
    return found


def main() -> int:
    cycles = package_cycles()
    print(f"package-level cycles: {len(cycles)}")
    for cycle in cycles:
        print(f"  {len(cycle)} packages: {' '.join(p.removeprefix('mercato.') for p in cycle)}")
    inside = imports_in_functions()
    ours = sum(1 for *_, of_mercato in inside if of_mercato)
    print(f"imports inside functions: {len(inside)} ({ours} of mercato, {len(inside) - ours} of other packages)")
    if "-v" in sys.argv:
        for name, line, statement, _ in inside:
            print(f"  {name}:{line}: {statement}")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
