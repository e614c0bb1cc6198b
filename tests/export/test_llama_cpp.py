"""llama.cpp itself (through llama-cpp-python) runs the exported GGUF as fronde runs the model directory.

On each tiny variant (q LoRA + group routing + a dense first layer; no q LoRA + tied + scaled unnormalised routing +
YaRN; dense first layers + two shared experts + four groups + MTP + DeepSeek's YaRN): the logits of a prompt match,
greedy generation gives the same 16 tokens, q8_0 stays close, and llama.cpp tokenizes text and chat prompts to
fronde's ids. The largest logit differences are printed at the end of the pytest run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fronde.data.chat import render_chat, render_chat_text
from fronde.data.tokenizer import Tokenizer
from fronde.export import export_gguf
from fronde.model.checkpoint import from_pretrained
from fronde.model.model import CausalLM
from tests.export.conftest import LOGIT_DIFFS, PROMPT

llama_cpp = pytest.importorskip("llama_cpp", reason="needs llama-cpp-python (pip install -e '.[test]')")

# Max |logit difference| allowed, as a fraction of the prompt's fronde logit range (max - min over the vocab).
# f32: summation order only. f16: llama.cpp also rounds activations to f16 for every f16 matmul. q8_0: 8-bit
# weights per 32-block. Measured values are far below these (see the run's summary).
TOLERANCE = {"f32": 1e-4, "f16": 1e-2, "q8_0": 1e-1}
GREEDY_STEPS = 16


def _llama(path: Path, dtype: str) -> llama_cpp.Llama:
    # f32: keep llama.cpp's KV cache in f32 too (its default f16 cache would round the latents).
    cache = {"type_k": llama_cpp.GGML_TYPE_F32, "type_v": llama_cpp.GGML_TYPE_F32} if dtype == "f32" else {}
    return llama_cpp.Llama(str(path), n_ctx=256, n_batch=256, n_threads=1, logits_all=True, verbose=False,
                           **cache)


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> CausalLM:
    return from_pretrained(model_dir)


@pytest.fixture(scope="module")
def prompt_ids(tokenizer: Tokenizer) -> list[int]:
    return tokenizer.encode(PROMPT, bos=True)


def _fronde_logits(model: CausalLM, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def _llama_logits(llm: llama_cpp.Llama, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)])


@pytest.mark.parametrize("dtype", ["f32", "f16", "q8_0"])
def test_logits_match_fronde(model_dir: Path, reference: CausalLM, prompt_ids: list[int], tmp_path: Path,
                             dtype: str) -> None:
    path = export_gguf(model_dir, tmp_path / f"m-{dtype}.gguf", dtype=dtype).path
    llm = _llama(path, dtype)
    assert llm.n_vocab() == reference.config.vocab_size
    want = _fronde_logits(reference, prompt_ids)
    got = _llama_logits(llm, prompt_ids)
    diff = float(np.abs(got - want).max())
    scale = float((want.max(-1) - want.min(-1)).mean())
    LOGIT_DIFFS[(model_dir.name, dtype)] = (diff, scale)
    assert diff <= TOLERANCE[dtype] * scale, f"max |logit diff| {diff:.3g} over a logit range of {scale:.3g}"
    agree = float((got.argmax(-1) == want.argmax(-1)).mean())
    assert agree >= (1.0 if dtype != "q8_0" else 0.9), f"top-1 agreement {agree:.0%}"


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_greedy_generation_matches_fronde(model_dir: Path, reference: CausalLM, prompt_ids: list[int],
                                          tmp_path: Path, dtype: str) -> None:
    """fronde: full forwards; llama.cpp: its KV-cached decode, one token at a time."""
    ids = list(prompt_ids)
    for _ in range(GREEDY_STEPS):
        ids.append(int(_fronde_logits(reference, ids)[-1].argmax()))
    want = ids[len(prompt_ids):]
    llm = _llama(export_gguf(model_dir, tmp_path / f"m-{dtype}.gguf", dtype=dtype).path, dtype)
    llm.reset()
    llm.eval(prompt_ids)
    got = []
    for _ in range(GREEDY_STEPS):
        got.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval([got[-1]])
    assert got == want


# ---------------------------------------------------------------------------------------------------------------
# tokenizer: llama.cpp's `qwen2` pre-tokenizer against fronde's split (see fronde/export/gguf_vocab.py)

SAME_IDS = [
    PROMPT,
    "It's 12 o'clock and we're late, aren't we? WE'LL SEE. I'd've",
    "Numbers: 7, 42, 19 and 3.5 or 0.25",
    "Café, naïve, déjà vu — 日本語 and ünïcödé!",
    "def add(a, b):\n    return a + b  # tabs\tand  spaces   end\n\n\n  \n",
    'Don\'t stop; she\'ll say "hello" (twice)!!! ... <|user|> is text here',
    "the year 1999 and 2024, pi is 3.14159265, call 0800 123 4567",
]


@pytest.fixture(scope="module")
def vocab_llm(small_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> llama_cpp.Llama:
    path = export_gguf(small_model_dir, tmp_path_factory.mktemp("vocab") / "m.gguf", dtype="f16").path
    return llama_cpp.Llama(str(path), vocab_only=True, verbose=False)


@pytest.mark.parametrize("text", SAME_IDS)
def test_llama_cpp_tokenizes_like_fronde(vocab_llm, tokenizer: Tokenizer, text: str) -> None:
    ids = vocab_llm.tokenize(text.encode(), add_bos=False, special=False)
    assert ids == tokenizer.encode(text)
    assert vocab_llm.detokenize(ids).decode() == text


def test_bos_and_special_tokens(vocab_llm, tokenizer: Tokenizer) -> None:
    """add_bos_token puts <|bos|> first, as `fronde generate` does; chat prompts parse specials to fronde's ids."""
    assert vocab_llm.tokenize(PROMPT.encode()) == tokenizer.encode(PROMPT, bos=True)
    assert vocab_llm.token_bos() == tokenizer.special.bos and vocab_llm.token_eos() == tokenizer.special.eos
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi, it's 12!"},
            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Again?"}]
    text = render_chat_text(chat, add_generation_prompt=True)
    ids, _ = render_chat(tokenizer, chat, add_generation_prompt=True)
    assert vocab_llm.tokenize(text.encode(), add_bos=False, special=True) == ids


def test_a_vocabulary_of_many_scripts_tokenizes_alike(tmp_path: Path) -> None:
    """A local-language lab's tokenizer: merges learnt on Chinese, Japanese, Thai, Korean, Arabic, Hindi and Russian
    (GSM-Symbolic's problems); llama.cpp splits held-out problems of those and of Cantonese, Khmer and Burmese into
    fronde's ids, and gives the text back."""
    import warnings

    from fronde.data.tokenizer import train_tokenizer
    from fronde.tasks import get_task
    from tests.export.conftest import VARIANTS, make_model_dir

    with warnings.catch_warnings():  # some templates cannot be instantiated: said by the task, not needed here
        warnings.simplefilter("ignore")
        problems = {lang: [e.prompt for e in get_task("gsm-symbolic", language=lang).originals()]
                    for lang in ("zho", "jpn", "tha", "kor", "ara", "hin", "rus", "yue", "khm", "mya")}
    learnt = ("zho", "jpn", "tha", "kor", "ara", "hin", "rus")
    tok = train_tokenizer([p for lang in learnt for p in problems[lang][:70]], vocab_size=2048)
    model_dir = make_model_dir(tmp_path / "m", tok, steps=0, **VARIANTS["qlora-groups"])
    llm = llama_cpp.Llama(str(export_gguf(model_dir, tmp_path / "m.gguf", dtype="f16").path), vocab_only=True,
                          verbose=False)
    held_out = [p for lang, ps in problems.items() for p in ps[70:]]
    merged = 0
    for text in held_out:
        ids = tok.encode(text)
        assert llm.tokenize(text.encode(), add_bos=False, special=False) == ids, text
        assert llm.detokenize(ids).decode() == text
        merged += len(ids) < len(text.encode())
    assert merged > len(held_out) // 2  # the vocabulary holds these scripts' merges, not only bytes
