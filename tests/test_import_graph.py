"""deltahub's import graph, read with ast from the source (so it does not depend on what was imported first).

Two graphs over deltahub's top-level subpackages (``merge``, ``share``, ``server``...) and top-level
modules (``errors``, ``listing``...): the imports a module runs when it is imported (module level,
``if``/``try`` blocks included, ``TYPE_CHECKING`` blocks not), and every import, the deferred ones
inside functions too. Importing ``deltahub.a.b`` runs ``deltahub/a/__init__.py``, so an edge to a
submodule is an edge to its package as well.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "deltahub"

# The cycles the deferred imports still close, each edge with why it is deferred rather than gone. A new
# cycle fails the test; an edge that disappears fails it too, so this list is always the current one.
DEFERRED_CYCLE_EDGES = {
    ("endpoint", "server"): "the embedded registry is started on demand by the endpoint",
    ("server", "endpoint"): "`deltahub hub use/serve` (server/cli.py) read and write the endpoint settings",
    ("server", "merge"): "the web compose page offers the registered merge methods with their parameters",
    ("server", "share"): "the web compose page writes gam.yml with the one writer (share/mergekit_config.py)",
    ("merge", "share"): "merge pulls NS/NAME inputs (share/source.py) and writes the card (share/cards.py)",
    ("share", "merge"): "the card writes the merge command with merge's option writer; gam.yml its default method",
    ("share", "endpoint"): "every registry call goes to the configured endpoint",
    ("share", "evaluate"): "publish --measure evaluates the delta against its base",
    ("evaluate", "share"): "eval pulls NS/NAME models (share/source.py)",
}


def _nodes(src: Path = SRC) -> dict[str, tuple[Path, bool]]:
    """Every module ``deltahub.x.y`` -> (file, is a package's __init__)."""
    out = {}
    for path in src.rglob("*.py"):
        parts = list(path.relative_to(src.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _absolute(module: str | None, level: int, current: str, is_pkg: bool) -> str:
    if level == 0:
        return module or ""
    base = current.split(".")[: None if is_pkg else -1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _imports(tree: ast.Module, deferred: bool) -> list[ast.Import | ast.ImportFrom]:
    if deferred:
        return [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    found: list[ast.Import | ast.ImportFrom] = []

    def run(body: list[ast.stmt]) -> None:  # what executes at import time
        for n in body:
            if isinstance(n, ast.Import | ast.ImportFrom):
                found.append(n)
            elif isinstance(n, ast.If) and "TYPE_CHECKING" not in ast.unparse(n.test):
                run(n.body)
                run(n.orelse)
            elif isinstance(n, ast.Try):
                run(n.body)
                run(n.orelse)
                run(n.finalbody)
                for h in n.handlers:
                    run(h.body)
            elif isinstance(n, ast.With):
                run(n.body)

    run(tree.body)
    return found


def module_graph(deferred: bool, src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the deltahub modules it imports (and their packages); ``src``: a deltahub package folder."""
    nodes = _nodes(src)
    graph: dict[str, set[str]] = {m: set() for m in nodes}
    for module, (path, is_pkg) in nodes.items():
        for node in _imports(ast.parse(path.read_text(encoding="utf-8")), deferred):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = _absolute(node.module, node.level, module, is_pkg)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in nodes else base for a in node.names]
            for target in targets:
                parts = target.split(".")
                for k in range(2, len(parts) + 1):  # the package __init__s run on the way
                    name = ".".join(parts[:k])
                    if name in nodes and name != module:
                        graph[module].add(name)
    return graph


def top(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def package_graph(deferred: bool, src: Path = SRC) -> dict[str, dict[str, list[str]]]:
    """Top-level subpackage or module -> {the one it imports: the importing modules}."""
    out: dict[str, dict[str, list[str]]] = {}
    for module, targets in module_graph(deferred, src).items():
        for target in targets:
            a, b = top(module), top(target)
            if a != b and module != "deltahub":
                out.setdefault(a, {}).setdefault(b, []).append(module)
    return out


def _reach(graph: dict, start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def cycle_edges(graph: dict) -> set[tuple[str, str]]:
    """The edges a -> b that lie on a cycle (b reaches a)."""
    return {(a, b) for a, targets in graph.items() for b in targets if a in _reach(graph, b)}


def test_the_graph_reader_sees_cycles():
    """The reader finds a cycle where there is one (a graph of three small modules written here)."""
    assert cycle_edges({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {("a", "b"), ("b", "c"), ("c", "a")}
    tree = ast.parse(
        "import x\nif TYPE_CHECKING:\n    import y\ndef f():\n    import z\ntry:\n    import w\nexcept E:\n    pass"
    )
    assert [n.names[0].name for n in _imports(tree, deferred=False)] == ["x", "w"]
    assert sorted(n.names[0].name for n in _imports(tree, deferred=True)) == ["w", "x", "y", "z"]
    graph = module_graph(deferred=False)
    assert "deltahub.merge.adapters" in graph["deltahub.merge.core"]  # from .adapters import ...
    assert "deltahub.server" in graph["deltahub.server.web.catalog"]  # from ..auth: server/__init__ runs first


def test_no_cycle_among_subpackages_at_import_time():
    graph = package_graph(deferred=False)
    found = cycle_edges({a: set(b) for a, b in graph.items()})
    assert not found, {edge: graph[edge[0]][edge[1]] for edge in sorted(found)}


def test_the_deferred_cycles_are_the_known_ones():
    graph = package_graph(deferred=True)
    found = cycle_edges({a: set(b) for a, b in graph.items()})
    new = {edge: graph[edge[0]][edge[1]] for edge in sorted(found - set(DEFERRED_CYCLE_EDGES))}
    assert not new, f"import(s) closing a new cycle between subpackages: {new}"
    gone = set(DEFERRED_CYCLE_EDGES) - found
    assert not gone, f"no longer on a cycle (remove from DEFERRED_CYCLE_EDGES): {sorted(gone)}"


def test_the_server_lists_without_the_client():
    """The registry's pages list deltas with deltahub.listing, which reaches neither the Hub client's
    endpoint nor share/: the cycle endpoint -> server -> web -> share/search -> endpoint is gone."""
    graph = module_graph(deferred=True)
    assert _reach(graph, "deltahub.listing") == {"deltahub.listing", "deltahub.errors"}
    for page in ("deltahub.server.web.catalog", "deltahub.server.web.routes"):
        assert "deltahub.share.search" not in graph[page] and "deltahub.listing" in graph[page]
    assert "deltahub.share.search" not in _reach(graph, "deltahub.server")


@pytest.mark.parametrize("package", sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()))
def test_each_subpackage_imports_first(package):
    """Imported first, in a fresh interpreter, each subpackage loads (no partially initialised module)."""
    code = f"import deltahub.{package}"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
