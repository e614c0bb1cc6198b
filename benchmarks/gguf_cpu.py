"""CPU decoding speed of one model three ways: llama.cpp on the exported GGUF (f16, q8_0), fronde's engine, and
transformers' generate(); with the file sizes. Greedy, batch 1, the same weights everywhere.

    python benchmarks/gguf_cpu.py                                   # the tiny preset, random weights, 2 threads
    python benchmarks/gguf_cpu.py --model-dir runs/tiny/final       # a trained fronde model directory
    python benchmarks/gguf_cpu.py --prompt 16 --new 8 --repeats 1   # a quick check that it runs

Decode tokens/s excludes the prompt: llama.cpp and fronde are timed from the first generated token on; for
transformers a 1-token generate() (prompt only) is timed and subtracted. Every side runs on --threads CPU threads
(torch.set_num_threads, llama.cpp's n_threads), fp32 for fronde and transformers. The best of --repeats is kept.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fronde.data.tokenizer import SPECIAL_TOKENS, train_tokenizer
from fronde.export import export_gguf
from fronde.infer.engine import Engine
from fronde.infer.sampling import SamplingParams
from fronde.model.checkpoint import from_pretrained, save_pretrained
from fronde.model.config import load_preset
from fronde.model.model import CausalLM


def make_model_dir(preset: str, directory: Path) -> Path:
    """A random-weight preset model with a small tokenizer (ids it does not use become unused GGUF entries)."""
    config = load_preset(preset)
    tok = train_tokenizer([__doc__ or ""] * 20, vocab_size=min(config.vocab_size, 1024))
    tok.save(directory)
    model = CausalLM(load_preset(preset, bos_token_id=tok.special.bos, eos_token_id=tok.special.eos)).init_weights(0)
    save_pretrained(model.eval(), directory, dtype=torch.float32)
    return directory


def llama_cpp_decode(path: Path, prompt: list[int], new: int, threads: int) -> float:
    """Seconds for new - 1 greedy decode steps after the prompt and the first token."""
    import llama_cpp

    # logits_all: llama-cpp-python copies the logits out only then; a decode step has one row either way
    llm = llama_cpp.Llama(str(path), n_ctx=len(prompt) + new, n_batch=len(prompt), n_threads=threads,
                          n_threads_batch=threads, logits_all=True, verbose=False)
    llm.eval(prompt)
    token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    t0 = time.perf_counter()
    for _ in range(new - 1):
        llm.eval([token])
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    return time.perf_counter() - t0


def fronde_decode(model: CausalLM, prompt: list[int], new: int) -> float:
    engine = Engine(model, max_batch=1, max_model_len=len(prompt) + new, prefill_chunk=len(prompt))
    engine.stop_ids = set()  # no early stop: every run makes --new tokens
    engine.add_request(prompt, SamplingParams(max_tokens=new, temperature=0.0))
    t0 = None
    while engine.has_work():
        if engine.step() and t0 is None:
            t0 = time.perf_counter()
    return time.perf_counter() - t0


def transformers_decode(model_dir: Path, prompt: list[int], new: int) -> float:
    from transformers import DeepseekV3ForCausalLM

    hf = DeepseekV3ForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = torch.tensor([prompt])

    def run(n: int) -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                        do_sample=False, pad_token_id=0)
        return time.perf_counter() - t0

    run(2)  # warm-up
    return run(new) - run(1)


def dir_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.glob("*.safetensors"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny", help="used when no --model-dir is given")
    p.add_argument("--model-dir", type=Path, help="a fronde model directory (with its tokenizer)")
    p.add_argument("--prompt", type=int, default=64, help="prompt tokens")
    p.add_argument("--new", type=int, default=128, help="generated tokens")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side; the best is kept")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir or make_model_dir(args.preset, Path(tmp) / args.preset)
        model = from_pretrained(model_dir)
        g = torch.Generator().manual_seed(0)
        prompt = torch.randint(len(SPECIAL_TOKENS), model.config.vocab_size, (args.prompt,), generator=g).tolist()
        ggufs = {dt: export_gguf(model_dir, Path(tmp) / f"model-{dt}.gguf", dtype=dt) for dt in ("f16", "q8_0")}

        def best(fn, *a) -> float:
            fn(*a)  # warm-up
            return min(fn(*a) for _ in range(args.repeats))

        steps = args.new - 1
        rows = [("fronde engine", "fp32", dir_bytes(model_dir), best(fronde_decode, model, prompt, args.new)),
                ("transformers generate()", "fp32", dir_bytes(model_dir),
                 min(transformers_decode(model_dir, prompt, args.new) for _ in range(args.repeats)))]
        rows += [(f"llama.cpp ({dt})", dt, s.bytes, best(llama_cpp_decode, s.path, prompt, args.new, args.threads))
                 for dt, s in ggufs.items()]
    base = steps / rows[0][3]
    name = args.model_dir or f"preset {args.preset} (random weights)"
    print(f"{name}: {model.config.num_hidden_layers} layers, hidden {model.config.hidden_size}; "
          f"{args.prompt}-token prompt, {args.new} new tokens, greedy, batch 1, {args.threads} CPU threads")
    print(f"  {'runtime':<24} {'weights':<7} {'file MB':>9} {'decode tok/s':>13} {'vs fronde':>10}")
    for label, dtype, size, seconds in rows:
        rate = steps / seconds
        print(f"  {label:<24} {dtype:<7} {size / 1e6:>9.1f} {rate:>13,.1f} {rate / base:>9.2f}x")


if __name__ == "__main__":
    main()
