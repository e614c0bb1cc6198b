"""The math of GRPO: group-relative advantages, the clipped surrogate loss, the k3 KL penalty, token entropy.

No model, data or I/O here: the RL trainer samples G completions per prompt, scores them, and hands tensors to
these functions. The conventions are TRL's `GRPOTrainer` (its `_generate_and_score_completions` and `_compute_loss`):

    advantage    A_i = (r_i - mean(group)) / (std(group) + 1e-4)      std with Bessel's correction (torch.std's
                                                                       default, as TRL); "none" drops the division
                                                                       (Dr. GRPO), "batch" divides by the whole
                                                                       batch's std (TRL's scale_rewards="batch")
    ratio        rho_t = exp(logp_t - old_logp_t)
    per token    l_t = -min(rho_t A, clip(rho_t, 1 - eps_low, 1 + eps_high) A) + beta * k3_t
    k3           exp(ref - logp) - (ref - logp) - 1                   Schulman's unbiased, non-negative estimator
                                                                       of KL(pi || pi_ref) (DeepSeekMath, TRL)

and three ways of turning the per-token losses into one number, which decide how much a long completion weighs:

    grpo      mean over each completion's tokens, then over completions: a token of a long answer counts less
              (DeepSeekMath's original; Dr. GRPO shows it favours long wrong answers)
    dapo      sum over all tokens / number of tokens: every token counts the same (DAPO's token-level loss, TRL's
              default)
    dr_grpo   sum over all tokens / (completions x max_completion_length): a constant normaliser, so no length bias
              at all (Dr. GRPO, "Understanding R1-Zero-Like Training")

DAPO's "clip-higher" is eps_high > eps_low (the paper uses 0.2 / 0.28): more room for raising the probability of
unlikely good tokens, which keeps entropy from collapsing.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

LossType = Literal["grpo", "dr_grpo", "dapo"]
LOSS_TYPES: tuple[str, ...] = ("grpo", "dr_grpo", "dapo")
AdvantageScale = Literal["group", "none", "batch"]
ADVANTAGE_SCALES: tuple[str, ...] = ("group", "none", "batch")
TruncationMode = Literal["mask", "penalize", "keep"]
TRUNCATION_MODES: tuple[str, ...] = ("mask", "penalize", "keep")


def _grouped(rewards: torch.Tensor, group_size: int, name: str) -> torch.Tensor:
    """rewards as (prompts, group_size), from either (prompts * group_size,) or (prompts, group_size)."""
    if group_size < 1:
        raise ValueError(f"{name}: group_size={group_size} must be >= 1")
    if rewards.ndim == 2 and rewards.shape[1] == group_size:
        return rewards
    if rewards.ndim == 1 and rewards.numel() % group_size == 0:
        return rewards.view(-1, group_size)
    raise ValueError(f"{name}: rewards {tuple(rewards.shape)} must be (B * G,) or (B, G) with G = group_size = "
                     f"{group_size}, completions of one prompt adjacent")


def _std(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Bessel-corrected std as TRL; 0 (not NaN) for a single sample, whose advantage is 0 anyway."""
    if (x.numel() if dim is None else x.shape[dim]) < 2:
        return torch.zeros_like(x.mean() if dim is None else x.mean(dim=dim))
    return x.std() if dim is None else x.std(dim=dim)


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale: AdvantageScale = "group", eps: float = 1e-4
) -> torch.Tensor:
    """Each completion's reward minus its group's mean, divided by a std per `scale`; the input's shape.

    scale: "group" divides by the group's std (GRPO), "none" keeps raw differences (Dr. GRPO: the std division
    over-weights near-unanimous groups), "batch" divides by the std of all rewards (TRL's "batch"). The std is
    Bessel-corrected (N - 1), as TRL's `rewards.view(-1, G).std(dim=1)`, and `eps` is added to it, so a group
    whose rewards all agree gets advantage 0 rather than NaN.
    """
    if scale not in ADVANTAGE_SCALES:
        raise ValueError(f"group_advantages: scale={scale!r}; choose one of {', '.join(ADVANTAGE_SCALES)}")
    grouped = _grouped(rewards, group_size, "group_advantages").float()
    centered = grouped - grouped.mean(dim=1, keepdim=True)
    if scale == "group":
        centered = centered / (_std(grouped, dim=1).unsqueeze(1) + eps)
    elif scale == "batch":
        centered = centered / (_std(grouped) + eps)
    return centered.reshape(rewards.shape)


def informative_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """For each group: whether its rewards differ (a group whose rewards all agree has zero advantage)."""
    grouped = _grouped(rewards, group_size, "informative_groups").float()
    spread = grouped.amax(dim=1) - grouped.amin(dim=1)
    return ~torch.isclose(spread, torch.zeros_like(spread))


def zero_std_fraction(rewards: torch.Tensor, group_size: int) -> float:
    """Fraction of groups whose rewards are all equal: they carry no learning signal (DAPO's dynamic sampling
    filters them, fronde.train.group_filter; TRL logs it as frac_reward_zero_std)."""
    return float((~informative_groups(rewards, group_size)).float().mean())


def combine_rewards(per_function: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """sum_f weights[f] * per_function[f], each (N,). NaN means "this function does not apply to this completion"
    and counts as 0, as TRL's nansum (a math reward on a code prompt, say)."""
    missing_weight = sorted(set(per_function) - set(weights))
    missing_function = sorted(set(weights) - set(per_function))
    if missing_weight or missing_function:
        raise ValueError(f"combine_rewards: reward functions without a weight: {missing_weight}; weights without a "
                         f"reward function: {missing_function}")
    if not per_function:
        raise ValueError("combine_rewards: no reward functions")
    shapes = {name: tuple(r.shape) for name, r in per_function.items()}
    if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 1:
        raise ValueError(f"combine_rewards: every reward must be one (N,) vector, got {shapes}")
    stacked = torch.stack([per_function[name].float() * weights[name] for name in sorted(per_function)], dim=1)
    return stacked.nansum(dim=1)


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi || pi_ref) from the sampled tokens' log-probs: exp(d) - d - 1 with
    d = ref - logp. Unbiased for tokens sampled from pi and >= 0 always (e^d >= 1 + d), unlike the plain -d."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    ref_logp: torch.Tensor | None = None,
    beta: float = 0.0,
    eps_low: float = 0.2,
    eps_high: float | None = None,
    loss_type: LossType = "dapo",
    max_completion_length: int | None = None,
    num_tokens: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped surrogate loss (module docstring), differentiable w.r.t. `logp`, and its statistics.

    logp, old_logp, ref_logp, mask: (N, T), per completion token; mask is 1 on the tokens that count (bool or 0/1).
    advantages: (N,). old_logp is the sampling policy's (logp.detach() when each batch is used once) and ref_logp
    the reference model's; both are treated as constants. eps_high defaults to eps_low (symmetric PPO clipping).
    max_completion_length is dr_grpo's constant (the generation limit, >= T). num_tokens replaces dapo's
    normaliser: pass the whole generation batch's token count when it is split into micro-batches (TRL's
    num_items_in_batch), so each token weighs the same whatever micro-batch it is in.

    Statistics (floats, over masked tokens, TRL's definitions): clip_ratio/low (rho < 1 - eps_low with A < 0),
    clip_ratio/high (rho > 1 + eps_high with A > 0), clip_ratio/region (either: the tokens whose gradient the clip
    removes), ratio (mean rho) and, when ref_logp is given, kl (mean k3).
    """
    eps_high = eps_low if eps_high is None else eps_high
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"grpo_loss: loss_type={loss_type!r}; choose one of {', '.join(LOSS_TYPES)}")
    if not 0.0 <= eps_low < 1.0 or eps_high < 0.0:
        raise ValueError(f"grpo_loss: eps_low={eps_low} must lie in [0, 1) and eps_high={eps_high} be >= 0")
    if beta < 0.0:
        raise ValueError(f"grpo_loss: beta={beta} must be >= 0")
    if beta > 0.0 and ref_logp is None:
        raise ValueError(f"grpo_loss: beta={beta} > 0 needs ref_logp, the reference model's per-token log-probs")
    if logp.ndim != 2:
        raise ValueError(f"grpo_loss: logp {tuple(logp.shape)} must be (N, T)")
    for name, t in (("old_logp", old_logp), ("mask", mask), ("ref_logp", ref_logp)):
        if t is not None and t.shape != logp.shape:
            raise ValueError(f"grpo_loss: {name} {tuple(t.shape)} must match logp {tuple(logp.shape)}")
    if advantages.shape != logp.shape[:1]:
        raise ValueError(f"grpo_loss: advantages {tuple(advantages.shape)} must be (N,) = ({logp.shape[0]},)")
    if loss_type == "dr_grpo":
        if max_completion_length is None:
            raise ValueError("grpo_loss: loss_type='dr_grpo' divides by N * max_completion_length; pass it")
        if max_completion_length < logp.shape[1]:
            raise ValueError(f"grpo_loss: max_completion_length={max_completion_length} is shorter than the "
                             f"{logp.shape[1]} completion positions given")

    mask = mask.to(device=logp.device, dtype=torch.float32)
    adv = advantages.detach().to(device=logp.device, dtype=torch.float32).unsqueeze(1)
    ratio = torch.exp(logp.float() - old_logp.detach().float())
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    per_token = -torch.min(ratio * adv, clipped * adv)
    kl = kl_k3(logp.float(), ref_logp.detach().float()) if ref_logp is not None else None
    if kl is not None and beta > 0.0:
        per_token = per_token + beta * kl

    masked = per_token * mask
    if loss_type == "grpo":
        loss = (masked.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).mean()
    elif loss_type == "dapo":
        loss = masked.sum() / (mask.sum().clamp(min=1.0) if num_tokens is None else max(float(num_tokens), 1.0))
    else:
        loss = masked.sum() / (logp.shape[0] * max_completion_length)

    with torch.no_grad():
        count = mask.sum().clamp(min=1.0)

        def masked_mean(x: torch.Tensor) -> float:
            return float((x.float() * mask).sum() / count)

        low = (ratio < 1.0 - eps_low) & (adv < 0)
        high = (ratio > 1.0 + eps_high) & (adv > 0)
        stats = {"clip_ratio/low": masked_mean(low), "clip_ratio/high": masked_mean(high),
                 "clip_ratio/region": masked_mean(low | high), "ratio": masked_mean(ratio)}
        if kl is not None:
            stats["kl"] = masked_mean(kl)
    return loss, stats


def _entropy_rows(logits: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def token_entropy(logits: torch.Tensor, chunk_size: int = 1024) -> torch.Tensor:
    """Entropy (nats) of softmax(logits) at each position: (..., V) -> (...), float32.

    A chunk of `chunk_size` positions at a time, so the float32 copy of (positions x vocab) never exists whole;
    under autograd each chunk is recomputed in backward rather than kept (as distill_loss).
    """
    if chunk_size < 1:
        raise ValueError(f"token_entropy: chunk_size={chunk_size} must be >= 1")
    rows = logits.reshape(-1, logits.shape[-1])
    recompute = torch.is_grad_enabled() and rows.requires_grad
    parts = []
    for start in range(0, rows.shape[0], chunk_size):
        chunk = rows[start:start + chunk_size]
        parts.append(checkpoint(_entropy_rows, chunk, use_reentrant=False) if recompute else _entropy_rows(chunk))
    out = torch.cat(parts) if parts else rows.new_zeros(0, dtype=torch.float32)
    return out.reshape(logits.shape[:-1])


def truncation_mask(mask: torch.Tensor, finished: torch.Tensor, mode: TruncationMode) -> torch.Tensor:
    """The loss mask (N, T) given what to do with completions cut at the length limit (`finished` (N,) is False
    for those: no EOS before max length).

    "mask" zeroes their rows: DAPO's overlong filtering (TRL's mask_truncated_completions), since a cut answer's
    reward says little about its tokens. "penalize" and "keep" leave the mask as it is; "penalize" adds
    `truncation_penalty` to their rewards instead.
    """
    if mode not in TRUNCATION_MODES:
        raise ValueError(f"truncation_mask: mode={mode!r}; choose one of {', '.join(TRUNCATION_MODES)}")
    if finished.shape != mask.shape[:1]:
        raise ValueError(f"truncation_mask: finished {tuple(finished.shape)} must be (N,) = ({mask.shape[0]},)")
    if mode != "mask":
        return mask
    return mask * finished.to(device=mask.device, dtype=mask.dtype).unsqueeze(1)


def truncation_penalty(finished: torch.Tensor, mode: TruncationMode, penalty: float = -1.0) -> torch.Tensor:
    """The reward adjustment (N,) for truncated completions: `penalty` for each one in mode "penalize" (DAPO's
    overlong punishment, hard form), 0 everywhere otherwise. Add it before computing advantages."""
    if mode not in TRUNCATION_MODES:
        raise ValueError(f"truncation_penalty: mode={mode!r}; choose one of {', '.join(TRUNCATION_MODES)}")
    if finished.ndim != 1:
        raise ValueError(f"truncation_penalty: finished {tuple(finished.shape)} must be (N,)")
    truncated = (~finished.bool()).float()
    return truncated * penalty if mode == "penalize" else torch.zeros_like(truncated)
