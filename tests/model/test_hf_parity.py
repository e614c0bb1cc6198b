"""A fronde model dir is a transformers DeepseekV3ForCausalLM checkpoint, in both directions, with equal logits."""

from __future__ import annotations

import logging

import pytest
import torch
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

from fronde.model.checkpoint import from_pretrained, save_pretrained
from fronde.model.hf_adapter import config_to_hf
from fronde.model.moe import Router

from .helpers import tiny_model

CONFIGS = {
    # q LoRA on, group routing (2 groups keep 1), one dense layer, untied, normalised top-k
    "qlora-groups": {},
    # no q LoRA, tied embeddings, unnormalised top-k weights
    "noqlora-tied-unnorm": dict(q_lora_rank=None, n_group=1, topk_group=1, tie_word_embeddings=True, norm_topk_prob=False),
    # every layer MoE, 4 groups keep 2, top-3, routed scaling
    "alldense0-groups4": dict(first_k_dense_replace=0, n_group=4, topk_group=2, num_experts_per_tok=3,
                              routed_scaling_factor=2.5),
    # two dense layers, YaRN context extension with mscale
    "dense2-yarn": dict(first_k_dense_replace=2, rope_scaling=dict(factor=4.0, original_max_position_embeddings=512,
                                                                    mscale=1.0, mscale_all_dim=0.707)),
    # an MTP layer kept in mtp.safetensors, two shared experts
    "mtp-shared2": dict(num_nextn_predict_layers=1, n_shared_experts=2),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_transformers_loads_fronde_dir_with_equal_logits(name, tmp_path, caplog):
    model = tiny_model(seed=len(name), **CONFIGS[name])
    save_pretrained(model, tmp_path, dtype=torch.float32)
    with caplog.at_level(logging.WARNING):
        hf = DeepseekV3ForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    assert not [r for r in caplog.records if "unexpected" in r.getMessage().lower() or "missing" in r.getMessage().lower()]
    ids = torch.randint(0, model.config.vocab_size, (2, 33), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model(ids).logits, hf(ids).logits
    assert (ours - theirs).abs().max().item() <= 1e-4
    # and fronde reads its own directory back exactly
    with torch.no_grad():
        again = from_pretrained(tmp_path)(ids).logits
    assert torch.equal(ours, again)


@pytest.mark.parametrize("name", ["qlora-groups", "noqlora-tied-unnorm"])
def test_fronde_loads_transformers_saved_dir_with_equal_logits(name, tmp_path):
    fronde_cfg = tiny_model(**CONFIGS[name]).config
    hf_config = DeepseekV3Config(**config_to_hf(fronde_cfg, torch.float32))
    torch.manual_seed(1)
    hf = DeepseekV3ForCausalLM(hf_config).eval()
    with torch.no_grad():
        for m in hf.modules():
            if hasattr(m, "e_score_correction_bias"):
                m.e_score_correction_bias.uniform_(-0.05, 0.05)
    hf.save_pretrained(tmp_path)
    ours = from_pretrained(tmp_path)
    assert any(isinstance(m, Router) and m.e_score_correction_bias.abs().sum() > 0 for m in ours.modules())
    ids = torch.randint(0, fronde_cfg.vocab_size, (3, 17), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        diff = (ours(ids).logits - hf(ids).logits).abs().max().item()
    assert diff <= 1e-4


def test_config_json_has_the_keys_vllm_and_llama_cpp_read(tmp_path):
    import json

    save_pretrained(tiny_model(), tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["architectures"] == ["DeepseekV3ForCausalLM"] and cfg["model_type"] == "deepseek_v3"
    assert cfg["scoring_func"] == "sigmoid" and cfg["topk_method"] == "noaux_tc" and cfg["rope_interleave"] is True
    assert cfg["num_key_value_heads"] == cfg["num_attention_heads"]
    assert cfg["rope_theta"] == cfg["rope_parameters"]["rope_theta"]
    assert (tmp_path / "generation_config.json").is_file()


@pytest.mark.parametrize("name", ["qlora-groups", "noqlora-tied-unnorm"])
def test_training_gradients_equal_transformers(name, tmp_path):
    """The hand-written backward passes (RMSNorm, expert dispatch/combine, fused head + loss) against autograd's."""
    model = tiny_model(seed=3, **CONFIGS[name]).train()
    save_pretrained(model, tmp_path, dtype=torch.float32)
    hf = DeepseekV3ForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).train()
    ids = torch.randint(0, model.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(4))
    targets = torch.cat((ids[:, 1:], torch.full((2, 1), -100)), dim=1)
    ours = model(ids, targets).loss
    theirs = hf(input_ids=ids, labels=ids).loss
    assert abs(ours.item() - theirs.item()) <= 1e-5
    ours.backward()
    theirs.backward()
    # transformers holds its experts stacked in memory, under fronde's own names
    hf_params = dict(hf.named_parameters())
    compared = 0
    for n, p in model.named_parameters():
        ref = hf_params[n].grad
        assert p.grad is not None and ref is not None, n
        assert torch.allclose(p.grad, ref, atol=1e-6, rtol=1e-4), (n, (p.grad - ref).abs().max().item())
        compared += 1
    assert compared == len(hf_params)


def test_the_mtp_layer_computes_what_vllm_drafts_with_it(tmp_path):
    """vLLM's and SGLang's DeepSeek MTP (`--speculative-config '{"method": "mtp"}'`) feed the layer the main model's
    hidden states after its final norm: eh_proj(cat[enorm(emb(t+1)), hnorm(h)]) through one decoder layer, then
    shared_head.norm and the head. Written here with transformers' own decoder layer on the saved weights, it must
    give fronde's MTP loss; fronde fed the layer the states before the final norm until 2026-12-08, which vLLM kept
    fewer of its guesses from (47 of 95 against fronde's 52 of 87)."""
    import json

    from safetensors.torch import load_file, save_file
    from torch.nn.functional import cross_entropy

    from fronde.model.checkpoint import MTP_WEIGHTS, WEIGHTS

    model = tiny_model(seed=5, num_nextn_predict_layers=1)
    with torch.no_grad():  # final-norm weights far from 1, as training leaves them: pre- and post-norm differ
        model.model.norm.weight.uniform_(0.2, 3.0)
        model.lm_head.weight.mul_(10)  # peaked predictions: a different input moves the loss clearly
    main_dir, block_dir = tmp_path / "main", tmp_path / "with-block"
    save_pretrained(model, main_dir, dtype=torch.float32)
    L = model.config.num_hidden_layers
    mtp = load_file(main_dir / MTP_WEIGHTS)
    # transformers' model with one more layer, the MTP layer's block, to run that block with transformers' code
    own = ("enorm", "hnorm", "eh_proj", "shared_head", "embed_tokens")
    block = {k: v for k, v in mtp.items() if k.split(".")[3] not in own}
    block_dir.mkdir()
    save_file(load_file(main_dir / WEIGHTS) | block, block_dir / WEIGHTS)
    config = json.loads((main_dir / "config.json").read_text())
    (block_dir / "config.json").write_text(json.dumps(config | {"num_hidden_layers": L + 1}))
    hf = DeepseekV3ForCausalLM.from_pretrained(main_dir, dtype=torch.float32).eval()
    layer = DeepseekV3ForCausalLM.from_pretrained(block_dir, dtype=torch.float32).model.layers[L].eval()

    def rms(x, w):
        return w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + model.config.rms_norm_eps)

    ids = torch.randint(0, model.config.vocab_size, (2, 21), generator=torch.Generator().manual_seed(6))
    targets = torch.cat((ids[:, 1:], torch.full((2, 1), -100)), dim=1)
    with torch.no_grad():
        h = hf.model(ids).last_hidden_state[:, :-1]  # after the final norm: what the head reads
        e = hf.model.embed_tokens(ids[:, 1:])
        p = f"model.layers.{L}."
        x = torch.cat((rms(e, mtp[p + "enorm.weight"]), rms(h, mtp[p + "hnorm.weight"])), -1)
        x = x @ mtp[p + "eh_proj.weight"].T
        positions = torch.arange(ids.shape[1] - 1).expand(2, -1)
        x = layer(x, position_ids=positions, position_embeddings=hf.model.rotary_emb(x, positions))
        logits = hf.lm_head(rms(x, mtp[p + "shared_head.norm.weight"]))
        theirs = cross_entropy(logits.flatten(0, 1), targets[:, 1:].flatten(), ignore_index=-100)
        ours = model(ids, targets).mtp_loss
    assert abs(ours.item() - theirs.item()) <= 1e-4, (ours.item(), theirs.item())
