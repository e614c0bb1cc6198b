"""Small building blocks shared by attention, MoE and the model: RMSNorm, SwiGLU, fp32-pinned buffers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """Normalises in fp32 and scales in the input dtype, exactly as transformers' DeepseekV3RMSNorm."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:
            if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
                return _RMSNormFunction.apply(x, self.weight, self.eps)
            return F.rms_norm(x, (x.shape[-1],), self.weight, eps=self.eps)
        normed = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps)
        return self.weight * normed.to(x.dtype)


class _RMSNormFunction(torch.autograd.Function):
    """fp32 RMSNorm with a hand-written backward: autograd's own takes ~10 elementwise passes and allocations for
    what is one reduction and three products; this is ~35% faster fwd+bwd on CPU (docs/log.md)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        rstd = x.pow(2).mean(-1, keepdim=True).add_(eps).rsqrt_()
        normed = x * rstd
        ctx.save_for_backward(normed, rstd, weight)
        return normed * weight

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        normed, rstd, weight = ctx.saved_tensors
        grad_normed = grad * weight
        grad_weight = (grad * normed).flatten(0, -2).sum(0)
        grad_x = (grad_normed - normed * (grad_normed * normed).mean(-1, keepdim=True)).mul_(rstd)
        return grad_x, grad_weight, None


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)): the dense MLP and the shared experts."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class FP32BuffersMixin:
    """Keeps the named buffers in fp32 when the module is cast (model.to(bfloat16)).

    The router's correction bias moves by ~1e-3 per step and RoPE frequencies need full precision:
    a bf16 copy would silently swallow both.
    """

    fp32_buffers: tuple[str, ...] = ()

    def _apply(self, fn, recurse=True):  # type: ignore[override]
        saved = {name: getattr(self, name) for name in self.fp32_buffers}
        super()._apply(fn, recurse)  # type: ignore[misc]
        for name, before in saved.items():
            after = getattr(self, name)
            source = after if before.is_meta else before  # to_empty() from meta has no values to keep
            setattr(self, name, source.to(device=after.device, dtype=torch.float32))
        return self
