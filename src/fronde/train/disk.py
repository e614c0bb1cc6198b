"""Room for a stage's checkpoints, on disk and in host memory: found missing after the first step, not hours later.

A stage writes a checkpoint every `checkpoint.every_steps` and at the end, and keeps the newest `keep_last`; each is
written in full before the oldest goes, so keep_last + 1 are on disk at the peak, and publishing the final model
copies its weights once more. A disk that cannot hold that stops the run at a checkpoint (safetensors and torch.save
then fail with messages that do not say "disk full": torch's reads `unexpected pos 576 vs 534`). After its first
step a stage knows the size of everything a checkpoint holds (the optimizer's state exists from then on), so
`check_room` stops it there, naming the numbers and what to change, instead of after a night of training.

A background write (checkpoint.background) first copies the whole state to host memory; where the host has not that
much available, the kernel's OOM killer ends the run with SIGKILL and no message, at the first checkpoint. The
writer then writes in the foreground instead (no copy), and says so (CheckpointWriter.fit_in_memory).
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fronde.data.io import free_bytes
from fronde.train import distributed
from fronde.train.distributed import DistContext
from fronde.train.recipe import CheckpointSection

SMALL_FILES = 256 * 1024  # config, generation config, state.json, manifest, index: generous


@dataclass(frozen=True)
class Footprint:
    """Bytes of one checkpoint, and of its model dir (what publishing the final model copies)."""

    checkpoint: int
    model: int


def tensor_bytes(obj: Any, dtype: torch.dtype | None = None) -> int:
    """Bytes of every tensor in a nested state (dicts, lists), each storage once (tied weights are one), in `dtype`
    for floating tensors where given (weights are saved in the model's dtype). A sharded (DTensor) tensor counts its
    global size: rank 0 writes the gathered whole."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for t in _tensors(obj):
        local = t.to_local() if hasattr(t, "to_local") else t
        key = (local.untyped_storage().data_ptr(), local.storage_offset()) if local.numel() else (id(t), 0)
        if key in seen:
            continue
        seen.add(key)
        size = dtype.itemsize if dtype is not None and t.is_floating_point() else t.element_size()
        total += t.numel() * size
    return total


def _tensors(obj: Any) -> Iterable[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, Mapping):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def footprint(model_state: Mapping[str, torch.Tensor], dtype: torch.dtype, trainer: Any,
              extra_files: Mapping[str, Path] | None = None) -> Footprint:
    files = sum(Path(p).stat().st_size for p in (extra_files or {}).values())
    model = tensor_bytes(model_state, dtype) + files + SMALL_FILES
    return Footprint(model + tensor_bytes(trainer) + SMALL_FILES, model)


def save_steps(done: int, planned: int, cadence: CheckpointSection) -> list[int | None]:
    """The steps after `done` at which a stage of `planned` steps writes a checkpoint: each multiple of every_steps,
    and the last step. With every_minutes, as many more as fill keep_last + 1 places (None: at a time, not a step,
    unknown before the run), written first: the room they need does not depend on when they come."""
    every = cadence.every_steps
    steps: list[int | None] = list(range((done // every + 1) * every, planned + 1, every)) if every > 0 else []
    if planned > done and (not steps or steps[-1] != planned):
        steps.append(planned)
    return [None] * (cadence.keep_last + 1) + steps if cadence.every_minutes is not None else steps


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def mb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e9 else f"{n / 1e6:,.1f} MB"


def shortfall(root: Path, fp: Footprint, keep_last: int, steps: list[int | None]) -> str | None:
    """None when the disk under `root` holds what writing checkpoints at `steps` (keeping the newest keep_last,
    0 = all) and then publishing the model needs; else why not, and what to change."""
    kept = [dir_bytes(p) for p in sorted(root.glob("step-*")) if p.is_dir()] if root.is_dir() else []
    free = free_bytes(root)
    used = peak = 0  # bytes beyond what is on disk now
    fails_at: str | None = None
    for step in steps:
        used += fp.checkpoint
        kept.append(fp.checkpoint)
        peak = max(peak, used)
        if peak > free and fails_at is None:
            fails_at = f"its checkpoint at step {step}" if step is not None else \
                "a checkpoint checkpoint.every_minutes writes"
        while 0 < keep_last < len(kept):
            used -= kept.pop(0)
    peak = max(peak, used + fp.model)
    if peak <= free:
        return None
    at = fails_at or "publishing the final model"
    planned = f"{len(steps)}{' or more' if None in steps else ''} are planned"
    return (f"the disk has {mb(free)} free and this run needs {mb(peak)} more: a checkpoint takes {mb(fp.checkpoint)} "
            f"(weights and optimizer state), {planned}, checkpoint.keep_last={keep_last} keeps {keep_last} (one more "
            f"while the newest is written), and the final model takes {mb(fp.model)}. The run would stop at {at}. "
            "Free space there, keep fewer checkpoints (checkpoint.keep_last), or set run.out_dir to a bigger disk")


def available_memory() -> int | None:
    """Bytes of host memory the kernel says can be had without swapping (Linux's MemAvailable), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def check_room(root: Path, keep_last: int, steps: list[int | None], model: torch.nn.Module, trainer: Any,
               extra_files: Mapping[str, Path] | None, ctx: DistContext) -> Footprint:
    """Raise ENOSPC on every rank when rank 0 (the writer) finds the disk too small for the checkpoints at `steps`;
    else the footprint of one. Call after the first optimizer step: the optimizer's state is empty before it."""
    # every rank takes the state dicts (references, no copy), so none is a collective rank 0 alone enters
    fp = footprint(model.state_dict(), next(model.parameters()).dtype, trainer, extra_files)
    problem = shortfall(root, fp, keep_last, steps) if ctx.is_main else None
    if distributed.any_rank(problem is not None, ctx.device):
        raise OSError(errno.ENOSPC, problem or "rank 0 found too little disk space for the checkpoints", str(root))
    return fp
