"""Peak dense bf16 tensor FLOP/s by device: the one table MFU and the cost ledger are computed against.

Vendor datasheet figures for dense (not 2:4 sparse) bf16 with fp32 accumulation. A CPU has no datasheet line: its
figure is an estimate (cores x 3 GHz x 32 fp32 FLOP/cycle, AVX2 FMA) and is labelled so.
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
CPU_FLOPS_PER_CORE = 3.0e9 * 32


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
    return f"CPU ({cores} cores, estimated peak)", cores * CPU_FLOPS_PER_CORE
