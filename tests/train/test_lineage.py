"""fronde.json and MODEL_CARD.md: publishing writes them into the model dir (which transformers and fronde still
load), the lineage chains across stages by hash and survives the model dir being moved away from its run, eval
results land on the card, the licence field follows the data, and the stage lock tells running from failed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fronde.data.config import DataConfig, SourceConfig
from fronde.data.io import sha256_file
from fronde.data.pipeline import TOKENIZER_DIR, prepare
from fronde.data.tokenizer import Tokenizer
from fronde.model.checkpoint import from_pretrained, save_pretrained
from fronde.train.ledger import Ledger
from fronde.train.lineage import (
    FORMAT,
    LINEAGE,
    Lineage,
    Provenance,
    ancestry,
    lineage_id,
    read_lineage,
    teacher_identity,
)
from fronde.train.loop import publish_final
from fronde.train.model_card import (
    CARD,
    GENERATED,
    UNRECORDED,
    licence_fields,
    update_model_card,
    write_model_card,
)
from fronde.train.pretrain import tokenizer_files
from fronde.train.recipe import PretrainRecipe, RecipeError
from fronde.train.sft import SFTRecipe, sft_inputs
from fronde.train.stage_lock import LOCK, StageLock, read_lock
from tests.model.helpers import tiny_model


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A prepared MIT-licensed corpus of 20 notes, some with an e-mail address (so PII counts are non-zero)."""
    src = tmp_path_factory.mktemp("notes")
    for i in range(20):
        mail = f" Contact dev{i}@widgets-lab.org; the demo runs on 127.0.0.1." if i % 4 == 0 else ""
        (src / f"n{i:02d}.txt").write_text(f"Note {i}: {i * 3} widgets on day {i % 7}.{mail}\n" * 4)
    out = tmp_path_factory.mktemp("data")
    prepare(DataConfig(sources=[SourceConfig(path=str(src), licence="MIT")], vocab_size=512, near_dedup=False,
                       val_fraction=0.2), out)
    return out


def checkpoint_model(root: Path, tok_dir: Path, seed: int = 0, **overrides) -> Path:
    """A checkpoint's model dir as the loop writes one: HF weights + the tokenizer files."""
    tok = Tokenizer.load(tok_dir)
    out = root / "ckpt-model"
    torch.manual_seed(seed)
    save_pretrained(tiny_model(seed=seed, vocab_size=tok.vocab_size, eos_token_id=tok.special.eos, **overrides), out)
    for name, src in tokenizer_files(tok_dir).items():
        shutil.copy2(src, out / name)
    return out


def stage_cost(name: str, tokens: int, seconds: float):
    cost = Ledger().stage(name, device="cpu", n_devices=1, peak_flops_per_device=1e11, price_per_device_hour=2.0,
                          watts_per_device=100.0)
    cost.tokens, cost.wall_seconds = tokens, seconds
    return cost


def front_matter(card: str) -> str:
    match = re.match(r"^---\n(.*?)\n---\n", card, re.DOTALL)
    assert match, card[:200]
    return match.group(1)


@pytest.fixture
def pretrained(tmp_path, data_dir) -> tuple[Path, PretrainRecipe]:
    recipe = PretrainRecipe.model_validate({"run": {"name": "lin", "out_dir": str(tmp_path / "runs")},
                                            "data": {"dir": str(data_dir)}})
    final = recipe.run_dir / "pretrain" / "model"
    final.parent.mkdir(parents=True)
    publish_final(checkpoint_model(tmp_path, data_dir / TOKENIZER_DIR), final,
                  Lineage("pretrain", recipe, 5, stage_cost("pretrain", 2560, 1800.0), Provenance(data_dirs=[data_dir])))
    return final, recipe


def test_publish_writes_lineage_and_card_and_the_dir_still_loads(pretrained, data_dir):
    from transformers import AutoTokenizer, DeepseekV3ForCausalLM

    final, recipe = pretrained
    assert not final.with_name("model.tmp").exists()
    record = read_lineage(final)
    assert record["format"] == "fronde-lineage/1" and record["stage"] == "pretrain" and record["step"] == 5
    assert record["id"] == lineage_id(record)
    assert record["model"]["weights_file"] == "model.safetensors"
    assert record["model"]["weights_sha256"] == sha256_file(final / "model.safetensors")
    assert record["model"]["tokenizer_sha256"] == sha256_file(final / "tokenizer.json")
    assert record["recipe"] == {"kind": "PretrainRecipe", "digest": recipe.digest(),
                                "values": recipe.model_dump(mode="json")}
    assert record["parent"] is None
    manifest = json.loads((data_dir / "manifest.json").read_text())
    data = record["data"][0]
    assert data["manifest_sha256"] == sha256_file(data_dir / "manifest.json")
    assert data["cache_key"] == manifest["cache_key"] and data["pii"]["total"] == manifest["pii"]["total"] > 0
    assert [(s["licence"], s["pii"]) for s in data["sources"]] == [("MIT", True)]
    ledger = record["ledger"]
    assert ledger["stage"] == "pretrain" and ledger["tokens"] == 2560 and ledger["cost"] == pytest.approx(1.0)

    card = (final / CARD).read_text()
    meta = front_matter(card)
    assert 'license: "mit"' in meta and '- "MIT"' in meta and "base_model" not in meta
    assert data["manifest_sha256"] in card and f"email {manifest['pii']['replacements']['email']}" in card
    kept = manifest["pii"]["kept_shared"]["ipv4"]
    assert kept > 0 and data["pii"]["kept_shared"]["ipv4"] == kept
    assert f"It left {kept:,} addresses that every machine shares in place" in card
    assert "Not evaluated yet" in card and "No safety tuning" in card and "| lin / pretrain | 5 |" in card
    assert f"Tokenizer: {Tokenizer.load(final).vocab_size:,} tokens, trained on the pretraining data" in card
    assert f"vllm serve {final} --reasoning-parser hf --tool-call-parser hf" in card
    assert "--speculative" not in card  # no MTP layer to draft with
    snippet = card.split("```python\n")[1].split("```")[0].replace("max_new_tokens=256", "max_new_tokens=4")
    scope: dict = {}
    exec(snippet, scope)  # the card's transformers snippet runs as written, on this model dir
    assert scope["reply"]["role"] == "assistant"

    hf = DeepseekV3ForCausalLM.from_pretrained(final)  # the extra files do not disturb transformers
    assert hf.config.vocab_size == len(AutoTokenizer.from_pretrained(final))
    assert from_pretrained(final).config.vocab_size == hf.config.vocab_size
    assert set(tokenizer_files(final)) == {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                           "chat_template.jinja"}  # a child stage's checkpoints never inherit them


def test_the_card_of_a_model_with_an_mtp_layer_says_how_to_draft_with_it(tmp_path, data_dir):
    recipe = PretrainRecipe.model_validate({"run": {"name": "mtp", "out_dir": str(tmp_path / "runs")},
                                            "data": {"dir": str(data_dir)}})
    final = recipe.run_dir / "pretrain" / "model"
    final.parent.mkdir(parents=True)
    lineage = Lineage("pretrain", recipe, 5, stage_cost("pretrain", 2560, 1800.0), Provenance(data_dirs=[data_dir]))
    publish_final(checkpoint_model(tmp_path, data_dir / TOKENIZER_DIR, num_nextn_predict_layers=1), final, lineage)
    card = (final / CARD).read_text()
    assert f"fronde serve {final} --speculative-method mtp" in card
    assert (f"vllm serve {final} --reasoning-parser hf --tool-call-parser hf --enable-auto-tool-choice "
            """--speculative-config '{"method": "mtp", "num_speculative_tokens": 1}'""") in card


def test_lineage_chains_across_stages_and_travels_with_the_model(tmp_path, pretrained, data_dir):
    parent, _ = pretrained
    chats = tmp_path / "chats.jsonl"
    chats.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                              {"role": "assistant", "content": "hello"}]}) + "\n")
    recipe = SFTRecipe.model_validate({"run": {"name": "lin", "out_dir": str(tmp_path / "runs")},
                                       "sft": {"chat_files": [str(chats)],
                                               "tasks": [{"name": "arithmetic:1", "options": {"columns": 1.0}}]}})
    final = recipe.run_dir / "sft" / "model"
    publish_final(checkpoint_model(tmp_path / "s", parent, seed=1), final,
                  Lineage("sft", recipe, 3, stage_cost("sft", 100, 60.0),
                          Provenance(parent=parent, inputs=sft_inputs(recipe))))
    record, parent_record = read_lineage(final), read_lineage(parent)
    assert record["parent"]["id"] == parent_record["id"]
    assert record["parent"]["weights_sha256"] == sha256_file(parent / "model.safetensors")
    assert record["inputs"]["chat_files"][0]["sha256"] == sha256_file(chats)
    assert record["inputs"]["tasks"] == [{"name": "arithmetic:1", "n": 1000, "options": {"columns": 1.0}}]
    assert [r["stage"] for r in ancestry(record)] == ["pretrain", "sft"]

    moved = tmp_path / "elsewhere" / "model"
    shutil.copytree(final, moved)
    shutil.rmtree(tmp_path / "runs")
    (moved / CARD).unlink()
    card = write_model_card(moved).read_text()  # regenerated from fronde.json alone: the run and data are gone
    meta = front_matter(card)
    assert 'license: "other"' in meta and '- "MIT"' in meta and f'- "{UNRECORDED}"' in meta
    assert "base_model" not in meta  # the parent is a local dir: the Hub refuses a path there
    assert sha256_file(data_dir / "manifest.json") in card and "chats.jsonl" in card
    assert "| lin / pretrain |" in card and "| lin / sft |" in card and "| **total** |  |  | 2,660 |" in card

    record["recipe"]["values"]["optim"]["lr"] = 1.0  # any edit shows: the id no longer matches
    assert lineage_id(record) != record["id"]


def test_eval_results_update_the_card_without_changing_the_id(pretrained):
    final, _ = pretrained
    before = read_lineage(final)["id"]

    def result(task: str, acc: float) -> dict:
        return {"task": task, "kind": "generative", "metrics": {"accuracy": acc, "pass@1": acc, "accuracy_seen": 1.0},
                "dataset": {"examples": 50, "hash": "sha256:x"}, "settings": {"shots": 0, "temperature": 0.0},
                "created": "2026-01-01T00:00:00Z", "examples": [{"outputs": ["long"]}]}

    update_model_card(final, [result("arithmetic:1", 12.0), result("countdown", 3.0)])
    update_model_card(final, [result("arithmetic:1", 40.0)])
    record = read_lineage(final)
    assert record["id"] == before == lineage_id(record)
    assert [(e["task"], e["metrics"]["accuracy"]) for e in record["evaluations"]] == [("arithmetic:1", 40.0),
                                                                                       ("countdown", 3.0)]
    assert "examples" not in json.dumps(record["evaluations"][0]["settings"])
    card = (final / CARD).read_text()
    assert "| `arithmetic:1` | accuracy 40, pass@1 40 | 50 |" in card and "accuracy_seen" not in card
    assert update_model_card(final.parent, []) is None  # not a published model dir: nothing written


@pytest.mark.parametrize("licences, expected", [
    ([("Apache-2.0", "a")], {"license": "apache-2.0"}),
    ([("PSF-2.0", "a"), ("PSF-2.0", "b")], {"license": "other", "license_name": "psf-2.0",
                                           "license_link": "https://spdx.org/licenses/PSF-2.0.html"}),
    ([("GPL-2.0-or-later", "a"), ("MIT", "b")], {"license": "other", "license_name": "mixed-data-licences"}),
    ([("MIT", "a"), (UNRECORDED, "b")], {"license": "other", "license_name": "mixed-data-licences"}),
    ([(UNRECORDED, "a")], {"license": "unknown"}),
    ([], {"license": "unknown"}),
])
def test_the_licence_field_follows_the_data(licences, expected):
    assert licence_fields(licences) == expected


def test_generated_task_data_carries_no_licence():
    from fronde.train.model_card import TASK_DATA

    assert TASK_DATA["arithmetic"][1] == TASK_DATA["countdown"][1] == GENERATED
    assert TASK_DATA["gsm-symbolic"][1] is None  # upstream terms not recorded: counted as unknown, not guessed


def test_teacher_identity_by_content(tmp_path, pretrained):
    parent, _ = pretrained
    fronde_teacher = teacher_identity(str(parent))
    assert fronde_teacher["kind"] == "fronde" and fronde_teacher["id"] == read_lineage(parent)["id"]
    assert fronde_teacher["weights_sha256"] == sha256_file(parent / "model.safetensors")
    gguf = tmp_path / "t.Q4_1.gguf"
    gguf.write_bytes(b"GGUF not really")
    assert teacher_identity(str(gguf))["weights_sha256"] == sha256_file(gguf)
    assert "error" in teacher_identity(str(tmp_path / "missing"))


def test_the_stage_lock_records_how_a_stage_ended(tmp_path):
    stage = tmp_path / "sft"
    with StageLock(stage, "sft"):
        lock = read_lock(stage)
        assert lock["status"] == "running" and lock["pid"] == os.getpid()
    assert not (stage / LOCK).exists()  # returned normally: nothing left

    with pytest.raises(ZeroDivisionError), StageLock(stage, "sft"):
        raise ZeroDivisionError("division by zero")
    assert read_lock(stage)["status"] == "failed" and "ZeroDivisionError" in read_lock(stage)["error"]

    with pytest.raises(KeyboardInterrupt), StageLock(stage, "sft"):
        raise KeyboardInterrupt
    assert read_lock(stage)["status"] == "stopped"

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (stage / LOCK).write_text(json.dumps(read_lock(stage) | {"status": "running", "pid": other.pid}))
        with pytest.raises(RecipeError, match=f"process {other.pid}"), StageLock(stage, "sft"):
            pass  # a live process trains this stage: a second one must not
    finally:
        other.kill()
        other.wait()
    with StageLock(stage, "sft"):  # its process is gone: the lock is taken over
        assert read_lock(stage)["pid"] == os.getpid()


def test_the_card_languages_follow_the_tasks():
    """A French recipe's card says French: arithmetic asked in French counts as French, in English as English."""
    from fronde.train.model_card import languages

    def chain(*tasks: str) -> list[dict]:
        return [{"stage": "sft", "inputs": {"tasks": [{"name": t} for t in tasks]}}]

    assert languages(chain("arithmetic:1:fra", "gsm-symbolic:fra")) == (["fr"], False)
    assert languages(chain("arithmetic:fra")) == (["fr"], False)
    assert languages(chain("arithmetic:1", "arithmetic")) == (["en"], False)
    assert languages(chain("countdown", "my.jsonl")) == (["en"], True)



def test_the_card_says_which_user_chats_were_not_scrubbed(tmp_path, pretrained):
    parent, _ = pretrained
    chats = tmp_path / "chats.jsonl"
    chats.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                              {"role": "assistant", "content": "hello"}]}) + "\n")
    recipe = SFTRecipe.model_validate({"run": {"name": "raw", "out_dir": str(tmp_path / "runs")},
                                       "sft": {"chat_files": [str(chats)], "pii": False}})
    final = recipe.run_dir / "sft" / "model"
    publish_final(checkpoint_model(tmp_path / "s", parent, seed=1), final,
                  Lineage("sft", recipe, 3, stage_cost("sft", 100, 60.0),
                          Provenance(parent=parent, inputs=sft_inputs(recipe))))
    assert read_lineage(final)["inputs"]["chat_pii"] == {"scrubbed": False}
    card = (final / CARD).read_text()
    assert "user data, **not** PII-scrubbed" in card
    assert "Some post-training chat or prompt files were not PII-scrubbed" in card


def test_the_card_says_when_pretraining_repeated_a_small_corpus_or_validated_on_training_data():
    from fronde.train.model_card import data_limits

    def chain(train: int, val: int | None, step: int = 100) -> list[dict]:
        tokens = {"train": train} | ({"val": val} if val is not None else {})
        return [{"stage": "sft", "data": []},
                {"stage": "pretrain", "step": step, "data": [{"tokens": tokens}],
                 "recipe": {"values": {"batch": {"global_batch_tokens": 1000}}}}]

    assert data_limits(chain(train=100_000, val=5_000)) == []  # 1 epoch
    assert data_limits(chain(train=25_000, val=5_000)) == []  # exactly 4 epochs: still fine
    repeated = data_limits(chain(train=10_000, val=5_000))
    assert len(repeated) == 1 and "10,000 training tokens 10.0 times" in repeated[0]
    (no_val,) = data_limits(chain(train=10**9, val=None))
    assert "no validation split" in no_val


def test_the_models_trained_on_a_file_through_their_ancestry(tmp_path, data_dir):
    """`fronde runs --trained-on FILE`: a pretraining file (matched by content, even copied elsewhere) reaches the
    pretrained model and the model made from it; a chat file only the latter; a model whose data dir is gone and
    unlisted cannot tell."""
    from fronde.data.manifest import read_manifest
    from fronde.train.trained_on import published_models, trained_on

    manifest = read_manifest(data_dir)
    kept = next(f for f in manifest["files"] if f["kept"])
    runs = tmp_path / "runs"
    base = runs / "r" / "pretrain" / "model"
    base.mkdir(parents=True)
    record = {"format": FORMAT, "stage": "pretrain", "run": {"name": "r"}, "parent": None,
              "data": [{"path": str(data_dir), "manifest_sha256": sha256_file(data_dir / "manifest.json"),
                        "sources": [{"name": "python-stdlib", "files": len(manifest["files"])}]}], "inputs": {}}
    (base / LINEAGE).write_text(json.dumps(record))
    chats = tmp_path / "chats.jsonl"
    chats.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    sft = runs / "r" / "sft" / "model"
    sft.mkdir(parents=True)
    (sft / LINEAGE).write_text(json.dumps({
        "format": FORMAT, "stage": "sft", "run": {"name": "r"}, "data": [],
        "parent": {"path": str(base), "lineage": record},
        "inputs": {"chat_files": [{"path": str(chats), "sha256": sha256_file(chats)}]}}))
    lost = runs / "old" / "pretrain" / "model"
    lost.mkdir(parents=True)
    (lost / LINEAGE).write_text(json.dumps({**record, "run": {"name": "old"}, "data": [
        {"path": str(tmp_path / "deleted"), "manifest_sha256": "0" * 64, "sources": [{"name": "x", "files": 9}]}]}))

    merged = runs / "mine"  # `fronde model merge-lora ... runs/mine`: a model dir beside the runs, not in one
    merged.mkdir()
    (merged / LINEAGE).write_text(json.dumps({
        "format": FORMAT, "stage": "merge-lora", "run": {"name": "mine"}, "data": [],
        "parent": {"path": str(base), "lineage": record}, "inputs": {"adapter": {"path": "lora"}}}))

    copy = tmp_path / "elsewhere.py"
    shutil.copy(kept["path"], copy)
    models = published_models(runs)
    assert models == [merged, lost, base, sft] and published_models(merged) == [merged]
    _, uses, unknown = trained_on([copy], models)
    assert [(Path(u.model), u.by) for u in uses] == [(merged, "r / pretrain"), (base, "r / pretrain"),
                                                      (sft, "r / pretrain")]
    assert uses[0].file == kept["path"] and f"{kept['kept']} of {kept['documents']} documents kept" in uses[0].how
    assert [(Path(u.model), "gone" in u.reason) for u in unknown] == [(lost, True)]
    _, uses, _ = trained_on([chats], models)
    assert [(Path(u.model), u.how) for u in uses] == [(sft, "chat file")]
    # asked about the archive the file was handed over in: matched member by member
    import zipfile

    with zipfile.ZipFile(tmp_path / "handover.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.write(kept["path"], "lib/kept.py")
        z.writestr("lib/other.txt", "never trained on")
    handover = tmp_path / "handover.zip"
    digests, uses, _ = trained_on([handover], models)
    assert sorted(digests.values()) == [str(handover), f"{handover}!lib/kept.py", f"{handover}!lib/other.txt"]
    assert [(Path(u.model), u.file) for u in uses] == [(merged, kept["path"]), (base, kept["path"]),
                                                        (sft, kept["path"])]

    res = subprocess.run([sys.executable, "-m", "fronde.cli.main", "runs", str(runs), "--trained-on", str(copy),
                          "--json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["models_checked"] == 4 and {u["model"] for u in out["uses"]} == {str(merged), str(base), str(sft)}
    assert [u["model"] for u in out["cannot_tell"]] == [str(lost)]
    res = subprocess.run([sys.executable, "-m", "fronde.cli.main", "runs", str(runs), "--trained-on",
                          str(tmp_path / "handover.zip")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "and 2 archive members, each matched by its own sha256" in res.stdout, res.stderr
    (tmp_path / "cut.zip").write_bytes((tmp_path / "handover.zip").read_bytes()[:50])
    res = subprocess.run([sys.executable, "-m", "fronde.cli.main", "runs", str(runs), "--trained-on",
                          str(tmp_path / "cut.zip")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "cut.zip: unreadable archive" in res.stdout + res.stderr
