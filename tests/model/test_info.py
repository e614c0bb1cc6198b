"""`fronde model info`: counts that match the real modules, the peer figures, and the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from fronde.cli.main import app
from fronde.model.checkpoint import save_pretrained
from fronde.model.config import load_preset, preset_names
from fronde.model.info import model_info
from fronde.model.model import CausalLM

from .helpers import tiny_model


@pytest.mark.parametrize("preset", preset_names())
def test_counts_match_the_instantiated_model(preset):
    for overrides in ({}, dict(tie_word_embeddings=True, num_nextn_predict_layers=1, q_lora_rank=None)):
        config = load_preset(preset, **overrides)
        with torch.device("meta"):
            model = CausalLM(config)
        params = dict(model.named_parameters())  # tied weights are listed once
        main = sum(p.numel() for k, p in params.items() if not k.startswith("mtp."))
        mtp = sum(p.numel() for k, p in params.items() if k.startswith("mtp."))
        info = model_info(config)
        assert (info.total_params, info.mtp_params) == (main, mtp)
        assert info.active_params < info.total_params


def test_probe_preset_is_the_peer_configuration():
    info = model_info(load_preset("probe"))
    assert round(info.total_params / 1e6, 1) == 401.6  # shared/notes/peers.md
    assert round(info.active_params / 1e6, 1) == 129.1


def test_gpu_preset_is_about_1b_total_200m_active():
    info = model_info(load_preset("gpu-1b"))
    assert 0.9e9 <= info.total_params <= 1.1e9 and 180e6 <= info.active_params <= 250e6


def test_flops_and_kv_cache_arithmetic():
    c = load_preset("probe")
    info = model_info(c, seq_len=1024, kv_dtype_bytes=2)
    attention = 6 * 12 * 12 * (96 + 64) * 1024
    assert info.train_flops_per_token == 6 * (info.active_params - 32768 * 768) + attention
    assert info.kv_bytes_per_token_mla == (256 + 32) * 12 * 2
    assert info.kv_bytes_per_token_mha == 12 * (96 + 64) * 12 * 2
    assert info.kv_reduction == pytest.approx(0.85)


def test_cli_info_on_preset_and_directory(tmp_path):
    runner = CliRunner(env={"COLUMNS": "200"})
    res = runner.invoke(app, ["model", "info", "probe"])
    assert res.exit_code == 0, res.output
    assert "401.6M" in res.output and "129.1M" in res.output
    save_pretrained(tiny_model(), tmp_path)
    res = runner.invoke(app, ["model", "info", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["total_params"] == model_info(load_preset("tiny")).total_params
    res = runner.invoke(app, ["model", "info", "no-such-preset"])
    assert res.exit_code != 0 and "neither a model directory nor a preset" in res.output
