"""The source tree's shape: no import cycle, dependencies pointing one way, short modules, no
citation of files that live outside the repository.

The import graph is read with :mod:`ast` (nothing is imported): every ``import`` statement of
every module of ``solvers`` and ``layerdecomp`` (``recipes/`` counts as ``layerdecomp._recipes``),
at module level, in functions or under ``if TYPE_CHECKING:`` (annotations tie modules together
too), relative imports resolved, and ``import_module``/``__import__`` calls of a literal name;
computed names (the lazy exports of ``layerdecomp`` and ``layerdecomp.data``) are left out.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"solvers": "solvers", "layerdecomp": "layerdecomp", "recipes": "layerdecomp._recipes"}
"""Source folder → the package it is installed as (pyproject's ``package-dir``)."""
MAX_LINES = 400
LINE_CHECKED = ("solvers", "layerdecomp", "recipes", "benchmarks", "tests")


@dataclass(frozen=True)
class Import:
    """One imported module of the tree, as seen from ``source``."""

    source: str
    target: str
    lineno: int
    module_level: bool


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name → file, for every module of the packages (``__init__`` = package)."""
    modules = {}
    for folder, package in PACKAGES.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root / folder).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def _literal_import(node: ast.AST) -> ast.Import | None:
    """``importlib.import_module("a.b")`` or ``__import__("a.b")`` as ``import a.b``."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    first = node.args[0]
    if name not in ("import_module", "__import__") or not isinstance(first, ast.Constant):
        return None
    if not isinstance(first.value, str) or first.value.startswith("."):
        return None
    return ast.Import(names=[ast.alias(name=first.value)], lineno=node.lineno)


def _statements(node: ast.AST, module_level: bool):
    """(import, module_level) for every import under ``node``: statements anywhere (under
    ``if TYPE_CHECKING:`` too) and literal ``import_module`` calls; in a function or lambda,
    ``module_level`` is False."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, module_level
            continue
        call = _literal_import(child)
        if call is not None:
            yield call, module_level
        inner = module_level and not isinstance(
            child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        )
        yield from _statements(child, inner)


def _known(name: str, modules: Mapping[str, Path]) -> str | None:
    """``name`` or its longest prefix that is a module of the tree (``None``: outside it)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def imported_names(name: str, path: Path, is_package: bool) -> list[tuple[str, str, int, bool]]:
    """Every import of module ``name``: (module, imported name or "", line, at module level).

    ``import a.b`` is ``("a.b", "")``; ``from M import n`` is ``(M, "n")`` with ``M`` absolute.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name.split(".") if is_package else name.split(".")[:-1]
    found = []
    for node, module_level in _statements(tree, True):
        if isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno, module_level) for alias in node.names]
            continue
        module = node.module or ""
        if node.level:
            base = package[: len(package) - node.level + 1]
            module = ".".join([*base, *([module] if module else [])])
        found += [(module, alias.name, node.lineno, module_level) for alias in node.names]
    return found


def import_edges(root: Path = ROOT) -> list[Import]:
    """The imports between modules of the tree (no implicit submodule → parent edge).

    ``from M import n`` imports the module ``M.n`` when it exists, else the (package) ``M``.
    """
    modules = module_files(root)
    edges = []
    for name, path in modules.items():
        for module, imported, lineno, module_level in imported_names(
            name, path, path.name == "__init__.py"
        ):
            full = f"{module}.{imported}" if imported else module
            target = full if full in modules else _known(module, modules)
            if target is not None and target != name:
                edges.append(Import(name, target, lineno, module_level))
    return edges


def external_imports(root: Path = ROOT) -> list[Import]:
    """Imports of modules outside the tree (as their top-level name), per module of the tree."""
    modules = module_files(root)
    found = []
    for name, path in modules.items():
        for module, _, lineno, module_level in imported_names(
            name, path, path.name == "__init__.py"
        ):
            if _known(module, modules) is None:
                found.append(Import(name, module.split(".")[0], lineno, module_level))
    return found


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node, or with a self-loop
    (Tarjan's algorithm, iterative), each sorted; the list sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    nodes = sorted(set(graph) | {t for targets in graph.values() for t in targets})
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph.get(node, ()):
                        found.append(sorted(component))
    return sorted(found)


def graph_of(edges: Iterable[Import]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
    return graph


def _where(edges: Iterable[Import]) -> str:
    return "; ".join(
        f"{e.source} (line {e.lineno}{'' if e.module_level else ', in a function'}) imports "
        f"{e.target}"
        for e in edges
    )


# --- the import graph ---------------------------------------------------------------------------


def test_cycle_finder_finds_cycles_and_only_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"a"}}
    assert cycles(graph) == [["a", "b", "c"], ["e"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "a2": {"c"}}) == []


def test_import_graph_of_a_package_with_a_cycle(tmp_path):
    """Modules that import each other, relatively through the package, in a function, for
    annotations only or by a literal ``import_module``: found."""
    package = tmp_path / "layerdecomp"
    (package / "tasks").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tasks" / "__init__.py").write_text("from . import tiles\n")
    (package / "tasks" / "tiles.py").write_text("def f():\n    from ..io import x\n")
    (package / "io.py").write_text("from .tasks import tiles\nfrom .tasks.tiles import y\n")
    (package / "hints.py").write_text(
        "import typing\nif typing.TYPE_CHECKING:\n    from . import lazy\n"
    )
    (package / "lazy.py").write_text(
        "import importlib\nf = lambda: importlib.import_module('layerdecomp.hints')\n"
    )
    for folder in ("solvers", "recipes"):
        (tmp_path / folder).mkdir()
    edges = import_edges(tmp_path)
    assert graph_of(edges) == {
        "layerdecomp.tasks": {"layerdecomp.tasks.tiles"},
        "layerdecomp.tasks.tiles": {"layerdecomp.io"},
        "layerdecomp.io": {"layerdecomp.tasks.tiles"},
        "layerdecomp.hints": {"layerdecomp.lazy"},
        "layerdecomp.lazy": {"layerdecomp.hints"},
    }
    levels = {e.source: e.module_level for e in edges}
    assert levels["layerdecomp.hints"] and not levels["layerdecomp.lazy"]  # in a lambda
    assert cycles(graph_of(edges)) == [
        ["layerdecomp.hints", "layerdecomp.lazy"],
        ["layerdecomp.io", "layerdecomp.tasks.tiles"],
    ]


def test_the_walk_sees_the_whole_tree():
    modules = module_files()
    for name in ("solvers.sampler", "layerdecomp.cli.run", "layerdecomp.constraints"):
        assert name in modules
    assert modules["layerdecomp._recipes"] == ROOT / "recipes" / "__init__.py"
    edges = {(e.source, e.target) for e in import_edges()}
    assert ("layerdecomp.cli", "layerdecomp.cli.run") in edges  # from .run import run
    assert ("solvers.sampler", "solvers.refine") in edges


def test_no_import_cycle():
    edges = import_edges()
    found = cycles(graph_of(edges))
    details = [
        _where(e for e in edges if e.source in component and e.target in component)
        for component in found
    ]
    assert not found, "import cycles:\n" + "\n".join(details)


# --- dependencies point one way -----------------------------------------------------------------

SOLVERS_MODULE_LEVEL = {"torch", "__future__"}
"""Besides the standard library: what ``solvers`` may import when it is imported."""
SOLVERS_LAZY = SOLVERS_MODULE_LEVEL | {"tqdm"}
"""What ``solvers`` may import inside a function (the progress bar)."""


def test_solvers_imports_nothing_from_layerdecomp():
    bad = [e for e in import_edges() if e.source.startswith("solvers")]
    bad = [e for e in bad if not (e.target == "solvers" or e.target.startswith("solvers."))]
    assert not bad, _where(bad)


def test_solvers_imports_only_the_standard_library_and_torch():
    stdlib = sys.stdlib_module_names
    bad = [
        e
        for e in external_imports()
        if e.source.startswith("solvers")
        and e.target not in stdlib
        and e.target not in (SOLVERS_MODULE_LEVEL if e.module_level else SOLVERS_LAZY)
    ]
    assert not bad, _where(bad)


def test_the_constraint_registry_is_a_leaf():
    registry = "layerdecomp.constraints.registry"
    bad = [e for e in import_edges() if e.source == registry]
    bad = [e for e in bad if e.target != "layerdecomp.constraints.base"]
    assert not bad, _where(bad)


SHARED = {"layerdecomp.cli.options", "layerdecomp.cli.execute"}
"""What the commands share (the generated options, the one way a request runs); no command
imports another."""


def test_commands_never_import_each_other():
    allowed = SHARED
    bad = [
        e
        for e in import_edges()
        if e.source.startswith("layerdecomp.cli.")
        and (e.target == "layerdecomp.cli" or e.target.startswith("layerdecomp.cli."))
        and e.target not in allowed
    ]
    assert not bad, _where(bad)


ENTRY_POINTS = {"layerdecomp.__main__"}
"""``python -m layerdecomp`` runs the command line: the one module outside it that imports it."""


def test_nothing_outside_the_command_line_imports_it():
    bad = [
        e
        for e in import_edges()
        if (e.target == "layerdecomp.cli" or e.target.startswith("layerdecomp.cli."))
        and not (e.source == "layerdecomp.cli" or e.source.startswith("layerdecomp.cli."))
        and e.source not in ENTRY_POINTS
    ]
    assert not bad, _where(bad)


# --- short modules, no citation of outside files ------------------------------------------------


def long_modules(root: Path = ROOT, limit: int = MAX_LINES) -> list[str]:
    """``path: N lines`` for every .py file of the checked folders over ``limit`` lines."""
    found = []
    for folder in LINE_CHECKED:
        for path in sorted((root / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            count = len(path.read_text(encoding="utf-8").splitlines())
            if count > limit:
                found.append(f"{path.relative_to(root)}: {count} lines")
    return found


def test_long_modules_are_found(tmp_path):
    (tmp_path / "tests" / "deep").mkdir(parents=True)
    (tmp_path / "tests" / "deep" / "long.py").write_text("x = 1\n" * 5)
    (tmp_path / "tests" / "short.py").write_text("x = 1\n" * 4)
    assert long_modules(tmp_path, limit=4) == ["tests/deep/long.py: 5 lines"]


def test_no_module_over_the_line_limit():
    found = long_modules()
    assert not found, f"over {MAX_LINES} lines: " + ", ".join(found)


FORBIDDEN = ("DESIGN" + ".md", "ALGORITHM" + ".md", "../" + "shared", "seeds" + "/")
"""Files that live next to the repository, not in it (spelled apart: this file does not match)."""


def citations(root: Path, names: Iterable[str]) -> list[str]:
    """``path:line: text`` for every line of the text files ``names`` citing a forbidden file."""
    found = []
    for name in names:
        path = root / name
        if not path.is_file():
            continue  # deleted in the working tree
        data = path.read_bytes()
        if b"\0" in data:
            continue  # binary
        text = data.decode("utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            if any(word in line for word in FORBIDDEN):
                found.append(f"{name}:{lineno}: {line.strip()[:120]}")
    return found


def test_citations_are_found(tmp_path):
    (tmp_path / "a.md").write_text("see the\n" + "ALGORITHM" + ".md table\n")
    (tmp_path / "b.bin").write_bytes(b"\0" + ("DESIGN" + ".md").encode())
    (tmp_path / "c.py").write_text("path = '" + "../" + "shared/x'\n")
    found = citations(tmp_path, ["a.md", "b.bin", "c.py", "gone.txt"])
    assert [line.split(": ")[0] for line in found] == ["a.md:2", "c.py:1"]


def test_no_citation_of_files_outside_the_repository():
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"no git checkout to list: {error}")
    names = sorted({name for name in listed.decode().split("\0") if name})
    found = citations(ROOT, names)
    assert not found, "cites files outside the repository:\n" + "\n".join(found)
