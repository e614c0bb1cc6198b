"""Which float type a device computes in: bf16 where the GPU does it natively (NVIDIA Ampere and later, ROCm GPUs),
fp32 elsewhere. A Volta or Turing GPU (V100, T4, RTX 20xx) only emulates bf16, slowly, and fp16 would need loss
scaling and overflow care a bf16-trained model does not get; a CPU's bf16 matmuls are slow on most processors."""

from __future__ import annotations

import torch


def bf16_native(device: torch.device | str) -> bool:
    device = torch.device(device)
    if device.type != "cuda":
        return False
    return bool(torch.version.hip) or torch.cuda.get_device_properties(device).major >= 8


def compute_dtype(device: torch.device | str) -> torch.dtype:
    """bf16 on a GPU that has it natively, else fp32: how fronde loads a model to sample or serve."""
    return torch.bfloat16 if bf16_native(device) else torch.float32
