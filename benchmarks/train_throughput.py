"""Training throughput: fronde vs transformers' DeepseekV3ForCausalLM, same config, device, batch and dtype.

Each side runs in its own subprocess (clean peak-memory figures, no shared allocator state) and does real
forward + backward + AdamW steps on random tokens; the parent prints tokens/s, peak memory, MFU and the ratio.

    python benchmarks/train_throughput.py --preset tiny                      # CPU, 2 cores
    python benchmarks/train_throughput.py --preset probe --batch 16 --seq 1024 --fronde-compile   # one H100

MFU follows shared/notes/peers.md: 6 x active parameters x tokens/s over the device's peak bf16 FLOP/s
(fronde.train.hardware); the figure that also counts attention-score FLOPs is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from fronde.model.config import load_preset
from fronde.model.info import model_info
from fronde.train.hardware import peak_flops
from fronde.train.optim import FUSED_ADAMW


def build(side: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype):
    config = load_preset(args.preset)
    if side == "fronde":
        from fronde.model.model import CausalLM
        from fronde.model.moe import Experts

        model = CausalLM(config).init_weights(0).to(device=device, dtype=dtype).train()
        if args.fronde_experts:
            for m in model.modules():
                if isinstance(m, Experts):
                    m.backend = args.fronde_experts
        step_loss = model.forward
        if args.fronde_compile:
            step_loss = torch.compile(model)

        def loss_fn(ids):
            return step_loss(ids[:, :-1], ids[:, 1:]).loss
    else:
        from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

        from fronde.model.hf_adapter import config_to_hf

        hf_config = DeepseekV3Config(**config_to_hf(config, dtype))
        kwargs = {"attn_implementation": "sdpa"}
        if args.hf_experts:
            kwargs["experts_implementation"] = args.hf_experts
        torch.manual_seed(0)
        model = DeepseekV3ForCausalLM._from_config(hf_config, dtype=dtype, **kwargs).to(device).train()
        call = torch.compile(model) if args.hf_compile else model

        def loss_fn(ids):
            return call(input_ids=ids[:, :-1], labels=ids[:, :-1]).loss
    return config, model, loss_fn


def run_trainer(args: argparse.Namespace) -> dict:
    """fronde's real training loop (data loader, logging every step, evaluation and checkpoints on) at the same
    preset, batch and dtype; tokens/s over everything after the warm-up steps."""
    from fronde.model.config import load_preset as preset
    from fronde.train.metrics import read_metrics
    from fronde.train.pretrain import pretrain
    from fronde.train.recipe import load_recipe

    vocab = preset(args.preset).vocab_size
    total = args.warmup + args.steps
    sets = [f"run.name=trainer-{args.preset}", f"run.out_dir={json.dumps(args.trainer_dir)}",
            f"data.vocab_size={vocab}", f"model.preset={json.dumps(args.preset)}", "model.overrides={}",
            f"batch.seq_len={args.seq}", f"batch.micro_batch_size={args.batch}",
            f"batch.global_batch_tokens={args.seq * args.batch}", f"schedule.max_steps={total}",
            "schedule.warmup_steps=1", "log.every_steps=1", f"eval.every_steps={max(1, total // 2)}",
            "eval.batches=2", f"checkpoint.every_steps={max(1, total // 2)}", f"precision.dtype={args.dtype}",
            f"precision.compile={'true' if args.fronde_compile else 'false'}"]
    recipe = load_recipe("tiny-cpu", sets)
    pretrain(recipe, say=lambda _: None)
    records = read_metrics(recipe.run_dir / "pretrain" / "metrics.jsonl")
    start, end = records[args.warmup - 1], records[-1]
    rate = (end["tokens"] - start["tokens"]) / (end["seconds"] - start["seconds"])
    return {"side": "trainer", "tokens_per_s": rate, "peak_bytes": 0, "final_loss": end["loss"],
            "seconds": end["seconds"] - start["seconds"]}


def run_side(side: str, args: argparse.Namespace) -> dict:
    if side == "trainer":
        return run_trainer(args)
    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    config, model, loss_fn = build(side, args, device, dtype)
    # the same fused AdamW on both sides (the trainer's): the comparison is between the models
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type in FUSED_ADAMW)
    gen = torch.Generator(device="cpu").manual_seed(0)
    batches = [torch.randint(0, config.vocab_size, (args.batch, args.seq + 1), generator=gen) for _ in range(4)]
    batches = [b.to(device) for b in batches]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step(i: int) -> float:
        loss = loss_fn(batches[i % len(batches)])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for i in range(args.warmup):
        step(i)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for i in range(args.steps):
        loss = step(i)
    sync()
    elapsed = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"side": side, "tokens_per_s": args.batch * args.seq * args.steps / elapsed, "peak_bytes": peak,
            "final_loss": float(loss), "seconds": elapsed}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3, help="runs per side (alternating); the median is reported")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=["bf16", "fp32"], default=None, help="default: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--fronde-compile", action="store_true", help="torch.compile the fronde model")
    p.add_argument("--fronde-experts", choices=["auto", "grouped_mm", "bmm", "loop"], default=None,
                   help="fronde expert backend (default auto: grouped_mm on CUDA bf16, else padded bmm)")
    p.add_argument("--hf-compile", action="store_true", help="torch.compile the transformers model")
    p.add_argument("--hf-experts", default=None, help="transformers experts_implementation (eager, grouped_mm, ...)")
    p.add_argument("--through-trainer", action="store_true",
                   help="also run fronde's real training loop (data, logging, eval, checkpoints) and compare")
    p.add_argument("--trainer-dir", default="runs/bench", help="where the trainer run writes (data is reused)")
    p.add_argument("--only", choices=["fronde", "hf", "trainer"], help=argparse.SUPPRESS)
    args = p.parse_args()
    args.dtype = args.dtype or ("bf16" if args.device.startswith("cuda") else "fp32")
    if args.only:
        print(json.dumps(run_side(args.only, args)))
        return

    runs: dict[str, list[dict]] = {"fronde": [], "hf": []}
    if args.through_trainer:
        runs["trainer"] = []
    for _ in range(args.repeats):  # alternate the sides so a busy machine slows both alike; keep each median
        for side in runs:
            cmd = [sys.executable, __file__, *sys.argv[1:], "--only", side]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"{side} run failed:\n{out.stderr[-4000:]}")
            runs[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
    results = {side: sorted(r, key=lambda x: x["tokens_per_s"])[len(r) // 2] for side, r in runs.items()}

    config = load_preset(args.preset)
    info = model_info(config, seq_len=args.seq)
    label, peak = peak_flops(args.device)
    peak = peak or float("nan")  # a GPU fronde's table lacks: MFU prints as nan
    print(f"preset {args.preset}: {info.total_params / 1e6:.1f}M total, {info.active_params / 1e6:.1f}M active; "
          f"batch {args.batch} x {args.seq}, {args.dtype}, device {label}, {args.steps} timed steps")
    names = {"fronde": "fronde" + (" +compile" if args.fronde_compile else ""),
             "hf": "transformers DeepseekV3" + (f" ({args.hf_experts})" if args.hf_experts else "")
             + (" +compile" if args.hf_compile else ""),
             "trainer": "fronde pretrain loop" + (" +compile" if args.fronde_compile else "")}
    for side, r in results.items():
        mfu = 6 * info.active_params * r["tokens_per_s"] / peak
        mfu_attn = info.train_flops_per_token * r["tokens_per_s"] / peak
        peak_mem = f"peak {r['peak_bytes'] / 2**30:6.2f} GiB" if r["peak_bytes"] else " " * 16
        print(f"  {names[side]:<40} {r['tokens_per_s']:>12,.0f} tok/s   {peak_mem}   "
              f"MFU {mfu:6.1%} (with attention {mfu_attn:6.1%})   loss {r['final_loss']:.3f}")
    ratio = results["fronde"]["tokens_per_s"] / results["hf"]["tokens_per_s"]
    print(f"ratio fronde / transformers: {ratio:.2f}x")
    if "trainer" in results:
        print(f"ratio fronde training loop / bare fronde model: "
              f"{results['trainer']['tokens_per_s'] / results['fronde']['tokens_per_s']:.2f}x")


if __name__ == "__main__":
    main()
