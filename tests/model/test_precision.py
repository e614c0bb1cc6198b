"""The float type fronde computes in by device: bf16 only where the GPU has it natively."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from fronde.model.precision import bf16_native, compute_dtype
from fronde.train.loop import autocast, precision_note
from fronde.train.recipe import StageRecipe


@pytest.mark.filterwarnings("ignore:CUDA is not available")
@pytest.mark.parametrize("major, native", [(7, False), (8, True), (9, True)])
def test_bf16_only_on_gpus_that_have_it(monkeypatch, major, native):
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda _: SimpleNamespace(major=major))
    assert bf16_native("cuda:0") is native
    assert compute_dtype("cuda:0") == (torch.bfloat16 if native else torch.float32)
    recipe = StageRecipe.model_validate({})
    note = precision_note(recipe, torch.device("cuda:0"))
    assert (note is None) is native and (native or "fp32" in note)
    assert isinstance(autocast(recipe, torch.device("cuda:0")), torch.autocast) is native


def test_the_cpu_computes_in_fp32():
    assert not bf16_native("cpu") and compute_dtype("cpu") == torch.float32
    assert precision_note(StageRecipe.model_validate({}), torch.device("cpu")) is None
