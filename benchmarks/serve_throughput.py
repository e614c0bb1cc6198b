"""Generation throughput: fronde's engine against transformers' generate() on the same weights and device.

The fronde model is saved as a checkpoint and loaded by transformers (DeepseekV3ForCausalLM.from_pretrained), so
both sides run identical weights. Greedy decoding of --new tokens after a --prompt-token prompt, for --batch
concurrent sequences (fronde: --batch requests into one engine; transformers: one batched generate call).
Also reported: fronde's time to first token, and KV-cache bytes per token measured from the engine's allocation
against an MHA model with the same heads.

    python benchmarks/serve_throughput.py --preset tiny --batch 1          # CPU, batch 1
    python benchmarks/serve_throughput.py --preset probe --batch 64        # one H100
    python benchmarks/serve_throughput.py --batch 8 --group 8 --new 48     # GRPO rollouts: 8 prompts x 8 samples

With --group G (GRPO's rollouts) each of the --batch prompts gets G sampled completions (temperature 1): fronde
prefills each prompt once and shares its cache among the G samples (the path `fronde rl` uses); transformers runs
one generate() call with num_return_sequences=G.

On a GPU fronde's engine runs twice, with its decode step replayed as CUDA graphs (the default for bf16) and
eagerly (`cuda_graphs=False`), so the graphs' share of the ratio shows. Each engine is built once and kept across
the runs, as a server or a GRPO run keeps it: the warm-up run captures the graphs.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from fronde.infer.engine import Engine
from fronde.infer.sampling import SamplingParams
from fronde.model.checkpoint import save_pretrained
from fronde.model.config import load_preset
from fronde.model.info import model_info
from fronde.model.model import CausalLM


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--prompt", type=int, default=128, help="prompt tokens")
    p.add_argument("--new", type=int, default=128, help="generated tokens per sequence")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side; the best is kept")
    p.add_argument("--group", type=int, default=1, help="samples per prompt (GRPO's G); > 1 samples at temperature 1")
    p.add_argument("--prefill-chunk", type=int, default=8192,
                   help="prompt tokens prefilled per engine step (8192: all prompts in the first step, as GRPO's "
                        "rollouts and `fronde eval` run; the server's default: 2048 on a GPU, 256 on a CPU)")
    args = p.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config = load_preset(args.preset, eos_token_id=None)  # no early stop: every sequence makes --new tokens
    model = CausalLM(config).init_weights(0).to(device=device, dtype=dtype).eval()
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(2, config.vocab_size, (args.batch, args.prompt), generator=g)
    G = args.group
    sampled = G > 1

    def make_engine(cuda_graphs: bool) -> Engine:
        return Engine(model, max_batch=args.batch * G, max_model_len=args.prompt + args.new,
                      prefill_chunk=args.prefill_chunk, cuda_graphs=cuda_graphs)

    engines = {"fronde engine, CUDA graphs": make_engine(True)} if device.type == "cuda" else {}
    engines["fronde engine" + (", eager" if engines else "")] = make_engine(False)

    def run_fronde(engine: Engine) -> tuple[float, float]:
        for k, row in enumerate(prompts.tolist()):
            engine.add_group(row, [SamplingParams(max_tokens=args.new, temperature=1.0 if sampled else 0.0,
                                                  seed=k * G + i) for i in range(G)])
        sync(device)
        t0 = time.perf_counter()
        first = None
        while engine.has_work():
            events = engine.step()
            if first is None and events:
                sync(device)
                first = time.perf_counter() - t0
        sync(device)
        return time.perf_counter() - t0, first or 0.0

    with tempfile.TemporaryDirectory() as d:
        save_pretrained(model, d)
        from transformers import DeepseekV3ForCausalLM

        hf = DeepseekV3ForCausalLM.from_pretrained(d, dtype=dtype).to(device).eval()

    def run_hf() -> float:
        ids = prompts.to(device)
        sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.new,
                              min_new_tokens=args.new, do_sample=sampled, num_return_sequences=G, pad_token_id=0,
                              **({"temperature": 1.0, "top_k": 0, "top_p": 1.0} if sampled else {}))
        sync(device)
        assert out.shape == (args.batch * G, args.prompt + args.new)
        return time.perf_counter() - t0

    for engine in engines.values():
        run_fronde(engine)  # warm-up (and graph capture)
    run_hf()
    fronde = {name: [run_fronde(engine) for _ in range(args.repeats)] for name, engine in engines.items()}
    hf_times = [run_hf() for _ in range(args.repeats)]
    tokens = args.batch * G * args.new
    hf_best = min(hf_times)
    engine = Engine(model, max_batch=1, max_model_len=args.prompt + args.new)
    info = model_info(config, kv_dtype_bytes=engine.cache.pool.element_size())
    print(f"preset {args.preset}: {info.total_params / 1e6:.1f}M total, {info.active_params / 1e6:.1f}M active; "
          f"{args.batch} prompt(s) x {G} sample(s), {args.prompt}-token prompts, {args.new} new tokens, "
          f"{'sampled' if sampled else 'greedy'}, "
          f"{str(dtype).removeprefix('torch.')}, {device.type}")
    best = {name: min(t for t, _ in runs) for name, runs in fronde.items()}
    for name, runs in fronde.items():
        print(f"  {name:<28} {tokens / best[name]:>10,.1f} new tokens/s   time to first token "
              f"{min(f for _, f in runs) * 1000:7.1f} ms")
    print(f"  {'transformers generate()':<28} {tokens / hf_best:>10,.1f} new tokens/s")
    graphs = next(iter(engines.values())).graphs
    if graphs is not None:
        captured = sum(e.graph is not None for e in graphs.entries.values())
        print(f"  CUDA graphs: {captured} captured" if graphs.active else f"  CUDA graphs OFF: {graphs.failed}")
    default = next(iter(best))  # the engine as fronde runs it: graphs on a GPU, eager on a CPU
    print(f"ratio fronde / transformers: {hf_best / best[default]:.2f}x ({default})")
    if len(best) == 2:
        with_graphs, eager = best.values()
        print(f"ratio CUDA graphs / eager engine: {eager / with_graphs:.2f}x")
    mha = info.kv_bytes_per_token_mha
    print(f"KV cache per token: fronde {engine.cache.bytes_per_token:,} bytes (measured from the engine's pool), "
          f"MHA with the same heads {mha:,} bytes: {1 - engine.cache.bytes_per_token / mha:.1%} smaller")


if __name__ == "__main__":
    main()
