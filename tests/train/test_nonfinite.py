"""A step whose gradients are NaN/inf is skipped, not applied; a stage whose gradients stay non-finite stops with
what to change, its weights and checkpoints finite, instead of training on NaN and publishing a NaN model."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from fronde.train.nonfinite import DivergedError, NonFiniteSteps
from tests.train.conftest import run_fronde


def test_non_finite_steps_are_skipped_until_too_many_in_a_row():
    said: list[str] = []
    guard = NonFiniteSteps("sft", limit=2, lr=3e-3, say=said.append)
    assert guard.ok(torch.tensor(0.7), 1)
    assert not guard.ok(torch.tensor(math.nan), 2)
    assert guard.ok(torch.tensor(1.2), 3)  # a finite step ends the run of skips
    assert not guard.ok(torch.tensor(math.inf), 4)
    assert not guard.ok(torch.tensor(math.nan), 5)
    with pytest.raises(DivergedError) as e:
        guard.ok(torch.tensor(math.nan), 6)
    assert "steps 4-6, 3 in a row" in str(e.value) and "optim.max_nonfinite_steps=2" in str(e.value)
    assert "weights are those of step 3" in str(e.value) and "lower optim.lr (now 0.003)" in str(e.value)
    assert guard.skipped == 4 and len(said) == 3 and said[0].startswith("sft step 2: gradient norm nan")


def _finite(model_dir) -> bool:
    return all(torch.isfinite(t).all() for t in load_file(model_dir / "model.safetensors").values())


def test_one_poisoned_step_is_skipped_and_the_run_finishes_finite(recipe_file, monkeypatch, capsys):
    real_clip = torch.nn.utils.clip_grad_norm_
    calls = []

    def clip(params, max_norm, *args, **kwargs):  # step 3's gradients turn NaN, as an overflow would make them
        params = list(params)
        calls.append(1)
        if len(calls) == 3:
            for p in params:
                p.grad.fill_(math.nan)
        return real_clip(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    recipe = recipe_file("poison")
    assert run_fronde(monkeypatch, "pretrain", str(recipe)) == 0
    out = capsys.readouterr().out
    assert "pretrain step 3: gradient norm nan; update skipped, weights unchanged" in " ".join(out.split())
    stage = recipe.parent / "runs" / "poison" / "pretrain"
    records = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("skipped_steps", 0) for r in records if "loss" in r] == [0, 0] + [1] * 10
    assert all(math.isfinite(r["loss"]) for r in records if "loss" in r and r["step"] != 3)
    assert _finite(stage / "model") and _finite(stage / "checkpoints" / "step-000012" / "model")


def test_a_diverging_stage_stops_with_finite_checkpoints_and_no_model(recipe_file, monkeypatch, capsys):
    recipe = recipe_file("diverge")
    assert run_fronde(monkeypatch, "pretrain", str(recipe), "--set", "optim.lr=3000",
                                      "--set", "optim.max_nonfinite_steps=2", "--set", "checkpoint.every_steps=1") == 2
    err = " ".join(capsys.readouterr().out.split())
    assert "error: pretrain: the gradients were not finite" in err and "3 in a row" in err
    stage = recipe.parent / "runs" / "diverge" / "pretrain"
    assert not (stage / "model").exists()
    checkpoints = sorted((stage / "checkpoints").glob("step-*"))
    assert checkpoints and all(_finite(c / "model") for c in checkpoints)
    assert json.loads((stage / "lock.json").read_text())["status"] == "failed"
