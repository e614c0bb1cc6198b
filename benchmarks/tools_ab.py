"""One fronde model with its tools against the same model without them: accuracy per task, and what the tools cost
(calls, failed calls, episodes that ran out of turns, generated tokens, wall time). The peer is the model itself.

    python benchmarks/tools_ab.py --model-dir runs/tools-tiny-cpu/rl/model
    python benchmarks/tools_ab.py --model-dir DIR --task arithmetic:3 --task gsm-symbolic:fra --n 120 --tool calculator
    python benchmarks/tools_ab.py --model-dir DIR --n 4 --max-new-tokens 16        # a quick check that it runs

Both sides are `fronde eval`'s generative evaluation (greedy, the task's fixed test split): without tools the prompt
offers none; with them the tools' schemas are in the prompt and each problem is a multi-turn episode scored on its
final turn (fronde.tools.episode). Prints a markdown table with the difference in points per task.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from fronde.eval.fronde_model import FrondeModel
from fronde.eval.generative import GenerationSettings, evaluate_generative
from fronde.tasks import get_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--task", action="append", help="repeatable (default: arithmetic:1, arithmetic:3, "
                    "gsm-symbolic:eng, gsm-symbolic:fra)")
    ap.add_argument("--tool", action="append", help="repeatable (default: calculator)")
    ap.add_argument("--n", type=int, default=200, help="first N test problems of each task")
    ap.add_argument("--max-new-tokens", type=int, default=200, help="per model turn")
    ap.add_argument("--max-turns", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tasks = args.task or ["arithmetic:1", "arithmetic:3", "gsm-symbolic:eng", "gsm-symbolic:fra"]
    tools = args.tool or ["calculator"]
    model = FrondeModel(Path(args.model_dir), device=args.device, max_batch=32)
    print(f"{model.name} ({args.model_dir}), {model.info.active_params / 1e6:.1f}M active parameters, "
          f"{args.device}, tools: {', '.join(tools)}\n")
    print("| task | n | without tools | with tools | difference | calls / problem | failed calls / problem | "
          "out of turns | tokens without / with | seconds without / with |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for spec in tasks:
        task = get_task(spec)
        side = {}
        for with_tools in (False, True):
            settings = GenerationSettings(n=args.n, max_new_tokens=args.max_new_tokens, save_outputs=False,
                                          tools=tools if with_tools else [], max_turns=args.max_turns)
            start = time.perf_counter()
            score = evaluate_generative(model, task, settings)
            side[with_tools] = (score, time.perf_counter() - start)
        (plain, t0), (tooled, t1) = side[False], side[True]
        m0, m1 = plain.metrics, tooled.metrics
        tokens = [s.speed.generated_tokens if s.speed else 0 for s in (plain, tooled)]
        print(f"| {spec} | {plain.dataset['examples']} | {m0['accuracy']:.1f}% | {m1['accuracy']:.1f}% | "
              f"{m1['accuracy'] - m0['accuracy']:+.1f} | {m1['tool_calls_per_problem']:.2f} | "
              f"{m1['tool_errors_per_problem']:.2f} | {m1['max_turns_percent']:.1f}% | {tokens[0]:,} / {tokens[1]:,} | "
              f"{t0:.0f} / {t1:.0f} |", flush=True)


if __name__ == "__main__":
    main()
