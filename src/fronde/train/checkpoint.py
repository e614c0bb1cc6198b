"""Training checkpoints: everything a killed run needs to continue exactly, in a directory that is never half-written.

    runs/<name>/checkpoints/step-000120/
        model/           the weights as an HF DeepseekV3 checkpoint (transformers loads any checkpoint directly)
        trainer.pt       optimizer states and RNG states (torch.load(weights_only=True): no pickle of code)
        state.json       step, data-loader positions, recipe hash, the ledger so far
        MANIFEST.json    sha256 of every file above; written last
    runs/<name>/checkpoints/latest   the name of the newest complete checkpoint (replaced atomically)

A checkpoint is built in a temp directory and renamed into place; on resume each candidate is verified against its
manifest, and a corrupt or partial one is reported and skipped for the one before it. CheckpointWriter writes them on
a background thread, so training goes on while the files are written and hashed.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fronde.data.chat import CHAT_TEMPLATE, RESPONSE_TEMPLATE
from fronde.data.io import atomic_write_json, atomic_write_text, free_bytes, sha256_file
from fronde.data.tokenizer import SPECIAL_TOKENS
from fronde.model.checkpoint import from_pretrained, save_state
from fronde.model.config import ModelConfig
from fronde.model.model import CausalLM
from fronde.train import distributed
from fronde.train.agree import broadcast, together
from fronde.train.disk import available_memory, dir_bytes, footprint, mb
from fronde.train.distributed import DistContext
from fronde.train.recipe import CheckpointSection, RecipeError
from fronde.train.stage_lock import pid_alive

MANIFEST = "MANIFEST.json"
LATEST = "latest"


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def restore_rng(saved: list[dict[str, Any]], rank: int, world_size: int, seed: int,
                say: Callable[[str], None] | None = None) -> None:
    """Continue this rank's random streams from a checkpoint that holds one state per rank that wrote it.

    On the process count that wrote it, every rank goes on with its own streams (the exact resume). A run may also
    resume on another count (the data stream and optimizer state do not depend on it): ranks the checkpoint had keep
    their streams, and new ranks start fresh ones seeded by (seed, rank), never a copy of another rank's."""
    if len(saved) != world_size and rank == 0 and say is not None:
        say(f"the checkpoint was written by {len(saved)} process(es) and resumes on {world_size}: data order and "
            "optimizer state carry over; the random streams of ranks it did not have are seeded afresh")
    if rank < len(saved):
        set_rng_state(saved[rank])
        return
    fresh = seed * 1_000_003 + rank
    torch.manual_seed(fresh)
    np.random.seed(fresh % 2**32)
    random.seed(fresh)


@dataclass
class Resumed:
    path: Path
    model: CausalLM
    trainer: dict[str, Any]  # optimizer states, rng
    state: dict[str, Any]  # step, loader, ledger, ...


def stop_ids(config: ModelConfig, tokenizer_json: Path | None) -> dict[str, Any] | None:
    """generation_config.json's `eos_token_id`: EOS and the chat template's end of turn (`<|end|>`), listed as Llama 3
    and Qwen list theirs, so transformers' generate() and vLLM end a chat reply where fronde's engine does (with EOS
    alone they ran on past `<|end|>` into a made-up next turn). A tokenizer without the token keeps EOS alone."""
    if tokenizer_json is None or config.eos_token_id is None:
        return None
    added = json.loads(tokenizer_json.read_text(encoding="utf-8")).get("added_tokens", [])
    end = next((t["id"] for t in added if t.get("content") == SPECIAL_TOKENS["end"]), None)
    return None if end is None or end == config.eos_token_id else {"eos_token_id": [config.eos_token_id, end]}


def model_tokenizer_config(values: dict[str, Any], config: ModelConfig) -> dict[str, Any]:
    """A model dir's tokenizer_config.json from the data tokenizer's. The model's context as `model_max_length` (the
    data's tokenizer knows no model), so transformers' `truncation=True` cuts to what the model can read and warns past
    it, as Llama 3's file says 131072. A fronde tokenizer also gets today's `response_template` (fronde.data.chat),
    so the model's replies parse in transformers, TRL, vLLM and SGLang: tokenizers prepared before 2026-12-07 lack
    it, and those of that day name its reasoning field `reasoning_content`, which vLLM and SGLang refuse. And today's
    chat template (the same rendering; older ones made vLLM log an error reading them)."""
    values = values | {"model_max_length": config.max_position_embeddings}
    if "fronde_special_ids" in values:  # fronde's chat format: the templates follow from its special tokens
        values["response_template"] = RESPONSE_TEMPLATE
        values["chat_template"] = CHAT_TEMPLATE
    return values


def write_model_tokenizer_config(tokenizer_config: Path, config: ModelConfig) -> None:
    """Rewrite a model dir's tokenizer_config.json as `model_tokenizer_config` says, and its chat_template.jinja
    (which transformers reads first) to the same template."""
    if tokenizer_config.is_file():
        values = model_tokenizer_config(json.loads(tokenizer_config.read_text(encoding="utf-8")), config)
        atomic_write_json(tokenizer_config, values)
        if "fronde_special_ids" in values:
            atomic_write_text(tokenizer_config.parent / "chat_template.jinja", values["chat_template"])


def write_checkpoint(
    root: Path, step: int, config: ModelConfig, model_state: dict[str, torch.Tensor], dtype: torch.dtype,
    trainer: dict[str, Any], state: dict[str, Any], keep_last: int, extra_files: dict[str, Path] | None = None,
) -> Path:
    """Write checkpoint `step` under root from a model's state dict (a host copy, or FSDP's gathered full state),
    point `latest` at it, and drop all but the newest keep_last."""
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:06d}"
    final = root / name
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_state(config, model_state, tmp / "model", dtype=dtype,
                   generation=stop_ids(config, (extra_files or {}).get("tokenizer.json")))
        for rel, src in (extra_files or {}).items():  # e.g. the tokenizer, so the model dir is self-contained
            shutil.copy2(src, tmp / "model" / rel)
        write_model_tokenizer_config(tmp / "model" / "tokenizer_config.json", config)
        torch.save(trainer, tmp / "trainer.pt")
        atomic_write_json(tmp / "state.json", state | {"step": step})
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {str(p.relative_to(tmp)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in files}
        atomic_write_json(tmp / MANIFEST, manifest)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed write leaves nothing, not gigabytes no run will read
        raise
    atomic_write_text(root / LATEST, name + "\n")
    others = sorted(p for p in root.glob("step-*") if p.is_dir() and p.name != name)  # never the one just written
    for old in others[:max(len(others) - keep_last + 1, 0)] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


class PinnedStaging:
    """Page-locked host buffers reused from one checkpoint to the next, as torchtitan's asynchronous checkpointing
    stages its state: a device-to-host copy into pinned memory runs at full link speed and is queued on the stream
    instead of blocking the training thread (the optimizer step queued after it cannot overwrite what it reads).
    Pinning 4.5 GB anew each time would cost more than the copy, so buffers are kept, matched in traversal order."""

    def __init__(self) -> None:
        self.buffers: list[torch.Tensor] = []
        self._next = 0

    def start(self) -> None:
        self._next = 0

    def take(self, t: torch.Tensor) -> torch.Tensor:
        i, self._next = self._next, self._next + 1
        if i < len(self.buffers) and self.buffers[i].shape == t.shape and self.buffers[i].dtype == t.dtype:
            return self.buffers[i]
        buf = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        self.buffers[i:i + 1] = [buf]
        return buf


def host_copy(obj: Any, memo: dict[tuple, torch.Tensor] | None = None, staging: PinnedStaging | None = None) -> Any:
    """obj with every tensor copied to host memory (cloned if it is there already), views of the same memory (tied
    weights) copied once and kept shared: a snapshot the next optimizer step cannot change. With staging, CUDA
    tensors go into its pinned buffers asynchronously: synchronise (an event recorded after) before reading them."""
    memo = {} if memo is None else memo
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        key = (t.device, t.data_ptr(), t.dtype, tuple(t.shape), t.stride())
        if key not in memo:
            if t.device.type == "cpu":
                memo[key] = t.clone()
            elif staging is not None and t.is_cuda:
                memo[key] = staging.take(t).copy_(t, non_blocking=True)
            else:
                memo[key] = t.to("cpu", copy=True)
        return memo[key]
    if isinstance(obj, dict):
        return {k: host_copy(v, memo, staging) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(host_copy(v, memo, staging) for v in obj)
    return obj


class CheckpointWriter:
    """Checkpoints written on a background thread, one at a time, as torchtitan's asynchronous checkpointing does.

    The training thread only copies the state to host memory (a clone on CPU, a device-to-host copy on a GPU); the
    thread serialises, hashes and renames. A 401.6M-parameter model with its AdamW state is 4.5 GB and took 6-10 s to
    write and hash on a 2-core machine: at small-gpu's cadence that would stall training by ~15% (docs/log.md). A
    save waits for the previous one; wait() before reading the newest checkpoint, and at the end. A failed write is
    raised by the next save() or wait(). With background=False every save is written before save() returns.
    """

    def __init__(self, root: Path, keep_last: int, background: bool = True) -> None:
        self.root, self.keep_last, self.background = root, keep_last, background
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._staging = PinnedStaging()  # reused: save() waits for the last write before copying into it again
        self.last_save = time.perf_counter()  # the stage's start, then each save's: checkpoint.every_minutes counts

    def due(self, done: int, cadence: CheckpointSection, device: torch.device) -> bool:
        """Whether step `done` is a checkpoint of the cadence: a multiple of every_steps, or every_minutes since the
        last save by rank 0's clock (broadcast, so every rank checkpoints the same step)."""
        if cadence.every_steps and done % cadence.every_steps == 0:
            return True
        if cadence.every_minutes is None:
            return False
        return distributed.rank0_value(time.perf_counter() - self.last_save, device) >= cadence.every_minutes * 60

    def clear_unfinished(self, say: Callable[[str], None]) -> None:
        """Remove what a killed writer left (a `.tmp-step-*` directory: a checkpoint half written, as big as a whole
        one); a process still writing on this host keeps its own. Call from the main process holding the stage."""
        for tmp in sorted(self.root.glob(".tmp-step-*")):
            pid = tmp.name.rsplit("-", 1)[-1]
            if tmp.is_dir() and not (pid.isdigit() and int(pid) != os.getpid() and pid_alive(int(pid))):
                size = dir_bytes(tmp)
                shutil.rmtree(tmp, ignore_errors=True)
                say(f"removed {tmp.name}, a checkpoint a stopped run left half written ({mb(size)})")

    def fit_in_memory(self, copy_bytes: int, say: Callable[[str], None]) -> None:
        """Write in the foreground when the host copy a background write holds would not fit in the memory available
        (with a fifth to spare): the OOM killer's SIGKILL says nothing."""
        available = available_memory()
        if self.background and available is not None and copy_bytes > 0.8 * available:
            self.background = False
            say(f"checkpoints are written in the foreground: a background write copies the state ({mb(copy_bytes)}) "
                f"to host memory, and {mb(available)} is available (checkpoint.background)")

    def save(self, step: int, config: ModelConfig, model_state: dict[str, torch.Tensor], dtype: torch.dtype,
             trainer: dict[str, Any], state: dict[str, Any], extra_files: dict[str, Path] | None = None,
             owned: bool = False) -> None:
        """owned: the tensors are already a host copy nobody else holds (FSDP's gathered full state with cpu_offload),
        so the background write takes them as they are instead of copying a 4.5 GB state a second time."""
        self.wait()
        self.last_save = time.perf_counter()
        if not self.background:  # written from the live state before training goes on: no copy, no extra memory
            self._write(None, self.root, step, config, model_state, dtype, trainer, state, self.keep_last,
                        extra_files)
            self.wait()
            return
        copied: torch.cuda.Event | None = None
        if not owned:
            self._staging.start()
            memo: dict[tuple, torch.Tensor] = {}  # shared: a tensor in both (none today) is copied once
            model_state, trainer = (host_copy(model_state, memo, self._staging),
                                    host_copy(trainer, memo, self._staging))
            if self._staging.buffers:  # the copies are queued on the stream: the thread waits for them
                copied = torch.cuda.Event()
                copied.record()
        args = (self.root, step, config, model_state, dtype, trainer,
                json.loads(json.dumps(state)), self.keep_last, dict(extra_files or {}))
        self._thread = threading.Thread(target=self._write, args=(copied, *args), name=f"checkpoint-{step}")
        self._thread.start()

    def _write(self, copied: torch.cuda.Event | None, *args: Any) -> None:
        try:
            if copied is not None:
                copied.synchronize()
            write_checkpoint(*args)
        except BaseException as e:  # noqa: BLE001 -- re-raised on the training thread by wait()
            self._error = e
            try:
                self._error = self._failure(e, *args)
            except Exception:  # noqa: BLE001 -- the write's own error is raised then
                pass

    def _failure(self, error: BaseException, root: Path, step: int, config: ModelConfig, model_state: dict,
                 dtype: torch.dtype, trainer: Any, state: Any, keep_last: int, extra_files: Any) -> BaseException:
        """What wait() raises: a full disk (which torch.save reports as `unexpected pos ...`) as ENOSPC naming the
        room a checkpoint needs and the one to resume from; another error of a background write as a RuntimeError
        saying where (it surfaces steps later), of a foreground one as it came."""
        if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit
            return error
        free, size = free_bytes(root), footprint(model_state, dtype, trainer, extra_files).checkpoint
        if getattr(error, "errno", None) not in (errno.ENOSPC, errno.EDQUOT) and free >= size:
            if not self.background:
                return error
            failure: BaseException = RuntimeError(f"writing a checkpoint under {root} failed: {error}")
        else:
            newest = candidates(root)
            resume = f"the newest complete one is {newest[0].name}" if newest else "no checkpoint is complete yet"
            failure = OSError(errno.ENOSPC, f"no room for the checkpoint at step {step}: the disk has {mb(free)} free "
                              f"and a checkpoint takes {mb(size)}; {resume}. Free space (or lower "
                              "checkpoint.keep_last), then run the same command with --resume", str(root))
        failure.__cause__ = error
        return failure

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        """The last write finishes before the stage returns; its failure is raised unless another error is."""
        try:
            self.wait()
        except (RuntimeError, OSError):
            if exc_type is None:
                raise

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def verify(path: Path) -> str | None:
    """None if the checkpoint matches its manifest, else what is wrong."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        return "no MANIFEST.json (the save did not finish)"
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError:
        return "MANIFEST.json is corrupt"
    for rel, meta in manifest.items():
        f = path / rel
        if not f.is_file():
            return f"{rel} is missing"
        if f.stat().st_size != meta["bytes"] or sha256_file(f) != meta["sha256"]:
            return f"{rel} does not match its recorded size/sha256"
    return None


def candidates(root: Path) -> list[Path]:
    """Checkpoints newest first, the one `latest` names leading."""
    found = sorted((p for p in root.glob("step-*") if p.is_dir()), reverse=True)
    latest = root / LATEST
    if latest.is_file():
        named = root / latest.read_text().strip()
        if named in found:
            found.remove(named)
            found.insert(0, named)
    return found


def read_checkpoint(path: Path, device: torch.device) -> Resumed:
    """One checkpoint's model, trainer state and step record; OSError/ValueError/RuntimeError when unreadable."""
    model = from_pretrained(path / "model", device=device)
    trainer = torch.load(path / "trainer.pt", map_location="cpu", weights_only=True)
    state = json.loads((path / "state.json").read_text())
    return Resumed(path, model, trainer, state)


def load_latest(root: Path, device: torch.device, warn=print, ctx: DistContext | None = None) -> Resumed | None:
    """The newest checkpoint that verifies, or None; every skipped one is reported through `warn`. Under torchrun
    rank 0 chooses (hashing the files once, not once per rank) and every rank reads that one: ranks resuming from
    different steps would wait forever in collectives that do not match."""
    if ctx is not None and ctx.enabled:
        return _load_agreed(root, device, warn, ctx)
    for path in _verified(root, warn):
        try:
            return read_checkpoint(path, device)
        except (OSError, ValueError, RuntimeError) as e:
            warn(_skipping(path, f"could not be read ({e})"))
    return None


def _load_agreed(root: Path, device: torch.device, warn, ctx: DistContext) -> Resumed | None:
    chosen = None
    with together(ctx, f"looking for checkpoints under {root}"):
        if ctx.is_main:
            chosen = next((p.name for p in _verified(root, warn)), None)
    chosen = broadcast(chosen, ctx)
    if chosen is None:
        return None
    with together(ctx, f"reading checkpoint {root / chosen}"):
        try:
            resumed = read_checkpoint(root / chosen, device)
        except (OSError, ValueError, RuntimeError) as e:
            raise RecipeError(f"{root / chosen}: could not be read ({e})") from None
    return resumed


def _verified(root: Path, warn) -> Iterator[Path]:
    """Checkpoints newest first that match their manifests; each one skipped is reported through `warn`."""
    for path in candidates(root):
        problem = verify(path)
        if problem is None:
            yield path
        else:
            warn(_skipping(path, problem))


def _skipping(path: Path, problem: str) -> str:
    return f"skipping checkpoint {path}: {problem}; falling back to the previous one"
