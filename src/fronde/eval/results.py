"""Result files: one JSON per model x evaluation, `<out>/<model>/<task>.json`, self-describing.

    {"format": "fronde-eval/1", "model": {...}, "task": "arithmetic:3", "kind": "generative",
     "settings": {... every option that changes the numbers ...}, "dataset": {"examples": 100, "hash": "sha256:..."},
     "metrics": {"accuracy": 41.0, "pass@1": 41.0}, "label": null, "speed": {"tokens_per_s": ..., "ttft_s_p50": ...},
     "fronde_version": "0.1.0", "created": "2026-11-22T21:04:05Z", "examples": [{"id", "rewards", "outputs"}, ...]}

Scores are percentages (0-100) except losses and bits per byte. `dataset.hash` is the sha256 of the evaluated
examples (id, prompt, reference) in order, so two results are comparable exactly when their hashes agree.
`created` and `speed` are the only fields that differ between two runs with the same settings and seed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from fronde import __version__
from fronde.data.io import atomic_write_json
from fronde.eval.errors import EvalError
from fronde.eval.models import ModelDescription, slug

FORMAT = "fronde-eval/1"
VOLATILE = ("created", "speed", "_path")  # what may change between two runs with the same settings and seed
# (`_path`: where read_results found the file; it is never written)


def dataset_hash(rows: Iterable[Any]) -> str:
    """sha256 of the rows as canonical JSON, one per line."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n")
    return "sha256:" + h.hexdigest()


def make_result(model: ModelDescription, task: str, kind: str, settings: dict[str, Any], dataset: dict[str, Any],
                metrics: dict[str, Any], *, label: str | None = None, speed: dict[str, Any] | None = None,
                examples: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"format": FORMAT, "model": model.as_dict(), "task": task, "kind": kind, "settings": settings,
            "dataset": dataset, "metrics": metrics, "label": label, "speed": speed, "fronde_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "examples": examples}


def result_path(out_dir: Path, model_name: str, task: str) -> Path:
    return Path(out_dir) / slug(model_name) / f"{slug(task)}.json"


def write_result(out_dir: Path, result: dict[str, Any]) -> Path:
    path = result_path(out_dir, result["model"]["name"], result["task"])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, result)
    return path


def stable_view(result: dict[str, Any]) -> dict[str, Any]:
    """The result without the fields that may differ between reruns (for reproducibility checks)."""
    return {k: v for k, v in result.items() if k not in VOLATILE}


def shipped_results() -> dict[str, Path]:
    """Reference models' results shipped with fronde (measured with the commands in docs/benchmarks.md), by name."""
    root = Path(str(resources.files("fronde.eval") / "reference_results"))
    return {d.name: d for d in sorted(root.iterdir()) if d.is_dir()} if root.is_dir() else {}


def read_results(paths: Iterable[Path | str], damaged: list[str] | None = None) -> list[dict[str, Any]]:
    """Every result file among `paths` (files, directories searched recursively, or the name of shipped reference
    results such as `smollm2-135m-instruct`); other JSON is skipped. A result file that no longer parses (a copy cut
    short) is an EvalError, or, given `damaged`, a line there for the caller to show: never skipped without a word."""
    out: list[dict[str, Any]] = []
    for p in paths:
        p = Path(p)
        if not p.exists() and str(p) in shipped_results():
            p = shipped_results()[str(p)]
        if not p.exists():
            raise EvalError(f"{p}: no such file or directory (pass result files, the --out dir of fronde eval, or "
                            f"shipped reference results: {', '.join(shipped_results()) or 'none'})")
        for f in sorted(p.rglob("*.json")) if p.is_dir() else [p]:
            try:
                text = f.read_text(encoding="utf-8", errors="replace")
                data = json.loads(text)
            except (OSError, json.JSONDecodeError) as e:
                if p.is_dir() and not (isinstance(e, json.JSONDecodeError) and f'"{FORMAT}"' in text):
                    continue  # other JSON next to results (ledger.json, manifests) is not ours to judge
                why = f"{f}: a fronde eval result that no longer parses ({e}); evaluate again to rewrite it"
                if damaged is None or not p.is_dir():
                    raise EvalError(why if p.is_dir() else f"{f}: not a readable JSON result file ({e})") from None
                damaged.append(why)
                continue
            if isinstance(data, dict) and data.get("format") == FORMAT:
                data["_path"] = str(f)
                out.append(data)
            elif not p.is_dir():
                raise EvalError(f"{f}: not a fronde eval result (no \"format\": \"{FORMAT}\")")
    return out


def primary_metric(result: dict[str, Any]) -> tuple[str, float | None]:
    """The one number a scoreboard shows for a result: accuracy (generative), acc_norm (multiple choice), bpb."""
    m = result.get("metrics", {})
    key = {"generative": "accuracy", "multiple_choice": "acc_norm", "bpb": "bpb"}.get(result.get("kind", ""),
                                                                                    "accuracy")
    return key, m.get(key)
