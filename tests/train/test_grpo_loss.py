"""GRPO's math against hand-computed values, and one toy policy that it must teach."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from fronde.train.grpo_loss import (
    combine_rewards,
    group_advantages,
    grpo_loss,
    kl_k3,
    token_entropy,
    truncation_mask,
    truncation_penalty,
    zero_std_fraction,
)

REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])


def test_group_advantages_hand_computed():
    adv = group_advantages(REWARDS, group_size=4)
    a = 0.5 / (math.sqrt(1 / 3) + 1e-4)  # centred +-0.5, Bessel std of [1, 0, 0, 1] = sqrt(1/3) (TRL)
    torch.testing.assert_close(adv, torch.tensor([a, -a, -a, a, 0.0, 0.0, 0.0, 0.0]))
    assert zero_std_fraction(REWARDS, 4) == 0.5
    assert group_advantages(REWARDS.view(2, 4), group_size=4).shape == (2, 4)
    torch.testing.assert_close(group_advantages(REWARDS.view(2, 4), 4).reshape(-1), adv)


def test_group_advantages_none_and_batch_scaling():
    raw = torch.tensor([3.0, 1.0, 2.0, 2.0, 5.0, 5.0])
    torch.testing.assert_close(group_advantages(raw, 2, scale="none"), torch.tensor([1.0, -1.0, 0, 0, 0, 0]))
    batch_std = REWARDS.std().item()
    b = 0.5 / (batch_std + 1e-4)
    torch.testing.assert_close(group_advantages(REWARDS, 4, scale="batch"), torch.tensor([b, -b, -b, b, 0, 0, 0, 0]))
    assert zero_std_fraction(raw, 2) == pytest.approx(2 / 3)


def test_group_advantages_rejects_bad_shapes():
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(torch.zeros(6), group_size=4)
    with pytest.raises(ValueError, match="scale"):
        group_advantages(torch.zeros(4), group_size=4, scale="rank")  # type: ignore[arg-type]


def test_combine_rewards_weights_and_names_what_is_missing():
    per = {"correct": torch.tensor([1.0, 0.0, float("nan")]), "format": torch.tensor([1.0, 1.0, 0.5])}
    torch.testing.assert_close(combine_rewards(per, {"correct": 2.0, "format": 0.5}), torch.tensor([2.5, 0.5, 0.25]))
    with pytest.raises(ValueError, match="format"):
        combine_rewards(per, {"correct": 1.0})
    with pytest.raises(ValueError, match="length"):
        combine_rewards(per, {"correct": 1.0, "format": 1.0, "length": 1.0})


def test_k3_is_non_negative_and_zero_at_equality():
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        logp = -torch.rand(64, generator=gen) * 10
        ref = -torch.rand(64, generator=gen) * 10
        assert (kl_k3(logp, ref) >= 0).all()
    logp = -torch.rand(5, 7, generator=gen)
    assert torch.equal(kl_k3(logp, logp), torch.zeros(5, 7))


# A [2, 3] batch with the last token of the second completion masked off, old_logp = 0 so ratio = exp(logp):
#   row 0, A = +1, ratios 1.0, 1.5, 0.5 -> token losses -1, -1.2 (clipped high), -0.5 (A > 0: low side not clipped)
#   row 1, A = -2, ratios 1.1, 0.7, (2.0) -> token losses 2.2, 1.6 (clipped low), masked
RATIOS = torch.tensor([[1.0, 1.5, 0.5], [1.1, 0.7, 2.0]])
ADV = torch.tensor([1.0, -2.0])
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])


def _tiny(loss_type: str, **kw):
    logp = RATIOS.log().requires_grad_()
    loss, stats = grpo_loss(logp, torch.zeros(2, 3), ADV, MASK, loss_type=loss_type, **kw)  # type: ignore[arg-type]
    loss.backward()
    return loss, stats, logp.grad


@pytest.mark.parametrize(("loss_type", "expected"), [
    ("grpo", ((-1 - 1.2 - 0.5) / 3 + (2.2 + 1.6) / 2) / 2),  # mean per completion, then over completions
    ("dapo", (-2.7 + 3.8) / 5),                             # sum / 5 unmasked tokens
    ("dr_grpo", (-2.7 + 3.8) / (2 * 4)),                    # sum / (N * max_completion_length)
])
def test_grpo_loss_hand_computed(loss_type, expected):
    loss, stats, grad = _tiny(loss_type, max_completion_length=4)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert stats["clip_ratio/low"] == pytest.approx(1 / 5)
    assert stats["clip_ratio/high"] == pytest.approx(1 / 5)
    assert stats["clip_ratio/region"] == pytest.approx(2 / 5)
    assert stats["ratio"] == pytest.approx((1 + 1.5 + 0.5 + 1.1 + 0.7) / 5)
    assert "kl" not in stats
    # clipped tokens and the masked token get no gradient; the others do, with sign -A
    assert grad[0, 1] == 0 and grad[1, 1] == 0 and grad[1, 2] == 0
    assert grad[0, 0] < 0 and grad[0, 2] < 0 and grad[1, 0] > 0


def test_grpo_loss_at_ratio_one_is_minus_the_advantage():
    logp = -torch.rand(2, 3)
    loss, stats = grpo_loss(logp, logp, ADV, MASK, loss_type="grpo")
    assert loss.item() == pytest.approx(-ADV.mean().item())
    loss, _ = grpo_loss(logp, logp, ADV, MASK, loss_type="dapo")
    assert loss.item() == pytest.approx(-(1.0 * 3 - 2.0 * 2) / 5)
    assert stats["clip_ratio/region"] == 0 and stats["ratio"] == pytest.approx(1.0)


def test_clipping_zeroes_the_gradient_far_above_one_plus_eps():
    logp = torch.tensor([[math.log(3.0)]], requires_grad=True)
    loss, stats = grpo_loss(logp, torch.zeros(1, 1), torch.tensor([1.0]), torch.ones(1, 1))
    loss.backward()
    assert loss.item() == pytest.approx(-1.2) and logp.grad.item() == 0.0
    assert stats["clip_ratio/high"] == 1.0 and stats["clip_ratio/region"] == 1.0


def test_eps_high_widens_only_the_upper_clip():
    logp = torch.tensor([[math.log(1.25)], [math.log(0.75)]])
    adv, mask = torch.tensor([1.0, -1.0]), torch.ones(2, 1)
    sym, s_stats = grpo_loss(logp, torch.zeros(2, 1), adv, mask, eps_low=0.2)
    asym, a_stats = grpo_loss(logp, torch.zeros(2, 1), adv, mask, eps_low=0.2, eps_high=0.28)
    assert sym.item() == pytest.approx((-1.2 + 0.8) / 2)   # both clipped
    assert asym.item() == pytest.approx((-1.25 + 0.8) / 2)  # 1.25 < 1.28 now passes; the low side is unchanged
    assert s_stats["clip_ratio/high"] == 0.5 and a_stats["clip_ratio/high"] == 0.0
    assert s_stats["clip_ratio/low"] == a_stats["clip_ratio/low"] == 0.5


def test_beta_adds_the_k3_penalty():
    logp = torch.zeros(2, 3)
    ref = torch.full((2, 3), math.log(2.0))  # k3 = 2 - ln 2 - 1 on every token
    k3 = 1 - math.log(2.0)
    base, _ = grpo_loss(logp, logp, ADV, MASK)
    loss, stats = grpo_loss(logp, logp, ADV, MASK, ref_logp=ref, beta=0.1)
    assert loss.item() == pytest.approx(base.item() + 0.1 * k3)
    assert stats["kl"] == pytest.approx(k3)
    _, no_beta_stats = grpo_loss(logp, logp, ADV, MASK, ref_logp=ref)
    assert no_beta_stats["kl"] == pytest.approx(k3)  # logged without being added


def test_grpo_loss_errors_and_dapo_normaliser():
    logp = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="max_completion_length"):
        grpo_loss(logp, logp, ADV, MASK, loss_type="dr_grpo")
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(logp, logp, ADV, MASK, beta=0.1)
    loss, _ = grpo_loss(logp, logp, ADV, MASK, num_tokens=10)
    assert loss.item() == pytest.approx(-(3.0 - 4.0) / 10)


def test_toy_policy_learns_the_rewarded_completion():
    """Four one-token "completions", only the first rewarded: GRPO must raise its probability."""
    torch.manual_seed(0)
    logits = torch.zeros(4, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.05)
    group, prompts = 8, 4
    history = [logits.softmax(0)[0].item()]
    for _ in range(40):
        with torch.no_grad():
            picks = torch.multinomial(logits.softmax(0), prompts * group, replacement=True)
        rewards = (picks == 0).float()
        adv = group_advantages(rewards, group)
        logp = logits.log_softmax(0)[picks].unsqueeze(1)  # (N, T=1)
        loss, _ = grpo_loss(logp, logp.detach(), adv, torch.ones_like(logp), loss_type="grpo")
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(logits.softmax(0)[0].item())
    assert history[-1] > history[0] + 0.4
    assert sum(b >= a for a, b in itertools.pairwise(history)) >= 0.8 * (len(history) - 1)


def test_entropy_uniform_and_chunked():
    assert torch.allclose(token_entropy(torch.zeros(3, 5, 11)), torch.full((3, 5), math.log(11)))
    logits = torch.randn(2, 7, 13, dtype=torch.bfloat16)
    whole, chunked = token_entropy(logits), token_entropy(logits, chunk_size=3)
    assert whole.dtype == torch.float32 and whole.shape == (2, 7)
    torch.testing.assert_close(whole, chunked)
    torch.testing.assert_close(whole, torch.distributions.Categorical(logits=logits.float()).entropy())


def test_entropy_gradient_through_chunks():
    logits = torch.randn(6, 9, requires_grad=True)
    token_entropy(logits, chunk_size=4).sum().backward()
    reference = logits.detach().clone().requires_grad_()
    torch.distributions.Categorical(logits=reference).entropy().sum().backward()
    torch.testing.assert_close(logits.grad, reference.grad)


def test_truncated_completions():
    mask = torch.ones(3, 4)
    finished = torch.tensor([True, False, True])
    assert truncation_mask(mask, finished, "mask")[1].sum() == 0
    assert truncation_mask(mask, finished, "mask").sum() == 8
    assert torch.equal(truncation_mask(mask, finished, "keep"), mask)
    assert torch.equal(truncation_mask(mask, finished, "penalize"), mask)
    assert torch.equal(truncation_penalty(finished, "penalize", penalty=-0.5), torch.tensor([0.0, -0.5, 0.0]))
    assert torch.equal(truncation_penalty(finished, "mask"), torch.zeros(3))
    assert torch.equal(truncation_penalty(finished, "keep"), torch.zeros(3))
