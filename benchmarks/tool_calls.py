"""The tool calls of one turn of many episodes (a GRPO step's rollouts, an evaluation's batch) to the sandboxed
`python` tool, side by side on threads against one by one (the peer: fronde before the ninth session), in one run.
The model is scripted: every episode calls `python` once, then answers, so only the tools' time is measured.

    python benchmarks/tool_calls.py --episodes 128
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

from fronde.data.tokenizer import train_tokenizer
from fronde.tools import Toolbox, load_tools
from fronde.tools.episode import run_episodes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=128)
    args = ap.parse_args()
    tok = train_tokenizer(['{"name": "python", "arguments": {"code": "print(sum(range(1000)))"}} done ok'] * 50,
                          vocab_size=600)
    sp = tok.special
    call = [sp.tool_call, *tok.encode('{"name": "python", "arguments": {"code": "print(sum(range(1000)))"}}'),
            sp.tool_call_end, sp.end]
    answer = [sp.answer, *tok.encode("ok"), sp.answer_end, sp.end]

    def generate(contexts, max_new_tokens, seed):
        return [(answer if sp.tool_result in ctx else call, True) for ctx in contexts]

    side = Toolbox(load_tools(["python"]))
    alone = Toolbox([dataclasses.replace(t, concurrent=False) for t in side.tools])
    prompts = [[sp.bos, *tok.encode(f"q{i}")] for i in range(args.episodes)]
    seconds = {}
    for name, box in (("one by one (peer)", alone), ("side by side", side)):
        start = time.perf_counter()
        eps = run_episodes(generate, tok, prompts, box, max_turns=2, max_new_tokens=64, max_len=512)
        seconds[name] = time.perf_counter() - start
        assert all(ep.transcript[0]["result"].strip() == "499500" for ep in eps), eps[0].transcript
    base = seconds["one by one (peer)"]
    print(f"{args.episodes} episodes, one `python` call each, {os.cpu_count()} cores\n")
    print("| tool calls | seconds | calls/s | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for name, s in seconds.items():
        print(f"| {name} | {s:.2f} | {args.episodes / s:.0f} | **{base / s:.2f}x** |")


if __name__ == "__main__":
    main()
