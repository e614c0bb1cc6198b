"""The layering rule as a test helper: a package's modules import fronde only from the layers allowed to it."""

from __future__ import annotations

import ast
from pathlib import Path


def assert_imports_only(package_dir: Path, allowed: tuple[str, ...]) -> None:
    for path in Path(package_dir).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fronde"):
                assert node.module.startswith(allowed), (path.name, node.module)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("fronde") or alias.name.startswith(allowed), path.name
