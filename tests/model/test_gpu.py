"""CUDA-only checks: the grouped-GEMM expert path and bf16 numerics (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from fronde.model.cache import LatentCache
from fronde.model.config import load_preset
from fronde.model.moe import MoE

from .helpers import tiny_model

pytestmark = pytest.mark.gpu


def test_grouped_mm_expert_path_equals_loop_forward_and_backward():
    torch.manual_seed(0)
    layer = MoE(load_preset("probe")).cuda().to(torch.bfloat16)
    for p in (layer.gate.weight, layer.experts.gate_up_proj, layer.experts.down_proj):
        torch.nn.init.normal_(p, 0, 0.02)
    layer.gate.e_score_correction_bias[0] = -100.0  # an empty expert must work too
    x = torch.randn(4, 256, 768, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    results = {}
    for backend in ("grouped_mm", "loop"):
        layer.zero_grad()
        x.grad = None
        layer.experts.backend = backend
        out, _ = layer(x)
        out.float().square().mean().backward()
        results[backend] = (out.float(), x.grad.float(), layer.experts.gate_up_proj.grad.float())
    for fast, ref in zip(results["grouped_mm"], results["loop"]):
        scale = ref.abs().max().item()
        assert (fast - ref).abs().max().item() <= 2e-2 * scale


def test_bf16_forward_is_close_to_fp32():
    model = tiny_model().cuda()
    ids = torch.randint(0, model.config.vocab_size, (2, 64), device="cuda")
    with torch.no_grad():
        ref = model(ids).logits.float()
        model.to(torch.bfloat16)
        out = model(ids).logits.float()
    assert torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0) > 0.999
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean() > 0.95


def test_absorbed_decoding_equals_forward_on_gpu():
    model = tiny_model().cuda()
    ids = torch.randint(0, model.config.vocab_size, (2, 24), device="cuda")
    with torch.no_grad():
        full = model(ids).logits
        cache = LatentCache(model.config, 2, 24, device="cuda")
        steps = [model(ids[:, :8], cache=cache).logits] + [model(ids[:, t : t + 1], cache=cache).logits
                                                             for t in range(8, 24)]
    assert (torch.cat(steps, 1) - full).abs().max().item() <= 1e-3


def test_autocast_training_step_uses_grouped_gemm_and_learns():
    from fronde.model import moe

    calls = []
    original = moe.Experts._grouped_mm

    def spy(self, xs, counts):
        calls.append(xs.dtype)
        return original(self, xs, counts)

    moe.Experts._grouped_mm = spy
    try:
        model = tiny_model().cuda().train()  # fp32 master weights, bf16 autocast: the trainer's setup
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, fused=True)
        ids = torch.randint(0, model.config.vocab_size, (4, 65), device="cuda")
        losses = []
        for _ in range(5):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(ids[:, :-1], ids[:, 1:]).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
    finally:
        moe.Experts._grouped_mm = original
    assert calls and all(d == torch.bfloat16 for d in calls)
    assert losses[-1] < losses[0]


def test_the_compiled_training_step_is_one_graph_with_no_breaks():
    """On the GPU the expert dispatch is torch's grouped GEMM, which torch.compile traces: the whole bf16-autocast
    training forward must compile to one graph (a break is a launch gap and lost fusion every step). On the CPU
    the same forward breaks only at the experts (tests/model/test_moe.py)."""
    import torch._dynamo

    model = tiny_model().cuda().train()
    ids = torch.randint(0, model.config.vocab_size, (2, 65), device="cuda")

    def step(x, y):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return model(x, y).loss

    torch._dynamo.reset()
    explained = torch._dynamo.explain(step)(ids[:, :-1], ids[:, 1:])
    assert explained.graph_break_count == 0, [r.reason for r in explained.break_reasons]
    assert explained.graph_count == 1
