"""One trained model scored twice by `fronde eval`: on fronde's engine (the model dir) and through llama.cpp's
`llama-server --jinja` (its GGUF export, f32 and q8_0). Prints accuracy, how many replies are identical to the
engine's (greedy), and generation speed against fronde's engine.

    python benchmarks/llama_server_eval.py runs/tiny-cpu/rl/model                  # arithmetic:1 and :2, 100 each
    python benchmarks/llama_server_eval.py DIR -t gsm-symbolic:eng --n 50 --parallel 8 --threads 2

The replies come back through llama-server's own reply parser (reasoning and answer apart, tool calls) and are put
together as fronde writes them, so identical replies mean the export, llama.cpp's forward pass and its chat parsing
all agree with fronde. Speeds are as each side reports them: fronde's engine over its generation time (batch
--parallel), llama-server's over the HTTP requests' wall time (--parallel slots, as many requests in flight).
llama-server is found as the tests find it (FRONDE_LLAMA_SERVER, PATH, or the one `scripts/install.sh test` builds).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fronde.export import export_gguf  # noqa: E402
from tests.servers import free_port, llama_server_binary, running  # noqa: E402


def evaluate(model: str, tasks: list[str], args: argparse.Namespace, out: Path) -> dict[str, dict]:
    """{task: result JSON} from `fronde eval MODEL` (a dir or an endpoint URL)."""
    cmd = [sys.executable, "-m", "fronde.cli.main", "eval", model, "--n", str(args.n), "--out", str(out),
           "--batch-size", str(args.parallel), "--max-new-tokens", str(args.max_new_tokens), "--no-ledger"]
    for task in tasks:
        cmd += ["-t", task]
    if not model.startswith("http"):
        cmd += ["--threads", str(args.threads)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    results = {}
    for path in out.rglob("*.json"):
        result = json.loads(path.read_text())
        results[result["task"]] = result
    return results


def replies(result: dict) -> list:
    return [e["outputs"] for e in result["examples"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("-t", "--task", action="append", help="tasks as fronde eval takes them (default arithmetic:1, :2)")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--parallel", type=int, default=8, help="engine batch / llama-server slots and requests")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--dtypes", default="f32,q8_0")
    args = ap.parse_args()
    tasks = args.task or ["arithmetic:1", "arithmetic:2"]
    binary = llama_server_binary()
    if binary is None:
        sys.exit("no llama-server: run `bash scripts/install.sh test` (builds it) or set FRONDE_LLAMA_SERVER")
    work = Path(tempfile.mkdtemp(prefix="fronde-llama-eval-"))
    base = evaluate(args.model_dir, tasks, args, work / "fronde")
    rows = [("fronde engine", task, base[task], None) for task in base]
    for dtype in args.dtypes.split(","):
        gguf = export_gguf(args.model_dir, work / f"model-{dtype}.gguf", dtype=dtype).path
        port = free_port()
        cmd = [binary, "-m", str(gguf), "--jinja", "--host", "127.0.0.1", "--port", str(port), "-np",
               str(args.parallel), "-c", str(args.parallel * 2048), "--threads", str(args.threads), "--no-webui"]
        with running(cmd, f"http://127.0.0.1:{port}/health", work / f"server-{dtype}.log"):
            served = evaluate(f"http://127.0.0.1:{port}/v1", tasks, args, work / f"llama-{dtype}")
        rows += [(f"llama-server {dtype}", task, served[task], base[task]) for task in served]
    print(f"{'runtime':<20} {'task':<16} {'accuracy':>9} {'identical':>10} {'tokens/s':>9} {'vs fronde':>9}")
    for runtime, task, result, ref in rows:
        speed = result["speed"]["tokens_per_s"] or 0.0
        same = "—" if ref is None else \
            f"{sum(a == b for a, b in zip(replies(result), replies(ref)))}/{len(replies(ref))}"
        ratio = "—" if ref is None else f"{speed / (ref['speed']['tokens_per_s'] or 1):.2f}x"
        print(f"{runtime:<20} {task:<16} {result['metrics']['accuracy']:>8.1f}% {same:>10} {speed:>9,.0f} {ratio:>9}")
    print(f"(results and server logs in {work})")


if __name__ == "__main__":
    main()
