"""A package's public names resolved on first use (PEP 562), so that `fronde --help`, `fronde runs` or `fronde data`
start in a fraction of a second instead of importing torch and the whole stack (3.5 s on 2 cores)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """The module `__getattr__` of `package`, whose name `n` is `package.<exports[n]>.n`."""
    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
