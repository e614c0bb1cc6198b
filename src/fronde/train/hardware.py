"""Peak dense bf16 tensor FLOP/s by device: the one table MFU and the cost ledger are computed against.

Vendor datasheet figures for dense (not 2:4 sparse) bf16 with fp32 accumulation. A CPU has no datasheet line: its
figure is an estimate, cores x 3 GHz x the fp32 FLOP/cycle of the vector unit PyTorch dispatches to (two FMA ports:
32 with AVX2, 64 with AVX-512), and is labelled so. A flat AVX2 figure put an AVX-512 server at MFU > 100%.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# (substring of torch.cuda.get_device_name(), label, peak FLOP/s). First match wins: specific names first.
GPU_PEAK_FLOPS: list[tuple[str, str, float]] = [
    ("H100 PCIe", "NVIDIA H100 PCIe", 756e12),
    ("H100 NVL", "NVIDIA H100 NVL", 835e12),
    ("H100", "NVIDIA H100 SXM", 989e12),
    ("H200", "NVIDIA H200", 989e12),
    ("H800", "NVIDIA H800", 989e12),
    ("B200", "NVIDIA B200", 2250e12),
    ("A100", "NVIDIA A100", 312e12),
    ("L40S", "NVIDIA L40S", 362e12),
    ("RTX 4090", "NVIDIA RTX 4090", 165e12),
    ("MI300X", "AMD Instinct MI300X", 1307e12),
]
CPU_HZ = 3.0e9
# fp32 FLOP per cycle per core by torch.backends.cpu.get_cpu_capability(): lanes x 2 (FMA) x 2 ports
CPU_FLOP_PER_CYCLE = {"AVX512": 64, "AVX2": 32}
CPU_FLOP_PER_CYCLE_DEFAULT = 32


def peak_flops(device: torch.device | str, tflops: float | None = None) -> tuple[str, float | None]:
    """(label, peak FLOP/s) for a device. `tflops` (a recipe's `cost.peak_tflops`) wins over the table. A GPU the
    table does not know gets None: the run trains and the ledger says MFU is unknown, rather than stopping a team on
    the card it has or inventing a figure."""
    import torch  # here, not at the top: the ledger reads this table in `fronde runs`, which never loads torch

    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        label, flops = next(((lab, f) for key, lab, f in GPU_PEAK_FLOPS if key in name), (name, None))
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        isa = torch.backends.cpu.get_cpu_capability()
        label = f"CPU ({cores} cores, {isa}, estimated peak)"
        flops = cores * CPU_HZ * CPU_FLOP_PER_CYCLE.get(isa, CPU_FLOP_PER_CYCLE_DEFAULT)
    if tflops is not None:
        return label.replace(", estimated peak", ""), tflops * 1e12
    return label, flops


def unknown_peak_note(label: str) -> str:
    return (f"MFU not computed: fronde has no peak FLOP/s figure for {label}; set cost.peak_tflops to its dense "
            "bf16 datasheet figure (TFLOP/s, no sparsity) to get it")
