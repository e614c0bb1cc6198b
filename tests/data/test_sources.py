"""Reading every supported format, and the bad-input cases of issue 3 (clear errors, counted drops)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fronde.data.config import DataConfig, SourceConfig
from fronde.data.errors import DataError
from fronde.data.pipeline import collect_documents, iter_staged
from fronde.data.sources import resolve_sources


def _collect(tmp_path: Path, *specs: str, **cfg) -> object:
    config = DataConfig(sources=[SourceConfig.parse_spec(s) for s in specs], val_fraction=0.0, **cfg)
    return collect_documents(config, tmp_path / "work")


def _texts(c) -> list[str]:
    return [r.get("text") or r for r in iter_staged(c.staged("train"))]


def test_all_formats(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.txt").write_text("plain text document\n")
    (d / "b.md").write_text("# markdown document\n")
    (d / "c.rs").write_text("fn main() { println!(\"rust\"); }\n")
    (d / "d.jsonl").write_text(json.dumps({"body": "jsonl one"}) + "\n\n" + json.dumps({"body": "jsonl two"}) + "\n")
    (d / "e.json").write_text(json.dumps([{"body": "json one"}, {"body": "json two"}]))
    pq.write_table(pa.table({"body": ["parquet one", "parquet two"], "n": [1, 2]}), d / "f.parquet")
    with gzip.open(d / "g.txt.gz", "wt") as f:
        f.write("gzipped text document")
    with gzip.open(d / "h.jsonl.gz", "wt") as f:
        f.write(json.dumps({"body": "gzipped jsonl"}) + "\n")
    pq.write_table(pa.table({"body": ["gzipped parquet"]}), tmp_path / "i.parquet")
    with open(tmp_path / "i.parquet", "rb") as src, gzip.open(d / "i.parquet.gz", "wb") as dst:
        dst.write(src.read())
    (d / "image.png").write_bytes(b"\x89PNG\r\n")
    c = _collect(tmp_path, f"{d}::text_field=body::licence=CC0-1.0::name=mine", near_dedup=False)
    texts = sorted(_texts(c))
    assert texts == sorted(["plain text document\n", "# markdown document\n", "fn main() { println!(\"rust\"); }\n",
                            "jsonl one", "jsonl two", "json one", "json two", "parquet one", "parquet two",
                            "gzipped text document", "gzipped jsonl", "gzipped parquet"])
    assert c.sources[0].skipped == [(str(d / "image.png"), "an image: read it with OCR (::ocr=fra, Tesseract's "
                                                            "language codes)")]
    assert {f.licence for f in c.files.values()} == {"CC0-1.0"}
    assert {f.source for f in c.files.values()} == {"mine"}
    assert all(len(f.sha256) == 64 and f.bytes > 0 for f in c.files.values())


PAGE = """<!doctype html><html><head><title>Onboarding &amp; FAQ</title><meta charset="utf-8">
<style>p { color: red }</style><script>var s = "<p>not text</p>";</script></head>
<body><nav><a href="/">Home</a> <a href="/docs">Docs</a></nav>
<h2>Getting   started</h2><p>Install the <b>fronde</b> package,
then run it.<br>Next line.</p><ul><li>one</li><li>two <i>items</i></li></ul>
<pre>def f(x):
    return x</pre>
<table><tr><th>key</th><th>value</th></tr><tr><td>a</td><td>1</td></tr></table><p>caf&eacute; &lt;3</p></body></html>"""


def _notebook(cells: list, language: str = "python") -> str:
    return json.dumps({"cells": cells, "metadata": {"language_info": {"name": language}}, "nbformat": 4})


def test_html_and_notebooks_are_read_for_their_text(tmp_path: Path) -> None:
    d = tmp_path / "site"
    d.mkdir()
    (d / "page.html").write_text(PAGE)
    (d / "blank.htm").write_text("<html><head><script>x()</script></head><body><nav>menu</nav></body></html>")
    (d / "nb.ipynb").write_text(_notebook([
        {"cell_type": "markdown", "source": ["# Analysis\n", "We load the data."]},
        {"cell_type": "code", "source": "import numpy as np\nnp.ones(3)",
         "outputs": [{"data": {"image/png": "iVBORw0KGgo" * 50, "text/plain": ["array([1., 1., 1.])"]}}]},
        {"cell_type": "code", "source": []},
    ]))
    (d / "broken.ipynb").write_text("{not json")
    (d / "notebook.ipynb").write_text(json.dumps({"cells": "none"}))
    c = _collect(tmp_path, str(d), near_dedup=False)
    texts = sorted(_texts(c))
    assert texts == sorted([
        "Onboarding & FAQ\n\n## Getting started\n\nInstall the fronde package, then run it.\nNext line.\n\n"
        "- one\n- two items\n\ndef f(x):\n    return x\n\nkey\tvalue\na\t1\n\ncafé <3",
        "# Analysis\nWe load the data.\n\n```python\nimport numpy as np\nnp.ones(3)\n```",
    ])
    assert c.dropped["empty"] == 1 and c.dropped["broken_record"] == 2
    named = {Path(x["location"]).name: x["reason"] for x in c.problems}
    assert named["blank.htm"] == "no visible text (or a redirect page)" and "invalid JSON" in named["broken.ipynb"]
    assert "no `cells` list" in named["notebook.ipynb"]
    assert {f.format for f in c.files.values()} == {"html", "ipynb"}
    # extract=false: the same files as plain text, markup and outputs kept
    raw = _collect(tmp_path, f"{d}/page.html::extract=false", f"{d}/nb.ipynb::extract=false", near_dedup=False)
    assert sorted(_texts(raw)) == sorted([PAGE, (d / "nb.ipynb").read_text()])


def test_chat_messages_records(tmp_path: Path) -> None:
    p = tmp_path / "chats.jsonl"
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    p.write_text(json.dumps(chat) + "\n" + json.dumps({"messages": [{"role": "wizard", "content": "x"}]}) + "\n")
    c = _collect(tmp_path, str(p))  # default field `text` absent -> `messages` is used
    recs = list(iter_staged(c.staged("train")))
    assert recs == [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
    assert c.dropped["broken_record"] == 1
    assert c.problems[0]["location"] == f"{p}:2" and "wizard" in c.problems[0]["reason"]


def test_a_sites_boilerplate_lines_are_dropped_but_code_and_shared_titles_stay(tmp_path: Path) -> None:
    """Header, sidebar and footer lines that 4 earlier pages of the source had are dropped (and counted per file in
    the manifest); a line only two pages share stays, preformatted code stays, and a redirect stub is empty."""
    from fronde.data.markup import BOILERPLATE_PAGES

    d = tmp_path / "wiki"
    d.mkdir()
    chrome = '<div class="top">ACME intranet</div><div class="side"><p>Search</p><p>Log out</p></div>'
    footer = "<footer>(c) ACME 2026 - internal use only</footer>"
    pages = [f"<h1>Page {i}</h1><p>Policy number {i}.</p><pre>}}</pre>" for i in range(BOILERPLATE_PAGES + 2)]
    pages[-1] += "<h2>Shared with the stub</h2>"
    for i, body in enumerate(pages):
        (d / f"p{i}.html").write_text(f"<html><body>{chrome}{body}{footer}</body></html>")
    (d / "stub.html").write_text('<html><head><meta http-equiv="refresh" content="0; url=p0.html"></head>'
                                 "<body><h2>Shared with the stub</h2>Redirecting to p0.html...</body></html>")
    c = _collect(tmp_path, str(d), near_dedup=False)
    texts = _texts(c)
    first = next(t for t in texts if "# Page 0" in t)
    assert first == ("ACME intranet\n\nSearch\n\nLog out\n\n# Page 0\n\nPolicy number 0.\n\n}\n\n"
                     "(c) ACME 2026 - internal use only")
    last = f"# Page {BOILERPLATE_PAGES + 1}"
    assert f"{last}\n\nPolicy number {BOILERPLATE_PAGES + 1}.\n\n}}\n\n## Shared with the stub" in texts
    files = {Path(f.path).name: f.manifest_entry() for f in c.files.values()}
    assert [files[f"p{i}.html"].get("repeated_lines_dropped", 0) for i in range(len(pages))] == \
        [0] * BOILERPLATE_PAGES + [4, 4]
    assert any(x["location"].endswith("stub.html") and x["kind"] == "empty" for x in c.problems)


def test_sharegpt_records_are_chats(tmp_path: Path) -> None:
    p = tmp_path / "sharegpt.jsonl"
    p.write_text(json.dumps({"system": "Be brief.", "conversations": [{"from": "human", "value": "hi"},
                                                                      {"from": "gpt", "value": "hello"}]}) + "\n"
                 + json.dumps({"conversations": [{"from": "narrator", "value": "x"}]}) + "\n")
    c = _collect(tmp_path, str(p))  # default field `text` absent -> `conversations` is used
    assert list(iter_staged(c.staged("train"))) == [{"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}]}]
    assert c.dropped["broken_record"] == 1 and "narrator" in c.problems[0]["reason"]


def test_broken_jsonl_lines_counted_and_named(tmp_path: Path) -> None:
    p = tmp_path / "data.jsonl"
    lines = [json.dumps({"text": "good one"}), "{not json", json.dumps({"text": "good two"}), "[1, 2]",
             json.dumps({"other": "no text here"}), json.dumps({"text": ""}), json.dumps({"text": 5})]
    p.write_text("\n".join(lines) + "\n")
    c = _collect(tmp_path, str(p))
    assert sorted(_texts(c)) == ["good one", "good two"]
    assert c.documents_in == 7
    assert c.dropped["broken_record"] == 3 and c.dropped["missing_field"] == 1 and c.dropped["empty"] == 1
    named = {(x["location"], x["kind"]) for x in c.problems}
    assert {(f"{p}:2", "broken_record"), (f"{p}:4", "broken_record"), (f"{p}:5", "missing_field"),
            (f"{p}:6", "empty"), (f"{p}:7", "broken_record")} == named


def test_missing_text_field_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "data.jsonl"
    p.write_text(json.dumps({"body": "x", "id": 1}) + "\n")
    with pytest.raises(DataError, match=r"data\.jsonl: no field 'text'.*'body', 'id'"):
        _collect(tmp_path, str(p))
    pq.write_table(pa.table({"content": ["a"]}), tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"t\.parquet: no field 'text'.*'content'"):
        _collect(tmp_path, str(tmp_path / "t.parquet"))


def test_nonexistent_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist"):
        resolve_sources(DataConfig(sources=[SourceConfig(path=str(tmp_path / "nope"))]))
    with pytest.raises(DataError, match=r"glob matches no file"):
        resolve_sources(DataConfig(sources=[SourceConfig(path=str(tmp_path / "*.zzz"))]))


def test_empty_corpus(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty corpus"):
        _collect(tmp_path, str(tmp_path / "empty"))
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "a.txt").write_text("")
    (tmp_path / "blank" / "b.txt").write_text("   \n\n")
    with pytest.raises(DataError, match=r"empty corpus.*empty: 2"):
        _collect(tmp_path, str(tmp_path / "blank"))


def test_only_binary_files(tmp_path: Path) -> None:
    d = tmp_path / "bin"
    d.mkdir()
    (d / "a.txt").write_bytes(b"ELF\x00\x01\x02" * 10)
    (d / "b.dat.txt").write_bytes(bytes(range(256)))
    with pytest.raises(DataError, match=r"all 2 input file\(s\) are binary"):
        _collect(tmp_path, str(d))


def test_binary_and_bad_utf8_counted(tmp_path: Path) -> None:
    d = tmp_path / "mix"
    d.mkdir()
    (d / "good.txt").write_text("fine text")
    (d / "bin.txt").write_bytes(b"\x00\x00binary")
    (d / "latin1.txt").write_bytes("café crème".encode("latin-1"))  # not UTF-8: its code page is guessed
    c = _collect(tmp_path, str(d))
    assert c.dropped["binary"] == 1 and c.bad_utf8 == 0
    assert "café crème" in _texts(c) and c.files[str(d / "latin1.txt")].extra["encoding"] == "cp1252"
    c = _collect(tmp_path / "as-utf8", f"{d}::encoding=utf-8")  # said to be UTF-8: bad bytes replaced and counted
    assert c.bad_utf8 == 1 and "caf\ufffd cr\ufffdme" in _texts(c)


_BIG_CHILD = """
import json, resource, sys, time
from fronde.data.config import DataConfig, SourceConfig
from fronde.data.pipeline import collect_documents
path, work, go = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {"base_kib": base}
if go:
    t0 = time.perf_counter()
    cfg = DataConfig(sources=[SourceConfig(path=path, pii=True)], near_dedup=False, val_fraction=0.0)
    c = collect_documents(cfg, work)
    out.update(seconds=time.perf_counter() - t0, documents_in=c.documents_in, kept=c.kept["train"],
               dropped=c.dropped, emails=c.pii["email"])
out["peak_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(out))
"""


def _child(*args: str) -> dict:
    r = subprocess.run([sys.executable, "-c", _BIG_CHILD, *args], capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_100mb_single_line_streams(tmp_path: Path) -> None:
    """A 100 MB file with no newline goes through the real first pass of `prepare`
    (`collect_documents`: read -> decode -> clean -> exact dedup -> PII -> split -> stage) in bounded
    memory: read in 1 MiB blocks and cut into `max_doc_chars` documents, never held whole.

    Peak RSS of a child process is compared with the same child that only imports the pipeline:
    holding the file whole would cost >= 100 MiB of bytes plus its str. Cheap on purpose: tokenising
    100 MB (and training BPE on it) would take minutes on 2 cores and is covered on small corpora by
    test_pipeline; MinHash near-dedup is off here because its cost is linear per document and it is
    tested in test_dedup. Prose-like words keep the PII scan representative of text, not digits.
    """
    p = tmp_path / "big.txt"
    rng = np.random.default_rng(0)
    vocab = np.array(["lorem", "ipsum", "dolor", "sit", "amet", "été", "naïve", "garçon", "straße", "user@lab-mail.org"]
                     + ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 6)) for _ in range(3000)])
    n_chars = 0
    with open(p, "wb") as f:
        while f.tell() < 100 * 1024 * 1024:
            block = " ".join(vocab[rng.integers(0, len(vocab), 400_000)]) + " "
            n_chars += len(block)
            f.write(block.encode())
    baseline = _child(str(p), str(tmp_path / "w0"), "0")
    r = _child(str(p), str(tmp_path / "work"), "1")
    assert r["documents_in"] >= 100 and r["kept"] == r["documents_in"], r
    assert r["emails"] > 0
    staged_chars = sum(len(x["text"]) for x in iter_staged(tmp_path / "work" / "docs-train.jsonl"))
    assert staged_chars == n_chars - r["emails"] * (len("user@lab-mail.org") - len("<EMAIL>"))  # lossless
    grew_mib = (r["peak_kib"] - baseline["peak_kib"]) / 1024
    assert grew_mib < 60, f"peak RSS grew {grew_mib:.0f} MiB over the import baseline for a 100 MiB file"
    assert r["seconds"] < 90, r


def _project_with_fronde_outputs(root: Path) -> None:
    """A team's project folder after a first round with fronde: notes, plus what fronde wrote beside them."""
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "plan.md").write_text("The supplier contract renews in March; the budget is approved.\n")
    # their own accounting export, named like fronde's ledger: a list of records, read as any JSON source
    (root / "notes" / "ledger.json").write_text(json.dumps([{"text": "Q3: paid the supplier's March invoice."}]))
    data = root / "data" / "team"
    (data / "tokenizer").mkdir(parents=True)
    (data / "manifest.json").write_text(json.dumps({"format": "fronde-data/1", "files": []}))
    (data / "tokenizer" / "tokenizer.json").write_text("{}")
    model = root / "exported" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"model_type": "deepseek_v3"}))
    (model / "model.safetensors").write_bytes(b"\0" * 16)
    (model / "MODEL_CARD.md").write_text("# a model card, not the team's text\n")
    run = root / "runs" / "tiny"
    (run / "pretrain").mkdir(parents=True)
    (run / "ledger.json").write_text(json.dumps({"stages": [{"stage": "pretrain"}]}))
    (run / "report.md").write_text("# report card\n")
    (run / "pretrain" / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 5.0}) + "\n")


def test_folders_fronde_wrote_inside_a_source_are_skipped_not_read(tmp_path: Path) -> None:
    """`--source .` in a project folder read its own manifest, metrics and model cards the second time (and stopped
    on `manifest.json: no field 'text'`); walked or globbed, fronde's outputs are now listed as skipped folders."""
    _project_with_fronde_outputs(tmp_path)
    (src,) = resolve_sources(DataConfig(sources=[SourceConfig(path=str(tmp_path))]))
    assert sorted(Path(f.path).relative_to(tmp_path).as_posix() for f in src.files) == \
        ["notes/ledger.json", "notes/plan.md"]
    assert sorted((Path(p).relative_to(tmp_path).as_posix() + "/", why.split(" (")[0]) for p, why in src.skipped) == [
        ("data/team/", "a prepared data folder"), ("exported/model/", "a model folder"),
        ("runs/tiny/", "a fronde run folder")]
    (md,) = resolve_sources(DataConfig(sources=[SourceConfig(path=f"{tmp_path}/**/*.md")]))
    assert [Path(f.path).name for f in md.files] == ["plan.md"]
    assert sorted(Path(p).name for p, _ in md.skipped) == ["MODEL_CARD.md", "report.md"]
    # named on its own, a file in such a folder is read: the user asked for it
    (named,) = resolve_sources(DataConfig(sources=[SourceConfig(path=str(tmp_path / "runs" / "tiny" / "report.md"))]))
    assert [Path(f.path).name for f in named.files] == ["report.md"]


def test_a_data_dir_prepared_inside_its_own_source_is_reused_the_second_time(tmp_path: Path) -> None:
    """With the output inside the source, each run saw new files (its own) and built everything again."""
    from fronde.data.pipeline import prepare

    (tmp_path / "notes").mkdir()
    for i in range(3):
        (tmp_path / "notes" / f"n{i}.md").write_text(f"Meeting {i}: the roadmap moves the launch to June.\n" * 20)
    config = DataConfig(sources=[SourceConfig(path=str(tmp_path))], vocab_size=512, near_dedup=False)
    first = prepare(config, tmp_path / "data" / "team")
    again = prepare(config, tmp_path / "data" / "team")
    assert not first.reused and again.reused
    assert len(again.manifest["files"]) == 3


def test_an_empty_licence_is_refused_not_recorded() -> None:
    """`::licence=` (a variable left empty in a script) recorded "" as the licence of every file of the source."""
    with pytest.raises(DataError, match="bad source spec 'notes::licence=': licence: String should have at least 1"):
        SourceConfig.parse_spec("notes::licence=")
