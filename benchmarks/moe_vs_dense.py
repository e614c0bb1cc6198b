"""MoE against dense at equal wall-clock: does DeepSeek-style MoE win on time at small scale?

nanochat found its MoE lost on wall clock (MFU 46% -> 35%). This script trains, through fronde's real trainer on the
same data, a MoE preset and a dense fronde model with the same active parameters per token (every layer a dense
SwiGLU of width (top-k + shared) x moe_intermediate_size), each for the same wall-clock budget. Each model's step
count is set from its own measured step time so that both finish their learning-rate schedule at the budget; the
validation loss is read at the checkpoints in time and printed side by side with the ratio.

    python benchmarks/moe_vs_dense.py --recipe small-gpu --minutes 5 10 20      # one H100, ~70 minutes
    python benchmarks/moe_vs_dense.py --recipe tiny-cpu --minutes 1 2           # CPU smoke run

Each variant's result is saved to OUT/<variant>.json, so the two can run in separate calls (`--only moe`, then
`--only dense`, same --minutes and --out: on a machine lent for 10 minutes at a time) and the comparison is
printed once both are there.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fronde.data.pipeline import prepare
from fronde.model.config import load_preset
from fronde.model.info import model_info
from fronde.train.metrics import read_metrics
from fronde.train.pretrain import pretrain
from fronde.train.recipe import load_recipe


def dense_twin(preset: str) -> dict:
    """Overrides turning a MoE preset into a dense model with the same active FFN width."""
    c = load_preset(preset)
    width = (c.num_experts_per_tok + c.n_shared_experts) * c.moe_intermediate_size
    return {"first_k_dense_replace": c.num_hidden_layers, "intermediate_size": width}


def val_at(records: list[dict], seconds: float) -> float | None:
    """Validation loss at a wall-clock time, linearly interpolated between evaluations."""
    pts = [(r["seconds"], r["val_loss"]) for r in records if "val_loss" in r]
    if not pts or seconds < pts[0][0]:
        return None
    for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
        if t0 <= seconds <= t1:
            return v0 + (v1 - v0) * (seconds - t0) / (t1 - t0)
    return pts[-1][1]  # the run finished its schedule before this time: its final loss is what it has


def step_seconds(recipe_name: str, sets: list[str], probe_steps: int) -> float:
    r = load_recipe(recipe_name, sets + [f"schedule.max_steps={probe_steps}", "schedule.warmup_steps=1",
                                         "eval.every_steps=0", "checkpoint.every_steps=0"])
    result = pretrain(r, say=lambda _: None)
    records = read_metrics(r.run_dir / "pretrain" / "metrics.jsonl")
    later = [x for x in records if x["step"] > 2]  # skip compile/warm-up steps
    return (later[-1]["seconds"] - later[0]["seconds"]) / max(1, later[-1]["step"] - later[0]["step"]) \
        if len(later) > 1 else result.ledger.stages[-1].wall_seconds / probe_steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="tiny-cpu")
    p.add_argument("--minutes", type=float, nargs="+", default=[5, 10, 20])
    p.add_argument("--evals", type=int, default=20, help="validation points per run")
    p.add_argument("--probe-steps", type=int, default=8)
    p.add_argument("--out", default="runs/moe-vs-dense")
    p.add_argument("--only", choices=["moe", "dense"], help="run one variant (the other in another call)")
    args = p.parse_args()
    base = load_recipe(args.recipe)
    budget = max(args.minutes) * 60
    variants = {"moe": [], "dense": [f"model.overrides={_inline(base.model.overrides | dense_twin(base.model.preset))}"]}
    data_dir = Path(args.out) / "data"
    prepare(base.data, data_dir)  # once, shared: both models see the same tokens
    common = [f"run.out_dir={json.dumps(args.out)}", f"data.dir={json.dumps(str(data_dir))}"]
    for name, sets in variants.items():
        if args.only and name != args.only:
            continue
        sets = common + sets + [f"run.name={name}"]
        secs = step_seconds(args.recipe, sets + [f"run.name={name}-probe"], args.probe_steps)
        steps = max(10, int(budget / secs))
        r = load_recipe(args.recipe, sets + [f"schedule.max_steps={steps}",
                                             f"schedule.warmup_steps={max(1, steps // 20)}",
                                             f"eval.every_steps={max(1, steps // args.evals)}",
                                             "checkpoint.every_steps=0"])
        cfg = load_preset(r.model.preset, **r.model.overrides)
        info = model_info(cfg, seq_len=r.batch.seq_len)
        t0 = time.perf_counter()
        pretrain(r, say=lambda _: None)
        records = read_metrics(r.run_dir / "pretrain" / "metrics.jsonl")
        result = {"steps": steps, "step_s": secs, "active": info.active_params, "total": info.total_params,
                  "wall": time.perf_counter() - t0, "minutes": args.minutes,
                  "val": {f"{m:g}": val_at(records, m * 60) for m in args.minutes},
                  "tokens_per_s": records[-1]["tokens_per_s"], "mfu": records[-1]["mfu"]}
        (Path(args.out) / f"{name}.json").write_text(json.dumps(result, indent=1))
    results = {name: json.loads((Path(args.out) / f"{name}.json").read_text()) for name in variants
               if (Path(args.out) / f"{name}.json").exists()}
    print(f"recipe {args.recipe}, equal wall-clock budgets {args.minutes} min, same data")
    for name, res in results.items():
        vals = "  ".join(f"{m} min: {v:.4f}" if v is not None else f"{m} min: -" for m, v in res["val"].items())
        print(f"  {name:<6} {res['total'] / 1e6:7.1f}M total {res['active'] / 1e6:6.1f}M active  "
              f"{res['tokens_per_s']:>10,.0f} tok/s  MFU {res['mfu']:.1%}  {res['steps']} steps   val loss  {vals}")
    if len(results) < len(variants):
        print(f"  waiting for {', '.join(sorted(set(variants) - set(results)))}: run it with --only and the same --out")
        return
    for m in (f"{m:g}" for m in args.minutes):
        a, b = results["moe"]["val"].get(m), results["dense"]["val"].get(m)
        if a is not None and b is not None:
            print(f"  at {m} min: MoE - dense = {a - b:+.4f} nats ({'MoE wins' if a < b else 'dense wins'})")


def _inline(d: dict) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in d.items()) + " }"


if __name__ == "__main__":
    main()
