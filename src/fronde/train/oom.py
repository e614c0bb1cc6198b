"""Out of GPU memory in a training step: the same step again in smaller forwards.

A recipe's `batch.micro_batch_size` is sized for the GPU it was written on (`small-gpu`: an 80 GB H100). On a
smaller card the first forward runs out of memory. Instead of a traceback and a guess, one process retries the step
with each micro-batch cut into equal parts (2, then the next divisor of micro_batch_size, ...): the same rows, the
same global batch, the same loss up to float summation order, and a checkpoint records the split so a resumed run
starts with it. (HF accelerate's `find_executable_batch_size` halves the batch instead, which changes the
optimisation.) Under torchrun the ranks cannot agree on a retry in the middle of a collective, so the run stops
with the setting to change.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

from fronde.train.recipe import RecipeError


T = TypeVar("T")


@dataclass
class MicroSplit:
    """Each micro-batch of `micro` rows goes through the model in `parts` forwards; `run` adds parts until it fits."""

    micro: int
    parts: int = 1
    distributed: bool = False  # several processes: no retry, a RecipeError naming the setting

    @property
    def rows(self) -> int:
        return self.micro // self.parts

    def resumed(self, parts: int, say: Callable[[str], None]) -> None:
        """Start with the split a checkpoint recorded (a recipe with another micro_batch_size starts whole)."""
        self.parts = parts if self.micro % parts == 0 else 1
        if self.parts > 1:
            say(f"each micro-batch in {self.parts} forwards of {self.rows} rows, as before the resume (out of memory)")

    def run(self, fn: Callable[[], T], step: int, seq_len: int, device: torch.device, reset: Callable[[], None],
            say: Callable[[str], None]) -> T:
        """fn() (which reads `parts`), again with more parts after each torch.OutOfMemoryError; `reset` undoes a
        failed attempt's partial work (its accumulated gradients)."""
        while True:
            try:
                return fn()
            except torch.OutOfMemoryError as e:
                self.parts, line = shrink(e, step, self.micro, self.parts, seq_len, self.distributed, device)
            reset()
            release(device)  # after the except clause, which kept the failed forward's frames alive
            say(line)


def next_split(micro: int, split: int) -> int | None:
    """The next number of equal parts a micro-batch of `micro` rows can be cut into, None when rows are single."""
    return next((d for d in range(split + 1, micro + 1) if micro % d == 0), None)


def release(device: torch.device) -> None:
    """Give the failed attempt's memory back before the retry: its tensors are garbage once the exception is gone."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def device_memory(device: torch.device) -> str:
    if device.type != "cuda":
        return str(device)
    props = torch.cuda.get_device_properties(device)
    return f"{props.name} ({props.total_memory / 2**30:.1f} GiB)"


def shrink(error: torch.OutOfMemoryError, step: int, micro: int, split: int, seq_len: int, distributed: bool,
           device: torch.device) -> tuple[int, str]:
    """The split to retry `step` with and the line that says so; a RecipeError naming the setting to change when the
    run cannot go on by itself (several processes, or one row already too big)."""
    at = f"out of memory in step {step + 1} with {micro // split} rows of {seq_len} tokens a forward on " \
         f"{device_memory(device)}"
    new = next_split(micro, split)
    if distributed:
        fewer = micro // next_split(micro, 1) if micro > 1 else None
        advice = f"--set batch.micro_batch_size={fewer}" if fewer else "a shorter batch.seq_len"
        raise RecipeError(f"{at}: run again with {advice} (gradient accumulation keeps global_batch_tokens; under "
                          "torchrun the processes cannot retry a step on their own)")
    if new is None:
        raise RecipeError(f"{at}: one row does not fit; lower batch.seq_len, use a smaller model, or spread the "
                          f"model over several GPUs (torchrun, distributed.strategy=fsdp) ({first_line(error)})")
    return new, (f"{at}; retrying it in {new} forwards of {micro // new} rows per micro-batch (the same rows and "
                 f"global batch; set batch.micro_batch_size={micro // new} to start so)")


def first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
