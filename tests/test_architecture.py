"""The shape of the code, measured over the tree with ``ast`` (nothing here imports the package).

* no import circle among the modules of ``src/fwi_plugins`` or of any plugin's ``src``: every
  import counts, at the top of a module, inside a function or under ``TYPE_CHECKING``, so a
  circle cannot hide behind an import moved into a function;
* no module over :data:`MAX_MODULE_LINES` lines and no function over :data:`MAX_FUNCTION_LINES`;
* no shim: a module (other than a package's ``__init__.py``) whose body is only imports and
  ``__all__``, kept so that old import paths work;
* no benchmark importing the engine's internals: benchmarks use :mod:`fwi_plugins.api` and the
  public modules, as a user's script would.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def source_roots(root: Path = ROOT) -> list[Path]:
    """The folders that hold importable packages: ``src`` and each plugin's ``src``."""
    return [root / "src", *sorted(p for p in (root / "plugins").glob("*/src") if p.is_dir())]


def python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "egg-info" not in str(p))


def module_name(path: Path, source_root: Path) -> str:
    parts = list(path.relative_to(source_root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(tree: ast.Module, module: str, *, is_package: bool,
                     modules: set[str]) -> Iterator[tuple[str, int]]:
    """The modules of ``modules`` that the imports of ``tree`` load, each with the line of its import.

    ``from a import b`` loads ``a.b`` where that is a module, else ``a`` (its ``__init__`` when a
    package); relative imports are resolved against ``module``. A package is not counted as
    imported merely because one of its submodules is.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:
                    yield f"{target}.{alias.name}", node.lineno
                elif target in modules:
                    yield target, node.lineno


def import_graph(source_root: Path) -> dict[str, dict[str, int]]:
    """Module -> {module of the same source root it imports: line of its first import}."""
    files = {module_name(p, source_root): p for p in python_files(source_root)}
    graph: dict[str, dict[str, int]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges: dict[str, int] = {}
        for name, line in imported_modules(tree, module, is_package=path.name == "__init__.py", modules=set(files)):
            if name != module:
                edges.setdefault(name, line)
        graph[module] = edges
    return graph


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as sorted names."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def describe_cycle(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    members = set(component)
    edges = [f"{a} -> {b} (line {line})" for a in component for b, line in sorted(graph[a].items()) if b in members]
    return "; ".join(edges)


def long_modules(root: Path = ROOT) -> list[str]:
    return [f"{p.relative_to(root)}: {n} lines" for folder in source_roots(root) for p in python_files(folder)
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]


def long_functions(root: Path = ROOT) -> list[str]:
    """Functions and methods longer than the limit, from ``def`` to their last line (decorators excluded)."""
    found = []
    for folder in source_roots(root):
        for path in python_files(folder):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}: {lines} lines")
    return found


def is_shim(tree: ast.Module) -> bool:
    """A module whose body, besides its docstring, is only imports and ``__all__``, and holds at least one import."""
    body = list(tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    imports = [n for n in body if isinstance(n, (ast.Import, ast.ImportFrom)) and
               not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]
    rest = [n for n in body if not isinstance(n, (ast.Import, ast.ImportFrom)) and not _assigns_all(n)]
    return bool(imports) and not rest


def _assigns_all(node: ast.stmt) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
        node, (ast.AnnAssign, ast.AugAssign)) else []
    return any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets)


def shims(root: Path = ROOT) -> list[str]:
    return [str(p.relative_to(root)) for folder in source_roots(root) for p in python_files(folder)
            if p.name != "__init__.py" and is_shim(ast.parse(p.read_text()))]


def engine_imports(path: Path) -> list[int]:
    """Lines of ``path`` that import :mod:`fwi_plugins.engine` or anything in it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        if any(n == "fwi_plugins.engine" or n.startswith("fwi_plugins.engine.") for n in names):
            found.append(node.lineno)
    return found


def benchmarks_importing_engine(root: Path = ROOT) -> list[str]:
    return [f"{p.relative_to(root)}:{line}" for p in python_files(root / "benchmarks") for line in engine_imports(p)]


# -- the checks ---------------------------------------------------------------------
@pytest.mark.parametrize("source_root", source_roots(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_cycle(source_root: Path) -> None:
    graph = import_graph(source_root)
    cycles = find_cycles(graph)
    assert not cycles, "import circles: " + " | ".join(describe_cycle(graph, c) for c in cycles)


def test_no_module_over_the_line_limit() -> None:
    assert not long_modules(), f"modules over {MAX_MODULE_LINES} lines: {long_modules()}"


def test_no_function_over_the_line_limit() -> None:
    assert not long_functions(), f"functions over {MAX_FUNCTION_LINES} lines: {long_functions()}"


def test_no_shim_module() -> None:
    assert not shims(), f"modules that only re-export (import from the owner instead): {shims()}"


def test_no_benchmark_imports_the_engine() -> None:
    found = benchmarks_importing_engine()
    assert not found, f"benchmarks importing fwi_plugins.engine (use fwi_plugins.api): {found}"


# -- the measures themselves, on planted trees ------------------------------------------
def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_a_cycle_through_a_function_or_type_checking_import_is_found(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "src/pkg/__init__.py": "",
        "src/pkg/a.py": "from .b import f\n",
        "src/pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import C\n",
        "src/pkg/c.py": "def g():\n    from pkg import a\n",
        "src/pkg/d.py": "from . import a\n",
    })
    graph = import_graph(root / "src")
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_a_package_and_its_submodules_are_no_cycle(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "src/pkg/__init__.py": "from .specs import Spec\n",
        "src/pkg/specs.py": "X = 1\n",
        "src/pkg/user.py": "from pkg import specs\nfrom pkg.specs import X\n",
    })
    assert find_cycles(import_graph(root / "src")) == []


def test_long_modules_and_functions_are_found(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    root = _tree(tmp_path, {
        "src/pkg/long.py": "\n" * MAX_MODULE_LINES + "x = 1\n",
        "plugins/p/src/p/f.py": f"def f():\n{body}\n\n\ndef short():\n    return 1\n",
    })
    assert long_modules(root) == [f"src/pkg/long.py: {MAX_MODULE_LINES + 1} lines"]
    assert long_functions(root) == [f"plugins/p/src/p/f.py:1 f: {MAX_FUNCTION_LINES + 1} lines"]


def test_a_shim_is_found_and_an_init_or_a_module_with_code_is_not(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "src/pkg/__init__.py": "from .real import f\n__all__ = ['f']\n",
        "src/pkg/old.py": '"""Old home."""\nfrom __future__ import annotations\nfrom .real import f\n__all__ = ["f"]\n',
        "src/pkg/real.py": "from os import path\n\n\ndef f():\n    return path\n",
        "src/pkg/empty.py": '"""Nothing yet."""\n',
    })
    assert shims(root) == ["src/pkg/old.py"]


def test_a_benchmark_importing_the_engine_is_found(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "benchmarks/a.py": "from fwi_plugins import api\n",
        "benchmarks/b.py": "def f():\n    from fwi_plugins.engine.metrics import ssim\n",
        "benchmarks/c.py": "from fwi_plugins import engine\n",
        "benchmarks/sub/d.py": "import fwi_plugins.engine.training.train as t\n",
    })
    assert benchmarks_importing_engine(root) == ["benchmarks/b.py:2", "benchmarks/c.py:1", "benchmarks/sub/d.py:1"]
