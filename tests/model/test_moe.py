"""DeepSeekMoE: routing rules, expert paths, gradients and auxiliary-loss-free balancing."""

from __future__ import annotations

import pytest
import torch

from fronde.model.config import load_preset
from fronde.model.moe import MoE, Router, load_imbalance, sequence_balance_loss, update_expert_bias

from .helpers import tiny_model


def _moe(seed: int = 0, **overrides) -> MoE:
    torch.manual_seed(seed)
    layer = MoE(load_preset("tiny", **overrides))
    torch.nn.init.normal_(layer.gate.weight, 0, 0.5)
    torch.nn.init.normal_(layer.experts.gate_up_proj, 0, 0.1)
    torch.nn.init.normal_(layer.experts.down_proj, 0, 0.1)
    return layer


def test_bias_chooses_experts_but_weights_are_unbiased_scores():
    router = Router(load_preset("tiny", n_group=1, topk_group=1, norm_topk_prob=False))
    torch.nn.init.normal_(router.weight)
    x = torch.randn(64, router.weight.shape[1])
    router.e_score_correction_bias[3] = 10.0  # forces expert 3 into every top-k
    scores, idx, weights = router(x)
    assert (idx == 3).any(-1).all()
    assert torch.allclose(weights, scores.gather(1, idx))  # no bias in the weights


def test_group_limited_routing_never_leaves_the_kept_groups():
    cfg = load_preset("tiny", n_group=4, topk_group=2, num_experts_per_tok=3)
    router = Router(cfg)
    torch.nn.init.normal_(router.weight)
    x = torch.randn(256, cfg.hidden_size)
    scores, idx, _ = router(x)
    groups = idx // (cfg.n_routed_experts // cfg.n_group)
    assert all(len(set(g.tolist())) <= cfg.topk_group for g in groups)
    # the kept groups are those with the largest sum of their top-2 scores
    top2 = scores.view(-1, 4, 2).topk(2, -1).values.sum(-1)
    best = top2.topk(2, -1).indices
    assert all(set(g.tolist()) <= set(b.tolist()) for g, b in zip(groups, best))


def test_normalised_weights_sum_to_the_routed_scaling_factor():
    router = Router(load_preset("tiny", routed_scaling_factor=2.5))
    torch.nn.init.normal_(router.weight)
    _, _, w = router(torch.randn(10, router.weight.shape[1]))
    assert torch.allclose(w.sum(-1), torch.full((10,), 2.5), atol=1e-5)


@pytest.mark.parametrize("backend", ["bmm", "grouped_mm", "auto"])
def test_vectorised_expert_path_equals_per_expert_loop(backend):
    layer = _moe()
    x = torch.randn(3, 11, layer.gate.weight.shape[1], requires_grad=True)
    layer.experts.backend = backend
    out, _ = layer(x)
    out.square().sum().backward()
    grads = [x.grad.clone(), layer.experts.gate_up_proj.grad.clone(), layer.gate.weight.grad.clone()]
    layer.zero_grad()
    x.grad = None
    layer.experts.backend = "loop"
    ref, _ = layer(x)
    ref.square().sum().backward()
    ref_grads = [x.grad, layer.experts.gate_up_proj.grad, layer.gate.weight.grad]
    assert torch.allclose(out, ref, atol=1e-5)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, atol=1e-4)


def test_an_expert_with_no_tokens_is_handled():
    layer = _moe()
    layer.gate.e_score_correction_bias[0] = -100.0  # expert 0 is never chosen
    x = torch.randn(2, 5, layer.gate.weight.shape[1])
    outs = []
    for backend in ("bmm", "grouped_mm", "loop"):
        layer.experts.backend = backend
        outs.append(layer(x)[0])
    assert torch.allclose(outs[0], outs[2], atol=1e-5) and torch.allclose(outs[1], outs[2], atol=1e-5)


def test_gradients_reach_router_used_experts_and_shared_experts():
    layer = _moe()
    x = torch.randn(2, 8, layer.gate.weight.shape[1])
    layer.gate.e_score_correction_bias[0] = -100.0
    out, _ = layer(x)
    out.sum().backward()
    assert layer.gate.weight.grad.abs().sum() > 0
    assert layer.shared_experts.gate_proj.weight.grad.abs().sum() > 0
    per_expert = layer.experts.gate_up_proj.grad.abs().sum((1, 2))
    assert per_expert[0] == 0 and (per_expert[1:] > 0).sum() >= 2


def test_training_forward_counts_tokens_per_expert_and_eval_does_not():
    layer = _moe()
    x = torch.randn(2, 8, layer.gate.weight.shape[1])
    layer.eval()
    layer(x)
    assert layer.tokens_per_expert.sum() == 0
    layer.train()
    layer(x)
    assert layer.tokens_per_expert.sum() == 2 * 8 * layer.top_k


def test_bias_update_balances_a_skewed_router():
    layer = _moe().train()
    D = layer.gate.weight.shape[1]
    u = torch.randn(D)
    with torch.no_grad():
        layer.gate.weight[:2] = 2.0 * u / u.norm()  # experts 0 and 1 win for every input along u
    x = torch.randn(4, 64, D) * 0.5 + 2.0 * u / u.norm()
    bias_before = layer.gate.e_score_correction_bias.clone()
    imbalance = []
    for _ in range(150):
        with torch.no_grad():
            layer(x)
        imbalance.append(load_imbalance(update_expert_bias(layer, gamma=0.01)))
    bias = layer.gate.e_score_correction_bias
    assert imbalance[0] > 3.0, "the router should start skewed (4.0 = two experts take everything)"
    assert sum(imbalance[-10:]) / 10 < 0.5 * imbalance[0]
    assert not torch.equal(bias, bias_before) and bias[:2].max() < bias[2:].min()  # the favourites were pushed down
    assert abs(bias.mean().item()) < 1e-6  # mean-centred: no drift
    assert layer.tokens_per_expert.sum() == 0  # counts reset after each update


def test_bias_stays_fp32_when_the_model_is_cast_to_bf16():
    model = tiny_model().to(torch.bfloat16)
    routers = [m for m in model.modules() if isinstance(m, Router)]
    assert all(r.e_score_correction_bias.dtype == torch.float32 for r in routers)
    assert all(r.weight.dtype == torch.bfloat16 for r in routers)
    assert model.rotary.inv_freq.dtype == torch.float32


def test_sequence_balance_loss_is_one_for_uniform_routing_and_larger_when_skewed():
    B, T, E, k = 2, 8, 4, 1
    uniform_scores = torch.full((B, T, E), 0.5)
    uniform_idx = torch.arange(T).remainder(E).view(1, T, 1).expand(B, T, k)
    assert torch.isclose(sequence_balance_loss(uniform_scores, uniform_idx), torch.tensor(1.0))
    skewed_scores = torch.tensor([0.9, 0.1, 0.1, 0.1]).expand(B, T, E)
    skewed_idx = torch.zeros(B, T, k, dtype=torch.long)
    assert sequence_balance_loss(skewed_scores, skewed_idx) > 2.0


def test_model_returns_balance_and_mtp_losses_that_backpropagate():
    model = tiny_model(num_nextn_predict_layers=1).train()
    ids = torch.randint(0, model.config.vocab_size, (2, 16))
    out = model(ids, ids.roll(-1, 1), with_balance_loss=True)
    total = out.loss + 0.3 * out.mtp_loss + 1e-4 * out.balance_loss
    total.backward()
    assert model.mtp.eh_proj.weight.grad.abs().sum() > 0
    assert out.mtp_loss.item() > 0 and out.balance_loss.item() > 0


def test_under_bf16_autocast_the_router_stays_fp32_and_experts_run_in_bf16():
    layer = _moe()
    x = torch.randn(2, 8, layer.gate.weight.shape[1])
    ref_scores, ref_idx, _ = layer.gate(x.view(-1, x.shape[-1]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores, idx, _ = layer.gate(x.view(-1, x.shape[-1]))
        out, _ = layer(x)
    assert scores.dtype == torch.float32 and torch.equal(scores, ref_scores) and torch.equal(idx, ref_idx)
    ref, _ = layer(x)
    assert torch.allclose(out.float(), ref, atol=5e-2, rtol=5e-2)


def test_training_step_holds_no_host_sync():
    # A GPU training step must never wait for the device mid-step (MFU): the bf16-autocast forward and backward with
    # the grouped-GEMM experts, the balance loss and MTP run no .item(), nonzero or host-sized op. The padded-bmm
    # path reads the largest expert count on the host, which this check sees (it is the fallback, off the GPU path).
    from .helpers import RecordOps

    model = tiny_model(num_nextn_predict_layers=1).train()
    ids = torch.randint(0, model.config.vocab_size, (4, 65))
    with torch.autocast("cpu", dtype=torch.bfloat16), RecordOps() as ops:
        out = model(ids[:, :-1], ids[:, 1:], with_balance_loss=True)
        (out.loss + out.mtp_loss + out.balance_loss).backward()
    assert ops.counts["aten._grouped_mm"] or ops.counts["aten.grouped_mm"]
    assert not ops.host_syncs()
    for m in model.modules():
        if hasattr(m, "backend"):
            m.backend = "bmm"
    with torch.autocast("cpu", dtype=torch.bfloat16), RecordOps() as ops:
        model(ids[:, :-1], ids[:, 1:]).loss.backward()
    assert ops.host_syncs() == ["aten._local_scalar_dense"]


def test_the_compiled_training_forward_breaks_only_at_the_cpu_expert_dispatch():
    """torch.compile traces the whole step except the experts' CPU grouped GEMM (kept out of graphs on purpose):
    a break anywhere else (attention, router, loss) would also break the GPU's graph, where the experts trace.
    tests/model/test_gpu.py checks the GPU step is one graph."""
    import torch._dynamo

    model = tiny_model(num_hidden_layers=2).train()
    ids = torch.randint(0, model.config.vocab_size, (2, 33))
    torch._dynamo.reset()
    explained = torch._dynamo.explain(lambda x, y: model(x, y).loss)(ids[:, :-1], ids[:, 1:])
    moe_layers = sum(isinstance(m, MoE) for m in model.modules())
    assert explained.graph_break_count >= moe_layers > 0
    assert all("_grouped_mm_cpu" in r.reason for r in explained.break_reasons), \
        [r.reason[:200] for r in explained.break_reasons]
    torch._dynamo.reset()
