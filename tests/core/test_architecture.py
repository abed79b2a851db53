"""The package's shape, checked: no import cycle, the core never imports Streamlit or the views, and no module grows
past a size where it holds several concerns. Imports are read from the code (inside functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "recdash"
MAX_LINES = 700  # a module this long holds several concerns: split it by role


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """recdash module -> the recdash modules it imports (anywhere in the file)."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                base = node.module
                found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules} or {base}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle() -> None:
    graph = _imports()
    # a package's __init__ re-exports its modules: importing the package is importing them, not a cycle of its own
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_core_never_imports_streamlit_or_the_views() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        name = _module(path)
        text = path.read_text(encoding="utf-8")
        if "import streamlit" in text or "from streamlit" in text:
            offenders.append(f"{name} imports streamlit")
        views = [m for m in _imports()[name] if m.startswith("recdash.views")]
        if views and not name.startswith("recdash.views"):
            offenders.append(f"{name} imports {', '.join(views)}")
    assert offenders == []


def test_no_module_is_too_long() -> None:
    long = {_module(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
