"""The shape of deltahub's code: its longest functions and the import cycles among its subpackages.

    python scripts/code_shape.py [SRC/deltahub ...]

For each deltahub package folder given (default: this checkout's), prints the 10 longest functions
(lines, including the docstring) and the edges that lie on an import cycle between top-level subpackages
and modules: at import time, and with the deferred imports inside functions counted too. The graph is
the one tests/test_import_graph.py checks, read with ast from the source.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_import_graph import cycle_edges, package_graph  # noqa: E402


def longest(src: Path, n: int = 10) -> list[tuple[int, str]]:
    found = []
    for path in src.rglob("*.py"):
        module = ".".join(path.relative_to(src.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append((node.end_lineno - node.lineno + 1, f"{module}.{node.name}"))
    return sorted(found, reverse=True)[:n]


def main(argv: list[str]) -> None:
    for src in [Path(a) for a in argv] or [ROOT / "src" / "deltahub"]:
        print(f"== {src}")
        print("10 longest functions (lines):")
        for lines, name in longest(src):
            print(f"  {lines:4d}  {name}")
        for deferred in (False, True):
            graph = package_graph(deferred, src)
            edges = sorted(cycle_edges({a: set(b) for a, b in graph.items()}))
            nodes = sorted({x for e in edges for x in e})
            label = "with deferred imports" if deferred else "at import time"
            print(f"cycles among subpackages {label}: {len(edges)} edges among {len(nodes)} of them {nodes}")
            for a, b in edges:
                print(f"  {a} -> {b}  ({', '.join(sorted(set(graph[a][b]))[:3])})")


if __name__ == "__main__":
    main(sys.argv[1:])
