"""Training checkpoints: everything a killed run needs to continue exactly, in a directory that is never half-written.

    runs/<name>/checkpoints/step-000120/
        model/           the weights as an HF DeepseekV3 checkpoint (transformers loads any checkpoint directly)
        trainer.pt       optimizer states and RNG states (torch.load(weights_only=True): no pickle of code)
        state.json       step, data-loader positions, recipe hash, the ledger so far
        MANIFEST.json    sha256 of every file above; written last
    runs/<name>/checkpoints/latest   the name of the newest complete checkpoint (replaced atomically)

A checkpoint is built in a temp directory and renamed into place; on resume each candidate is verified against its
manifest, and a corrupt or partial one is reported and skipped for the one before it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fronde.data.io import atomic_write_json, atomic_write_text, sha256_file
from fronde.model.checkpoint import from_pretrained, save_pretrained
from fronde.model.model import CausalLM

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


@dataclass
class Resumed:
    path: Path
    model: CausalLM
    trainer: dict[str, Any]  # optimizer states, rng
    state: dict[str, Any]  # step, loader, ledger, ...


def save_checkpoint(
    root: Path, step: int, model: CausalLM, trainer: dict[str, Any], state: dict[str, Any], keep_last: int,
    extra_files: dict[str, Path] | None = None,
) -> Path:
    """Write checkpoint `step` under root, point `latest` at it, and drop all but the newest keep_last."""
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:06d}"
    final = root / name
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_pretrained(model, tmp / "model", dtype=next(model.parameters()).dtype)
    for rel, src in (extra_files or {}).items():  # e.g. the tokenizer, so the model dir is self-contained
        shutil.copy2(src, tmp / "model" / rel)
    torch.save(trainer, tmp / "trainer.pt")
    atomic_write_json(tmp / "state.json", state | {"step": step})
    files = sorted(p for p in tmp.rglob("*") if p.is_file())
    manifest = {str(p.relative_to(tmp)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in files}
    atomic_write_json(tmp / MANIFEST, manifest)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_text(root / LATEST, name + "\n")
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


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


def load_latest(root: Path, device: torch.device, warn=print) -> Resumed | None:
    """The newest checkpoint that verifies, or None; every skipped one is reported through `warn`."""
    for path in candidates(root):
        problem = verify(path)
        if problem is None:
            try:
                model = from_pretrained(path / "model", device=device)
                trainer = torch.load(path / "trainer.pt", map_location="cpu", weights_only=True)
                state = json.loads((path / "state.json").read_text())
            except (OSError, ValueError, RuntimeError) as e:
                problem = f"could not be read ({e})"
            else:
                return Resumed(path, model, trainer, state)
        warn(f"skipping checkpoint {path}: {problem}; falling back to the previous one")
    return None
