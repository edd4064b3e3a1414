"""The package's imports point one way: primitives -> math -> drivers -> front ends.

Every import counts, those inside functions too. The one allowed upward arrow is the
``MLP.fit`` facade (xpnet.mlp -> xpnet.train).
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "xpnet"
ALLOWED_UP = {("xpnet.mlp", "xpnet.train")}
# modules below which nothing else of xpnet may be imported (issue 13's "leaf" primitives)
LEAVES = {
    "xpnet.errors": set(),
    "xpnet.activations": {"xpnet.errors"},
    "xpnet.ops": {"xpnet.activations", "xpnet.backend", "xpnet.errors"},
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


GRAPH = {name: imported(name) - {dst for src, dst in ALLOWED_UP if src == name} for name in MODULES}


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
    assert "xpnet.train" in imported("xpnet.mlp")  # MLP.fit imports it inside the method


def test_no_import_cycles():
    assert cycles() == []


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_primitives_are_leaves(leaf):
    assert imported(leaf) - LEAVES[leaf] == set(), f"{leaf} imports more than {sorted(LEAVES[leaf])}"


def test_the_math_does_not_import_the_drivers():
    drivers = {"xpnet.fullbatch", "xpnet.train", "xpnet.comm", "xpnet.distributed", "xpnet.cli"}
    for math in ("xpnet.mlp", "xpnet.ops", "xpnet.kernels", "xpnet.kernels.numpy_gram", "xpnet.layers",
                 "xpnet.losses", "xpnet.activations", "xpnet.inputs"):
        assert GRAPH[math] & drivers == set(), math
