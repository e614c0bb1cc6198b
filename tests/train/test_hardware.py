"""The peak-FLOPs table MFU is computed against: known GPUs by name, unknown ones refused, the CPU estimated from the
vector unit PyTorch dispatches to."""

from __future__ import annotations

import pytest
import torch

from fronde.train import hardware


@pytest.mark.parametrize("isa, per_cycle", [("AVX512", 64), ("AVX2", 32), ("DEFAULT", 32)])
def test_cpu_peak_follows_the_vector_unit(monkeypatch, isa, per_cycle):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: isa)
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda _: {0, 1}, raising=False)
    label, flops = hardware.peak_flops("cpu")
    assert flops == 2 * 3.0e9 * per_cycle
    assert label == f"CPU (2 cores, {isa}, estimated peak)"


def test_gpu_peak_by_name_and_unknown_gpus_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda _=None: "NVIDIA H100 80GB HBM3")
    assert hardware.peak_flops("cuda:0") == ("NVIDIA H100 SXM", 989e12)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda _=None: "NVIDIA H100 PCIe")
    assert hardware.peak_flops("cuda:0")[1] == 756e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda _=None: "Some Future GPU")
    with pytest.raises(ValueError, match="GPU_PEAK_FLOPS"):
        hardware.peak_flops("cuda:0")
