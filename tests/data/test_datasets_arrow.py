"""Hugging Face `datasets` on disk, as a team has it after `save_to_disk` (offline, no hub): its data-*.arrow files
are a corpus and a chat file, its metadata JSON is named as skipped, and a cut file is a counted drop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fronde.data import sources
from fronde.data.config import DataConfig, SourceConfig
from fronde.data.manifest import summary_rows
from fronde.data.pipeline import prepare
from fronde.train.sft import SFTData
from fronde.train.sft_data import read_chat_file
from tests.data.conftest import prepared_texts

datasets = pytest.importorskip("datasets")

TEXTS = [f"Note {i}: the pump at station {i} was serviced on day {i % 28 + 1}, and its pressure read {i * 3} bar."
         for i in range(300)]
CHAT = [{"role": "user", "content": "Combien font 2 et 3 ?"}, {"role": "assistant", "content": "Cinq."}]


def test_a_saved_dataset_dict_is_a_corpus_and_its_metadata_is_named(tmp_path: Path):
    saved = tmp_path / "notes"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": TEXTS[:250], "id": list(range(250))}),
                          "test": datasets.Dataset.from_dict({"text": TEXTS[250:], "id": list(range(50))})}
                         ).save_to_disk(str(saved))
    arrows = sorted(saved.rglob("*.arrow"))
    assert arrows and all(a.name.startswith("data-") for a in arrows)  # what datasets writes, not hand-made
    files, skipped = sources.expand_source(str(saved))
    assert sorted(files) == arrows
    assert {Path(p).name for p, _ in skipped} == {"dataset_dict.json", "dataset_info.json", "state.json"}
    assert all("Hugging Face datasets metadata" in why for _, why in skipped)
    out = tmp_path / "data"
    m = prepare(DataConfig(sources=[SourceConfig(path=str(saved))], vocab_size=512, near_dedup=False,
                           val_fraction=0.0), out).manifest
    assert m["documents"]["kept"] == len(TEXTS)
    assert sorted(prepared_texts(out)) == sorted(TEXTS)
    rows = dict(summary_rows(m))  # what `fronde data prepare` and `inspect` print: the files left unread, and why
    assert rows["not read"].startswith("5 files: a Hugging Face datasets metadata file (the .arrow files beside it "
                                       "are read) (the manifest")


def test_saved_chats_train_sft_and_a_cut_file_is_a_counted_drop(tmp_path: Path):
    saved = tmp_path / "chats"
    datasets.Dataset.from_list([{"messages": CHAT}] * 3).save_to_disk(str(saved))
    arrow = next(saved.glob("*.arrow"))
    convs = read_chat_file(arrow)
    assert len(convs) == 3 and convs[0].messages == CHAT and convs[-1].source == f"{arrow.name} row 3"
    from fronde.train.distill import DistillSection

    # a recipe may name the folder: it stands for its .arrow files, each hashed into the model's lineage
    assert SFTData(chat_files=[str(saved)]).chat_files == [str(arrow)]
    assert DistillSection(teacher="t", prompt_files=[str(saved), "x.jsonl"]).prompt_files == [str(arrow), "x.jsonl"]
    info = json.loads((saved / "dataset_info.json").read_text())
    assert "messages" in info["features"]  # a chat column: the corpus reader takes it as chats too
    src = sources.resolve_sources(DataConfig(sources=[SourceConfig(path=str(saved))]))[0]
    docs = [it for _, it in sources.iter_source(src, 100_000, 1)]
    assert [d.messages for d in docs] == [CHAT] * 3

    big = tmp_path / "big"
    datasets.Dataset.from_dict({"text": TEXTS * 20}).save_to_disk(str(big), max_shard_size="100MB")
    cut = next(big.glob("*.arrow"))
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # a copy cut short
    src = sources.resolve_sources(DataConfig(sources=[SourceConfig(path=str(big))]))[0]
    items = [it for _, it in sources.iter_source(src, 100_000, 1)]
    kept = sum(1 for it in items if it.__class__.__name__ == "Document")
    drops = [it for it in items if it.__class__.__name__ == "Drop"]
    assert kept < len(TEXTS) * 20 and len(drops) == 1
    assert drops[0].reason.startswith(("damaged Arrow IPC data from row", "unreadable Arrow IPC"))


def test_the_licence_a_saved_dataset_records_is_the_sources(tmp_path: Path):
    """datasets keeps the Hub card's licence in dataset_info.json: it goes into the manifest (and so the model card)
    unless the source names one."""
    saved = tmp_path / "wiki-fr"
    datasets.Dataset.from_dict({"text": TEXTS}, info=datasets.DatasetInfo(license="cc-by-sa-4.0")).save_to_disk(
        str(saved))
    config = DataConfig(sources=[SourceConfig(path=str(saved))])
    assert sources.resolve_sources(config)[0].licence == "cc-by-sa-4.0"
    named = DataConfig(sources=[SourceConfig.parse_spec(f"{saved}::licence=proprietary")])
    assert sources.resolve_sources(named)[0].licence == "proprietary"
    datasets.Dataset.from_dict({"text": TEXTS}).save_to_disk(str(tmp_path / "untold"))
    assert sources.resolve_sources(DataConfig(sources=[SourceConfig(path=str(tmp_path / "untold"))]))[0].licence \
        == "unspecified"


def test_a_saved_chat_datasets_licence_reaches_the_model_card(tmp_path: Path):
    from fronde.train.lineage import file_entry
    from fronde.train.model_card import data_licences

    saved = tmp_path / "chats"
    datasets.Dataset.from_list([{"messages": CHAT}], info=datasets.DatasetInfo(license="cc-by-4.0")).save_to_disk(
        str(saved))
    (arrow,) = SFTData(chat_files=[str(saved)]).chat_files
    entry = file_entry(arrow)
    assert entry["licence"] == "cc-by-4.0" and "licence" not in file_entry(tmp_path / "x.jsonl")
    chain = [{"stage": "sft", "inputs": {"chat_files": [entry]}}]
    assert data_licences(chain) == [("cc-by-4.0", f"sft file {Path(arrow).name}")]  # was "unrecorded"


def test_the_datasets_cache_of_load_dataset_reads_the_data_not_its_map_copies(tmp_path: Path, monkeypatch):
    """A machine prepared offline keeps what load_dataset fetched in its cache: each split's .arrow file is read; the
    cache-<fingerprint>.arrow a .map() left (other columns: here a length) and the lock files are listed, not read."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    cache = tmp_path / "hf-cache"
    ds = datasets.load_dataset("json", data_files=str(notes), cache_dir=str(cache), split="train")
    mapped = ds.map(lambda row: {"n": len(row["text"])})
    assert Path(mapped.cache_files[0]["filename"]).name.startswith("cache-")
    files, skipped = sources.expand_source(str(cache))
    assert [f.name for f in files] == ["json-train.arrow"]
    why = {Path(p).name: reason for p, reason in skipped}
    assert why[Path(mapped.cache_files[0]["filename"]).name].startswith("a Hugging Face datasets .map() cache")
    assert why["dataset_info.json"].startswith("a Hugging Face datasets metadata file")
    src = sources.resolve_sources(DataConfig(sources=[SourceConfig(path=str(cache))]))[0]
    assert sorted(d.text for _, d in sources.iter_source(src, 100_000, 1)) == sorted(TEXTS)
