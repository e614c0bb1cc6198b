"""Log-likelihoods from a local model's logits, the same way for fronde and transformers models.

The continuation of `loglikelihood(context, continuation)` is the tokens of `context + continuation` past the
context's own token count (lm-evaluation-harness's split, so a merge across the boundary is not lost), after one
start token (fronde's <|bos|>, a transformers tokenizer's bos or else eos). Rolling log-likelihood scores every
token of a text in windows of the model's context, each window starting afresh, every token predicted once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from fronde.eval.errors import EvalError

Forward = Callable[[torch.Tensor], torch.Tensor]  # (1, T) ids -> (1, T, V) logits


@torch.no_grad()
def score_tokens(forward: Forward, ids: list[int], start: int, max_len: int) -> tuple[float, int, bool]:
    """Sum of log p(ids[j] | ids[:j]) for j >= start, their count, and whether each was the argmax.

    A sequence longer than the context keeps its last max_len + 1 tokens (the earliest context is dropped)."""
    if len(ids) - 1 > max_len:
        cut = len(ids) - 1 - max_len
        ids, start = ids[cut:], max(1, start - cut)
    logprobs = forward(torch.tensor([ids[:-1]]))[0].float().log_softmax(-1)
    targets = torch.tensor(ids[start:], device=logprobs.device)
    rows = logprobs[start - 1:]
    picked = rows.gather(1, targets[:, None])[:, 0]
    return float(picked.sum()), len(targets), bool((rows.argmax(-1) == targets).all())


def continuation_ids(encode: Callable[[str], list[int]], start_id: int, context: str,
                     continuation: str) -> tuple[list[int], int]:
    """(start token + ids of context + continuation, index of the first continuation token)."""
    if not continuation:
        raise EvalError("loglikelihood: the continuation is empty")
    n_ctx = len(encode(context))
    whole = [start_id] + encode(context + continuation)
    if len(whole) <= n_ctx + 1:
        raise EvalError(f"loglikelihood: {continuation!r} adds no token after the context")
    return whole, n_ctx + 1


def score_rolling(forward: Forward, ids: list[int], max_len: int) -> tuple[float, int]:
    """Sum and count of log p over ids[1:], windows of max_len predictions each."""
    total, count = 0.0, 0
    for s in range(0, len(ids) - 1, max_len):
        lp, n, _ = score_tokens(forward, ids[s:s + max_len + 1], 1, max_len)
        total, count = total + lp, count + n
    return total, count
