"""Run a GPU speedrun recipe end to end on a CPU, at toy size, before spending GPU time on it.

    python3 scripts/rehearse_speedrun.py small-gpu            # ~2 minutes on 2 cores
    python3 scripts/rehearse_speedrun.py tools-small-gpu --out runs/rehearse-tools

Every stage runs as the recipe writes it (its data sources, tokenizer, task mix with tools, bf16, losses, rewards,
evaluation tasks), with the sizes cut down: the `tiny` model, a few steps per stage, short rows and completions,
a handful of evaluation problems. What a rehearsal catches is what would otherwise stop a GPU run half-way: a
recipe value that no longer validates, a data source that is not installed, a task or tool that fails, a stage
that cannot read the one before it. It also shows the CPU-side time a stage spends before its first step (data,
tokenizer, SFT task data), which a time budget on the GPU does not fit. The numbers it reports mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from fronde.speedrun import SPEEDRUNS_PACKAGE
from fronde.train.recipe import read_recipe_toml

SHRINK = {
    "pretrain": ['model.preset="tiny"', "model.overrides={}", "schedule.max_steps=4", "schedule.warmup_steps=1",
                 "batch.seq_len=128", "batch.micro_batch_size=2", "batch.global_batch_tokens=512",
                 "precision.compile=false", "checkpoint.every_steps=2", "eval.every_steps=2", "eval.batches=1"],
    "sft": ["schedule.max_steps=3", "schedule.warmup_steps=1", "batch.seq_len=512", "batch.micro_batch_size=2",
            "batch.global_batch_tokens=1024", "checkpoint.every_steps=2", "eval.every_steps=2", "eval.batches=1",
            "precision.compile=false"],
    "distill": ["schedule.max_steps=2", "schedule.warmup_steps=1", "precision.compile=false"],
    "rl": ["rl.prompts_per_step=2", "rl.group_size=2", "rl.max_new_tokens=16", "rl.test_n=4", "rl.test_every=1",
           "rl.train_pool=50", "schedule.max_steps=2", "schedule.warmup_steps=1", "batch.micro_batch_size=4",
           "checkpoint.every_steps=1", "precision.compile=false"],
}


def _toml(data: dict, prefix: str = "") -> list[str]:
    """A nested dict as TOML: values are JSON, which TOML reads for strings, numbers, booleans and arrays."""
    lines = [f"{k} = {json.dumps(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += ["", f"[{prefix}{k}]", *_toml(v, f"{prefix}{k}.")]
    return lines


def rehearsal(recipe: str) -> str:
    """The speedrun recipe with every stage's overrides followed by the toy sizes."""
    data, _ = read_recipe_toml(recipe, SPEEDRUNS_PACKAGE, "speedrun recipe")
    data = json.loads(json.dumps(data))  # a plain copy
    for stage, extra in SHRINK.items():
        if stage in data:
            data[stage]["set"] = list(data[stage].get("set", [])) + extra
    data.setdefault("eval", {}).update(n=4, max_new_tokens=16)
    data.get("run", {}).pop("minutes", None)
    text = "\n".join(_toml(data)) + "\n"
    tomllib.loads(text)  # it must read back
    return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", help="a shipped speedrun name (small-gpu, tools-small-gpu, fr-littre-gpu) or a TOML")
    p.add_argument("--out", default=None, help="run dir (default runs/rehearse-RECIPE)")
    args = p.parse_args()
    out = args.out or f"runs/rehearse-{Path(args.recipe).stem}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{Path(args.recipe).stem}.toml"
        path.write_text(rehearsal(args.recipe), encoding="utf-8")
        cmd = [sys.executable, "-m", "fronde.cli.main", "speedrun", "--recipe", str(path), "--out", out,
               "--device", "cpu"]
        print("$", " ".join(cmd), flush=True)
        return subprocess.call(cmd, env=os.environ | {"CUDA_VISIBLE_DEVICES": ""})  # a CPU run, on any machine


if __name__ == "__main__":
    raise SystemExit(main())
