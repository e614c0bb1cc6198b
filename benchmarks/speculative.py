"""Speculative decoding against plain decoding, one request at a time (an agent's or a chat user's latency), in one
run: the peer is the same engine with `speculative_tokens=0`. Guesses by prompt lookup (`--method ngram`, any model)
or by the model's own MTP layer (`--method mtp`, a model trained with num_nextn_predict_layers=1).

    python benchmarks/speculative.py --tool-model runs/tools-tiny-cpu/sft/model --text-model runs/tiny-cpu/pretrain/model
    python benchmarks/speculative.py --method mtp --text-model runs/mtp/pretrain/model --only code --only fresh

- tools: multi-turn calculator episodes on arithmetic:3, greedy (the model copies the question's numbers into its
  call and the tool's result into its answer);
- code: a text model asked to write again a Python function from its context (the standard library's), greedy;
- fresh: the text model writing standard-library functions from their first line alone (nothing to copy), greedy;
- chat: the tool model answering free questions, sampled at temperature 0.7 (little to copy: the cost of checking
  guesses that are wrong).

Prints tokens per second with guesses off and on, the speed-up, the share of guessed tokens kept, the forwards
per generated token, and whether the outputs are the same.
"""

from __future__ import annotations

import argparse
import inspect
import time
from pathlib import Path

import torch

from fronde.data.chat import render_chat
from fronde.infer.engine import Engine
from fronde.infer.loading import load_for_inference
from fronde.infer.sampling import SamplingParams
from fronde.tasks import get_task
from fronde.tools import Toolbox, load_tools
from fronde.tools.episode import run_episodes


def _run(engine: Engine, prompts: list[list[int]], params: SamplingParams) -> tuple[list[list[int]], int, int]:
    """Each prompt alone, in turn: (outputs, generated tokens, engine steps)."""
    outputs, steps = [], 0
    for ids in prompts:
        engine.add_request(ids, params)
        req = engine.waiting[-1][0]
        while engine.has_work():
            engine.step()
            steps += 1
        outputs.append(req.output_ids)
    return outputs, sum(len(o) for o in outputs), steps


def tools(args, k: int):
    tok, model = load_for_inference(Path(args.tool_model), args.device)
    engine = Engine(model, max_batch=1, speculative_tokens=k, speculative_method=args.method)
    box = Toolbox(load_tools(["calculator"]))
    task = get_task("arithmetic:3")
    prompts = [render_chat(tok, task.messages(ex), tools=box.schemas(), add_generation_prompt=True)[0]
               for ex in task.test(args.n)]
    stops = [tok.special.end, tok.special.eos]
    counts = {"tokens": 0, "steps": 0}

    def generate(contexts, max_new, seed):
        outs, n, steps = _run(engine, contexts, SamplingParams(max_tokens=max_new, temperature=0,
                                                                stop_token_ids=stops))
        counts["tokens"] += n
        counts["steps"] += steps
        return [(o, bool(o) and o[-1] in stops) for o in outs]

    start = time.perf_counter()
    eps = [run_episodes(generate, tok, [p], box, 4, 64, model.config.max_position_embeddings)[0] for p in prompts]
    return time.perf_counter() - start, counts["tokens"], counts["steps"], [ep.ids for ep in eps], engine


def _functions(args, k: int, prompt_of, functions) -> tuple:
    """The text model writing standard-library functions, greedy, from prompts made of each one's source."""
    tok, model = load_for_inference(Path(args.text_model), args.device)
    engine = Engine(model, max_batch=1, speculative_tokens=k, speculative_method=args.method)
    prompts = [tok.encode(prompt_of(inspect.getsource(fn)), bos=True) for fn in functions]
    start = time.perf_counter()
    outs, n, steps = _run(engine, prompts, SamplingParams(max_tokens=args.max_tokens, temperature=0))
    return time.perf_counter() - start, n, steps, outs, engine


def code(args, k: int):
    import string

    return _functions(args, k, lambda src: src + "\n\n" + src.splitlines()[0] + "\n",
                      (string.capwords, inspect.getmodule(inspect.cleandoc).cleandoc, inspect.getdoc,
                       Path.with_suffix))


def fresh(args, k: int):
    import json
    import shlex

    return _functions(args, k, lambda src: src.splitlines()[0] + "\n",
                      (json.dumps, shlex.split, Path.relative_to, inspect.getsourcelines))


def chat(args, k: int):
    tok, model = load_for_inference(Path(args.tool_model), args.device)
    engine = Engine(model, max_batch=1, speculative_tokens=k, speculative_method=args.method)
    questions = ["What is the capital of France?", "Tell me about the sea.", "Write a short poem.",
                 "How do I sort a list in Python?"]
    prompts = [render_chat(tok, [{"role": "user", "content": q}], add_generation_prompt=True)[0] for q in questions]
    start = time.perf_counter()
    outs, n, steps = _run(engine, prompts, SamplingParams(max_tokens=args.max_tokens, temperature=0.7, seed=0,
                                                          stop_token_ids=[tok.special.end]))
    return time.perf_counter() - start, n, steps, outs, engine


WORKLOADS = {"tools": tools, "code": code, "fresh": fresh, "chat": chat}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tool-model", help="a model that calls the calculator (tools, chat)")
    ap.add_argument("--text-model", help="a model pretrained on code, e.g. tiny-cpu's (code, fresh)")
    ap.add_argument("--method", choices=["ngram", "mtp"], default="ngram", help="where the guesses come from")
    ap.add_argument("--k", type=int, default=None, help="speculative tokens (default: 4 by lookup, 1 by MTP)")
    ap.add_argument("--n", type=int, default=20, help="tools: problems")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--only", choices=sorted(WORKLOADS), action="append")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    args.k = args.k or (1 if args.method == "mtp" else 4)
    torch.set_num_threads(args.threads)
    print(f"{args.device}, {torch.get_num_threads()} threads, one request at a time; peer: the same engine without "
          f"guesses; {args.k} speculative tokens by {args.method}\n")
    print("| workload | tokens | tokens/s off | tokens/s on | speed-up | guesses kept | forwards / token on | "
          "same outputs |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name in args.only or list(WORKLOADS):
        if not (args.tool_model if name in ("tools", "chat") else args.text_model):
            which = "tool" if name in ("tools", "chat") else "text"
            ap.error(f"{name} needs --{which}-model (or leave it out with --only)")
        off_s, n_off, _, off_out, _ = WORKLOADS[name](args, 0)
        on_s, n_on, steps, on_out, engine = WORKLOADS[name](args, args.k)
        kept = engine.accepted_tokens / max(1, engine.drafted_tokens)
        print(f"| {name} | {n_on:,} | {n_off / off_s:.0f} | {n_on / on_s:.0f} | **{(n_on / on_s) / (n_off / off_s):.2f}x** "
              f"| {kept:.0%} | {steps / max(1, n_on):.2f} | {'yes' if off_out == on_out else 'NO'} |", flush=True)


if __name__ == "__main__":
    main()
