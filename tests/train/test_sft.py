"""SFT on a tiny real model: only assistant tokens carry loss, packing counts what it cuts, the loader resumes
exactly, and `fronde sft` runs end to end (falling loss, model dir, ledger, a clear error for a bad chat line)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fronde.data.errors import DataError
from fronde.data.tokenizer import train_tokenizer
from fronde.model.checkpoint import save_pretrained
from fronde.model.loss import IGNORE_INDEX
from fronde.train.metrics import read_metrics
from fronde.train.sft_data import Conversation, RowLoader, encode, pack
from tests.model.helpers import tiny_model

FRONDE = [sys.executable, "-m", "fronde.cli.main"]
ENV = os.environ | {"OMP_NUM_THREADS": "2", "COLUMNS": "200"}


def chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "system", "content": "Answer."}, {"role": "user", "content": q},
                         {"role": "assistant", "content": a}]}


CHATS = [chat(f"What is {i} plus {i}?", f"{i} plus {i} is {2 * i}.") for i in range(40)]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    """A tiny 'pretrained' model dir with a real tokenizer: what `fronde sft` starts from."""
    d = tmp_path_factory.mktemp("base") / "model"
    texts = [m["content"] for c in CHATS for m in c["messages"]] * 20
    tok = train_tokenizer(texts, vocab_size=400)
    tok.save(d)
    torch.manual_seed(0)
    save_pretrained(tiny_model(vocab_size=tok.vocab_size, eos_token_id=tok.special.eos), d)
    return d


def test_only_assistant_tokens_carry_loss(base_dir):
    from fronde.data.tokenizer import Tokenizer

    tok = Tokenizer.load(base_dir)
    ids, targets = encode(tok, Conversation("t", CHATS[3]["messages"]))
    trained = [t for t in targets if t != IGNORE_INDEX]
    assert tok.decode(trained) == "3 plus 3 is 6." + "<|end|>"  # the reply and its end-of-turn, nothing else
    for i, t in enumerate(targets[:-1]):
        if t != IGNORE_INDEX:
            assert t == ids[i + 1]


def test_pack_pads_counts_truncation_and_loader_resumes(base_dir):
    from fronde.data.tokenizer import Tokenizer

    tok = Tokenizer.load(base_dir)
    convs = [Conversation("t", c["messages"]) for c in CHATS]
    rows = pack(tok, convs, seq_len=64, seed=1)
    assert rows.stats.conversations == 40 and rows.stats.truncated == 0 and rows.inputs.shape[1] == 64
    pads = rows.inputs == tok.special.pad
    assert (rows.targets[pads] == IGNORE_INDEX).all()
    shortest = min(len(encode(tok, c)[0]) for c in convs)
    tight = pack(tok, convs, seq_len=shortest - 2, seed=1)
    assert tight.stats.truncated == 40  # every chat is longer than a row: cut, and counted
    with pytest.raises(DataError, match="no rows"):
        pack(tok, convs, seq_len=8, seed=1)  # rows too short to reach any reply: nothing to learn, said so
    a = RowLoader(rows, batch_size=3, seed=5)
    for _ in range(4):
        a.next_batch()
    b = RowLoader(rows, batch_size=3, seed=5)
    b.load_state_dict(a.state_dict())
    for _ in range(10):  # across an epoch boundary too
        xa, ya = a.next_batch()
        xb, yb = b.next_batch()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


RECIPE = """
[run]
name = "{name}"
out_dir = "{out}"
seed = 1

[init]
model = "{init}"

[sft]
chat_files = ["{chats}"]
val_fraction = 0.1

[optim]
lr = 3e-3
weight_decay = 0.0

[schedule]
max_steps = 16
warmup_steps = 2

[batch]
seq_len = 64
micro_batch_size = 4
global_batch_tokens = 512

[checkpoint]
every_steps = 8

[eval]
every_steps = 8
batches = 2

[log]
every_steps = 1
"""


def test_fronde_sft_end_to_end(tmp_path, base_dir):
    chats = tmp_path / "chats.jsonl"
    private = {"messages": [{"role": "user", "content": "Email jo@lab-mail.org or call +33612345678."},
                            {"role": "assistant", "content": "Noted: jo@lab-mail.org, on 127.0.0.1."}]}
    chats.write_text("\n".join(json.dumps(c) for c in [*CHATS, private]) + "\n")
    recipe = tmp_path / "sft.toml"
    recipe.write_text(RECIPE.format(name="s", out=tmp_path / "runs", init=base_dir, chats=chats))
    res = subprocess.run(FRONDE + ["sft", str(recipe)], env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    # the user's chats are PII-scrubbed by default, said, recorded in fronde.json and on the model card
    assert ("sft chat files: 41 conversations (messages 41); PII-scrubbed, replaced: email 2, phone 1; "
            "1 shared addresses") in " ".join(res.stdout.split())
    model = tmp_path / "runs" / "s" / "sft" / "model"
    scrub = json.loads((model / "fronde.json").read_text())["inputs"]["chat_pii"]
    assert scrub["scrubbed"] and scrub["replacements"]["email"] == 2 and scrub["kept_shared"]["ipv4"] == 1
    assert "PII-scrubbed (email 2, phone 1; 1 shared addresses kept)" in (model / "MODEL_CARD.md").read_text()
    run = tmp_path / "runs" / "s"
    records = read_metrics(run / "sft" / "metrics.jsonl")
    losses = [r["loss"] for r in records]
    assert losses[-1] < 0.7 * losses[0]
    assert any("val_loss" in r for r in records)
    assert (run / "sft" / "model" / "model.safetensors").is_file() and (run / "sft" / "model" / "tokenizer.json").is_file()
    ledger = json.loads((run / "ledger.json").read_text())
    assert [s["stage"] for s in ledger["stages"]] == ["sft"]
    stats = json.loads((run / "sft" / "data_stats.json").read_text())
    assert stats["train"]["conversations"] + stats["val"]["conversations"] == 41
    # the run says how many passes over its rows the planned steps make (16 x 8 rows over 20: 6.4, no warning)
    out = " ".join(res.stdout.split())
    assert f"16 steps x 8 rows = 6.4 epochs of {stats['train']['rows']} rows" in out and "warning:" not in out

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(CHATS[0]) + "\n" + '{"messages": [{"role": "wizard", "content": "x"}]}\n')
    res = subprocess.run(FRONDE + ["sft", str(recipe), "--set", f'sft.chat_files=["{bad}"]', "--set", "run.name=b"],
                         env=ENV, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "bad.jsonl:2" in res.stdout and "wizard" in res.stdout


def test_two_processes_and_accumulation_take_the_same_sft_steps_as_one_batch(tmp_path, base_dir):
    """The same 512-token step as one micro-batch of 4 rows, as 2 accumulated micro-batches of 2, and on 2 gloo
    processes: the loss is the mean over the step's assistant tokens however the batch is cut (each micro-batch
    weighted by its share of them), so the three runs log the same losses."""
    chats = tmp_path / "chats.jsonl"
    chats.write_text("\n".join(json.dumps(c) for c in CHATS) + "\n")
    losses = {}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                "fronde.cli.main"]
    for name, launcher, micro in (("one", FRONDE, 4), ("accum", FRONDE, 2), ("two", torchrun, 2)):
        recipe = tmp_path / f"{name}.toml"
        recipe.write_text(RECIPE.format(name=name, out=tmp_path / "runs", init=base_dir, chats=chats))
        res = subprocess.run(launcher + ["sft", str(recipe), "--set", "schedule.max_steps=6", "--set",
                                         f"batch.micro_batch_size={micro}", "--set", "checkpoint.every_steps=0"],
                             env=ENV | {"OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        losses[name] = {r["step"]: r["loss"] for r in read_metrics(tmp_path / "runs" / name / "sft" / "metrics.jsonl")
                        if "loss" in r}
    assert losses["one"].keys() == losses["two"].keys() == losses["accum"].keys() and len(losses["one"]) == 6
    for step, loss in losses["one"].items():
        for other in ("accum", "two"):
            assert losses[other][step] == pytest.approx(loss, rel=2e-4), (other, step)


def test_tool_use_task_mix_renders_calculator_calls_with_the_schema():
    from fronde.train.sft import SFTRecipe, task_conversations

    recipe = SFTRecipe.model_validate({"sft": {"tasks": [{"name": "arithmetic:2", "n": 5},
                                                         {"name": "arithmetic:2", "n": 5, "tools": ["calculator"]}]}})
    convs = task_conversations(recipe.sft.tasks, None, 0)
    plain, tools = convs[:5], convs[5:]
    assert all(c.tools is None for c in plain) and all(c.tools[0]["function"]["name"] == "calculator" for c in tools)
    assert [m["role"] for m in tools[0].messages] == ["user", "assistant", "tool", "assistant"]
    assert {c.messages[0]["content"] for c in plain} != {c.messages[0]["content"] for c in tools}  # other problems
    bad = SFTRecipe.model_validate({"sft": {"tasks": [{"name": "arithmetic:2", "n": 5, "tools": ["python"]}]}})
    with pytest.raises(Exception, match="calculator"):
        task_conversations(bad.sft.tasks, None, 0)


def test_task_mix_options_reach_the_task_and_bad_ones_name_the_field():
    from fronde.train.sft import SFTRecipe, task_conversations

    recipe = SFTRecipe.model_validate({"sft": {"tasks": [{"name": "arithmetic:1", "n": 40,
                                                          "options": {"columns": 1.0}}]}})
    convs = task_conversations(recipe.sft.tasks, None, 0)
    column = re.compile(r"^\d+ [+-] \d [+-] [01] = \d+$", re.MULTILINE)
    assert all(column.search(c.messages[-1]["reasoning_content"]) for c in convs)
    bad = SFTRecipe.model_validate({"sft": {"tasks": [{"name": "arithmetic:1", "options": {"colums": 1}}]}})
    with pytest.raises(Exception, match="colums"):
        task_conversations(bad.sft.tasks, None, 0)


def test_replayed_text_rows_make_up_the_fraction_and_train_every_token(data_dir, base_dir):
    from fronde.data.shards import open_split
    from fronde.data.tokenizer import Tokenizer
    from fronde.train.sft import SFTRecipe, sft_inputs
    from fronde.train.sft_data import with_text

    tok = Tokenizer.load(data_dir / "tokenizer")
    convs = [Conversation("t", c["messages"]) for c in CHATS]
    rows = pack(tok, convs, 64, seed=0)
    mixed = with_text(rows, tok, data_dir, 0.25, seed=1)
    n_text = mixed.stats.text_rows
    assert n_text == round(len(rows.inputs) / 3) and len(mixed.inputs) == len(rows.inputs) + n_text
    assert mixed.stats.rows == len(mixed.inputs) and mixed.stats.trained_tokens == rows.stats.trained_tokens
    assert torch.equal(mixed.inputs[: len(rows.inputs)], rows.inputs)  # the chat rows are untouched
    text_x, text_y = mixed.inputs[len(rows.inputs):], mixed.targets[len(rows.inputs):]
    assert torch.equal(text_y[:, :-1], text_x[:, 1:]) and bool((text_y != IGNORE_INDEX).all())
    stream = torch.from_numpy(np.concatenate([s.tokens for s in open_split(data_dir, "train")]).astype("int64"))
    window = torch.cat([text_x[0], text_y[0, -1:]])
    assert any(torch.equal(stream[i : i + 65], window) for i in (stream == window[0]).nonzero().flatten().tolist())
    assert torch.equal(with_text(rows, tok, data_dir, 0.25, seed=1).inputs, mixed.inputs)  # the same every time
    with pytest.raises(DataError, match="sft.text_data: .* another tokenizer"):
        with_text(rows, Tokenizer.load(base_dir), data_dir, 0.25, seed=1)
    recipe = SFTRecipe.model_validate({"sft": {"text_fraction": 0.25, "text_data": str(data_dir)}})
    assert sft_inputs(recipe)["text"]["fraction"] == 0.25  # the lineage names the replayed data by its manifest
    assert sft_inputs(recipe)["text"]["data"]["manifest_sha256"]


def test_chat_files_are_scrubbed_everywhere_text_lives(tmp_path):
    """Content, reasoning and tool-call arguments (a JSON string or an object) are scrubbed; without a counter the
    file is read verbatim (sft.pii = false)."""
    from collections import Counter

    from fronde.train.sft_data import read_chat_file

    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"messages": [
        {"role": "user", "content": "I am ana@lab-mail.org"},
        {"role": "assistant", "content": "", "reasoning_content": "her IP is 83.12.45.6",
         "tool_calls": [{"function": {"name": "crm", "arguments": json.dumps({"phone": "+33612345678"})}},
                        {"function": {"name": "crm", "arguments": {"to": ["ana@lab-mail.org"], "n": 3}}}]},
        {"role": "tool", "content": "ok"}, {"role": "assistant", "content": "Done."}]}) + "\n")
    counts: Counter[str] = Counter()
    (conv,) = read_chat_file(path, counts)
    text = json.dumps(conv.messages)
    assert "lab-mail" not in text and "83.12" not in text and "+3361" not in text
    assert conv.messages[1]["tool_calls"][1]["function"]["arguments"] == {"to": ["<EMAIL>"], "n": 3}
    assert json.loads(conv.messages[1]["tool_calls"][0]["function"]["arguments"]) == {"phone": "<PHONE>"}
    assert counts == Counter({"email": 2, "ipv4": 1, "phone": 1})
    (verbatim,) = read_chat_file(path)
    assert "ana@lab-mail.org" in json.dumps(verbatim.messages)


def test_sft_epochs_are_said_and_many_are_warned_about():
    from fronde.train.sft import SFTRecipe, sft_epochs

    recipe = SFTRecipe.model_validate({"schedule": {"max_steps": 500, "warmup_steps": 10},
                                       "batch": {"seq_len": 256, "global_batch_tokens": 4096}})
    line, warning = sft_epochs(5028, recipe)  # tiny-cpu's speedrun: 500 steps x 16 rows over 5,028 rows
    assert line.endswith("= 1.6 epochs of 5,028 rows") and warning is None
    line, warning = sft_epochs(200, recipe)
    assert "40.0 epochs" in line and "about 125 steps" in warning



def test_replayed_text_defaults_to_the_starting_models_pretraining_data(tmp_path, data_dir):
    """A model pretrained on a data dir outside the run (data.dir=...) replays that data in SFT, as its fronde.json
    says; sft.text_data wins; a model without lineage falls back to the run's data/."""
    from fronde.train.lineage import FORMAT, LINEAGE
    from fronde.train.sft import SFTRecipe

    model = tmp_path / "model"
    model.mkdir()
    (model / LINEAGE).write_text(json.dumps({"format": FORMAT, "data": [{"path": str(data_dir)}]}))
    recipe = SFTRecipe.model_validate({"run": {"name": "r", "out_dir": str(tmp_path)}, "init": {"model": str(model)}})
    assert recipe.text_dir == data_dir
    other = SFTRecipe.model_validate({"run": {"name": "r", "out_dir": str(tmp_path)}, "init": {"model": str(model)},
                                      "sft": {"text_data": str(tmp_path / "mine")}})
    assert other.text_dir == tmp_path / "mine"
    (model / LINEAGE).unlink()
    assert recipe.text_dir == tmp_path / "r" / "data"
    # nothing prepared there (a model saved by transformers has no fronde.json): the error says what to set
    from fronde.train.recipe import RecipeError
    from fronde.train.sft import sft_rows

    replaying = SFTRecipe.model_validate({"run": {"name": "r", "out_dir": str(tmp_path)},
                                          "init": {"model": str(model)}, "sft": {"text_fraction": 0.05}})
    with pytest.raises(RecipeError, match=r"r/data, which holds no prepared data .*sft\.text_data .*sft\.text_fraction = 0"):
        sft_rows(replaying, None, [], [])  # type: ignore[arg-type]


def test_chat_files_lose_conversations_that_hold_a_test_problem(tmp_path):
    """A chat file conversation sharing a passage with a test set is dropped (counted by set): sft.decontaminate, or
    by default the sets the starting model's pretraining data was checked against (its fronde.json)."""
    from collections import Counter

    from fronde.tasks import get_task
    from fronde.train.lineage import FORMAT, LINEAGE
    from fronde.train.sft import SFTRecipe, sft_conversations

    problem = get_task("gsm-symbolic:eng").test()[0].prompt
    chats = tmp_path / "chats.jsonl"
    chats.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                        {"role": "assistant", "content": "42"}]})
                               for q in (f"Solve: {problem}", "What does our VPN policy say about travel?")) + "\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / LINEAGE).write_text(json.dumps({"format": FORMAT, "data": [
        {"path": "x", "decontamination": {"test_sets": {"gsm-symbolic:eng": 120}}}]}))

    def kept(**sft) -> tuple[int, Counter]:
        recipe = SFTRecipe.model_validate({"run": {"out_dir": str(tmp_path)}, "init": {"model": str(model)},
                                           "sft": {"chat_files": [str(chats)], "val_fraction": 0.0, **sft}})
        dropped: Counter = Counter()
        train, _ = sft_conversations(recipe, contaminated=dropped)
        return len(train), dropped

    assert kept() == (1, Counter({"gsm-symbolic:eng": 1}))  # the lineage's sets
    assert kept(decontaminate=[]) == (2, Counter())
    assert kept(decontaminate=["humaneval"]) == (2, Counter())
