"""Exporting fronde models to other runtimes: GGUF for llama.cpp (`gguf`), a Modelfile for Ollama (`ollama`)."""

from fronde.export.gguf import DTYPES, ExportError, GGUFSummary, export_gguf
from fronde.export.ollama import export_ollama, modelfile

__all__ = ["DTYPES", "ExportError", "GGUFSummary", "export_gguf", "export_ollama", "modelfile"]
