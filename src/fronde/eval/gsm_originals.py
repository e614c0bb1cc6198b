"""GSM-Symbolic's 100 original GSM8K problems, scored only with an honest label.

The task library splits gsm-symbolic by template: 20 held-out templates form the test split, the other 80 are
training templates (fronde.tasks.gsm_symbolic). A model that trained on gsm-symbolic has seen the structure of 80 of
the 100 originals, so its all-100 accuracy is not a clean GSM8K score. `fronde eval --gsm-originals clean|seen`
scores the originals and labels the result:

- clean: the user declares the model never saw gsm-symbolic training data (e.g. SmolLM2, a hosted model). Refused
  when the model's run dir holds evidence of gsm-symbolic training (distillation prompts or RL test curves);
- seen: labelled "seen-template", with the held-out and seen templates' originals reported apart.

fronde's SFT stage does not record which tasks it trained on, so a clean declaration for a fronde model is the
user's word; the evidence check only catches distillation and RL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fronde.eval.errors import EvalError
from fronde.eval.models import ModelDescription
from fronde.tasks import Example

CLEAN = "all-100 GSM8K originals; the model never trained on gsm-symbolic"
SEEN = "seen-template: the model trained on gsm-symbolic, whose 80 training templates are 80 of these 100 originals"
_EVIDENCE_FILES = ("*/teacher_samples.jsonl", "*/metrics.jsonl")
_MAX_SCAN_BYTES = 256 * 1024 * 1024


def training_evidence(run_dir: str | None) -> str | None:
    """A file of the run that shows gsm-symbolic training (distillation prompts, RL test accuracy), or None."""
    if not run_dir:
        return None
    for pattern in _EVIDENCE_FILES:
        for f in sorted(Path(run_dir).glob(pattern)):
            if f.stat().st_size > _MAX_SCAN_BYTES:
                continue
            with f.open(encoding="utf-8", errors="replace") as lines:
                if any("gsm-symbolic" in line for line in lines):
                    return str(f)
    return None


def originals_label(declared: str, model: ModelDescription) -> str:
    """The label for the originals' result, from the user's declaration checked against the run dir."""
    if declared not in ("clean", "seen"):
        raise EvalError(f"--gsm-originals {declared!r}: choose clean (the model never trained on gsm-symbolic) "
                        "or seen")
    evidence = training_evidence(model.run_dir)
    if declared == "clean" and evidence is not None:
        raise EvalError(f"--gsm-originals clean: {evidence} shows this run trained on gsm-symbolic; use "
                        "--gsm-originals seen (the result is then labelled seen-template)")
    return CLEAN if declared == "clean" else SEEN


def split_metrics(examples: list[Example], rewards: list[list[float]]) -> dict[str, Any]:
    """Accuracy on the originals of held-out templates and of training (seen) templates, apart."""
    out: dict[str, Any] = {}
    for key, seen in (("accuracy_held_out_templates", False), ("accuracy_seen_templates", True)):
        group = [sum(rs) / len(rs) for ex, rs in zip(examples, rewards) if ex.meta.get("seen_template") == seen]
        out[key] = 100 * sum(group) / len(group) if group else None
    return out
