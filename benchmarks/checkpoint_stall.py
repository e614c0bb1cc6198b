"""How long a checkpoint stops training: written in the foreground (the peer: what the loop did before) against
fronde's background writer (the training thread only copies the state to host memory).

A preset model with a real AdamW state (one step taken) is checkpointed both ways, alternately, after one unmeasured
save each way (as in a run, the background writer keeps its pinned host buffers from one checkpoint to the next);
the stall is the time until `save()` returns to the training loop and, on a GPU, the copy it queued has run. For the background writer the time until the files are complete
is printed too. The write includes the sha256 manifest, as every fronde checkpoint has.

    python benchmarks/checkpoint_stall.py --preset probe                  # 401.6M params: a 4.5 GB checkpoint
    python benchmarks/checkpoint_stall.py --preset probe --device cuda    # the device-to-host copy on a GPU
    python benchmarks/checkpoint_stall.py --preset tiny                   # a quick check that it runs
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from fronde.model.config import load_preset
from fronde.model.model import CausalLM
from fronde.train.checkpoint import CheckpointWriter, rng_state


def build(preset: str, device: torch.device) -> tuple[CausalLM, torch.optim.Optimizer]:
    """The preset with initialised weights and an AdamW state of the same size as training's."""
    with torch.device("meta"):
        model = CausalLM(load_preset(preset))
    model = model.to_empty(device=device).reset_buffers().init_weights(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    opt.step()
    opt.zero_grad(set_to_none=True)
    return model, opt


def one_save(writer: CheckpointWriter, model: CausalLM, opt: torch.optim.Optimizer) -> tuple[float, float]:
    """(seconds the training step is held up, seconds until the checkpoint was complete). On a GPU the copy into
    pinned memory is queued on the stream: it holds up the next step's kernels, so the device is synchronised before
    the stall is read."""
    sync = torch.cuda.synchronize if next(model.parameters()).is_cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    writer.save(1, model.config, model.state_dict(), torch.float32, {"optim": [opt.state_dict()],
                "rng": [rng_state()]}, {"loader": {}, "ledger": {}})
    sync()
    stall = time.perf_counter() - t0
    writer.wait()
    return stall, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="probe")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=2, help="saves each way, alternating; the median is reported")
    p.add_argument("--dir", default=None, help="where to write (default: a temp dir, removed after)")
    args = p.parse_args()
    model, opt = build(args.preset, torch.device(args.device))
    n = sum(t.numel() for t in model.parameters())
    root = Path(args.dir or tempfile.mkdtemp(prefix="fronde-ckpt-"))
    times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    writers = {bg: CheckpointWriter(root / str(bg), keep_last=1, background=bg) for bg in (False, True)}
    try:
        for background in (False, True):  # unmeasured: a run's first checkpoint allocates the pinned buffers
            one_save(writers[background], model, opt)
        for _ in range(args.repeats):
            for background in (False, True):
                times[background].append(one_save(writers[background], model, opt))
        size = sum(f.stat().st_size for f in (root / "True").rglob("*") if f.is_file())
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    fg = statistics.median(s for s, _ in times[False])
    bg, bg_done = statistics.median(s for s, _ in times[True]), statistics.median(d for _, d in times[True])
    print(f"preset {args.preset}: {n / 1e6:.1f}M params, checkpoint {size / 2**30:.2f} GiB, device {args.device}, "
          f"{args.repeats} saves each way")
    print(f"  foreground write (peer)   training stalls {fg:7.2f} s")
    print(f"  background writer         training stalls {bg:7.2f} s   (files complete after {bg_done:.2f} s)")
    print(f"ratio of stalls foreground / background: {fg / bg:.1f}x")


if __name__ == "__main__":
    main()
