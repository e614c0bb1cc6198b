"""Tiny trained fronde models (their directories, as `fronde export` reads them) for the export tests.

Each model is trained for a few dozen steps on a small text so its next-token predictions have clear margins:
greedy generation then compares runtimes, not coin flips between near-equal logits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fronde.data.tokenizer import Tokenizer, train_tokenizer
from fronde.model.checkpoint import save_pretrained
from fronde.model.model import CausalLM
from tests.model.helpers import tiny_model

CORPUS = (
    "The little fox jumps over the lazy dog. It's 12 o'clock and we're late, aren't we? "
    "Numbers: 7, 42, 19 and 3.5 or 0.25; the year 1999 and 2024 too.\n\n"
    "Café, naïve, déjà vu — 日本語 and ünïcödé. Don't stop; she'll say \"hello\" (twice)!\n"
    "def add(a, b):\n    return a + b  # tabs\tand  spaces   end\n"
)
PROMPT = "The little fox jumps over the lazy dog. It's 12 o'clock"

# Each variant switches a different part of llama.cpp's deepseek2 on: q LoRA and group-limited routing; no q LoRA,
# tied embeddings, unnormalised scaled routing and YaRN with fronde's default mscale; several dense layers, two
# shared experts, four groups, an MTP layer (left out of the GGUF) and DeepSeek's own YaRN settings.
VARIANTS: dict[str, dict] = {
    "qlora-groups": dict(num_hidden_layers=3),
    "no-qlora-tied-yarn": dict(
        num_hidden_layers=2, q_lora_rank=None, n_group=1, topk_group=1, first_k_dense_replace=0,
        tie_word_embeddings=True, norm_topk_prob=False, routed_scaling_factor=2.5,
        rope_scaling=dict(factor=4.0, original_max_position_embeddings=512),
    ),
    "dense-first-mtp": dict(
        num_hidden_layers=3, first_k_dense_replace=2, n_shared_experts=2, n_group=4, topk_group=2,
        num_nextn_predict_layers=1,
        rope_scaling=dict(factor=8.0, original_max_position_embeddings=256, mscale=1.0, mscale_all_dim=1.0),
    ),
}


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    return train_tokenizer([CORPUS] * 40, vocab_size=512)


def train_briefly(model: CausalLM, ids: list[int], steps: int = 30, seq: int = 32, seed: int = 0) -> CausalLM:
    """A few AdamW steps on random windows of `ids`."""
    gen = torch.Generator().manual_seed(seed)
    data = torch.tensor(ids)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(data) - seq - 1, (4,), generator=gen).tolist()
        x = torch.stack([data[s : s + seq] for s in starts])
        y = torch.stack([data[s + 1 : s + seq + 1] for s in starts])
        model(x, y).loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


def make_model_dir(path: Path, tok: Tokenizer, seed: int = 0, steps: int = 30, **overrides) -> Path:
    """Train a tiny model of the given variant (`steps` 0: random weights) and save it with its tokenizer."""
    torch.manual_seed(seed)
    model = tiny_model(seed, vocab_size=tok.vocab_size, bos_token_id=tok.special.bos,
                       eos_token_id=tok.special.eos, pad_token_id=tok.special.pad, **overrides)
    if steps:
        train_briefly(model, tok.encode(CORPUS * 8, bos=True), steps=steps, seed=seed)
    tok.save(path)
    save_pretrained(model, path, dtype=torch.float32)
    return path


@pytest.fixture(scope="session", params=list(VARIANTS))
def model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tokenizer: Tokenizer) -> Path:
    return make_model_dir(tmp_path_factory.mktemp(request.param) / request.param, tokenizer, **VARIANTS[request.param])


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer: Tokenizer) -> Path:
    """An untrained model for the tests that only need a valid directory (layout, errors, CLI, Ollama)."""
    return make_model_dir(tmp_path_factory.mktemp("small") / "small", tokenizer, steps=0, **VARIANTS["qlora-groups"])


# (variant, dtype) -> (max |llama.cpp - fronde| logit difference, mean logit range), filled by test_llama_cpp.py.
LOGIT_DIFFS: dict[tuple[str, str], tuple[float, float]] = {}


def pytest_terminal_summary(terminalreporter) -> None:
    if not LOGIT_DIFFS:
        return
    terminalreporter.section("llama.cpp vs fronde: max |logit difference| on the test prompt")
    for (variant, dtype), (diff, scale) in sorted(LOGIT_DIFFS.items()):
        terminalreporter.write_line(f"{variant:<20} {dtype:<5} {diff:.3e}  (logit range {scale:.1f})")
