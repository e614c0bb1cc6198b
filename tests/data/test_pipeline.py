"""`prepare` end to end on tiny corpora: manifest accounting, shards, reuse, atomicity, dedup."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fronde.data import pipeline
from fronde.data.config import DataConfig, SourceConfig
from fronde.data.dedup import Deduplicator
from fronde.data.documents import Document
from fronde.data.errors import DataError
from fronde.data.manifest import check_accounting, read_manifest, summary_rows
from fronde.data.pipeline import prepare, split_of
from fronde.data.shards import open_split, token_dtype
from fronde.data.tokenizer import Tokenizer


def _config(*paths: Path, **kw) -> DataConfig:
    kw.setdefault("vocab_size", 600)
    kw.setdefault("val_fraction", 0.2)
    return DataConfig(sources=[SourceConfig(path=str(p), licence="CC-BY-4.0") for p in paths], **kw)


def test_prepare_manifest_and_shards(tmp_path: Path, corpus_maker) -> None:
    corpus = corpus_maker(tmp_path / "corpus")
    (corpus / "dup.txt").write_text((corpus / "note03.txt").read_text())  # exact duplicate
    (corpus / "bin.txt").write_bytes(b"\x00\x01binary")
    (corpus / "short.txt").write_text("Too short a note to have eight 5-word shingles.\n")
    (corpus / "contact.md").write_text("Reach me at alice@lab-mail.org or +44 20 7946 0958; the demo runs on "
                                       "http://127.0.0.1:8000 (write to noreply@example.org).\n")
    with open(corpus / "records.jsonl", "a") as f:
        f.write("{broken\n")
    out = tmp_path / "out"
    r = prepare(_config(corpus), out)
    m = read_manifest(out)
    assert not r.reused and m == r.manifest
    check_accounting(m)
    d = m["documents"]
    assert d["dropped"]["duplicate"] == 1 and d["dropped"]["binary"] == 1 and d["dropped"]["broken_record"] == 1
    assert d["in"] == d["train"] + d["val"] + sum(d["dropped"].values())
    assert d["val"] >= 1 and d["train"] >= 20
    assert dict(summary_rows(m))["near-dedup"].startswith(
        f"{d['near_dedup_unjudged']} kept documents too short for a MinHash signature")
    assert m["pii"]["replacements"]["email"] == 1 and m["pii"]["replacements"]["phone"] == 1
    assert m["pii"]["total"] == 2 and m["pii"]["kept_shared"] == {"email": 1, "ipv4": 1, "ipv6": 0}
    assert "kept (shared addresses" in dict(summary_rows(m))["PII replaced"]
    assert "; jsonl 1 (" in dict(summary_rows(m))["input"] and " documents kept)" in dict(summary_rows(m))["input"]
    vocab = m["tokenizer"]["vocab_size"]  # this small corpus has fewer pairs to merge than the 600 asked
    assert vocab < 600 and dict(summary_rows(m))["tokenizer"].startswith(f"vocab {vocab} (600 asked: the corpus")
    m["tokenizer"]["requested_vocab_size"] = vocab
    assert dict(summary_rows(m))["tokenizer"].startswith(f"vocab {vocab}, ")
    assert {x["location"] for x in m["problems"]["items"]} >= {f"{corpus}/records.jsonl:7", f"{corpus}/bin.txt"}
    files = {Path(f["path"]).name: f for f in m["files"]}
    assert files["records.jsonl"]["documents"] == 7 and files["records.jsonl"]["kept"] == 6
    assert all(f["licence"] == "CC-BY-4.0" and len(f["sha256"]) == 64 for f in m["files"])
    assert m["tokenizer"]["dtype"] == "<u2" and m["tokenizer"]["compression"]["bytes_per_token"] > 1.0
    assert m["fronde_version"] and m["created"] and set(m["timings_s"]) >= {"read", "clean", "dedup", "tokenise"}
    # shards decode back to exactly the kept documents, each as <|bos|> text <|eos|>
    tok = Tokenizer.load(out / "tokenizer")
    texts = []
    for split in ("train", "val"):
        for sh in open_split(out, split):
            for i in range(sh.n_docs):
                ids = sh.tokens[sh.offsets[i]:sh.offsets[i + 1]].tolist()
                assert ids[0] == tok.special.bos and ids[-1] == tok.special.eos
                texts.append(tok.decode(ids[1:-1]))
    assert len(texts) == d["kept"]
    short = [t for t in texts if Deduplicator().minhash(t) is None]  # near-dedup could not judge them: said
    assert d["near_dedup_unjudged"] == len(short) >= 1 and "Too short a note to have eight 5-word shingles.\n" in short
    assert (corpus / "note00.txt").read_text() in texts
    assert ("Reach me at <EMAIL> or <PHONE>; the demo runs on http://127.0.0.1:8000 (write to "
            "noreply@example.org).\n") in texts
    assert not list(out.glob(".tmp-*"))


def test_reuse_and_rebuild(tmp_path: Path, corpus_maker) -> None:
    corpus = corpus_maker(tmp_path / "corpus", 10)
    out = tmp_path / "out"
    first = prepare(_config(corpus), out)
    again = prepare(_config(corpus, workers=1), out)  # workers only changes speed
    assert again.reused and again.manifest["cache_key"] == first.manifest["cache_key"]
    (corpus / "note01.txt").write_text("changed content for note one, entirely new words here\n")
    rebuilt = prepare(_config(corpus), out)
    assert not rebuilt.reused and rebuilt.manifest["cache_key"] != first.manifest["cache_key"]
    assert not prepare(_config(corpus, near_dup_threshold=0.9), out).reused  # config is part of the key
    (out / read_manifest(out)["splits"]["train"]["shards"][0]["file"]).write_bytes(b"\x00\x00")
    assert not prepare(_config(corpus, near_dup_threshold=0.9), out).reused  # damaged shard -> rebuild


def test_interrupted_run_leaves_nothing_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, corpus_maker) -> None:
    corpus = corpus_maker(tmp_path / "corpus", 10)
    out = tmp_path / "out"

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_manifest", boom)  # after shards were written, before the manifest
    with pytest.raises(KeyboardInterrupt):
        prepare(_config(corpus), out)
    assert not (out / "manifest.json").exists() and not list(out.glob("*.bin"))
    assert len(list(out.glob(".tmp-*"))) == 1  # the interrupted run's work, kept to resume from
    monkeypatch.undo()
    good = prepare(_config(corpus), out)
    assert not good.reused and good.manifest["resumed"] == ["documents", "tokenizer", "1 train shard", "1 val shard"]
    assert not list(out.glob(".tmp-*"))
    # an interruption of a later run keeps the previous result intact and consistent
    (corpus / "note02.txt").write_text("new words for a new run of the pipeline here\n")
    monkeypatch.setattr(pipeline, "_manifest", boom)
    with pytest.raises(KeyboardInterrupt):
        prepare(_config(corpus), out)
    assert read_manifest(out)["cache_key"] == good.manifest["cache_key"]
    assert [len(s.tokens) for s in open_split(out, "train")] == [good.manifest["splits"]["train"]["tokens"]]


def test_split_is_deterministic_by_hash(tmp_path: Path, corpus_maker) -> None:
    corpus = corpus_maker(tmp_path / "corpus", 16)
    # near-dedup keeps the first of two near-duplicates it meets, so which one survives depends on the order
    a = prepare(_config(corpus, near_dedup=False), tmp_path / "a").manifest
    # the same files listed in another order (a glob per file) give the same split sizes and tokens
    b = prepare(DataConfig(sources=[SourceConfig(path=str(p)) for p in sorted(corpus.iterdir(), reverse=True)],
                           vocab_size=600, val_fraction=0.2, licence="CC-BY-4.0", near_dedup=False),
                tmp_path / "b").manifest
    assert (a["documents"]["train"], a["documents"]["val"]) == (b["documents"]["train"], b["documents"]["val"])
    assert a["splits"]["val"]["tokens"] == b["splits"]["val"]["tokens"]
    assert a["documents"]["near_dedup_unjudged"] is None and "near-dedup" not in dict(summary_rows(a))  # not run
    digest = Document("f", "f", text="x").compute_digest()
    assert split_of(digest, 0.0) == "train" and split_of(digest, 0.999999) == "val"


def test_reuse_tokenizer_and_chat_documents(tmp_path: Path, small_tokenizer) -> None:
    tok, tok_dir = small_tokenizer
    p = tmp_path / "chats.jsonl"
    chats = [{"messages": [{"role": "user", "content": f"question {i}"},
                           {"role": "assistant", "content": f"answer number {i}"}]} for i in range(8)]
    p.write_text("".join(json.dumps(c) + "\n" for c in chats))
    m = prepare(_config(p, tokenizer=str(tok_dir), near_dedup=False), tmp_path / "out").manifest
    assert m["tokenizer"]["sha256"] == tok.sha256 and not m["tokenizer"]["trained"]
    sh = open_split(tmp_path / "out", "train")[0]
    ids = sh.tokens[sh.offsets[0]:sh.offsets[1]].tolist()
    assert ids[:2] == [tok.special.bos, tok.special.user] and ids[-2:] == [tok.special.end, tok.special.eos]


def test_near_duplicates(tmp_path: Path) -> None:
    base = " ".join(f"word{i} alpha beta gamma" for i in range(200))
    near = base.replace("word7 ", "wordseven ")
    dd = Deduplicator(threshold=0.8)
    assert dd.check(Document("a", "a", text=base)) is None
    assert dd.check(Document("b", "b", text=base)) == "duplicate"
    assert dd.check(Document("c", "c", text=near)) == "near_duplicate"
    assert dd.check(Document("d", "d", text=" ".join(f"other{i} text" for i in range(300)))) is None
    farther = base
    for i in range(0, 200, 20):  # ~12% of shingles differ: near at 0.8, not at 0.97
        farther = farther.replace(f"word{i} ", f"changed{i} ")
    loose, strict = Deduplicator(threshold=0.8), Deduplicator(threshold=0.97)
    loose.check(Document("a", "a", text=base))
    strict.check(Document("a", "a", text=base))
    assert loose.check(Document("f", "f", text=farther)) == "near_duplicate"
    assert strict.check(Document("f", "f", text=farther)) is None


def test_not_read_row_counts_each_reason_once() -> None:
    """Reasons are sentences: a count goes before each, and not at all when there is one reason (the row read
    "unreadable archive (...); extract it and give the folder 1")."""
    from fronde.data.manifest import _skipped_files
    archive = "unreadable archive (BadZipFile); extract it and give the folder"
    one = [{"skipped_files": 1, "skipped": [{"path": "a.zip", "reason": archive}]}]
    assert _skipped_files(one) == [("not read", f"1 file: {archive} (the manifest's sources[].skipped names them)")]
    many = [{"skipped_files": 4, "skipped": [{"path": "a.zip", "reason": archive},
                                             {"path": "b.xyz", "reason": "unsupported extension '.xyz'"},
                                             {"path": "c.xyz", "reason": "unsupported extension '.xyz'"}]}]
    assert _skipped_files(many)[0][1] == (f"4 files: 2 × unsupported extension '.xyz'; 1 × {archive}; 1 × other "
                                          "(the manifest's sources[].skipped names them)")


def test_token_dtype() -> None:
    assert token_dtype(65536) == np.dtype("<u2") and token_dtype(65537) == np.dtype("<u4")


def test_band_index_answers_like_a_set_across_merges() -> None:
    from fronde.data.dedup import BandIndex

    rng = np.random.default_rng(0)
    index, reference = BandIndex(buffer_keys=64), set()  # a small buffer: many merges into sorted levels
    pool = rng.integers(0, 2**63, size=3000, dtype=np.uint64)
    for _ in range(2000):
        keys = rng.choice(pool, size=8)
        assert index.contains_any(keys) == (not reference.isdisjoint(keys.tolist()))
        index.add(keys)
        reference.update(keys.tolist())
    assert len(index._levels) >= 3  # the answers above crossed several merged levels


def test_near_dedup_decides_as_datasketch_minhash_lsh_would() -> None:
    """BandIndex replaces MinHashLSH's index (8 bytes a key instead of ~3 KB a document): on documents with
    planted near duplicates at many distances, every decision equals a MinHashLSH query's."""
    from datasketch import MinHashLSH

    rng = np.random.default_rng(1)
    vocab = [f"w{i}" for i in range(400)]
    bases = [[str(rng.choice(vocab)) for _ in range(120)] for _ in range(40)]
    docs = []
    for base in bases:
        docs.append(" ".join(base))
        for edits in (1, 4, 10, 25, 60):  # a few words to half the text replaced
            words = list(base)
            for j in rng.choice(len(words), size=edits, replace=False):
                words[j] = f"new{rng.integers(10**6)}"
            docs.append(" ".join(words))
    order = rng.permutation(len(docs))
    ours = Deduplicator(exact=False, threshold=0.7)
    lsh, n = MinHashLSH(threshold=0.7, num_perm=128), 0
    decisions = []
    for i in order:
        mine = ours.check(Document(str(i), str(i), text=docs[i]))
        m = ours.minhash(docs[i])
        theirs = "near_duplicate" if lsh.query(m) else None
        if theirs is None:
            lsh.insert(str(n), m, check_duplication=False)
            n += 1
        assert mine == theirs
        decisions.append(mine)
    assert 40 <= decisions.count(None) < len(docs) - 40  # both kinds of decision were taken, many times


def test_worker_processes_give_the_same_shards_and_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # each document's own work (cleaning, empty and decontamination checks, MinHash, PII) done by 2 processes in
    # batches of 3: the order-dependent decisions (which copy of a duplicate is kept) and every count stay the same
    from fronde.data import docwork
    from fronde.data.decontam import Guard

    problem = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
               "How many clips did Natalia sell altogether in April and May?")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(400)]
    base = [" ".join(rng.choice(words, 60)) for _ in range(12)]
    docs = base + [base[2], base[5] + " extra", "   ", f"forum: {problem}", "mail me at ana.silva@example.org\r\n"
                   "or +33 6 12 34 56 78 \x07", "Cafe\u0301 cre\u0300me " * 10] + base[:3]
    for i, text in enumerate(docs):
        (corpus / f"d{i:02d}.txt").write_text(text, encoding="utf-8")
    guard = Guard({"mine": [problem]})
    config = _config(corpus, vocab_size=512, val_fraction=0.2)
    monkeypatch.setattr(docwork, "BATCH_DOCS", 3)
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_BYTES", 0)
    seen = []
    real = docwork.ProcessPoolExecutor
    monkeypatch.setattr(docwork, "ProcessPoolExecutor", lambda *a, **kw: seen.append(a[0]) or real(*a, **kw))
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        runs[workers] = prepare(config.model_copy(update={"workers": workers}), out, guard=guard).manifest
    assert seen == [2]  # the second run used worker processes, the first none
    one, two = runs[1], runs[2]
    assert one["documents"] == two["documents"] and one["pii"] == two["pii"] and one["cleaning"] == two["cleaning"]
    dropped = one["documents"]["dropped"]
    assert (dropped["duplicate"], dropped["near_duplicate"], dropped["empty"], dropped["contaminated"]) == (4, 1, 1, 1)
    assert one["pii"]["replacements"]["phone"] == 1 and one["cleaning"] == {"control_chars_removed": 1,
                                                                          "nfc_normalized": 1}
    assert one["problems"] == two["problems"]
    for name in ("train-00000.bin", "val-00000.bin", "tokenizer/tokenizer.json"):
        assert (tmp_path / "out1" / name).read_bytes() == (tmp_path / "out2" / name).read_bytes(), name


def test_a_killed_run_resumes_after_its_last_finished_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             corpus_maker) -> None:
    # killed while tokenising: the next run neither reads the documents nor trains the tokenizer again, and its
    # output is byte for byte an uninterrupted run's; other inputs start afresh; bad input leaves nothing behind
    corpus = corpus_maker(tmp_path / "corpus", 12)
    whole = prepare(_config(corpus), tmp_path / "whole").manifest
    out = tmp_path / "out"
    real = pipeline.tokenise_split

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "tokenise_split", killed)
    with pytest.raises(KeyboardInterrupt):
        prepare(_config(corpus), out)
    monkeypatch.setattr(pipeline, "tokenise_split", real)
    monkeypatch.setattr(pipeline, "collect_documents", killed)  # read again: fail
    monkeypatch.setattr(pipeline, "train_tokenizer", killed)
    resumed = prepare(_config(corpus), out).manifest
    assert resumed["resumed"] == ["documents", "tokenizer"] and whole["resumed"] == []
    for k in ("documents", "files", "pii", "cleaning", "problems", "splits", "tokenizer", "cache_key"):
        assert resumed[k] == whole[k], k
    for name in ("train-00000.bin", "val-00000.bin", "tokenizer/tokenizer.json"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    monkeypatch.undo()
    # killed while reading: nothing finished, so the next run does everything; a changed input starts afresh
    monkeypatch.setattr(pipeline, "save_collected", killed)
    (corpus / "note03.txt").write_text("a changed note, so other inputs and another cache key\n")
    with pytest.raises(KeyboardInterrupt):
        prepare(_config(corpus), out)
    monkeypatch.undo()
    assert prepare(_config(corpus), out).manifest["resumed"] == []
    (tmp_path / "binary").mkdir()
    (tmp_path / "binary" / "blob.txt").write_bytes(b"\x00\x01\x02 not text")
    with pytest.raises(DataError, match="binary"):  # found while reading, inside the work directory
        prepare(_config(tmp_path / "binary"), tmp_path / "bad")
    assert (tmp_path / "bad").is_dir() and not list((tmp_path / "bad").glob(".tmp-*"))


@pytest.mark.parametrize("weight", [1.0, 2.5])
def test_a_run_killed_while_tokenising_resumes_at_its_next_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 corpus_maker, weight) -> None:
    from fronde.data.shards import ShardWriter

    corpus = corpus_maker(tmp_path / "corpus", 200)
    config = _config(corpus, shard_tokens=1024)  # several shards a split
    config.sources[0].weight = weight  # weighted: a train document's copies are documents like any other
    whole = prepare(config, tmp_path / "whole").manifest
    n_train = len(whole["splits"]["train"]["shards"])
    assert n_train >= 3
    real, written = ShardWriter.flush, []

    def dies_at_the_third(self):
        if self._docs and len(written) == 2:
            raise KeyboardInterrupt
        real(self)
        written.append(1)

    monkeypatch.setattr(ShardWriter, "flush", dies_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        prepare(config, tmp_path / "out")
    monkeypatch.undo()
    resumed = prepare(config, tmp_path / "out").manifest
    assert resumed["resumed"] == ["documents", "tokenizer", "2 train shards"]
    assert resumed["splits"] == whole["splits"] and resumed["tokenizer"] == whole["tokenizer"]
    for sh in whole["splits"]["train"]["shards"] + whole["splits"]["val"]["shards"]:
        assert (tmp_path / "out" / sh["file"]).read_bytes() == (tmp_path / "whole" / sh["file"]).read_bytes()
