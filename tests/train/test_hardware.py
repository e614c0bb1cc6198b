"""The peak-FLOPs table MFU is computed against: known GPUs by name, the CPU estimated from the vector unit PyTorch
dispatches to, and a GPU the table lacks trained on all the same, its MFU unknown unless the recipe gives the peak."""

from __future__ import annotations

import pytest
import torch

from fronde.train import hardware
from fronde.train.ledger import Ledger, open_stage
from fronde.train.recipe import CostSection


@pytest.mark.parametrize("isa, per_cycle", [("AVX512", 64), ("AVX2", 32), ("DEFAULT", 32)])
def test_cpu_peak_follows_the_vector_unit(monkeypatch, isa, per_cycle):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: isa)
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda _: {0, 1}, raising=False)
    label, flops = hardware.peak_flops("cpu")
    assert flops == 2 * 3.0e9 * per_cycle
    assert label == f"CPU (2 cores, {isa}, estimated peak)"


def test_gpu_peak_by_name_and_an_unknown_gpu_trains_with_mfu_unknown(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda _=None: "NVIDIA H100 80GB HBM3")
    assert hardware.peak_flops("cuda:0") == ("NVIDIA H100 SXM", 989e12)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda _=None: "NVIDIA H100 PCIe")
    assert hardware.peak_flops("cuda:0")[1] == 756e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda _=None: "NVIDIA GeForce RTX 3090")
    assert hardware.peak_flops("cuda:0") == ("NVIDIA GeForce RTX 3090", None)
    assert hardware.peak_flops("cuda:0", tflops=71.0) == ("NVIDIA GeForce RTX 3090", 71e12)

    said: list[str] = []
    cost = open_stage(Ledger(), "pretrain", torch.device("cuda:0"), 1, CostSection(), said.append)
    assert "cost.peak_tflops" in said[0] and "RTX 3090" in said[0]
    cost.flops, cost.wall_seconds = 1e15, 10.0
    assert cost.mfu is None and cost.mfu_text == "-" and cost.as_dict()["mfu"] is None
    cost = open_stage(Ledger(), "sft", torch.device("cuda:0"), 2, CostSection(peak_tflops=50.0), said.append)
    cost.flops, cost.wall_seconds = 1e15, 10.0
    assert len(said) == 1 and cost.mfu == pytest.approx(1e15 / (10.0 * 2 * 50e12))


def test_a_recipe_peak_replaces_the_cpu_estimate():
    assert hardware.peak_flops("cpu", tflops=2.0)[1] == 2e12
    assert "estimated" not in hardware.peak_flops("cpu", tflops=2.0)[0]


def test_a_damaged_ledger_is_named_with_where_its_last_copy_is(tmp_path):
    from fronde.data.errors import DataError

    path = tmp_path / "ledger.json"
    Ledger().save(path)
    assert Ledger.load(path).stages == [] and Ledger.load(tmp_path / "none.json").stages == []
    path.write_text('{"stages": [{"stage": "pretrain", "tok', encoding="utf-8")  # cut short
    with pytest.raises(DataError, match=f"{path}: the run's cost ledger is damaged .*state.json"):
        Ledger.load(path)
