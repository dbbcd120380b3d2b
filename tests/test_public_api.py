"""The public facade: every exported name resolves, lazily, to what type checkers are told."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import advisor


def _type_checking_imports() -> dict[str, str]:
    tree = ast.parse(Path(advisor.__file__).read_text())
    block = next(
        n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
    )
    return {
        alias.asname or alias.name: node.module or ""
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def test_exports_and_type_checking_imports_agree() -> None:
    assert _type_checking_imports() == advisor._EXPORTS


def test_every_export_resolves_from_its_module() -> None:
    for name, module in advisor._EXPORTS.items():
        assert getattr(advisor, name) is getattr(importlib.import_module(module), name)
