"""What the ranks of a torchrun job agree on, in 2 real gloo processes: an error on one rank stops both with its
words (and work rank 0 does alone may outlast the group's timeout); a run dir one rank cannot see, or data that
differs between nodes, stops both before training; a resume loads the checkpoint rank 0 chose even where another
rank's view of the files would choose another. The last test
runs two torchrun "nodes" on this machine, one of them missing the data, through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fronde.model.config import load_preset
from fronde.model.model import CausalLM
from fronde.train import agree
from fronde.train.checkpoint import load_latest, write_checkpoint
from fronde.train.distributed import DistContext
from fronde.train.recipe import RecipeError


def _outcome(fn) -> str:
    try:
        fn()
    except agree.PeerError as e:
        return f"peer: {e}" + ("" if e.echo else " (not printed)")
    except RecipeError as e:
        return f"own: {e}"
    return "ok"


def _worker(rank: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2, timeout=GROUP_TIMEOUT)
    try:
        ctx = DistContext(rank, 2, rank, torch.device("cpu"))
        tmp = Path(out)
        results: dict[str, object] = {}

        def fails_on_rank_1() -> None:
            with agree.together(ctx, "reading the data"):
                if rank == 1:
                    raise RecipeError("no tokenizer at /data/tokenizer")

        def fine() -> None:
            with agree.together(ctx, "reading the data"):
                pass

        results["together"] = _outcome(fails_on_rank_1)
        results["fine"] = _outcome(fine)
        agree.SHARED_WAIT_S = 0.5
        shared = tmp / "shared"
        results["shared"] = _outcome(lambda: agree.check_shared(ctx, shared))
        # rank 1 on a node whose run dir is its own (here: another folder at its place)
        results["unshared"] = _outcome(lambda: agree.check_shared(ctx, tmp / f"node{rank}"))
        results["probes_left"] = sorted(p.name for p in shared.iterdir())
        results["same"] = _outcome(lambda: agree.same_everywhere(ctx, "the data", "abc", "copy it"))
        results["differs"] = _outcome(lambda: agree.same_everywhere(ctx, "the data", f"v{rank}", "copy it"))
        # resume: rank 1's view holds a newer checkpoint rank 0's does not (a stale or node-local copy): both
        # load the one rank 0 chose
        resumed = load_latest(tmp / f"ckpt{rank}", ctx.device, warn=lambda _: None, ctx=ctx)
        results["resumed"] = resumed.path.name if resumed is not None else None
        results["resumed_step"] = resumed.state["step"] if resumed is not None else None
        # rank 1 cannot read the checkpoint rank 0 chose: both stop, neither hangs
        results["unreadable"] = _outcome(lambda: load_latest(tmp / ("ckpt0" if rank == 0 else "empty"),
                                                             ctx.device, warn=lambda _: None, ctx=ctx))

        def slow_prepare() -> None:  # longer than the group's timeout: a collective would have given up waiting
            with agree.rank0_alone(ctx, "preparing the data"):
                if rank == 0:
                    time.sleep(GROUP_TIMEOUT.total_seconds() + 2)

        def failed_prepare() -> None:
            with agree.rank0_alone(ctx, "preparing the data"):
                if rank == 0:
                    raise RecipeError("data.dir=/d: no manifest.json there")

        results["alone"] = _outcome(slow_prepare)
        results["alone_fails"] = _outcome(failed_prepare)
        results["after"] = _outcome(fine)  # the group still works
        (tmp / f"{rank}.json").write_text(json.dumps(results))
    finally:
        dist.destroy_process_group()


GROUP_TIMEOUT = timedelta(seconds=3)


def _checkpoint(root: Path, step: int) -> None:
    config = load_preset("tiny", num_hidden_layers=1, hidden_size=32, vocab_size=64, num_nextn_predict_layers=0)
    model = CausalLM(config).init_weights(0)
    write_checkpoint(root, step, config, model.state_dict(), torch.float32, {"optim": {}, "rng": []},
                     {"loader": {}}, keep_last=5)


def test_ranks_agree_or_stop_together(tmp_path):
    for step in (4, 8):
        _checkpoint(tmp_path / "ckpt0", step)
    shutil.copytree(tmp_path / "ckpt0", tmp_path / "ckpt1")
    _checkpoint(tmp_path / "ckpt1", 12)
    (tmp_path / "empty").mkdir()
    mp.spawn(_worker, args=(f"file://{tmp_path / 'store'}", str(tmp_path)), nprocs=2)
    r0, r1 = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    host = socket.gethostname()
    assert r1["together"] == "own: no tokenizer at /data/tokenizer"
    assert r0["together"] == (f"peer: rank 1 (host {host}) stopped while reading the data: "
                              "no tokenizer at /data/tokenizer")
    assert r0["fine"] == r1["fine"] == "ok"
    assert r0["shared"] == r1["shared"] == "ok" and r0["probes_left"] == []
    for r in (r0, r1):
        assert r["unshared"].startswith(f"own: {tmp_path / 'node'}") and "is not shared by every rank: rank 1 " \
            f"(host {host}) does not see the file rank 0" in r["unshared"] and "run.out_dir" in r["unshared"]
        assert r["same"] == "ok"
        assert r["differs"] == (f"own: the data differs between ranks: rank 1 (host {host}) has v1, rank 0 (host "
                                f"{host}) has v0; copy it")
        assert r["resumed"] == "step-000008" and r["resumed_step"] == 8
    assert r0["alone"] == r1["alone"] == r0["after"] == r1["after"] == "ok"
    assert r0["alone_fails"] == "own: data.dir=/d: no manifest.json there"
    assert r1["alone_fails"] == f"peer: rank 0 (host {host}) stopped while preparing the data: data.dir=/d: no " \
        "manifest.json there (not printed)"  # rank 0 prints it on this node (local rank 1 here)
    assert r1["unreadable"].startswith(f"own: {tmp_path / 'empty' / 'step-000008'}: could not be read")
    assert r0["unreadable"].startswith(f"peer: rank 1 (host {host}) stopped while reading checkpoint")


def test_one_process_is_untouched(tmp_path):
    ctx = DistContext(0, 1, 0, torch.device("cpu"))
    with pytest.raises(RecipeError, match="boom"), agree.together(ctx, "x"):
        raise RecipeError("boom")
    agree.check_shared(ctx, tmp_path / "nowhere")  # nothing written, nothing checked
    assert not (tmp_path / "nowhere").exists()
    agree.same_everywhere(ctx, "x", 1, "y")
    assert agree.broadcast("v", ctx) == "v"


def _can_unshare() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs root and mount namespaces to give one 'node' its own disk")
def test_two_nodes_one_without_the_data_both_say_why(tmp_path, data_dir):
    """`torchrun --nnodes 2` on this machine; node B mounts an empty folder over the data dir (its own disk, where
    no one copied the data). Before, node B's rank raised and node A's waited in its next collective (NCCL: 30
    minutes) with nothing said; now both stop at once with node B's reason."""
    from tests.train.conftest import RECIPE, two_node_torchrun

    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(name="two", out=tmp_path / "runs", data=data_dir))
    launch = two_node_torchrun() + ["-m", "fronde.cli.main", "pretrain", str(recipe)]
    env = os.environ | {"OMP_NUM_THREADS": "1", "COLUMNS": "300"}
    node_a = subprocess.Popen(launch, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node_b = subprocess.run(["unshare", "-m", "sh", "-c", f'mount -t tmpfs tmpfs "{data_dir}" && exec "$@"', "sh",
                             *launch], env=env, capture_output=True, text=True, timeout=180)
    out_a, _ = node_a.communicate(timeout=180)
    out_b = node_b.stdout + node_b.stderr
    reason = f"no tokenizer at {data_dir / 'tokenizer'}"
    # c10d gives ranks in arrival order: whichever node is rank 0, both print the reason, neither hangs
    assert node_a.returncode != 0 and node_b.returncode != 0
    assert f"error: {reason}" in out_b, out_b
    assert "stopped while reading the data" in out_a and reason in out_a, out_a
