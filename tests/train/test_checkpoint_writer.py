"""Checkpoints written on a background thread: a snapshot the next steps cannot change, the same files as a
foreground write, and a failed write raised on the training thread."""

from __future__ import annotations

import json

import pytest
import torch

from fronde.model.config import load_preset
from fronde.model.model import CausalLM
import fronde.train.checkpoint as checkpoint
from fronde.train.checkpoint import MANIFEST, CheckpointWriter, host_copy, load_latest, rng_state


def _model_and_optim(tie: bool = False):
    torch.manual_seed(0)
    model = CausalLM(load_preset("tiny", num_hidden_layers=2, hidden_size=64, tie_word_embeddings=tie)).init_weights(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randint(0, 100, (2, 16)), torch.randint(0, 100, (2, 16))).loss.backward()
    opt.step()
    return model, opt


def _save(writer: CheckpointWriter, step: int, model, opt) -> None:
    writer.save(step, model.config, model.state_dict(), torch.float32, {"optim": [opt.state_dict()],
                "rng": [rng_state()]}, {"loader": {"position": [step]}, "ledger": {}})


def test_background_write_is_a_snapshot_of_the_moment_it_was_asked_for(tmp_path):
    model, opt = _model_and_optim()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    moments = [s["exp_avg"].clone() for s in opt.state.values()]
    loader = {"position": [7]}
    with CheckpointWriter(tmp_path, keep_last=2) as writer:
        writer.save(7, model.config, model.state_dict(), torch.float32, {"optim": [opt.state_dict()]},
                    {"loader": loader, "ledger": {}})
        with torch.no_grad():  # the next steps, while the thread writes
            for p in model.parameters():
                p.add_(1.0)
            for s in opt.state.values():
                s["exp_avg"].add_(1.0)
        loader["position"].append(8)
    resumed = load_latest(tmp_path, torch.device("cpu"))
    assert resumed is not None and resumed.state["step"] == 7 and resumed.state["loader"] == {"position": [7]}
    for k, v in resumed.model.state_dict().items():
        if k in before:
            assert torch.equal(v, before[k]), k
    saved = [s["exp_avg"] for s in resumed.trainer["optim"][0]["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(saved, moments))


def test_background_and_foreground_writes_are_the_same_files(tmp_path):
    model, opt = _model_and_optim()
    rng = rng_state()
    for background in (True, False):
        with CheckpointWriter(tmp_path / str(background), keep_last=1, background=background) as writer:
            writer.save(3, model.config, model.state_dict(), torch.float32, {"optim": [opt.state_dict()],
                        "rng": [rng]}, {"loader": {}, "ledger": {}})
    manifests = [json.loads((tmp_path / str(b) / "step-000003" / MANIFEST).read_text()) for b in (True, False)]
    assert manifests[0] == manifests[1]


def test_a_new_save_waits_for_the_last_and_keep_last_holds(tmp_path):
    model, opt = _model_and_optim()
    with CheckpointWriter(tmp_path, keep_last=2) as writer:
        for step in (1, 2, 3):
            _save(writer, step, model, opt)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-000002", "step-000003"]
    assert (tmp_path / "latest").read_text().strip() == "step-000003"
    assert not list(tmp_path.glob(".tmp-*"))


def test_a_failed_write_is_raised_on_the_training_thread(tmp_path):
    model, opt = _model_and_optim()
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    writer = CheckpointWriter(blocked, keep_last=1)
    _save(writer, 1, model, opt)  # the thread fails to create its directory
    with pytest.raises(RuntimeError, match="writing a checkpoint under .*a-file failed"):
        writer.wait()
    _save(writer, 2, model, opt)
    with pytest.raises(ValueError, match="the loop's own error"), writer:  # another error in flight wins
        raise ValueError("the loop's own error")


def test_host_copy_keeps_tied_weights_tied():
    model, _ = _model_and_optim(tie=True)
    state = model.state_dict()
    assert state["lm_head.weight"].data_ptr() == state["model.embed_tokens.weight"].data_ptr()
    copy = host_copy(state)
    assert copy["lm_head.weight"] is copy["model.embed_tokens.weight"]
    assert copy["lm_head.weight"] is not state["lm_head.weight"]


@pytest.mark.gpu
def test_a_cuda_model_is_snapshotted_to_host_memory(tmp_path):
    model, opt = _model_and_optim()
    model.cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    x = torch.randint(0, 100, (2, 16), device="cuda")
    model(x, x).loss.backward()
    opt.step()
    before = {k: v.cpu() for k, v in model.state_dict().items()}
    with CheckpointWriter(tmp_path, keep_last=1) as writer:
        _save(writer, 1, model, opt)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
    resumed = load_latest(tmp_path, torch.device("cpu"))
    assert resumed is not None
    for k, v in resumed.model.state_dict().items():
        if k in before:
            assert torch.equal(v, before[k]), k
    assert all(t.device.type == "cpu" for s in resumed.trainer["optim"][0]["state"].values() for t in s.values())


def test_an_owned_state_is_written_as_given_without_a_second_copy(tmp_path, monkeypatch):
    """FSDP's gathered full state is already a private host copy: copying 4.5 GB again would double host memory."""
    model, opt = _model_and_optim()
    owned = {k: v.clone() for k, v in model.state_dict().items()}
    monkeypatch.setattr(checkpoint, "host_copy", lambda obj, memo=None: pytest.fail("an owned state was copied"))
    with CheckpointWriter(tmp_path, keep_last=1) as writer:
        writer.save(5, model.config, owned, torch.float32, {"optim": [opt.state_dict()]},
                    {"loader": {}, "ledger": {}}, owned=True)
    resumed = load_latest(tmp_path, torch.device("cpu"))
    assert resumed is not None and resumed.state["step"] == 5
    for k, v in resumed.model.state_dict().items():
        if k in owned:
            assert torch.equal(v, owned[k]), k


@pytest.mark.gpu
def test_cuda_snapshots_reuse_their_pinned_buffers_and_stay_exact(tmp_path):
    """The device-to-host copy is queued into pinned buffers kept from the last checkpoint; what is written is the
    state at save(), though the training thread changes the weights before the copy has run."""
    model, opt = _model_and_optim()
    model.cuda()
    with CheckpointWriter(tmp_path, keep_last=2) as writer:
        for step in (1, 2):
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(1.0)
            expected = {k: v.cpu() for k, v in model.state_dict().items()}
            writer.save(step, model.config, model.state_dict(), torch.float32, {"rng": [rng_state()]},
                        {"loader": {}, "ledger": {}})
            with torch.no_grad():  # queued after the copy on the same stream
                for p in model.parameters():
                    p.mul_(3.0)
            if step == 1:
                buffers = [b.data_ptr() for b in writer._staging.buffers]
                assert buffers and all(b.is_pinned() for b in writer._staging.buffers)
    assert [b.data_ptr() for b in writer._staging.buffers] == buffers
    resumed = load_latest(tmp_path, torch.device("cpu"))
    assert resumed is not None and resumed.state["step"] == 2
    for k, v in resumed.model.state_dict().items():
        if k in expected:
            assert torch.equal(v, expected[k]), k


def test_every_minutes_checkpoints_by_the_clock(tmp_path, monkeypatch):
    from fronde.train.recipe import CheckpointSection

    clock = [1000.0]
    monkeypatch.setattr(checkpoint.time, "perf_counter", lambda: clock[0])
    writer = CheckpointWriter(tmp_path, keep_last=2)
    cadence = CheckpointSection(every_steps=100, every_minutes=30)
    cpu = torch.device("cpu")
    assert writer.due(100, cadence, cpu)  # a multiple of every_steps
    clock[0] += 29 * 60
    assert not writer.due(7, cadence, cpu)
    clock[0] += 60
    assert writer.due(8, cadence, cpu)  # 30 minutes since the stage started
    model, opt = _model_and_optim()
    _save(writer, 8, model, opt)
    writer.wait()
    assert not writer.due(9, cadence, cpu)  # the clock restarts at each save
    assert not writer.due(9, CheckpointSection(every_steps=0), cpu)


def test_a_stage_with_every_minutes_keeps_the_newest_by_time(recipe_file, monkeypatch):
    """A preemptible machine: a checkpoint whenever the minutes have passed, whatever every_steps says."""
    from tests.train.conftest import run_fronde

    recipe = recipe_file("timed")
    assert run_fronde(monkeypatch, "pretrain", str(recipe), "--set", "checkpoint.every_steps=0",
                      "--set", "checkpoint.every_minutes=0.00001") == 0
    root = recipe.parent / "runs" / "timed" / "pretrain" / "checkpoints"
    assert sorted(p.name for p in root.glob("step-*")) == ["step-000010", "step-000011", "step-000012"]


def test_a_model_dir_tokenizer_config_says_the_context_and_how_replies_parse(tmp_path):
    """A tokenizer prepared before response templates (2026-12-07) gets one in every model dir written from it, and
    today's chat template; a tokenizer fronde did not train keeps its own and gets no response template."""
    from fronde.data.chat import CHAT_TEMPLATE, RESPONSE_TEMPLATE

    config = load_preset("tiny")
    (tmp_path / "old").mkdir()
    (tmp_path / "foreign").mkdir()
    old, foreign = tmp_path / "old" / "tokenizer_config.json", tmp_path / "foreign" / "tokenizer_config.json"
    old.write_text(json.dumps({"model_max_length": 65536, "fronde_special_ids": {"pad": 0}}))
    foreign.write_text(json.dumps({"model_max_length": 8192, "chat_template": "{{ messages }}"}))
    checkpoint.write_model_tokenizer_config(old, config)
    checkpoint.write_model_tokenizer_config(foreign, config)
    assert json.loads(old.read_text()) == {"model_max_length": config.max_position_embeddings,
                                           "fronde_special_ids": {"pad": 0}, "response_template": RESPONSE_TEMPLATE,
                                           "chat_template": CHAT_TEMPLATE}
    assert (tmp_path / "old" / "chat_template.jinja").read_text() == CHAT_TEMPLATE
    assert json.loads(foreign.read_text()) == {"model_max_length": config.max_position_embeddings,
                                               "chat_template": "{{ messages }}"}
    assert not (tmp_path / "foreign" / "chat_template.jinja").exists()


def test_fronde_model_upgrade_brings_an_older_model_dir_up_to_date(tmp_path, monkeypatch, capsys):
    """A model dir as fronde wrote it before 2026-12-07: EOS alone as stop id, the data tokenizer's 65,536 as its
    length, no response template. `fronde model upgrade` fixes the two JSON files in place and nothing else."""
    from transformers import AutoTokenizer, GenerationConfig

    from fronde.data.chat import RESPONSE_TEMPLATE
    from fronde.data.io import sha256_file
    from fronde.data.tokenizer import train_tokenizer
    from fronde.model.checkpoint import save_pretrained
    from tests.model.helpers import tiny_model
    from tests.train.conftest import run_fronde

    d = tmp_path / "old-model"
    tok = train_tokenizer(["What is 6 x 7? 42\n"] * 50, vocab_size=300)
    tok.save(d)
    save_pretrained(tiny_model(vocab_size=tok.vocab_size, eos_token_id=tok.special.eos), d)
    config = json.loads((d / "tokenizer_config.json").read_text())
    del config["response_template"]
    (d / "tokenizer_config.json").write_text(json.dumps(config | {"model_max_length": 65536}))
    untouched = {p.name: sha256_file(p) for p in d.iterdir() if p.suffix != ".json" or p.name == "tokenizer.json"}
    before = {p.name: p.read_bytes() for p in d.iterdir()}

    assert run_fronde(monkeypatch, "model", "upgrade", str(d), "--dry-run") in (0, None)
    assert "would change generation_config.json: eos_token_id 2 -> [2, 6]" in capsys.readouterr().out.replace("\n", " ")
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    assert run_fronde(monkeypatch, "model", "upgrade", str(d)) in (0, None)
    out = capsys.readouterr().out.replace("\n", " ")
    assert "model_max_length 65536 -> 2048" in out and "response_template added" in out
    assert {p.name: sha256_file(p) for p in d.iterdir() if p.name in untouched} == untouched
    assert GenerationConfig.from_pretrained(d).eos_token_id == [tok.special.eos, tok.special.end]
    hf = AutoTokenizer.from_pretrained(d)
    assert hf.model_max_length == 2048
    assert hf.parse_response(hf.encode("<|think|>6 x 7<|/think|><|answer|>42<|/answer|><|end|>",
                                       add_special_tokens=False), prefix="")["content"] == "42"
    assert run_fronde(monkeypatch, "model", "upgrade", str(d)) in (0, None)
    assert "already current" in capsys.readouterr().out

    # written earlier on 2026-12-07: a template whose reasoning field vLLM refuses
    config = json.loads((d / "tokenizer_config.json").read_text())
    fields = config["response_template"]["fields"]
    fields["reasoning_content"] = fields.pop("thinking")
    (d / "tokenizer_config.json").write_text(json.dumps(config))
    assert run_fronde(monkeypatch, "model", "upgrade", str(d)) in (0, None)
    assert "response_template updated" in capsys.readouterr().out.replace("\n", " ")
    assert json.loads((d / "tokenizer_config.json").read_text())["response_template"] == RESPONSE_TEMPLATE

    # written before 2026-12-08: the chat template kept its system message in a namespace, which vLLM's reading of
    # the template choked on (an error and a traceback in its log); the rendering is the same
    from fronde.data.chat import CHAT_TEMPLATE

    new_head = CHAT_TEMPLATE[:CHAT_TEMPLATE.index("{{- '<|bos|>' -}}")]
    old_head = ("{%- set ns = namespace(system=none, rest=messages) -%}\n"
                "{%- if messages and messages[0]['role'] == 'system' -%}\n"
                "  {%- set ns.system = messages[0]['content'] -%}\n"
                "  {%- set ns.rest = messages[1:] -%}\n"
                "{%- endif -%}\n")
    old = (old_head + CHAT_TEMPLATE[len(new_head):]).replace("system_message", "ns.system").replace(
        "loop_messages", "ns.rest")
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "6 x 7?"}]
    rendered = AutoTokenizer.from_pretrained(d).apply_chat_template(chat, tokenize=False)
    (d / "chat_template.jinja").write_text(old)
    (d / "tokenizer_config.json").write_text(json.dumps(json.loads((d / "tokenizer_config.json").read_text())
                                                        | {"chat_template": old}))
    assert AutoTokenizer.from_pretrained(d).apply_chat_template(chat, tokenize=False) == rendered
    assert run_fronde(monkeypatch, "model", "upgrade", str(d)) in (0, None)
    out = capsys.readouterr().out.replace("\n", " ")
    assert "chat_template updated" in out and "chat_template.jinja: today's chat template" in out
    assert (d / "chat_template.jinja").read_text() == CHAT_TEMPLATE
    assert AutoTokenizer.from_pretrained(d).apply_chat_template(chat, tokenize=False) == rendered
