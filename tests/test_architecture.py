"""The layout's rules that import-linter (run by .ci/run) does not check: imports at the top."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "advisor"
#: Third-party modules that load slowly: imported where used, so that `advisor --help` and
#: `advisor recommend` start without them (DESIGN.md, STYLE.md rule 9).
LAZY = {"torch", "optuna", "matplotlib", "scipy", "sklearn", "mlxtend"}
#: Standard modules that exist on POSIX only: imported where used, behind their fallback.
POSIX_ONLY = {"fcntl", "resource"}


def _function_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom) and not inner.level:
                found.append((inner.lineno, inner.module or ""))
            elif isinstance(inner, ast.Import):
                found += [(inner.lineno, alias.name) for alias in inner.names]
    return found


def test_package_modules_are_imported_at_the_top() -> None:
    """An import of the package inside a function hides a cycle (STYLE.md rule 9)."""
    hidden = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, name in _function_imports(path)
        if name == "advisor" or name.startswith("advisor.")
    ]
    assert not hidden, "\n".join(hidden)


def test_only_heavy_third_party_modules_are_imported_lazily() -> None:
    unexpected = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, name in _function_imports(path)
        if not name.startswith("advisor") and name.split(".")[0] not in LAZY | POSIX_ONLY
    ]
    assert not unexpected, "\n".join(unexpected)
