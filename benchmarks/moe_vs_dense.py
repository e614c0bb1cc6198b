"""MoE against dense at equal wall-clock: does DeepSeek-style MoE win on time at small scale?

nanochat found its MoE lost on wall clock (MFU 46% -> 35%). This script trains, through fronde's real trainer on the
same data, a MoE preset and a dense fronde model with the same active parameters per token (every layer a dense
SwiGLU of width (top-k + shared) x moe_intermediate_size), each for the same wall-clock budgets. Every budget is its
own run with `schedule.max_minutes` and a warmup-stable-decay schedule (fronde.train.budget): each model plans its
steps from its own measured pace, compilation and evaluation included, and decays its learning rate at the end of
its budget. So "validation loss at 5 minutes" is that of a model trained for 5 minutes, not a mid-schedule point
of a longer run. The final validation loss (the recipe's fixed evaluation batches) is printed side by side.

    python benchmarks/moe_vs_dense.py --recipe small-gpu --minutes 5 10 20      # one H100, ~70 minutes
    python benchmarks/moe_vs_dense.py --recipe tiny-cpu --minutes 0.5 1         # CPU smoke run, ~3 minutes

Each variant's results are saved to OUT/<variant>.json, so the two can run in separate calls (`--only moe`, then
`--only dense`, same --minutes and --out: on a machine lent for minutes at a time) and the comparison is printed
once both are there.
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


def budget_run(recipe_name: str, name: str, sets: list[str], minutes: float) -> dict:
    """One run fitted into `minutes`; its final validation loss and what it did with the time."""
    r = load_recipe(recipe_name, sets + [f"run.name={name}-{minutes:g}min",
                                         f"schedule.max_minutes={minutes}", "schedule.max_steps=100000000",
                                         "schedule.kind=wsd", "eval.every_steps=1000000000",
                                         "checkpoint.every_steps=0"])
    t0 = time.perf_counter()
    pretrain(r, say=lambda _: None)
    records = read_metrics(r.run_dir / "pretrain" / "metrics.jsonl")
    final = [x for x in records if "val_loss" in x][-1]
    steady = [x["tokens_per_s"] for x in records if x["step"] > 2]
    return {"minutes": minutes, "val_loss": final["val_loss"], "steps": final["step"],
            "tokens": final["tokens"], "wall": time.perf_counter() - t0,
            "tokens_per_s": sorted(steady)[len(steady) // 2] if steady else final["tokens_per_s"],
            "mfu": final["mfu"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="tiny-cpu")
    p.add_argument("--minutes", type=float, nargs="+", default=[5, 10, 20])
    p.add_argument("--out", default="runs/moe-vs-dense")
    p.add_argument("--only", choices=["moe", "dense"], help="run one variant (the other in another call)")
    p.add_argument("--set", action="append", default=[], help="recipe override for both variants, e.g. the data "
                   "sources (repeatable)")
    args = p.parse_args()
    base = load_recipe(args.recipe, args.set)
    variants = {"moe": [], "dense": [f"model.overrides={_inline(base.model.overrides | dense_twin(base.model.preset))}"]}
    data_dir = Path(args.out) / "data"
    prepare(base.data, data_dir)  # once, shared: both models see the same tokens
    common = args.set + [f"run.out_dir={json.dumps(args.out)}", f"data.dir={json.dumps(str(data_dir))}"]
    train_tokens = json.loads((data_dir / "manifest.json").read_text())["splits"]["train"]["tokens"]
    for name, sets in variants.items():
        if args.only and name != args.only:
            continue
        r = load_recipe(args.recipe, common + sets)
        cfg = load_preset(r.model.preset, **r.model.overrides)
        info = model_info(cfg, seq_len=r.batch.seq_len)
        runs = [budget_run(args.recipe, name, common + sets, m) for m in args.minutes]
        result = {"active": info.active_params, "total": info.total_params, "runs": runs}
        (Path(args.out) / f"{name}.json").write_text(json.dumps(result, indent=1))
    results = {name: json.loads((Path(args.out) / f"{name}.json").read_text()) for name in variants
               if (Path(args.out) / f"{name}.json").exists()}
    print(f"recipe {args.recipe}, equal wall-clock budgets {args.minutes} min (each its own WSD run), same data")
    print(f"data: {train_tokens:,} training tokens (an epoch); past ~4 epochs a lower loss is partly memorisation")
    print("| model | total | active | budget | steps | tokens | epochs | tok/s (median) | MFU | val loss |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, res in results.items():
        for run in res["runs"]:
            print(f"| {name} | {res['total'] / 1e6:.1f}M | {res['active'] / 1e6:.1f}M | {run['minutes']:g} min | "
                  f"{run['steps']:,} | {run['tokens']:,} | {run['tokens'] / train_tokens:.1f} | "
                  f"{run['tokens_per_s']:,.0f} | {run['mfu']:.1%} | {run['val_loss']:.4f} |")
    if len(results) < len(variants):
        print(f"waiting for {', '.join(sorted(set(variants) - set(results)))}: run it with --only and the same --out")
        return
    for a, b in zip(results["moe"]["runs"], results["dense"]["runs"]):
        if a["minutes"] == b["minutes"]:
            d = a["val_loss"] - b["val_loss"]
            print(f"at {a['minutes']:g} min: MoE - dense = {d:+.4f} nats ({'MoE wins' if d < 0 else 'dense wins'})")


def _inline(d: dict) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in d.items()) + " }"


if __name__ == "__main__":
    main()
