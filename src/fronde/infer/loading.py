"""A model dir loaded for inference: one place that decides the dtype every inference path uses."""

from __future__ import annotations

from pathlib import Path


from fronde.data.errors import DataError
from fronde.data.tokenizer import Tokenizer
from fronde.model.checkpoint import from_pretrained
from fronde.model.precision import compute_dtype
from fronde.model.model import CausalLM

LOAD_ERRORS = (FileNotFoundError, ValueError, DataError)  # what a bad or incomplete model dir raises


def load_for_inference(model_dir: Path | str, device: str = "cpu") -> tuple[Tokenizer, CausalLM]:
    """Tokenizer and model: bf16 on a GPU (as served), fp32 on the CPU and on GPUs without native bf16."""
    tok = Tokenizer.load(model_dir)
    return tok, from_pretrained(model_dir, dtype=compute_dtype(device), device=device)
