"""DAPO's dynamic sampling: train only on groups whose rewards differ.

A group whose G completions all earn the same reward (all right, or all wrong) has zero advantage everywhere: it
costs a forward and backward and moves nothing, and it dilutes the token-mean loss of the groups that do teach.
When the model is very good or very bad at a task most groups are such (60-90% in fronde's toy French RL runs).
DAPO (Yu et al. 2025) samples more prompts until the batch is full of informative groups; so does `rl.dynamic_sampling`
here, for at most `rl.sampling_rounds` rounds of `prompts_per_step` prompts a step.
"""

from __future__ import annotations

import torch

from fronde.train.grpo_loss import informative_groups


def informative_count(rounds: list[torch.Tensor], group_size: int) -> int:
    return sum(int(informative_groups(rewards, group_size).sum()) for rewards in rounds)


def select_groups(rounds: list[torch.Tensor], group_size: int, wanted: int) -> list[tuple[int, int]]:
    """(round, group) of the `wanted` groups to train on, from each round's rewards (group-major): informative
    groups in the order they were sampled; when the rounds held fewer, the first round's other groups fill the
    batch (they teach nothing, as in plain GRPO, but keep its size, so every rank gets its equal share)."""
    chosen = [(r, g) for r, rewards in enumerate(rounds)
              for g, ok in enumerate(informative_groups(rewards, group_size).tolist()) if ok][:wanted]
    if len(chosen) < wanted:
        taken = set(chosen)
        chosen += [(0, g) for g in range(len(rounds[0]) // group_size) if (0, g) not in taken][: wanted - len(chosen)]
    return chosen
