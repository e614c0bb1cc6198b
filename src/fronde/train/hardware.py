"""Peak dense bf16 tensor FLOP/s by device: the one table MFU and the cost ledger are computed against.

Vendor datasheet figures for dense (not 2:4 sparse) bf16 with fp32 accumulation. A CPU has no datasheet line: its
figure is an estimate, cores x 3 GHz x the fp32 FLOP/cycle of the vector unit PyTorch dispatches to (two FMA ports:
32 with AVX2, 64 with AVX-512), and is labelled so. A flat AVX2 figure put an AVX-512 server at MFU > 100%.
"""

from __future__ import annotations

import os

import torch

# (substring of torch.cuda.get_device_name(), label, peak FLOP/s). First match wins: specific names first.
GPU_PEAK_FLOPS: list[tuple[str, str, float]] = [
    ("H100 PCIe", "NVIDIA H100 PCIe", 756e12),
    ("H100", "NVIDIA H100 SXM", 989e12),
    ("H200", "NVIDIA H200", 989e12),
    ("H800", "NVIDIA H800", 989e12),
    ("A100", "NVIDIA A100", 312e12),
    ("L40S", "NVIDIA L40S", 362e12),
    ("RTX 4090", "NVIDIA RTX 4090", 165e12),
]
CPU_HZ = 3.0e9
# fp32 FLOP per cycle per core by torch.backends.cpu.get_cpu_capability(): lanes x 2 (FMA) x 2 ports
CPU_FLOP_PER_CYCLE = {"AVX512": 64, "AVX2": 32}
CPU_FLOP_PER_CYCLE_DEFAULT = 32


def peak_flops(device: torch.device | str) -> tuple[str, float]:
    """(label, peak FLOP/s) for a device; an unknown GPU raises rather than inventing a number."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, label, flops in GPU_PEAK_FLOPS:
            if key in name:
                return label, flops
        raise ValueError(f"no peak-FLOPs entry for GPU {name!r}; add it to fronde.train.hardware.GPU_PEAK_FLOPS")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    isa = torch.backends.cpu.get_cpu_capability()
    per_cycle = CPU_FLOP_PER_CYCLE.get(isa, CPU_FLOP_PER_CYCLE_DEFAULT)
    return f"CPU ({cores} cores, {isa}, estimated peak)", cores * CPU_HZ * per_cycle
