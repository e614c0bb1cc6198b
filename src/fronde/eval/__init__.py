"""Evaluation: any model measured the same way, and the scoreboard that puts them side by side.

A layer above fronde.data/tasks/model/train/infer (never importing serve or cli):

- `load_eval_model(spec | endpoint=..., model=...)`: one interface over fronde dirs (the engine), transformers dirs,
  GGUF files and OpenAI-compatible endpoints (fronde.eval.models);
- `run_plan(model, EvalPlan(...), out_dir)`: generative tasks with their verifiers (accuracy, pass@k), gsm-symbolic's
  originals with an honest label, multiple choice by log-likelihood, loss and bits per byte; one result JSON per
  model x evaluation (fronde.eval.results);
- `Scoreboard.from_results(...)`: the markdown table and PNG plots (fronde.eval.scoreboard, fronde.eval.plots);
- `write_report(run_dir)`: runs/<name>/report.md (fronde.eval.report).
"""

from __future__ import annotations

from fronde.lazy import lazy_exports

# Resolved on first use (PEP 562): `fronde runs` and `fronde report` read results without importing torch.
_EXPORTS = {
    "EvalError": "errors", "GenerationSettings": "generative", "evaluate_generative": "generative",
    "EvalModel": "models", "ModelDescription": "models", "Speed": "models", "load_eval_model": "models",
    "pass_at_k": "passk", "read_results": "results", "write_result": "results", "EvalPlan": "run", "run_plan": "run",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
