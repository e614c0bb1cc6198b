"""Prefix caching on against off, in one run: the peer is the same engine prefilling every prompt whole (vLLM's
`--no-enable-prefix-caching`). Three workloads where prompts start alike:

- eval: `fronde eval --tool calculator`'s multi-turn episodes (each turn's context is the last turn's plus a tool
  result; every prompt starts with the same system text and tool schemas);
- grpo: GRPO's multi-turn tool rollouts (G episodes per prompt, then their later turns), sampling only;
- chat: one conversation of T turns with a long system prompt, as `fronde chat`, `fronde agent` or a client of
  `fronde serve` sends it (the whole conversation every turn).

    python benchmarks/prefix_cache.py --model-dir runs/tools-tiny-cpu/sft/model
    python benchmarks/prefix_cache.py --model-dir DIR --only chat --turns 4     # a quick check that it runs

Prints, per workload, seconds and prompt tokens prefilled with the cache off and on, the speed-up, and how many
outputs are the same (greedy; sampled rollouts draw from the same seeds, so only a draw that fp32 rounding moves
across a token boundary can differ).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from fronde.data.chat import render_chat
from fronde.eval.fronde_model import FrondeModel
from fronde.eval.generative import GenerationSettings, evaluate_generative
from fronde.infer.engine import Engine
from fronde.infer.rollout import EngineRollouts
from fronde.infer.sampling import SamplingParams
from fronde.tasks import get_task
from fronde.tools import Toolbox, load_tools
from fronde.train.grpo import RLSection, RLTask, prompt_ids, sample_episodes


def _prefilled(engines) -> tuple[int, int]:
    return sum(e.prompt_tokens - e.cached_tokens for e in engines), sum(e.cached_tokens for e in engines)


def bench_eval(args, caching: bool):
    model = FrondeModel(Path(args.model_dir), device=args.device, max_batch=32)
    model.engines.prefix_caching = caching
    settings = GenerationSettings(n=args.n, max_new_tokens=args.max_new_tokens, save_outputs=True,
                                  tools=["calculator"], max_turns=4)
    start = time.perf_counter()
    score = evaluate_generative(model, get_task(args.task), settings)
    seconds = time.perf_counter() - start
    outputs = [(row.get("outputs"), row.get("tools")) for row in score.examples]
    return seconds, _prefilled(model.engines.engines), outputs


def bench_grpo(args, caching: bool):
    model = FrondeModel(Path(args.model_dir), device=args.device)  # the tokenizer and weights, loaded as eval does
    tok, net = model.tok, model.model
    sec = RLSection(tasks=[RLTask(name=args.task, tools=["calculator"])], max_new_tokens=64, max_turns=3,
                    group_size=args.group_size)
    task = get_task(args.task)
    box = Toolbox(load_tools(["calculator"]))
    rollouts = EngineRollouts()
    rollouts.engines.prefix_caching = caching
    pool = task.train(args.steps * args.prompts, seed=0)
    outputs, start = [], time.perf_counter()
    for step in range(args.steps):
        examples = pool[step * args.prompts : (step + 1) * args.prompts]
        prompts = [prompt_ids(tok, task, ex, None, box) for ex in examples]
        eps = sample_episodes(net, rollouts, tok, prompts, [box] * len(prompts), sec, sec.group_size, 1.0, step)
        outputs += [ep.ids for ep in eps]
    return time.perf_counter() - start, _prefilled(rollouts.engines.engines), outputs


def bench_chat(args, caching: bool):
    model = FrondeModel(Path(args.model_dir), device=args.device)
    tok, net = model.tok, model.model
    engine = Engine(net, max_batch=1, prefix_caching=caching)
    system = ("You are the support assistant of a small company. Answer briefly and precisely; when a question "
              "needs arithmetic, show the numbers. ") * 8
    history = [{"role": "system", "content": system}]
    outputs, start = [], time.perf_counter()
    for turn in range(args.turns):
        history.append({"role": "user", "content": f"Question {turn}: what is {turn + 12} + {3 * turn + 7}?"})
        ids, _ = render_chat(tok, history, add_generation_prompt=True)
        req = engine.generate([ids], SamplingParams(max_tokens=24, temperature=0,
                                                    stop_token_ids=[tok.special.end]))[0]
        reply = tok.decode([t for t in req.output_ids if t != tok.special.end])
        history.append({"role": "assistant", "content": reply})
        outputs.append(req.output_ids)
    return time.perf_counter() - start, _prefilled([engine]), outputs


WORKLOADS = {"eval": bench_eval, "grpo": bench_grpo, "chat": bench_chat}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True, help="a model that calls the calculator, e.g. after "
                    "`fronde sft sft-tools-tiny-cpu`")
    ap.add_argument("--only", choices=sorted(WORKLOADS), action="append")
    ap.add_argument("--task", default="arithmetic:3")
    ap.add_argument("--n", type=int, default=200, help="eval: test problems")
    ap.add_argument("--max-new-tokens", type=int, default=200, help="eval: per model turn")
    ap.add_argument("--steps", type=int, default=3, help="grpo: steps of rollouts")
    ap.add_argument("--prompts", type=int, default=16, help="grpo: prompts per step")
    ap.add_argument("--group-size", type=int, default=8, help="grpo: episodes per prompt")
    ap.add_argument("--turns", type=int, default=12, help="chat: conversation turns")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.model_dir}, {args.device}, {torch.get_num_threads()} threads; peer: the same engine with prefix "
          "caching off\n")
    print("| workload | seconds off | seconds on | speed-up | prompt tokens prefilled off | on (found cached) | "
          "same outputs |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name in args.only or list(WORKLOADS):
        off_s, (off_tokens, _), off_out = WORKLOADS[name](args, False)
        on_s, (on_tokens, hits), on_out = WORKLOADS[name](args, True)
        same = sum(a == b for a, b in zip(off_out, on_out))
        print(f"| {name} | {off_s:.2f} | {on_s:.2f} | **{off_s / on_s:.2f}x** | {off_tokens:,} | {on_tokens:,} "
              f"({hits:,}) | {same} of {len(off_out)} |", flush=True)


if __name__ == "__main__":
    main()
