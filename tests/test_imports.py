"""The package's folders are its layers, and imports point down them only.

Every import counts, those inside functions too. ``LAYERS`` lists the folders (and
top-level modules) from the ground up; a module may import its own layer and the layers
below, never one above, and no modules import each other in a loop.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xpnet"
# from the ground up; one entry is one layer (a folder, or top-level modules side by side)
LAYERS = [
    {"xpnet.errors"},
    {"xpnet.memory"},
    {"xpnet.backend"},
    {"xpnet.core"},  # the math: activations, losses, layers, init, generic primitives, the network
    {"xpnet.engine"},  # how a pass runs: NumPy primitives, threads, the plan, kernels
    {"xpnet.parallel"},  # transport between processes
    {"xpnet.training"},  # the loop, its options, optimizers, stopping rules
    {"xpnet.mlp"},  # the model users hold (its fit is training's)
    {"xpnet.data"},  # built-in datasets, labels, preprocessing
    {"xpnet.io"},  # files: tables, CSV, .npy, checkpoints
    {"xpnet.metrics", "xpnet.plot"},
    {"xpnet.tutorials", "xpnet.distributed", "xpnet.sklearn", "xpnet.doctor"},  # front ends
    {"xpnet.bench"},
    {"xpnet.cli"},
    {"xpnet.__main__"},
]
# modules below which nothing else of xpnet may be imported
LEAVES = {
    "xpnet.errors": set(),
    "xpnet.core.activations": {"xpnet.errors"},
    "xpnet.core.ops": {"xpnet.core.activations"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
ROOT = "xpnet"  # the package's __init__ runs before any of its modules anyway: not an arrow of the layering


def imported(name: str) -> set:
    """The xpnet modules ``name`` imports anywhere in its source (package imports count as the package)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            subs = [f"{stem}.{alias.name}" for alias in node.names]
            targets = [t for t in subs if t in MODULES] or [stem]  # a submodule, else the module itself
        else:
            continue
        found |= {t for t in targets if t in MODULES and t not in (name, ROOT)}
    return found


GRAPH = {name: imported(name) for name in MODULES}


def layer(name: str) -> int:
    """The index in ``LAYERS`` of the folder or module ``name`` belongs to."""
    for index, members in enumerate(LAYERS):
        if any(name == m or name.startswith(m + ".") for m in members):
            return index
    raise AssertionError(f"{name} is in no layer of LAYERS: add it")


def cycles() -> list:
    """Every import cycle, as a list of module names (depth-first search with a path stack)."""
    found, done = [], set()

    def visit(node, path):
        for nxt in sorted(GRAPH[node]):
            if nxt in path:
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, path + [nxt])
        done.add(node)

    for name in sorted(GRAPH):
        if name not in done:
            visit(name, [name])
    return found


def test_the_reader_sees_imports_inside_functions():
    assert "xpnet.training.loop" in imported("xpnet.mlp")  # MLP.fit imports it inside the method


def test_no_import_cycles():
    assert cycles() == []


def test_every_module_has_a_layer():
    for name in MODULES:
        if name != ROOT:
            layer(name)


def test_imports_point_down_the_layers():
    upward = sorted(f"{src} -> {dst}" for src, dsts in GRAPH.items() if src != ROOT
                    for dst in dsts if layer(dst) > layer(src))
    assert upward == []


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_primitives_are_leaves(leaf):
    assert imported(leaf) - LEAVES[leaf] == set(), f"{leaf} imports more than {sorted(LEAVES[leaf])}"


def test_every_module_says_its_one_job():
    for path in MODULES.values():
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and doc.strip(), f"{path.relative_to(PACKAGE.parent)} has no docstring saying its job"


MAX_LINES = 500  # a module longer than this holds more than one job: split it by job


def test_no_module_is_over_500_lines():
    long = {str(path.relative_to(PACKAGE.parent)): n for path in MODULES.values()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split each by job): {long}"
