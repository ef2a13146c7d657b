"""The package's shape: modules import one way, with no cycles.

Every ``import lexp.x`` / ``from lexp import x`` / ``from lexp.x import y`` counts, at
module level or inside a function (a lazy import is still a dependency), and a cycle
anywhere in that graph fails the test with the modules that form it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "lexp"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The lexp modules that ``path`` imports (a package import counts as its __init__)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{a.name}" for a in node.names} & modules
            found |= submodules  # from lexp.renderers import flow: the module lexp.flow
            if node.module in modules and len(submodules) < len(node.names):
                found.add(node.module)  # a name defined in (or re-exported by) the package
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    graph = {}
    for name, path in paths.items():
        # The top package's __init__ (the lazy public API) is not a dependency of the
        # modules it re-exports.
        graph[name] = imports_of(path, modules) - {name, "lexp"}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = import_graph()
    assert "lexp.renderers" in graph and "lexp.cli" in graph
    assert cycles(graph) == []


def test_the_leaves_import_no_other_layer():
    """errors, paths, config, colour, ... are what everything else stands on: they import
    nothing but each other."""
    graph = import_graph()
    leaves = {"lexp.errors", "lexp.paths", "lexp.config", "lexp.colour", "lexp.timing",
              "lexp.torch_env", "lexp.metrics", "lexp.weights", "lexp.download",
              "lexp.stdout", "lexp.signals"}
    for leaf in leaves:
        assert graph[leaf] <= leaves, (leaf, graph[leaf] - leaves)


# The layers, bottom first: a module imports only from its own layer and the ones below.
# A module not named here (nor under a package named here) fails the test: place it.
LAYERS = [
    # leaves: what everything stands on
    {"errors", "paths", "config", "colour", "timing", "torch_env", "metrics", "weights",
     "download", "stdout", "stills", "model", "checkpoint", "signals", "follow_options"},
    {"media", "synthetic"},  # reading and writing clips
    {"inputs", "flow"},  # what the user named, as clips; optical flow
    {"renderers"},  # frames to a linear-light long exposure
    {"image", "jobs", "training"},  # a finished image; planned outputs; the generator's training
    # many clips at once; a growing one; measurements; the Python API
    {"batch", "follow", "follow_state", "follow_video", "bench", "api", ""},
    {"cli", "__main__"},  # the command line
]


def layer_of(module: str) -> int:
    parts = module.split(".")[1:]  # lexp.renderers.flow -> renderers
    top = parts[0] if parts else ""
    for number, layer in enumerate(LAYERS):
        if top in layer:
            return number
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py: place it")


def test_layers_import_one_way():
    """media never imports flow, renderers never import batch or the CLI, ..."""
    graph = import_graph()
    upward = sorted((module, other) for module, others in graph.items() for other in others
                    if layer_of(other) > layer_of(module))
    assert upward == []


MAX_MODULE_LINES = 500


def test_no_module_is_over_500_lines():
    """A module past ~400 lines usually holds two concepts: split it before it grows."""
    sizes = {module_name(p): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {m: n for m, n in sizes.items() if n > MAX_MODULE_LINES} == {}


MAX_FUNCTION_LINES = 80


def test_no_function_is_over_80_lines():
    """A function past ~80 lines (a command's option list included) does several things:
    name them. The shared options are Annotated aliases (lexp.cli.options)."""
    long = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{module_name(path)}.{node.name}"] = lines
    assert long == {}
