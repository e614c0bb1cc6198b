"""Folders fronde wrote, found inside a source folder: a prepared data directory, a run directory, a model directory.

`fronde data prepare --source . --out data/team` run in a project folder found, the second time, its own manifest,
metrics, ledgers and model cards: it stopped on `manifest.json: no field 'text'`, and a data dir inside its own
source changed the cache key at every run. Such folders are left out of a walk (listed as skipped, by reason); a
file named on the command line is read whatever folder it is in.
"""

from __future__ import annotations

import json
from pathlib import Path

from fronde.data.manifest import MANIFEST

# the files that make a folder a model directory (Hugging Face's layout: fronde's, or any transformers save)
MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def own_output(d: Path) -> str | None:
    """What fronde (or transformers) wrote `d` as, or None for a folder of the team's own files."""
    if (d / MANIFEST).is_file() and (d / "tokenizer" / "tokenizer.json").is_file():
        return "a prepared data folder (fronde's own output)"
    if (d / "config.json").is_file() and any((d / w).is_file() for w in MODEL_WEIGHTS):
        return "a model folder (weights and their JSON, not text)"
    if _is_ledger(d / "ledger.json"):
        return "a fronde run folder (metrics, ledger, reports, models)"
    return None


def _is_ledger(path: Path) -> bool:
    """A run's cost ledger, not a team's accounting export of the same name."""
    if not path.is_file() or path.stat().st_size > 1 << 20:
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("stages"), list)


def under_own_output(path: Path, root: Path, seen: dict[Path, str | None]) -> str | None:
    """Why `path` is left out when a folder between `root` (excluded: the folder the user named) and it is one of
    fronde's outputs, else None. `seen` caches each folder's answer over a walk."""
    for d in path.parents:
        if d == root or root not in d.parents:
            return None
        if d not in seen:
            seen[d] = own_output(d)
        if seen[d]:
            return seen[d]
    return None
