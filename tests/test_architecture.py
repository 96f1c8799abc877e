"""The shape of ``plugin/`` a reader relies on (docs/architecture.md): layers import downwards only,
no import cycle, no module over 400 lines, imports at the top of modules (not inside functions to
dodge a cycle). Read from the source with :mod:`ast`, so a test fails the day a change breaks one.
"""
from __future__ import annotations

import ast
from pathlib import Path

PLUGIN = Path(__file__).resolve().parent.parent / "plugin"
MAX_LINES = 400
MAX_FUNCTION_LOCAL_IMPORTS = 20
#: Domain packages: they know nothing of HTTP doors (the JSON API, the portal's pages).
DOMAIN = ("plugin.ledger", "plugin.workflows", "plugin.payments", "plugin.notifications", "plugin.tickets")
DOORS = ("plugin.api", "plugin.portal")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PLUGIN.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PLUGIN.rglob("*.py") if "migrations" not in p.parts}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = package[: len(package) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    names = [target]
    names += [f"{target}.{alias.name}" for alias in node.names]
    return names


def _imports(module: str, path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    known = _modules()
    found: set[str] = set()
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if top_level_only and isinstance(node, (ast.If, ast.Try)):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            stack.extend(ast.iter_child_nodes(node))
            continue
        if isinstance(node, ast.ImportFrom):
            candidates = _resolve(module, path, node)
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(c for c in candidates if c in known)
    return found


def _function_local_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    hits = []
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    hits.append(f"{path.relative_to(PLUGIN.parent)}:{node.lineno}")
    return sorted(set(hits))


def _cycles() -> list[list[str]]:
    graph = {m: _imports(m, p, top_level_only=True) - {m} for m, p in _modules().items()}
    # A package's __init__ is imported with each submodule; an edge to a package is an edge to its __init__.
    cycles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + "."):  # a package importing its own submodules is not a cycle
                continue
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def report() -> dict[str, object]:
    """Everything the tests below check, for a person reading ``python -m tests.test_architecture``."""
    modules = _modules()
    long = {str(p.relative_to(PLUGIN.parent)): n for p in modules.values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    upward = sorted(f"{m} -> {t}" for m, p in modules.items() if m.startswith(DOMAIN)
                    for t in _imports(m, p, top_level_only=False) if t.startswith(DOORS))
    local = [hit for p in modules.values() for hit in _function_local_imports(p)]
    return {"cycles": _cycles(), "long_modules": long, "domain_imports_doors": upward, "function_local_imports": local}


def test_no_import_cycle_in_the_plugin():
    assert _cycles() == []


def test_domain_packages_never_import_the_http_doors():
    assert report()["domain_imports_doors"] == []


def test_no_module_is_over_400_lines():
    assert report()["long_modules"] == {}


def test_imports_are_at_the_top_of_modules():
    local = report()["function_local_imports"]
    assert len(local) < MAX_FUNCTION_LOCAL_IMPORTS, "\n".join(local)


if __name__ == "__main__":  # pragma: no cover
    import json

    result = report()
    result["function_local_imports_count"] = len(result["function_local_imports"])
    print(json.dumps(result, indent=1))
