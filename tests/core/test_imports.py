"""The import graph of thresher/ and the stage packages (curate/, distill/, train/, evaluate/): no cycle, and no module imports
another module's private name (``from x import _y``).

Every import counts, function-level ones included (they hide cycles); only the imports under
``if TYPE_CHECKING:`` are left out, as they never run. Folders map to module names through
pyproject's ``package-dir`` (``curate/`` is ``thresher.curate``). The detector is tested on a
planted tree, so the test can fail.
"""

from __future__ import annotations

import ast
import functools
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Import:
    """One import statement's target, as seen from module ``source``."""

    source: str
    target: str
    names: tuple[str, ...]
    where: str


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """Package name -> folder, from pyproject's ``package-dir`` (top-level packages only)."""
    cfg = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {pkg: root / path for pkg, path in cfg.items()}


def modules(dirs: dict[str, Path]) -> dict[str, Path]:
    """Every module name -> its file, under the mapped folders (the most specific mapping wins)."""
    found: dict[str, Path] = {}
    for pkg, folder in sorted(dirs.items(), key=lambda kv: kv[0].count(".")):
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if any(not p.isidentifier() for p in parts):
                continue
            found[".".join([pkg, *parts])] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, skipping the bodies of ``if TYPE_CHECKING:``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    keep = len(parts) - node.level + (1 if is_package else 0)
    base = parts[:keep]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, path: Path, known: dict[str, Path]) -> list[Import]:
    """The imports of one module that land on a known module (``from p import m`` -> ``p.m``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[Import] = []
    is_package = path.name == "__init__.py"
    for node in _nodes(tree):
        where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            out += [Import(module, a.name, (), where) for a in node.names if a.name in known]
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            base = _base(module, is_package, node)
            plain = tuple(a.name for a in node.names if f"{base}.{a.name}" not in known)
            out += [Import(module, f"{base}.{a.name}", (), where) for a in node.names
                    if f"{base}.{a.name}" in known]
            if plain and base in known:
                out.append(Import(module, base, plain, where))
    return out


def _with_packages(source: str, imps: list[Import], known: dict[str, Path]) -> list[Import]:
    """Each import plus the packages it runs first (``a.b.c`` runs ``a.b``'s ``__init__``),
    except those that already hold ``source``."""
    out: list[Import] = []
    for i in imps:
        parts = i.target.split(".")
        for k in range(1, len(parts)):
            pkg = ".".join(parts[:k])
            if pkg in known and not (source == pkg or source.startswith(pkg + ".")):
                out.append(Import(source, pkg, (), i.where))
        out.append(i)
    return out


def graph(known: dict[str, Path]) -> dict[str, list[Import]]:
    """Module -> its imports of other known modules."""
    return {m: [i for i in _with_packages(m, imports(m, p, known), known) if i.target != m]
            for m, p in known.items()}


def cycles(edges: dict[str, list[Import]]) -> list[list[Import]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for e in edges.get(v, []):
            if e.target not in index:
                visit(e.target)
                low[v] = min(low[v], low[e.target])
            elif e.target in on:
                low[v] = min(low[v], index[e.target])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [_cycle_in(comp, edges) for comp in comps]


def _cycle_in(comp: set[str], edges: dict[str, list[Import]]) -> list[Import]:
    """A shortest cycle through the component's first module (breadth first)."""
    start = min(comp)
    paths: dict[str, list[Import]] = {start: []}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for e in edges.get(v, []):
            if e.target == start:
                return paths[v] + [e]
            if e.target in comp and e.target not in paths:
                paths[e.target] = paths[v] + [e]
                todo.append(e.target)
    raise AssertionError(f"no cycle through {start}")


def private_imports(edges: dict[str, list[Import]]) -> list[str]:
    """``file:line: module imports _name from other`` for every private name imported."""
    return [f"{e.where}: {e.source} imports {n} from {e.target}"
            for imps in edges.values() for e in imps
            for n in e.names if n.startswith("_") and not n.startswith("__")]


def describe(cycle: list[Import]) -> str:
    """``a -> b (file:line) -> a (file:line)``."""
    return cycle[0].source + "".join(f" -> {e.target} ({e.where})" for e in cycle)


@functools.cache
def _project_graph() -> dict[str, list[Import]]:
    return graph(modules(package_dirs()))


def test_no_import_cycle():
    edges = _project_graph()
    assert len(edges) > 100  # every package was found
    found = [describe(c) for c in cycles(edges)]
    assert not found, "import cycles:\n" + "\n".join(found)


def test_no_private_name_imported_across_modules():
    found = private_imports(_project_graph())
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def test_detector_finds_planted_cycle_and_private_import(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools.package-dir]\n"top" = "top"\n"top.sub" = "sub"\n')
    (tmp_path / "top").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "top" / "__init__.py").write_text("")
    (tmp_path / "sub" / "__init__.py").write_text("")
    (tmp_path / "top" / "a.py").write_text("from typing import TYPE_CHECKING\n"
                                          "if TYPE_CHECKING:\n    from top.ok import X\n"
                                          "def f():\n    from top.sub.b import g\n")
    (tmp_path / "sub" / "b.py").write_text("from ..a import _hidden\n\ndef g():\n    pass\n")
    (tmp_path / "top" / "ok.py").write_text("import top.a\nX = 1\n")
    edges = graph(modules(package_dirs(tmp_path)))
    found = cycles(edges)
    assert [describe(c) for c in found] == [
        f"top.a -> top.sub.b ({tmp_path / 'top' / 'a.py'}:5) -> top.a ({tmp_path / 'sub' / 'b.py'}:1)"]
    assert private_imports(edges) == [f"{tmp_path / 'sub' / 'b.py'}:1: top.sub.b imports _hidden from top.a"]


def test_detector_sees_a_cycle_through_a_package_init(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.setuptools.package-dir]\n"top" = "top"\n')
    (tmp_path / "top" / "pkg").mkdir(parents=True)
    (tmp_path / "top" / "__init__.py").write_text("")
    (tmp_path / "top" / "pkg" / "__init__.py").write_text("from top.c import C\n")
    (tmp_path / "top" / "pkg" / "leaf.py").write_text("X = 1\n")
    (tmp_path / "top" / "c.py").write_text("C = 1\n\ndef f():\n    from top.pkg.leaf import X\n")
    found = [describe(c) for c in cycles(graph(modules(package_dirs(tmp_path))))]
    assert found == [f"top.c -> top.pkg ({tmp_path / 'top' / 'c.py'}:4) -> top.c ({tmp_path / 'top' / 'pkg' / '__init__.py'}:1)"]
