"""The fused chunked head + cross-entropy equals linear + F.cross_entropy, loss and gradients."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from fronde.model.loss import IGNORE_INDEX, linear_cross_entropy


def _inputs(n=600, d=32, v=4096, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=g).requires_grad_()
    weight = (torch.randn(v, d, generator=g) * 0.1).requires_grad_()
    targets = torch.randint(0, v, (n,), generator=g)
    targets[::7] = IGNORE_INDEX
    return hidden, weight, targets


def test_matches_unfused_loss_and_gradients_across_chunks():
    hidden, weight, targets = _inputs()  # 600 rows: three chunks at this vocab on CPU
    ref = F.cross_entropy(hidden @ weight.T, targets, ignore_index=IGNORE_INDEX)
    ref.backward()
    ref_grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    ours = linear_cross_entropy(hidden, weight, targets)
    (2.0 * ours).backward()  # an upstream scale reaches both gradients
    assert torch.allclose(ours, ref, atol=1e-5)
    assert torch.allclose(hidden.grad, 2.0 * ref_grads[0], atol=1e-6)
    assert torch.allclose(weight.grad, 2.0 * ref_grads[1], atol=1e-6)


def test_no_grad_path_and_all_ignored_targets():
    hidden, weight, targets = _inputs()
    with torch.no_grad():
        ref = F.cross_entropy(hidden @ weight.T, targets, ignore_index=IGNORE_INDEX)
        assert torch.allclose(linear_cross_entropy(hidden, weight, targets), ref, atol=1e-5)
    ignored = torch.full_like(targets, IGNORE_INDEX)
    loss = linear_cross_entropy(hidden, weight, ignored)
    loss.backward()
    assert loss.item() == 0.0 and hidden.grad.abs().sum() == 0  # no NaN from an all-masked batch


def test_bf16_is_close_to_fp32():
    hidden, weight, targets = _inputs()
    ref = linear_cross_entropy(hidden.detach(), weight.detach(), targets)
    low = linear_cross_entropy(hidden.detach().bfloat16(), weight.detach().bfloat16(), targets)
    assert abs(low.item() - ref.item()) < 2e-2


def test_extreme_logits_stay_finite():
    hidden = torch.tensor([[100.0, -100.0]], requires_grad=True)
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], requires_grad=True)
    targets = torch.tensor([2])  # logit -100 against a peak of +100: exp underflows in fp32
    loss = linear_cross_entropy(hidden, weight, targets)
    ref = F.cross_entropy(hidden @ weight.T, targets)
    assert torch.isfinite(loss) and torch.allclose(loss, ref)


class _MatmulDtypes(TorchDispatchMode):
    """The input dtypes of every matrix multiply that runs inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[torch.dtype] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.addmm_):
            self.seen |= {a.dtype for a in args if isinstance(a, torch.Tensor)}
        return func(*args, **(kwargs or {}))


def test_under_bf16_autocast_the_head_runs_in_bf16():
    """Training on a GPU runs under bf16 autocast with fp32 weights; the head's matmuls (its largest FLOPs at small
    widths) must run in bf16 there, as `hidden @ weight.T` would. A matmul written with `out=` is not autocast."""
    hidden, weight, targets = _inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16), _MatmulDtypes() as mode:
        loss = linear_cross_entropy(hidden, weight, targets)
    assert mode.seen == {torch.bfloat16}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = F.cross_entropy((hidden @ weight.T).float(), targets, ignore_index=IGNORE_INDEX)
    assert torch.allclose(loss, ref, atol=1e-4)
    loss.backward()
    assert hidden.grad.dtype == torch.float32 and torch.isfinite(weight.grad).all()
    with _MatmulDtypes() as mode:
        linear_cross_entropy(hidden, weight, targets)
    assert mode.seen == {torch.float32}  # no autocast: the inputs' own dtype
