"""Token-level logit distillation: how far the student's next-token distribution is from the teacher's.

With p_T = softmax(teacher_logits / T) and p_S = softmax(student_logits / T) at one position:

    forward_kl   KL(p_T || p_S) = sum_v p_T (log p_T - log p_S)     mean-seeking: the student covers every mode
    reverse_kl   KL(p_S || p_T) = sum_v p_S (log p_S - log p_T)     mode-seeking: the student picks the teacher's
                                                                    likeliest tokens (MiniLLM, GKD on-policy)
    jsd          beta * KL(p_T || M) + (1 - beta) * KL(p_S || M),  M = beta * p_T + (1 - beta) * p_S

`jsd` is GKD's generalised Jensen-Shannon divergence with TRL's convention (`GKDTrainer.generalized_jsd_loss`):
beta = 0 is exactly forward_kl and beta = 1 exactly reverse_kl (both special-cased, since the mixture formula itself
goes to 0 at the ends); beta = 0.5 is the symmetric JSD.

Each loss is a mean over the masked positions (TRL's "batchmean" with labels), times T^2 as Hinton et al. do, so
that the gradient's size does not shrink as 1/T^2 when the temperature is raised (TRL does not scale; at T = 1 the
two agree). Everything is computed in float32 with log_softmax, a chunk of positions at a time: the float32 copies
of a 50k-vocabulary sequence never exist all at once, and under autograd each chunk is recomputed in the backward
pass instead of being kept.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

LossKind = Literal["forward_kl", "reverse_kl", "jsd"]
LOSS_KINDS: tuple[str, ...] = ("forward_kl", "reverse_kl", "jsd")


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row, from log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def _per_token(student: torch.Tensor, teacher: torch.Tensor, kind: str, beta: float,
               temperature: float) -> torch.Tensor:
    """The divergence at each row of (rows, vocab) logits, in float32."""
    log_s = F.log_softmax(student.float() / temperature, dim=-1)
    log_t = F.log_softmax(teacher.float() / temperature, dim=-1)
    if kind == "forward_kl" or (kind == "jsd" and beta == 0.0):
        return _kl(log_t, log_s)
    if kind == "reverse_kl" or (kind == "jsd" and beta == 1.0):
        return _kl(log_s, log_t)
    log_m = torch.logsumexp(torch.stack([log_t + math.log(beta), log_s + math.log1p(-beta)]), dim=0)
    return beta * _kl(log_t, log_m) + (1.0 - beta) * _kl(log_s, log_m)


def distill_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor,
    kind: LossKind,
    beta: float = 0.5,
    temperature: float = 1.0,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Mean divergence over the positions where `mask` is true, times temperature^2 (see the module docstring).

    student_logits, teacher_logits: (..., vocab), the same shape, aligned position by position (logits at position i
    predict token i + 1 in both). mask: the leading shape (...), bool or 0/1; typically the completion tokens.
    `beta` is used by kind="jsd" only. `chunk_size` bounds how many positions are in float32 at once.
    A mask with no true entry gives a zero that is still connected to the student's graph.
    """
    if kind not in LOSS_KINDS:
        raise ValueError(f"distill_loss: kind={kind!r}; choose one of {', '.join(LOSS_KINDS)}")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"distill_loss: beta={beta} must lie in [0, 1] (0 = forward KL, 1 = reverse KL)")
    if temperature <= 0:
        raise ValueError(f"distill_loss: temperature={temperature} must be > 0")
    if chunk_size < 1:
        raise ValueError(f"distill_loss: chunk_size={chunk_size} must be >= 1")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"distill_loss: student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} differ; logit distillation needs one shared vocabulary (check "
            "vocab_compatible, slice off padded vocabulary rows) or use sequence-level distillation instead")
    if mask.shape != student_logits.shape[:-1]:
        raise ValueError(f"distill_loss: mask {tuple(mask.shape)} must have the logits' leading shape "
                         f"{tuple(student_logits.shape[:-1])}")
    vocab = student_logits.shape[-1]
    student = student_logits.reshape(-1, vocab)
    teacher = teacher_logits.detach().reshape(-1, vocab)
    keep = mask.reshape(-1).to(device=student.device, dtype=torch.bool)
    n_tokens = int(keep.sum())
    if n_tokens == 0:
        return student_logits.sum().float() * 0.0

    recompute = torch.is_grad_enabled() and student.requires_grad
    total = torch.zeros((), dtype=torch.float32, device=student.device)
    for start in range(0, student.shape[0], chunk_size):
        rows = keep[start:start + chunk_size].nonzero().squeeze(-1) + start
        if rows.numel() == 0:
            continue
        s, t = student.index_select(0, rows), teacher.index_select(0, rows)
        if recompute:
            per_token = checkpoint(_per_token, s, t, kind, beta, temperature, use_reentrant=False)
        else:
            per_token = _per_token(s, t, kind, beta, temperature)
        total = total + per_token.sum()
    return total / n_tokens * temperature**2


def vocab_compatible(student_tok_vocab: dict[str, int], teacher_vocab: dict[str, int]) -> bool:
    """True when both tokenizers map the same token strings to the same ids.

    Logit distillation compares logit i of one model with logit i of the other, so it is meaningful only then;
    otherwise distil at the sequence level (`fronde.train.seq_distill`), which needs only text. Rows that a model
    pads its embedding matrix with are not tokens and are not part of either vocabulary.
    """
    return student_tok_vocab == teacher_vocab
