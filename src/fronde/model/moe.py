"""DeepSeekMoE: sigmoid router with auxiliary-loss-free balancing, routed SwiGLU experts, shared experts.

Routing follows DeepSeek-V3 (noaux_tc): fp32 sigmoid scores; the correction bias is added only to choose experts;
the weights are the unbiased scores of the chosen experts, normalised, times routed_scaling_factor. Experts are
stored stacked (E, out, in) so the GPU runs them as two grouped GEMMs over tokens sorted by expert; the HF
checkpoint's per-expert names are produced by the state-dict adapter.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from fronde.model.config import ModelConfig
from fronde.model.layers import FP32BuffersMixin, SwiGLU

ExpertBackend = Literal["auto", "grouped_mm", "bmm", "loop"]


class Router(FP32BuffersMixin, nn.Module):
    fp32_buffers = ("e_score_correction_bias",)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_experts, self.top_k = config.n_routed_experts, config.num_experts_per_tok
        self.n_group, self.topk_group = config.n_group, config.topk_group
        self.norm_topk_prob, self.scaling = config.norm_topk_prob, config.routed_scaling_factor
        self.weight = nn.Parameter(torch.empty(config.n_routed_experts, config.hidden_size))
        self.register_buffer("e_score_correction_bias", torch.zeros(config.n_routed_experts))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (N, D) -> scores (N, E), chosen experts (N, k), their weights (N, k); all scores in fp32."""
        with torch.autocast(x.device.type, enabled=False):  # bf16 autocast must not touch the router
            scores = F.linear(x.float(), self.weight.float()).sigmoid()
        choice = scores + self.e_score_correction_bias
        if self.n_group > 1:
            grouped = choice.view(-1, self.n_group, self.n_experts // self.n_group)
            group_scores = grouped.topk(2, dim=-1).values.sum(-1)
            keep = torch.zeros_like(group_scores, dtype=torch.bool)
            keep.scatter_(1, group_scores.topk(self.topk_group, dim=-1).indices, True)
            choice = grouped.masked_fill(~keep.unsqueeze(-1), float("-inf")).flatten(1)
        idx = choice.topk(self.top_k, dim=-1).indices
        weights = scores.gather(1, idx)
        if self.norm_topk_prob:
            weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
        return scores, idx, weights * self.scaling


class Experts(nn.Module):
    """n_routed_experts SwiGLU experts as stacked weights: gate_up (E, 2I, D), down (E, D, I).

    backend "auto" picks torch's grouped GEMM where it works (CUDA sm80+ bf16; CPU with 16-byte-aligned rows) and a
    padded batched matmul elsewhere; "loop" is the per-expert reference the fast paths are tested against.
    """

    def __init__(self, config: ModelConfig, backend: ExpertBackend = "auto") -> None:
        super().__init__()
        E, D, I = config.n_routed_experts, config.hidden_size, config.moe_intermediate_size
        self.n_experts, self.inter = E, I
        self.backend: ExpertBackend = backend
        self.gate_up_proj = nn.Parameter(torch.empty(E, 2 * I, D))
        self.down_proj = nn.Parameter(torch.empty(E, D, I))

    def forward(self, x: torch.Tensor, idx: torch.Tensor, weights: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """x (N, D), idx/weights (N, k), counts (E,) tokens per expert -> sum of weight * expert(x), (N, D)."""
        N, k = idx.shape
        flat = idx.flatten()
        order = flat.argsort(stable=True)  # (token, slot) pairs sorted by expert
        inverse = torch.empty_like(order).scatter_(0, order, torch.arange(order.numel(), device=order.device))
        xs = _gather_rows(x, order // k, inverse, k).to(_compute_dtype(x))  # autocast: experts run in its dtype
        backend = self.backend
        if backend == "auto":
            backend = "grouped_mm" if _grouped_mm_ok(xs, self.inter) else "bmm"
        if backend == "grouped_mm":
            ys = self._grouped_mm(xs, counts) if x.is_cuda else self._grouped_mm_cpu(xs, counts)
        elif backend == "bmm":
            ys = self._padded_bmm(xs, flat[order], counts)
        else:
            ys = self._loop(xs, counts)
        # Back to token order and the weighted sum over the k experts in fp32, as the routing weights are fp32.
        ys = _gather_rows(ys, inverse, order, 1).view(N, k, -1).float()
        return (ys * weights.unsqueeze(-1)).sum(1).to(x.dtype)

    def _swiglu(self, gate_up: torch.Tensor) -> torch.Tensor:
        gate, up = gate_up.chunk(2, dim=-1)
        return F.silu(gate) * up

    def _grouped_mm(self, xs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        offs = counts.cumsum(0).to(torch.int32)
        gate_up, down = self.gate_up_proj.to(xs.dtype), self.down_proj.to(xs.dtype)
        h = self._swiglu(F.grouped_mm(xs, gate_up.transpose(-2, -1), offs=offs))
        return F.grouped_mm(h, down.transpose(-2, -1), offs=offs)

    @torch.compiler.disable  # torch traces grouped_mm for bf16 CUDA only; on CPU it runs eagerly
    def _grouped_mm_cpu(self, xs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return self._grouped_mm(xs, counts)

    @torch.compiler.disable  # data-dependent capacity: keep it out of compiled graphs (no recompiles, no breaks)
    def _padded_bmm(self, xs: torch.Tensor, expert: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Tokens scattered into an (E, max_count, D) buffer and run as two batched matmuls: vectorised, any device."""
        capacity = int(counts.max())
        starts = counts.cumsum(0) - counts
        slot = torch.arange(xs.shape[0], device=xs.device) - starts[expert]
        buf = xs.new_zeros(self.n_experts, capacity, xs.shape[-1])
        buf[expert, slot] = xs
        h = self._swiglu(torch.bmm(buf, self.gate_up_proj.to(xs.dtype).transpose(1, 2)))
        return torch.bmm(h, self.down_proj.to(xs.dtype).transpose(1, 2))[expert, slot]

    @torch.compiler.disable
    def _loop(self, xs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """The plain per-expert reference the fast paths are tested against."""
        outs, start = [], 0
        for e, n in enumerate(counts.tolist()):
            chunk = xs[start : start + n]
            outs.append(self._swiglu(chunk @ self.gate_up_proj[e].to(xs.dtype).T) @ self.down_proj[e].to(xs.dtype).T)
            start += n
        return torch.cat(outs)


class _GatherRows(torch.autograd.Function):
    """rows = x[index], where index holds each row of x exactly `repeats` times at the positions `inverse` names.

    Autograd's backward for x[index] is a scatter-add (index_put with accumulate: serial on CPU, atomics on GPU,
    8x slower than the gather here on the tiny model); knowing where each row went, the gradient is a gather and a
    sum over the repeats instead, and deterministic.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor, repeats: int) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(inverse)
        ctx.repeats = repeats
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (inverse,) = ctx.saved_tensors
        g = grad.index_select(0, inverse)
        if ctx.repeats > 1:
            g = g.view(-1, ctx.repeats, g.shape[-1]).sum(1)
        return g, None, None, None


def _gather_rows(x: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor, repeats: int) -> torch.Tensor:
    return _GatherRows.apply(x, index, inverse, repeats)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


def expert_counts(idx: torch.Tensor, n_experts: int) -> torch.Tensor:
    """Tokens per expert (int64) with a fixed output shape (histc, unlike bincount, keeps torch.compile's graph whole)."""
    return torch.histc(idx.flatten().float(), bins=n_experts, min=0, max=n_experts - 1).long()


def _grouped_mm_ok(x: torch.Tensor, inter: int) -> bool:
    """torch's grouped GEMM: on CUDA it needs sm80+ and bf16; on CPU (a C++ loop over experts, no padding) rows
    must be 16-byte aligned for its backward. Otherwise the padded bmm is used."""
    if not hasattr(F, "grouped_mm"):
        return False
    if x.is_cuda:
        return x.dtype == torch.bfloat16 and torch.cuda.get_device_capability(x.device) >= (8, 0)
    size = x.element_size()
    return x.device.type == "cpu" and (x.shape[-1] * size) % 16 == 0 and (inter * size) % 16 == 0


class MoE(FP32BuffersMixin, nn.Module):
    fp32_buffers = ("tokens_per_expert",)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.gate = Router(config)
        self.experts = Experts(config)
        n_shared = config.n_shared_experts
        self.shared_experts = SwiGLU(config.hidden_size, config.moe_intermediate_size * n_shared) if n_shared else None
        # Tokens routed to each expert by training forwards since the last bias update (not saved).
        self.register_buffer("tokens_per_expert", torch.zeros(config.n_routed_experts), persistent=False)

    def forward(self, x: torch.Tensor, with_balance_loss: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, D) -> (output, sequence-wise balance loss or None)."""
        B, T, D = x.shape
        flat = x.reshape(-1, D)
        scores, idx, weights = self.gate(flat)
        counts = expert_counts(idx, scores.shape[-1])
        if self.training:
            self.tokens_per_expert += counts.float()
        out = self.experts(flat, idx, weights, counts).view(B, T, D)
        if self.shared_experts is not None:
            out = out + self.shared_experts(x)
        loss = sequence_balance_loss(scores.view(B, T, -1), idx.view(B, T, -1)) if with_balance_loss else None
        return out, loss


def sequence_balance_loss(scores: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """DeepSeek-V3's complementary sequence-wise balance loss (before its alpha): sum_i f_i * P_i per sequence.

    f_i = E / (k T) * (tokens of the sequence routed to i); P_i = mean over the sequence of i's normalised score.
    """
    B, T, E = scores.shape
    k = idx.shape[-1]
    probs = scores / scores.sum(-1, keepdim=True)
    chosen = torch.zeros_like(scores).scatter_(2, idx, 1.0)
    f = chosen.sum(1) * (E / (k * T))
    return (f * probs.mean(1)).sum(-1).mean()


@torch.no_grad()
def update_expert_bias(model: nn.Module, gamma: float = 1e-3, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """Auxiliary-loss-free balancing, once after each optimizer step: b_i += gamma * sign(mean_load - load_i).

    Counts come from training forwards only and are summed across data-parallel ranks, so every rank applies the
    same update; the update is mean-centred so the biases do not drift together. Returns the loads it balanced,
    (MoE layers, experts), for logging.
    """
    layers = [m for m in model.modules() if isinstance(m, MoE)]
    if not layers:
        return torch.zeros(0, 0)
    loads = torch.stack([m.tokens_per_expert for m in layers])
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(loads, group=group)
    mean = loads.mean(-1, keepdim=True)
    delta = gamma * torch.sign(mean - loads)
    delta -= delta.mean(-1, keepdim=True)
    for m, d in zip(layers, delta):
        m.gate.e_score_correction_bias += d
        m.tokens_per_expert.zero_()
    return loads


def load_imbalance(loads: torch.Tensor) -> float:
    """Max over mean expert load, averaged over layers: 1.0 is perfect balance, E/k the worst."""
    return (loads.max(-1).values / loads.mean(-1).clamp_min(1e-9)).mean().item()
