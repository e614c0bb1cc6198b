"""`fronde.json`: where a published model came from, written into its model dir so the lineage travels with it.

    {"format": "fronde-lineage/1", "id": "sha256:...", "fronde_version", "created", "stage", "run": {name, dir},
     "step", "model": {weights file + sha256, tokenizer sha256}, "recipe": {kind, digest, values},
     "parent": null | {path, weights sha256, id, lineage: <the parent's whole fronde.json>},
     "data": [{manifest sha256, cache_key, sources with licences, PII counts, ...}],   (pretraining data)
     "inputs": {tasks, user files with sha256, teacher identity, ...},                   (post-training data)
     "ledger": <this stage's ledger entry>, "evaluations": [...]}

`id` is the sha256 of the record's canonical JSON without `id` and `evaluations`: it pins the weights, the recipe,
the data and, through `parent.id`, every ancestor, so a chain of ids is a chain of hashes. The parent's whole record
is embedded, not just referenced, so a model dir copied away from its run (or its parent deleted) still knows its
pretraining data. `evaluations` are observations of the model added later by `fronde eval` (model_card.py), which
is why they stay outside the id.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fronde import __version__
from fronde.data.columnar import datasets_licence
from fronde.data.errors import DataError
from fronde.data.io import atomic_write_json, sha256_file
from fronde.data.manifest import MANIFEST, encodings_used, read_manifest
from fronde.model.files import INDEX, WEIGHTS
from fronde.train.ledger import StageCost
from fronde.train.recipe import StageRecipe

LINEAGE = "fronde.json"
FORMAT = "fronde-lineage/1"
UNHASHED = ("id", "evaluations")  # fields outside the id (see the module docstring)
MAX_LISTED_FILES = 3  # a source's files are listed with their sha256 up to this many (the manifest has them all)


@dataclass
class Provenance:
    """What a stage knows, when it starts, about what its model is made from."""

    parent: Path | None = None  # the model dir the stage starts from (None: trained from scratch)
    data_dirs: list[Path] = field(default_factory=list)  # prepared data dirs (with manifest.json) it trains on
    inputs: dict[str, Any] = field(default_factory=dict)  # stage data: tasks, user files (file_entry), teacher


@dataclass
class Lineage:
    """What `publish_final` needs to write fronde.json and MODEL_CARD.md for a stage's final model."""

    stage: str
    recipe: StageRecipe
    step: int
    cost: StageCost | None
    provenance: Provenance = field(default_factory=Provenance)


def weights_file(model_dir: Path) -> Path | None:
    """The file that pins a model dir's weights: the shard index when sharded, else model.safetensors."""
    for name in (INDEX, WEIGHTS):
        if (model_dir / name).is_file():
            return model_dir / name
    return None


def weights_entry(model_dir: Path) -> dict[str, Any]:
    f = weights_file(model_dir)
    return {"weights_file": f.name if f else None, "weights_sha256": sha256_file(f) if f else None}


def file_entry(path: str | Path) -> dict[str, Any]:
    """A data file by content: path, size and sha256 (None when the file is gone by publish time), and the licence a
    datasets folder's dataset_info.json records for it."""
    p = Path(path)
    if not p.is_file():
        return {"path": str(p), "bytes": None, "sha256": None}
    entry: dict[str, Any] = {"path": str(p), "bytes": p.stat().st_size, "sha256": sha256_file(p)}
    if licence := datasets_licence([p]):
        entry["licence"] = licence
    return entry


def task_entry(spec: str, options: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A task by spec and the options it was built with; a user task file also by content."""
    entry: dict[str, Any] = {"name": spec, **extra, **({"options": options} if options else {})}
    if spec.endswith(".jsonl") or Path(spec).is_file():
        entry["file"] = file_entry(spec)
    return entry


def data_entry(data_dir: Path) -> dict[str, Any]:
    """A prepared data dir by the hash of its manifest, with the facts a model card reports (licences, PII counts)."""
    m = read_manifest(data_dir)
    files_by_source: dict[str, list[dict[str, Any]]] = {}
    for f in m["files"]:
        files_by_source.setdefault(f["source"], []).append(f)
    sources = []
    for s in m["sources"]:
        files = files_by_source.get(s["name"], [])
        entry = {k: s[k] for k in ("name", "spec", "licence", "builtin", "pii", "files")}
        entry["quality"] = s.get("quality", "off")  # manifests before the quality rules had none
        entry["lang"], entry["languages"] = s.get("lang"), s.get("languages")
        entry["weight"], entry["train_bytes"] = s.get("weight", 1.0), s.get("train_bytes")
        entry["bytes"] = sum(f["bytes"] for f in files)
        entry["documents"], entry["kept"] = sum(f["documents"] for f in files), sum(f["kept"] for f in files)
        if len(files) <= MAX_LISTED_FILES:
            entry["file_sha256"] = {f["path"]: f["sha256"] for f in files}
        sources.append(entry)
    d = m["documents"]
    return {
        "path": str(data_dir),
        "manifest_sha256": sha256_file(Path(data_dir) / MANIFEST),
        "cache_key": m["cache_key"],
        "created": m["created"],
        "sources": sources,
        "documents": {"in": d["in"], "train": d["train"], "val": d["val"], "dropped": d["dropped"]},
        "pii": {"replacements": m["pii"]["replacements"], "total": m["pii"]["total"],
                "kept_shared": m["pii"].get("kept_shared", {})},
        "tokenizer": {"sha256": m["tokenizer"]["sha256"], "vocab_size": m["tokenizer"]["vocab_size"],
                      "trained": m["tokenizer"].get("trained"), "source": m["tokenizer"].get("source")},
        "tokens": {split: s["tokens"] for split, s in m["splits"].items()},
        "decontamination": m.get("decontamination"),
        "encodings": encodings_used(m["files"]),  # files not read as plain UTF-8, and what decided their encoding
        "ocr_pages": sum(f.get("ocr_pages", 0) for f in m["files"]),
    }


def read_lineage(model_dir: Path) -> dict[str, Any] | None:
    """A model dir's fronde.json, or None when it has none (a model from elsewhere, or published before lineage)."""
    path = Path(model_dir) / LINEAGE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and record.get("format") == FORMAT else None


def parent_entry(parent_dir: Path) -> dict[str, Any]:
    """The model a stage started from: its path, its weights' hash and, when it has one, its own lineage."""
    record = read_lineage(parent_dir)
    return {"path": str(parent_dir), **weights_entry(parent_dir), "id": record.get("id") if record else None,
            "lineage": record}


def teacher_identity(spec: str) -> dict[str, Any]:
    """A distillation teacher by content: what the spec resolves to, the hash of its weights, and for a fronde
    teacher its lineage id, for a built-in one the package version that shipped it."""
    from fronde.train.teacher import BUILTIN_TEACHERS, TeacherError, adapter_base, is_adapter, resolve_teacher

    out: dict[str, Any] = {"spec": spec}
    try:
        directory, gguf = resolve_teacher(spec)
    except TeacherError as e:
        return out | {"error": str(e)}
    if gguf is not None:
        out |= {"kind": "gguf", "path": str(directory / gguf), "weights_file": gguf,
                "weights_sha256": sha256_file(directory / gguf)}
    elif is_adapter(directory):  # a PEFT adapter: by its weights, and its base by its own
        try:
            base = adapter_base(directory, spec)
        except TeacherError as e:
            return out | {"error": str(e)}
        weights = directory / "adapter_model.safetensors"
        record = read_lineage(base)
        out |= {"kind": "peft-adapter", "path": str(directory), "weights_file": weights.name,
                "weights_sha256": sha256_file(weights) if weights.is_file() else None,
                "licence": card_license(directory) or card_license(base),
                "base": {"path": str(base), **weights_entry(base), "id": record.get("id") if record else None}}
        if record:
            out["lineage"] = record
    else:
        record = read_lineage(directory)
        out |= {"kind": "fronde" if record else "transformers", "path": str(directory), **weights_entry(directory),
                "id": record.get("id") if record else None, "licence": card_license(directory)}
        if record:  # its data licences are the student's too: the card walks this like a parent
            out["lineage"] = record
    if spec in BUILTIN_TEACHERS:
        package = BUILTIN_TEACHERS[spec][0]
        try:
            dist = importlib.metadata.distribution(package.replace("_", "-"))
            out |= {"package": dist.metadata["Name"], "package_version": dist.version,
                    "licence": dist.metadata.get("License") or None}
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def card_license(model_dir: Path) -> str | None:
    """The `license` of a Hugging Face model card (README.md front matter) in a model dir, if any."""
    card = model_dir / "README.md"
    if not card.is_file():
        return None
    match = re.match(r"^---\s*\n(.*?)\n---", card.read_text(encoding="utf-8", errors="replace"), re.DOTALL)
    found = re.search(r"^license:\s*['\"]?([^'\"\s]+)", match.group(1), re.MULTILINE) if match else None
    return found.group(1) if found else None


def lineage_id(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k not in UNHASHED}
    return "sha256:" + hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def build_lineage(lineage: Lineage, model_dir: Path) -> dict[str, Any]:
    """The fronde.json record for the model in `model_dir` (its weights must already be there)."""
    recipe, prov = lineage.recipe, lineage.provenance
    tokenizer = model_dir / "tokenizer.json"
    record: dict[str, Any] = {
        "format": FORMAT,
        "fronde_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "stage": lineage.stage,
        "run": {"name": recipe.run.name, "dir": str(recipe.run_dir)},
        "step": lineage.step,
        "model": {**weights_entry(model_dir),
                  "tokenizer_sha256": sha256_file(tokenizer) if tokenizer.is_file() else None},
        "recipe": {"kind": type(recipe).__name__, "digest": recipe.digest(), "values": recipe.model_dump(mode="json")},
        "parent": parent_entry(prov.parent) if prov.parent is not None else None,
        "data": [_data_or_missing(d) for d in prov.data_dirs],
        "inputs": prov.inputs,
        "ledger": lineage.cost.as_dict() if lineage.cost is not None else None,
    }
    record["id"] = lineage_id(record)
    return record


def _data_or_missing(data_dir: Path) -> dict[str, Any]:
    try:
        return data_entry(data_dir)
    except DataError as e:  # a data dir removed or re-prepared mid-run: say so rather than invent hashes
        return {"path": str(data_dir), "error": str(e)}


def write_lineage(record: dict[str, Any], model_dir: Path) -> Path:
    path = Path(model_dir) / LINEAGE
    atomic_write_json(path, record)
    return path


def ancestry(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The chain of records, oldest first, ending with `record` (parents without a fronde.json end the walk)."""
    chain = [record]
    while (parent := chain[-1].get("parent")) and isinstance(parent.get("lineage"), dict):
        chain.append(parent["lineage"])
    return chain[::-1]


def pretraining_data_dir(model_dir: Path) -> Path | None:
    """The prepared data a model (or its oldest ancestor with data) was pretrained on, when that dir is still there:
    where SFT replays text from when the recipe names none."""
    record = read_lineage(model_dir)
    for rec in ancestry(record) if record else []:
        for entry in rec.get("data") or []:
            path = Path(entry.get("path", ""))
            if entry.get("path") and (path / "manifest.json").is_file():
                return path
    return None


def pretraining_test_sets(model_dir: Path) -> list[str]:
    """The evaluation test sets the data of a model (and of its ancestors) was decontaminated against: what later
    stages check their own user files against by default, so a chat file cannot bring back what the corpus kept out."""
    record = read_lineage(model_dir)
    sets: dict[str, None] = {}
    for rec in ancestry(record) if record else []:
        for entry in rec.get("data") or []:
            for name in ((entry.get("decontamination") or {}).get("test_sets") or {}):
                sets[name] = None
    return list(sets)
