"""Optimizer groups and the Muon option, through the real training loop."""

from __future__ import annotations

from fronde.model.config import load_preset
from fronde.model.model import CausalLM
from fronde.train.metrics import read_metrics
from fronde.train.optim import OptimConfig, param_groups
from fronde.train.pretrain import pretrain
from fronde.train.recipe import load_recipe


def _names(model, group):
    ids = {id(p) for p in group["params"]}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_no_weight_decay_on_norms_embeddings_and_head():
    model = CausalLM(load_preset("tiny"))
    decay, no_decay = param_groups(model, OptimConfig())
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"} <= _names(model, no_decay)
    assert "model.layers.1.mlp.experts.gate_up_proj" in _names(model, decay)
    assert not any("norm" in n for n in _names(model, decay))


def test_muon_takes_hidden_matrices_and_adamw_the_rest():
    model = CausalLM(load_preset("tiny"))
    groups = {g["kind"] + str(g["weight_decay"]): g for g in param_groups(model, OptimConfig(name="muon"))}
    muon = _names(model, groups["muon0.1"])
    assert "model.layers.0.self_attn.kv_b_proj.weight" in muon and "model.layers.1.mlp.gate.weight" in muon
    assert "lm_head.weight" not in muon and "model.layers.1.mlp.experts.gate_up_proj" not in muon


def test_muon_recipe_trains(recipe_file):
    recipe = load_recipe(str(recipe_file("muon")), ["optim.name=muon", "schedule.max_steps=8",
                                                   "checkpoint.every_steps=0", "eval.every_steps=0"])
    result = pretrain(recipe, say=lambda _: None)
    losses = [r["loss"] for r in read_metrics(recipe.run_dir / "pretrain" / "metrics.jsonl")]
    assert result.model_dir is not None and losses[-1] < losses[0] - 0.3


def test_the_step_after_backward_holds_no_host_sync():
    # clipping, AdamW or Muon, and the bias update run every step: none may wait for the device on a GPU
    # (the loop reads the loss and grad norm back only when it logs)
    import torch

    from fronde.model.moe import update_expert_bias
    from fronde.train.optim import Optimizers
    from tests.model.helpers import RecordOps, tiny_model

    for name in ("adamw", "muon"):
        model = tiny_model().train()
        opt = Optimizers(model, OptimConfig(name=name), torch.device("cpu"))
        ids = torch.randint(0, model.config.vocab_size, (4, 65))
        model(ids[:, :-1], ids[:, 1:]).loss.backward()
        with RecordOps() as ops:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
            update_expert_bias(model, 1e-3)
        assert not ops.host_syncs(), name
