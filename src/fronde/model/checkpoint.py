"""Reading and writing model directories that are Hugging Face DeepseekV3ForCausalLM checkpoints.

A directory holds config.json, generation_config.json, model.safetensors (or shards + model.safetensors.index.json)
and, when the model has an MTP layer, mtp.safetensors: kept apart because transformers would warn on a small
model's layer N (it ignores only layer 61). A sharded dir's index names it too, since vLLM and SGLang read only
indexed files (transformers then reports those tensors unexpected and skips them). Files are written to a temp name
and renamed, so a killed save never leaves a file that looks complete.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fronde.data.io import atomic_write_text, file_mode, temp_beside, writing
from fronde.model.config import ModelConfig
from fronde.model.files import INDEX, MTP_WEIGHTS, WEIGHTS
from fronde.model.hf_adapter import config_from_hf, config_to_hf, from_hf, to_hf
from fronde.model.model import CausalLM

DEFAULT_MAX_SHARD_BYTES = 5 * 1024**3
_SHARD = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")


def _atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """safetensors writes to a path, so: a temp name in the same directory, then rename (as fronde.data.io does)."""
    fd, tmp = temp_beside(path)
    os.close(fd)
    try:
        with writing(path):
            save_file(tensors, tmp, metadata={"format": "pt"})
            os.chmod(tmp, file_mode())  # safetensors makes the file anew, 0600
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_pretrained(
    model: CausalLM, directory: str | Path, *, dtype: torch.dtype | None = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES, generation: dict[str, Any] | None = None,
) -> Path:
    """Write `model` as an HF checkpoint; dtype defaults to the model's parameter dtype."""
    dtype = dtype or next(model.parameters()).dtype
    state = {k: v.detach() for k, v in model.state_dict().items()}
    return save_state(model.config, state, directory, dtype=dtype, max_shard_bytes=max_shard_bytes,
                      generation=generation)


def save_state(
    config: ModelConfig, state: dict[str, torch.Tensor], directory: str | Path, *, dtype: torch.dtype,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES, generation: dict[str, Any] | None = None,
) -> Path:
    """Write a fronde state dict (e.g. gathered from FSDP shards) as an HF checkpoint."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    main, mtp = to_hf(state, config)
    main = _cast(main, dtype)
    shards = _plan_shards(main, max_shard_bytes)
    for f in out.iterdir():  # stale shards of an earlier save would confuse loaders
        if (_SHARD.match(f.name) or f.name in (WEIGHTS, INDEX, MTP_WEIGHTS)) and f.name not in {n for n, _ in shards}:
            f.unlink()
    for name, tensors in shards:
        _atomic_save_tensors(tensors, out / name)
    mtp = _cast(mtp, dtype) if mtp else {}
    if mtp:
        _atomic_save_tensors(mtp, out / MTP_WEIGHTS)
    if len(shards) > 1:  # the MTP layer listed too: vLLM and SGLang read only the files an index names
        weight_map = {k: name for name, tensors in shards for k in sorted(tensors)} | dict.fromkeys(sorted(mtp),
                                                                                                   MTP_WEIGHTS)
        total = sum(t.numel() * t.element_size() for t in [*main.values(), *mtp.values()])
        atomic_write_text(out / INDEX, json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map},
                                                  indent=2) + "\n")
    gen = {"bos_token_id": config.bos_token_id, "eos_token_id": config.eos_token_id, "do_sample": False}
    gen.update(generation or {})
    atomic_write_text(out / "generation_config.json", json.dumps(gen, indent=2) + "\n")
    atomic_write_text(out / "config.json", json.dumps(config_to_hf(config, dtype), indent=2) + "\n")
    return out


def _cast(tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Cast to the save dtype (fp32 buffers such as the correction bias stay fp32) and own contiguous storage."""
    keep_fp32 = ("e_score_correction_bias",)
    return {
        k: (v if k.endswith(keep_fp32) else v.to(dtype)).contiguous().clone().cpu()
        for k, v in tensors.items()
    }


def _plan_shards(tensors: dict[str, torch.Tensor], max_bytes: int) -> list[tuple[str, dict[str, torch.Tensor]]]:
    groups: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k in sorted(tensors):
        nbytes = tensors[k].numel() * tensors[k].element_size()
        if groups[-1] and size + nbytes > max_bytes:
            groups.append({})
            size = 0
        groups[-1][k] = tensors[k]
        size += nbytes
    if len(groups) == 1:
        return [(WEIGHTS, groups[0])]
    n = len(groups)
    return [(f"model-{i + 1:05d}-of-{n:05d}.safetensors", g) for i, g in enumerate(groups)]


def load_config(directory: str | Path) -> ModelConfig:
    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such model directory")
    cfg = path / "config.json"
    if not cfg.is_file():
        if (path / "adapter_config.json").is_file():  # what PEFT (and TRL with a peft_config) saves
            raise FileNotFoundError(f"{path} is a PEFT adapter, not a model (adapter_config.json, no config.json): "
                                    f"merge it into its base with `fronde model merge-lora {path} OUT_DIR`")
        raise FileNotFoundError(f"{cfg}: missing; a model directory needs config.json (see `fronde model info`)")
    try:
        data = json.loads(cfg.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg}: not valid JSON ({e}); the file is corrupt") from e
    return config_from_hf(data, str(cfg))


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weight file missing")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path}: corrupt or truncated safetensors file ({e}); re-save or re-download it") from e


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a model dir under their HF names: single file or index + shards, plus mtp.safetensors."""
    index = directory / INDEX
    weights: dict[str, torch.Tensor] = {}
    if index.is_file():
        try:
            weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise ValueError(f"{index}: corrupt index ({e})") from e
        for shard in sorted(set(weight_map.values())):
            weights.update(_read_safetensors(directory / shard))
        missing = sorted(set(weight_map) - set(weights))
        if missing:
            raise ValueError(f"{index}: names {missing[:5]} are listed but not in their shard files")
    elif (directory / WEIGHTS).is_file():
        weights = _read_safetensors(directory / WEIGHTS)
    else:
        pickled = sorted(p.name for p in directory.glob("pytorch_model*.bin"))
        if pickled:  # DeepSpeed/accelerate exports and older transformers saves
            raise FileNotFoundError(
                f"{directory}: holds {pickled[0]}, a pickle, which fronde does not load (unpickling can run code); "
                "save it as safetensors with transformers: AutoModelForCausalLM.from_pretrained(DIR)"
                ".save_pretrained(NEW_DIR), then copy the tokenizer files")
        raise FileNotFoundError(f"{directory}: no {WEIGHTS} or {INDEX}; this is not a saved model directory")
    mtp_read = index.is_file() and MTP_WEIGHTS in weight_map.values()  # indexed since 2026-12-08
    if (directory / MTP_WEIGHTS).is_file() and not mtp_read:
        weights.update(_read_safetensors(directory / MTP_WEIGHTS))
    return weights


def from_pretrained(
    directory: str | Path, *, dtype: torch.dtype | None = None, device: torch.device | str = "cpu",
) -> CausalLM:
    """Load a fronde- or transformers-written DeepseekV3 checkpoint; dtype defaults to float32."""
    path = Path(directory)
    config = load_config(path)
    state = from_hf(read_weights(path), config)
    with torch.device("meta"):
        model = CausalLM(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not match config.json: missing {missing[:6]}{'...' if len(missing) > 6 else ''}, "
            f"unexpected {unexpected[:6]}{'...' if len(unexpected) > 6 else ''}"
        )
    for name, t in state.items():
        if tuple(t.shape) != tuple(expected[name].shape):
            raise ValueError(
                f"{path}: tensor {name} has shape {tuple(t.shape)} but config.json implies "
                f"{tuple(expected[name].shape)}"
            )
    dtype = dtype or torch.float32
    model = model.to_empty(device=device).reset_buffers()
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True)
    model.to(dtype)
    return model.eval()
