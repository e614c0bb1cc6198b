"""Cross-entropy fused with the output projection, computed in chunks of tokens.

The (tokens x vocab) logits are the largest activation of a small model (B16 x T1024 x V32768 in fp32 is 2 GiB) and
the head + loss its largest single cost at small widths. Chunking keeps each slice of logits in cache (CPU) or
bounded in memory (GPU), and computing the input and weight gradients in the same pass means the logits are never
stored for backward (as Liger's fused linear cross-entropy). Measured 1.5-2x faster than linear + F.cross_entropy
on CPU at the tiny preset's sizes (docs/log.md).
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100


def _chunk_rows(vocab: int, device: torch.device) -> int:
    # fp32 logits per chunk: 8 MiB on CPU (16 MiB was 25% slower fwd+bwd at V=4096 on a 2-core AVX-512 Xeon: the
    # slice falls out of cache between the matmul and the softmax passes), 256 MiB on GPU
    budget = 2**21 if device.type == "cpu" else 2**26
    return max(16, budget // vocab)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total, count, grad_hidden, grad_weight = _chunked(hidden, weight, targets, with_grad=True)
        ctx.save_for_backward(grad_hidden, grad_weight.to(weight.dtype), count)
        return total / count

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        grad_hidden, grad_weight, count = ctx.saved_tensors
        scale = grad_out / count
        return grad_hidden * scale.to(grad_hidden.dtype), grad_weight * scale.to(grad_weight.dtype), None


def _chunked(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, with_grad: bool):
    """Summed loss, count of valid targets and, with_grad, d(sum)/d(hidden) and d(sum)/d(weight) (fp32)."""
    valid = targets != IGNORE_INDEX
    count = valid.sum().clamp_min(1)
    safe_targets = targets.clamp_min(0)
    grad_hidden = torch.empty_like(hidden) if with_grad else None
    grad_weight = torch.zeros_like(weight, dtype=torch.float32) if with_grad else None
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    step = _chunk_rows(weight.shape[0], hidden.device)
    # The matmuls run in autocast's dtype when it is on (bf16 on a GPU), cast here once: an `out=` matmul is not
    # autocast. One logits buffer serves every chunk: on CPU a fresh (rows x vocab) tensor per chunk is fresh pages
    # from the OS, and faulting them in cost as much as the matmul that fills them (the head: 34 -> 26 ms a step).
    dt = torch.get_autocast_dtype(hidden.device.type) if torch.is_autocast_enabled(hidden.device.type) else hidden.dtype
    w = weight.to(dt)
    buffer = hidden.new_empty(min(step, hidden.shape[0]), weight.shape[0], dtype=dt)
    for start in range(0, hidden.shape[0], step):
        h = hidden[start : start + step].to(dt)
        t, v = safe_targets[start : start + step], valid[start : start + step]
        logits = torch.mm(h, w.T, out=buffer[: h.shape[0]]).float()
        shifted = logits.sub_(logits.amax(-1, keepdim=True))
        picked = shifted.gather(1, t.unsqueeze(1)).squeeze(1)
        exps = shifted.exp_()  # one exp pass serves both the loss and the softmax gradient
        sums = exps.sum(-1)
        total += ((sums.log() - picked) * v).sum()
        if with_grad:
            keep = v.to(exps.dtype)  # softmax - one_hot on valid rows, 0 on ignored ones: one pass over the logits
            probs = exps.mul_((keep / sums).unsqueeze(1))
            probs.scatter_add_(1, t.unsqueeze(1), -keep.unsqueeze(1))
            probs = probs.to(dt)
            if dt == hidden.dtype:
                torch.mm(probs, w, out=grad_hidden[start : start + step])
            else:
                grad_hidden[start : start + step] = probs @ w
            if dt == torch.float32:
                grad_weight.addmm_(probs.T, h)  # accumulated in place: no (vocab x dim) temporary per chunk
            else:
                grad_weight += (probs.T @ h).float()
    return total, count, grad_hidden, grad_weight


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean CE of softmax(hidden @ weight.T) against targets over non-ignored positions (0 if there are none).

    hidden (..., D), weight (V, D), targets (...) with IGNORE_INDEX (-100) masking.
    """
    hidden, targets = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(hidden, weight, targets)
    total, count, _, _ = _chunked(hidden, weight, targets, with_grad=False)
    return total / count
