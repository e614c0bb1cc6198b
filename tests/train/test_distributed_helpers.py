"""The collectives GRPO uses under torchrun, in 2 real gloo processes: gradients summed bucket by bucket (a
parameter without a gradient counts as zeros), rows gathered in rank order, a stop seen by one rank seen by all."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fronde.train import distributed


def _worker(rank: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        cpu = torch.device("cpu")
        params = [torch.nn.Parameter(torch.zeros(n)) for n in (3, 5, 2, 7)]
        for i, p in enumerate(params):
            if not (rank == 1 and i == 2):  # rank 1 has no gradient for the third parameter
                p.grad = torch.full_like(p, float(rank + 1) * (i + 1))
        distributed.all_reduce_grads(params, bucket_elements=6)  # buckets [3], [5], [2], [7]: several
        rows = distributed.gather_rows(torch.tensor([[float(rank)], [float(rank) + 0.5]]), cpu)
        stop = distributed.any_rank(rank == 1, cpu)
        total = distributed.all_reduce(torch.tensor([float(rank + 1)]), "max")
        torch.save({"grads": [p.grad for p in params], "rows": rows, "stop": stop, "max": total}, f"{out}/{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_collectives_in_two_gloo_processes(tmp_path):
    mp.spawn(_worker, args=(f"file://{tmp_path / 'store'}", str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        for i, g in enumerate(got["grads"]):
            want = 3.0 * (i + 1) if i != 2 else 1.0 * (i + 1)  # (1 + 2) x (i + 1); rank 1 adds zeros to the third
            assert torch.equal(g, torch.full_like(g, want)), (rank, i)
        assert got["rows"].flatten().tolist() == [0.0, 0.5, 1.0, 1.5]
        assert got["stop"] is True and float(got["max"]) == 2.0


def test_without_torchrun_they_are_identities():
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.ones(2)
    distributed.all_reduce_grads([p])
    assert torch.equal(p.grad, torch.ones(2))
    assert distributed.any_rank(False, torch.device("cpu")) is False
    rows = torch.arange(3.0)
    assert distributed.gather_rows(rows, torch.device("cpu")) is rows


def test_shares_cover_every_item_once_in_order():
    """`span` is the split GRPO's test accuracy and `fronde eval` use: contiguous, balanced, in rank order."""
    assert distributed.place(None) == (0, 1) and distributed.span(5, None) == range(5)
    for n in (0, 1, 7, 64, 65):
        for world in (1, 2, 3, 8):
            ctxs = [distributed.DistContext(r, world, r, torch.device("cpu")) for r in range(world)]
            assert [distributed.place(c) for c in ctxs] == [(r, world) for r in range(world)]
            spans = [distributed.span(n, c) for c in ctxs]
            assert [i for s in spans for i in s] == list(range(n))
            assert max(map(len, spans)) - min(map(len, spans)) <= 1


def test_a_one_process_run_on_a_machine_with_more_gpus_says_how_to_use_them(monkeypatch):
    from fronde.train.distributed import DistContext, idle_gpus_note

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    one = DistContext(0, 1, 0, torch.device("cuda", 0), False)
    assert "torchrun --nproc_per_node 4 -m fronde.cli.main sft" in idle_gpus_note(one, "sft")
    assert idle_gpus_note(DistContext(0, 4, 0, torch.device("cuda", 0), False), "sft") is None
    assert idle_gpus_note(DistContext(0, 1, 0, torch.device("cpu"), False), "sft") is None
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert idle_gpus_note(one, "sft") is None


def test_more_processes_than_gpus_on_a_node_says_so(monkeypatch):
    """`torchrun --nproc_per_node 4` on a 2-GPU machine: local rank 2 has no GPU (CUDA's own words are `invalid device
    ordinal`, once per rank, in a traceback)."""
    import pytest

    from fronde.train.recipe import RecipeError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with pytest.raises(RecipeError, match=r"local rank 2 but 2 GPU\(s\) are visible \(CUDA_VISIBLE_DEVICES=0,1\): "
                                          r"start at most 2 processes per node \(torchrun --nproc_per_node 2\)"):
        distributed.setup()
