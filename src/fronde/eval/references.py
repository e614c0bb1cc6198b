"""What a team knows about models fronde did not train: parameters and training cost, in a small TOML or JSON file.

    # references.toml: one table per model name, as it appears in result files
    ["smollm2-135m-instruct"]
    total_params = 134_515_008
    active_params = 134_515_008
    training_cost = 250000.0        # in the currency of your ledgers (USD by default)
    cost_note = "estimate: 2T tokens on 64 H100s"

JSON: {"smollm2-135m-instruct": {"total_params": ..., ...}}. Every field is optional; a figure given here overrides
what the results or a ledger say for that model.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from fronde.eval.errors import EvalError

FIELDS = {"total_params": int, "active_params": int, "training_cost": float, "cost_note": str, "tokens_per_s": float}


def load_references(path: Path | None) -> dict[str, dict[str, Any]]:
    """Model name -> known figures; an unknown field or a wrong type stops with the file, model and field."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"--reference {path}: no such file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8")) if path.suffix == ".toml" \
            else json.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise EvalError(f"--reference {path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({e})") from None
    if not isinstance(raw, dict):
        raise EvalError(f"--reference {path}: expected one table (object) per model name")
    out: dict[str, dict[str, Any]] = {}
    for name, fields in raw.items():
        if not isinstance(fields, dict):
            raise EvalError(f"--reference {path}: [{name}] must be a table of fields ({', '.join(FIELDS)})")
        entry: dict[str, Any] = {}
        for key, value in fields.items():
            kind = FIELDS.get(key)
            if kind is None:
                raise EvalError(f"--reference {path}: [{name}] has unknown field {key!r}; known: {', '.join(FIELDS)}")
            if kind is str and not isinstance(value, str) or kind is not str and (
                    isinstance(value, bool) or not isinstance(value, (int, float))):
                raise EvalError(f"--reference {path}: [{name}].{key} must be a {kind.__name__} (got {value!r})")
            entry[key] = kind(value)
        out[name] = entry
    return out
