"""Exporting fronde models to other runtimes: GGUF for llama.cpp (`gguf`), a Modelfile for Ollama (`ollama`)."""

from __future__ import annotations

from fronde.lazy import lazy_exports

# Resolved on first use (PEP 562): `fronde --help` lists the export commands without importing torch.
_EXPORTS = {"DTYPES": "gguf", "ExportError": "gguf", "GGUFSummary": "gguf", "export_gguf": "gguf",
            "export_ollama": "ollama", "modelfile": "ollama"}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
