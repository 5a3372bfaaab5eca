"""The layout the code promises (README "Layout"): layers that import only downwards, thin CLI modules,
torch only in measure/, imports at the top, one name per test, modules a reader can hold in their head."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "llmecon"
TESTS = Path(__file__).resolve().parent

# rank of each part of the package: a module imports llmecon modules of a lower rank, or of its own part
RANKS = {
    "_version": 0, "errors": 0, "units": 0, "vocab": 0, "files": 0, "stats": 0, "formats": 0,
    "costmodel": 1,
    "records": 2,
    "measure": 3, "calibration": 3,
    "estimate": 4, "render": 4,
    "pipeline": 5,
    "api": 6, "__init__": 6,
    "cli": 7,
}
BASICS = {name for name, rank in RANKS.items() if rank == 0}
DEVICE_LIBRARIES = {"torch", "transformers", "pynvml"}
# the only libraries a function may import: heavy ones, kept off the paths of `llmecon --help` and estimate
LAZY_OK = {"torch", "transformers", "pynvml", "pandas", "numpy", "matplotlib", "rich"}
MAX_LINES = 450


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = "llmecon." + ".".join(parts) if parts != ("__init__",) else "llmecon"
        out.append((name.removesuffix(".__init__"), path))
    return out


def _part(module: str) -> str:
    """The part of the package a module belongs to: 'costmodel', 'cli', 'units', '__init__'..."""
    rest = module.split(".")[1:]
    return {"__main__": "cli"}.get(rest[0], rest[0]) if rest else "__init__"


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import statement of a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                found.append((child.module, child.lineno, in_function))
                if child.module == "llmecon":  # from llmecon import x: x may be a subpackage
                    found.extend((f"llmecon.{alias.name}", child.lineno, in_function) for alias in child.names
                                 if alias.name != "__version__")
            visit(child, inner)

    visit(tree, False)
    return found


MODULES = _modules()


def test_layout_every_module_belongs_to_a_layer():
    assert not [m for m, _ in MODULES if _part(m) not in RANKS]


@pytest.mark.parametrize("module,path", MODULES, ids=[m for m, _ in MODULES])
def test_layout_imports_go_down_the_layers(module, path):
    me = _part(module)
    wrong = []
    for target, line, _ in _imports(path):
        if not target.startswith("llmecon"):
            continue
        other = _part(target)
        if other == me or (me in BASICS and other in BASICS and RANKS[other] == 0):
            if me == "cli" and target not in ("llmecon.cli", "llmecon.cli._output", "llmecon.cli._views") \
                    and module != "llmecon.cli":
                wrong.append(f"line {line}: {target} (a command module imports another command's module)")
            continue
        if RANKS[other] >= RANKS[me]:
            wrong.append(f"line {line}: {target} ({other}, rank {RANKS[other]}) from {me} (rank {RANKS[me]})")
    assert not wrong, f"{module} imports upwards or sideways:\n" + "\n".join(wrong)


@pytest.mark.parametrize("module,path", MODULES, ids=[m for m, _ in MODULES])
def test_layout_device_libraries_only_in_measure(module, path):
    if _part(module) == "measure":
        return
    hits = [f"line {line}: {t}" for t, line, _ in _imports(path) if t.split(".")[0] in DEVICE_LIBRARIES]
    assert not hits, f"{module} imports torch/transformers/pynvml outside measure/: {hits}"


@pytest.mark.parametrize("module,path", MODULES, ids=[m for m, _ in MODULES])
def test_layout_imports_at_the_top(module, path):
    late = [f"line {line}: {t}" for t, line, inside in _imports(path) if inside and t.split(".")[0] not in LAZY_OK]
    assert not late, f"{module} imports inside a function (only {sorted(LAZY_OK)} may be): {late}"


@pytest.mark.parametrize("module,path", MODULES, ids=[m for m, _ in MODULES])
def test_layout_modules_stay_small(module, path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{module} has {n} lines (split it: one job per module)"


def test_layout_test_names_are_unique():
    seen: dict[str, str] = {}
    dup = []
    for path in sorted(TESTS.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                where = str(path.relative_to(TESTS))
                if node.name in seen and seen[node.name] != where:
                    dup.append(f"{node.name}: {seen[node.name]} and {where}")
                seen.setdefault(node.name, where)
    assert not dup, "test names used twice:\n" + "\n".join(dup)


def test_layout_tests_mirror_the_source_tree():
    """tests/<part>/test_<module>.py for a module of a subpackage; tests/cli/test_<command>.py for a command."""
    parts = {p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith("_")}
    stray = [str(p.relative_to(TESTS)) for p in TESTS.rglob("test_*.py")
             if p.parent != TESTS and p.parent.name not in parts]
    assert not stray, f"test folders that mirror no package: {stray}"


def test_layout_no_path_outside_the_repository_is_cited():
    pattern = re.compile(r"\.\./shared|shared/(reference|article)|numbers\.md|measurement-validity\.md|DESIGN\.md|/work/")
    root = SRC.parents[1]
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix in (".py", ".md", ".csv", ".sh", ".toml", ".html")
             and not any(part in (".git", "results", "llmecon-out") or part.endswith(".egg-info")
                         for part in p.relative_to(root).parts)]
    hits = [f"{p.relative_to(root)}:{i}" for p in files
            for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
            if pattern.search(line) and p.name != "test_layout.py"]
    assert not hits, f"citations of files outside the repository: {hits[:10]}"
