"""The import graph: arrows one way (docs/design.md). Read from the source with ast, every
import at any depth, so an import hidden in a function body counts like one at the top."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("slide_core", "baselines", "harness", "reports")
# what each package may import from the others (and itself)
ALLOWED = {
    "slide_core": {"slide_core"},
    "baselines": {"baselines"},
    "harness": {"harness", "slide_core", "baselines"},
    "reports": {"reports"},
}
# third-party packages the engine must not need: it is a library (numpy in, numpy out)
NOT_IN_ENGINE = ("hydra", "omegaconf", "mlflow", "tensorflow", "pandas", "matplotlib")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: str) -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


def imported(path: Path, known: set[str]) -> set[str]:
    """Every module `path` imports, anywhere in it; `from pkg import sub` counts as pkg.sub
    when that is a module of ours."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in known)
    return found


def graph(package: str) -> dict[str, set[str]]:
    mods = modules(package)
    known = set(mods)
    return {name: {m for m in imported(path, known) if m in known and m != name} for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles among modules, each as a path that comes back to its start. A package's
    own __init__ importing its modules is not a cycle by itself: only modules that import each
    other (directly or around a loop) are."""
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt.startswith(node + "."):  # a package importing its own submodules
                continue
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for start in sorted(edges):
        if start not in state:
            visit(start)
    return found


def test_no_import_cycle_inside_slide_core():
    assert cycles(graph("slide_core")) == []


def test_the_cycle_finder_sees_imports_in_function_bodies(tmp_path):
    edges = {"a": {"b"}, "b": set()}
    body = tmp_path / "b.py"
    body.write_text("def f():\n    from a import x\n")
    edges["b"] = imported(body, {"a", "b"})
    assert cycles(edges) == [["a", "b", "a"]]


def test_packages_import_only_downstream():
    every = {m: p for package in PACKAGES for m, p in modules(package).items()}
    for name, path in every.items():
        package = name.split(".")[0]
        ours = {m.split(".")[0] for m in imported(path, set(every)) if m.split(".")[0] in PACKAGES}
        assert ours <= ALLOWED[package], f"{name} imports {sorted(ours - ALLOWED[package])}"


def test_the_engine_needs_no_harness_library():
    for name, path in modules("slide_core").items():
        third = {m.split(".")[0] for m in imported(path, set())}
        assert not third & set(NOT_IN_ENGINE), f"{name} imports {sorted(third & set(NOT_IN_ENGINE))}"
