"""A fronde model fine-tuned with LoRA in TRL/PEFT comes back as a fronde model dir (`fronde model merge-lora`)."""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from fronde.data.chat import render_chat
from fronde.data.io import sha256_file
from fronde.data.tokenizer import Tokenizer, train_tokenizer
from fronde.model.checkpoint import from_pretrained, load_config, save_pretrained
from fronde.train.merge_lora import AdapterError, merge_lora
from tests.model.helpers import tiny_model
from tests.train.conftest import run_fronde

TEXT = ["What is 12 + 7? The answer is 19.\n", "def add(a, b):\n    return a + b\n", "Three plus four is seven.\n"]
PROBE = torch.tensor([[1, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50]])


def make_base(path, **overrides):
    tok = train_tokenizer(TEXT * 50, vocab_size=400)
    tok.save(path)
    save_pretrained(tiny_model(vocab_size=tok.vocab_size, bos_token_id=tok.special.bos, eos_token_id=tok.special.eos,
                               pad_token_id=tok.special.pad, **overrides), path)
    return path


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    # an MTP layer (transformers leaves it out, the merge must keep it) and MoE layers after a dense one
    return make_base(tmp_path_factory.mktemp("base") / "base", num_nextn_predict_layers=1)


def hf_model(base_dir):
    return AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, local_files_only=True)


def peft_adapter(base_dir, out, seed=0):
    """A LoRA adapter on every linear layer and the experts, with non-zero B matrices (PEFT starts them at 0)."""
    torch.manual_seed(seed)
    model = get_peft_model(hf_model(base_dir), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    model.save_pretrained(out)
    return out


def logits(model, ids=PROBE):
    with torch.no_grad():
        out = model(ids)
    return (out.logits if hasattr(out, "logits") else out).float()


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")  # TRL's own SFTConfig
def test_trl_lora_fine_tuning_of_a_fronde_model_merges_back(base_dir, tmp_path, monkeypatch):
    """TRL's SFTTrainer (assistant-only loss, a LoRA peft_config) trains on a fronde model dir and learns the tokens
    fronde's own SFT would; its adapter merges into a fronde model dir equal in its logits to the adapter on the
    base, with the MTP layer, stop ids, tokenizer and a lineage naming the base and the adapter by hash."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    chats = [[{"role": "user", "content": f"What is {i} + {i}?"}, {"role": "assistant", "content": str(2 * i)}]
             for i in range(8)]
    trainer = SFTTrainer(
        model=hf_model(base_dir), processing_class=AutoTokenizer.from_pretrained(base_dir),
        train_dataset=Dataset.from_list([{"messages": c} for c in chats]),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"),
        args=SFTConfig(output_dir=str(tmp_path / "trl"), max_steps=3, per_device_train_batch_size=4,
                       learning_rate=3e-2, assistant_only_loss=True, max_length=64, use_cpu=True, report_to=[],
                       save_strategy="no", disable_tqdm=True, seed=0))
    tok = Tokenizer.load(base_dir)
    for chat, row in zip(chats, trainer.train_dataset, strict=True):
        ids, mask = render_chat(tok, chat)
        assert row["input_ids"] == ids
        assert [int(label != -100) for label in row["labels"]] == mask
    trainer.train()
    adapter = tmp_path / "adapter"
    trainer.save_model(str(adapter))

    out = tmp_path / "merged"
    assert run_fronde(monkeypatch, "model", "merge-lora", str(adapter), str(out)) in (0, None)
    expected = logits(PeftModel.from_pretrained(hf_model(base_dir), adapter).eval())
    merged = from_pretrained(out)
    assert (logits(merged) - expected).abs().max().item() < 1e-4
    assert (logits(from_pretrained(base_dir)) - expected).abs().max().item() > 1e-3  # the training moved it
    assert merged.mtp is not None and sha256_file(out / "mtp.safetensors") == sha256_file(base_dir / "mtp.safetensors")
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == [tok.special.eos,
                                                                                        tok.token_id("<|end|>")]
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == \
        merged.config.max_position_embeddings
    record = json.loads((out / "fronde.json").read_text())
    assert record["stage"] == "merge-lora" and record["parent"]["path"] == str(base_dir.resolve())
    assert record["inputs"]["adapter"]["weights"]["sha256"] == sha256_file(adapter / "adapter_model.safetensors")
    assert record["inputs"]["adapter"]["merge"]["dtype"] == "float32"  # the base's
    assert record["inputs"]["adapter"]["merge"]["effect_kept"] == pytest.approx(1, abs=1e-3)
    card = (out / "MODEL_CARD.md").read_text()
    assert "LORA adapter `adapter`, merged" in card and "trained outside fronde" in card
    assert AutoModelForCausalLM.from_pretrained(out, local_files_only=True) is not None  # still an HF checkpoint


def test_what_the_merge_refuses_and_why(base_dir, tmp_path):
    adapter = peft_adapter(base_dir, tmp_path / "adapter")
    with pytest.raises(FileNotFoundError, match="PEFT adapter, not a model.*fronde model merge-lora"):
        load_config(adapter)  # what `fronde serve/eval/export ADAPTER` say

    cfg_path = adapter / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps(cfg | {"base_model_name_or_path": "someone/base-on-the-hub"}))
    with pytest.raises(AdapterError, match="not a directory here.*--base"):
        merge_lora(adapter, tmp_path / "out")
    killed = tmp_path / ".out-merge-999999999-abc"  # a merge SIGKILLed mid-way (no such process)
    (killed / "hf").mkdir(parents=True)
    report = merge_lora(adapter, tmp_path / "out", base=base_dir, dtype=torch.bfloat16, say=lambda _: None)
    assert not killed.exists() and not list(tmp_path.glob(".out-merge-*"))
    assert report.changed > 0 and report.probe_diff < 1e-4 and report.dtype == torch.bfloat16
    assert 0.5 < report.effect_kept < 1  # bf16 rounding takes some of a LoRA update away; fp32 keeps it all
    written = from_pretrained(tmp_path / "out").config
    assert written.torch_dtype == "bfloat16" and written.model_copy(update={"torch_dtype": "float32"}) == \
        load_config(base_dir)
    with pytest.raises(AdapterError, match="exists.*--force"):
        merge_lora(adapter, tmp_path / "out", base=base_dir)

    other = make_base(tmp_path / "other", hidden_size=64)
    with pytest.raises(AdapterError, match="could not apply the adapter"):
        merge_lora(adapter, tmp_path / "out2", base=other)

    cfg_path.write_text(json.dumps(cfg | {"peft_type": "PROMPT_TUNING"}))
    with pytest.raises(AdapterError, match="virtual tokens"):
        merge_lora(adapter, tmp_path / "out3")
    cfg_path.write_text(json.dumps(cfg))
    (adapter / "adapter_model.safetensors").rename(adapter / "adapter_model.bin")
    with pytest.raises(AdapterError, match="pickle.*safe_serialization"):
        merge_lora(adapter, tmp_path / "out4")
    assert not (tmp_path / "out3").exists() and not (tmp_path / "out4").exists()
