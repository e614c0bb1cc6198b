"""A LoRA adapter trained elsewhere (PEFT, TRL's `peft_config`, Axolotl, LLaMA-Factory) merged into a fronde model dir.

Teams fine-tune a model with LoRA in transformers and get an adapter dir (adapter_config.json +
adapter_model.safetensors), not a model: `fronde serve`, `eval`, `export` and later stages need whole weights. PEFT
itself does the merge, on the base as transformers loads it, because the code that trained the adapter defines what
it means (transformers 5 fuses a layer's experts into 3-D parameters, and PEFT's LoRA on them is its own layout).
The merged weights are then loaded by fronde, checked against the unmerged adapter's logits on a probe sequence, and
written as a fronde model dir: in the base's dtype, with the base's MTP layer (transformers drops it, LoRA never
touches it), the tokenizer the adapter was trained with, stop ids, and a `fronde.json` whose parent is the base and
whose input is the adapter by hash. Nothing is downloaded: a base named by a Hub id must be given as a local dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from fronde import __version__
from fronde.data.io import sha256_file
from fronde.model.checkpoint import from_pretrained, load_config, save_state
from fronde.model.config import ModelConfig
from fronde.model.files import MTP_WEIGHTS
from fronde.train.checkpoint import stop_ids, write_model_tokenizer_config
from fronde.train.lineage import (
    FORMAT,
    file_entry,
    lineage_id,
    parent_entry,
    weights_entry,
    weights_file,
    write_lineage,
)
from fronde.train.model_card import write_model_card
from fronde.train.pretrain import tokenizer_files
from fronde.train.stage_lock import pid_alive

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
STAGE = "merge-lora"
# Adapters that add virtual tokens at run time: there is no weight to merge them into.
PROMPT_LEARNING = {"PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "MULTITASK_PROMPT_TUNING", "CPT"}
PROBE_TOKENS = 48
# |merged - adapter| logits over the logits' scale: fp32 merges agree to ~1e-6; 1e-3 leaves room for big models.
PROBE_TOLERANCE = 1e-3
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
STORED_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


class AdapterError(ValueError):
    """An adapter dir that cannot be merged, and what to do about it."""


@dataclass
class MergeReport:
    out: Path
    base: Path
    tokenizer_from: Path
    dtype: torch.dtype
    changed: int  # base tensors the merge changed
    tensors: int  # base tensors in all
    relative_change: float  # ||merged - base|| / ||base|| over the changed tensors
    probe_diff: float  # max |merged - adapter| logit on the probe, over the logits' max |value|
    effect_kept: float | None  # how much of the adapter's effect on the probe the written weights keep (None: none)


def read_adapter(adapter_dir: Path) -> dict[str, Any]:
    """adapter_config.json, checked for what a merge needs."""
    cfg_path = adapter_dir / ADAPTER_CONFIG
    if not adapter_dir.is_dir():
        raise AdapterError(f"{adapter_dir}: no such adapter directory")
    if not cfg_path.is_file():
        hint = " (it is a model dir: nothing to merge)" if (adapter_dir / "config.json").is_file() else ""
        raise AdapterError(f"{cfg_path}: missing; a PEFT adapter dir holds {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}"
                           f"{hint}")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AdapterError(f"{cfg_path}: not valid JSON ({e}); the file is corrupt") from e
    if not isinstance(cfg, dict):
        raise AdapterError(f"{cfg_path}: not a JSON object")
    kind = str(cfg.get("peft_type", "")).upper()
    if kind in PROMPT_LEARNING:
        raise AdapterError(f"{cfg_path}: peft_type {kind} adds virtual tokens at run time; there are no weights to "
                           "merge it into, so fronde cannot use it (train a LoRA adapter instead)")
    if not (adapter_dir / ADAPTER_WEIGHTS).is_file():
        pickled = (adapter_dir / "adapter_model.bin").is_file()
        raise AdapterError(
            f"{adapter_dir}: no {ADAPTER_WEIGHTS}"
            + ("; adapter_model.bin is a pickle, which fronde does not load: save the adapter again with PEFT's "
               "save_pretrained(dir, safe_serialization=True)" if pickled else ""))
    return cfg


def resolve_base(cfg: dict[str, Any], adapter_dir: Path, base: Path | None) -> tuple[Path, ModelConfig]:
    """The base model dir (given, or the adapter's base_model_name_or_path when that is a directory here) and its
    config."""
    if base is None:
        named = cfg.get("base_model_name_or_path")
        if not named:
            raise AdapterError(f"{adapter_dir / ADAPTER_CONFIG}: names no base_model_name_or_path; give the base "
                               "model dir with --base")
        base = Path(named).expanduser()
        if not base.is_dir():
            raise AdapterError(f"{adapter_dir / ADAPTER_CONFIG}: its base {named!r} is not a directory here (fronde "
                               "downloads nothing); give the local base model dir with --base")
    elif not base.is_dir():
        raise AdapterError(f"--base {base}: no such model directory")
    return base, load_config(base)  # a DeepseekV3 model dir fronde reads, or its error naming the file


def base_dtype(base: Path) -> torch.dtype:
    """The dtype the base's weights are stored in (what the merged model is written in by default)."""
    f = weights_file(base)
    if f is not None and f.suffix == ".json":  # sharded: the first shard says it
        f = base / sorted(set(json.loads(f.read_text())["weight_map"].values()))[0]
    if f is None:
        return torch.float32
    with safe_open(f, framework="pt") as st:
        names = list(st.keys())
        stored = st.get_slice(names[0]).get_dtype() if names else "F32"
    return STORED_DTYPES.get(stored, torch.float32)


def _probe(vocab_size: int) -> torch.Tensor:
    return torch.randint(0, vocab_size, (1, PROBE_TOKENS), generator=torch.Generator().manual_seed(0))


def _merge_with_peft(adapter_dir: Path, base: Path, into: Path,
                     probe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge with PEFT on transformers' model and save it (HF names) into `into`; the probe logits of the base and
    of the unmerged adapter come back for the checks."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # fronde's own status line says what is happening

    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, local_files_only=True)
        with torch.no_grad():
            before = model.eval()(probe).logits.float()
        with_adapter = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False, local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError) as e:  # RuntimeError: shapes of another base
        raise AdapterError(f"{adapter_dir}: PEFT could not apply the adapter to {base}: {e}") from None
    with torch.no_grad():
        expected = with_adapter.eval()(probe).logits.float()
    try:
        merged = with_adapter.merge_and_unload()
    except (AttributeError, NotImplementedError, ValueError) as e:
        raise AdapterError(f"{adapter_dir}: PEFT cannot merge this adapter into the weights: {e}") from None
    merged.save_pretrained(into)  # transformers writes the per-expert layout back
    return before, expected


def _effect_kept(base: torch.Tensor, adapter: torch.Tensor, written: torch.Tensor) -> float | None:
    """1 - ||written - adapter|| / ||adapter - base|| on the probe logits: a LoRA update is small next to the weights
    (0.1% of their norm is common), and rounding the merged weights to bf16 (2^-8 relative) can erase a good part of
    it; in fp32 nothing is lost. None for an adapter that changes nothing (untrained: B = 0)."""
    effect = (adapter - base).norm().item()
    if effect < 1e-6 * adapter.norm().item():
        return None
    return 1 - (written - adapter).norm().item() / effect


def _weight_change(base: Path, merged: Path) -> tuple[int, int, float]:
    """(tensors changed, tensors, ||merged - base|| / ||base|| over the changed ones), one tensor at a time."""
    def tensors(directory: Path) -> dict[str, Path]:
        found = {}
        for path in sorted(directory.glob("*.safetensors")):
            if path.name != MTP_WEIGHTS:
                with safe_open(path, framework="pt") as st:
                    found |= dict.fromkeys(st.keys(), path)
        return found

    before, after = tensors(base), tensors(merged)
    changed, diff2, norm2 = 0, 0.0, 0.0
    for name, path in after.items():
        if name not in before:
            continue
        with safe_open(before[name], framework="pt") as a, safe_open(path, framework="pt") as b:
            old, new = a.get_tensor(name).double(), b.get_tensor(name).double()
        if not torch.equal(old, new):
            changed += 1
            diff2 += (new - old).pow(2).sum().item()
            norm2 += old.pow(2).sum().item()
    return changed, len(after), (diff2 / norm2) ** 0.5 if norm2 else 0.0


def adapter_record(adapter_dir: Path, cfg: dict[str, Any], base: Path, staged: Path, out: Path,
                   merge: dict[str, Any]) -> dict[str, Any]:
    """fronde.json for the merged model (its files in `staged`, published as `out`): a stage whose parent is the base
    and whose input is the adapter by hash. What the adapter was trained on is not known here: no data."""
    state = adapter_dir / "trainer_state.json"
    try:
        step = int(json.loads(state.read_text(encoding="utf-8")).get("global_step", 0)) if state.is_file() else 0
    except (json.JSONDecodeError, ValueError, TypeError):
        step = 0
    digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()
    tokenizer = staged / "tokenizer.json"
    record: dict[str, Any] = {
        "format": FORMAT,
        "fronde_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "stage": STAGE,
        "run": {"name": out.name, "dir": str(out.resolve())},
        "step": step,
        "model": {**weights_entry(staged),
                  "tokenizer_sha256": sha256_file(tokenizer) if tokenizer.is_file() else None},
        "recipe": {"kind": "PeftAdapterConfig", "digest": digest, "values": cfg},
        "parent": parent_entry(base.resolve()),
        "data": [],
        "inputs": {"adapter": {
            "path": str(adapter_dir.resolve()),
            **{key: cfg.get(key) for key in ("peft_type", "peft_version", "r", "lora_alpha", "target_modules",
                                             "base_model_name_or_path")},
            "weights": file_entry(adapter_dir / ADAPTER_WEIGHTS), "trained_outside_fronde": True, "merge": merge}},
        "ledger": None,
    }
    record["id"] = lineage_id(record)
    return record


def _clear_killed_merges(out: Path, say: Callable[[str], None]) -> None:
    """The work dirs of merges into `out` that were killed (their process is gone): a model's worth of files each."""
    for work in out.parent.glob(f".{out.name}-merge-*-*"):
        pid = work.name.removeprefix(f".{out.name}-merge-").partition("-")[0]
        if work.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            say(f"removing {work}, left by a merge that was killed")
            shutil.rmtree(work, ignore_errors=True)


def merge_lora(adapter_dir: Path, out: Path, base: Path | None = None, dtype: torch.dtype | None = None,
               force: bool = False, say: Callable[[str], None] = print) -> MergeReport:
    """Merge the adapter in `adapter_dir` into its base and write the result as the fronde model dir `out`."""
    adapter_dir, out = Path(adapter_dir), Path(out)
    cfg = read_adapter(adapter_dir)
    base, config = resolve_base(cfg, adapter_dir, base)
    if out.exists() and not force:
        raise AdapterError(f"{out} exists; choose another output dir or pass --force to replace it")
    if out.resolve() in (adapter_dir.resolve(), base.resolve()):
        raise AdapterError(f"{out}: the output must not be the adapter or the base dir")
    dtype = dtype or base_dtype(base)
    source = adapter_dir if (adapter_dir / "tokenizer.json").is_file() else base
    files = tokenizer_files(source)
    if "tokenizer.json" not in files:
        raise AdapterError(f"{base}: no tokenizer.json, and the adapter dir has none either; copy the tokenizer files "
                           "into the base model dir")
    out.parent.mkdir(parents=True, exist_ok=True)
    _clear_killed_merges(out, say)
    probe = _probe(config.vocab_size)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}-merge-{os.getpid()}-", dir=out.parent) as work:
        merged_hf, staged = Path(work) / "hf", Path(work) / "model"
        say(f"merging {adapter_dir} into {base} with PEFT")
        before, expected = _merge_with_peft(adapter_dir, base, merged_hf, probe)
        shutil.copy2(base / "config.json", merged_hf / "config.json")  # fronde's own keys, as the base had them
        if (base / MTP_WEIGHTS).is_file():
            shutil.copy2(base / MTP_WEIGHTS, merged_hf / MTP_WEIGHTS)
        say("loading the merged weights in fronde and checking them against the adapter")
        model = from_pretrained(merged_hf)
        with torch.no_grad():
            got = model(probe).logits.float()
        diff = ((got - expected).abs().max() / expected.abs().max().clamp_min(1e-6)).item()
        if diff > PROBE_TOLERANCE:
            raise AdapterError(f"{adapter_dir}: the merged model's logits differ from the adapter's by {diff:.2e} of "
                               "their scale on a probe sequence; the adapter changes something fronde's model does "
                               "not read (report it with the adapter_config.json)")
        changed, tensors, relative = _weight_change(base, merged_hf)
        save_state(config, {k: v.detach() for k, v in model.state_dict().items()}, staged, dtype=dtype,
                   generation=stop_ids(config, files["tokenizer.json"]))
        del model
        with torch.no_grad():  # what the written dtype kept of the adapter
            kept = _effect_kept(before, expected, from_pretrained(staged)(probe).logits.float())
        for name, path in files.items():
            shutil.copy2(path, staged / name)
        write_model_tokenizer_config(staged / "tokenizer_config.json", config)
        merge = {"dtype": str(dtype).removeprefix("torch."), "effect_kept": kept, "probe_diff": diff}
        write_lineage(adapter_record(adapter_dir, cfg, base, staged, out, merge), staged)
        write_model_card(staged, shown_as=out)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staged, out)
    return MergeReport(out=out, base=base, tokenizer_from=source, dtype=dtype, changed=changed, tensors=tensors,
                       relative_change=relative, probe_diff=diff, effect_kept=kept)
