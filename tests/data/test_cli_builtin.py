"""`fronde data prepare/inspect` through typer, and the built-in corpora readers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fronde.cli.main import app
from fronde.data import builtin
from fronde.data.config import DataConfig, SourceConfig, load_recipe
from fronde.data.errors import DataError
from fronde.data.sources import iter_source, resolve_sources

runner = CliRunner()


def test_cli_prepare_and_inspect(tmp_path: Path, corpus_maker) -> None:
    corpus = corpus_maker(tmp_path / "corpus", 12)
    out = tmp_path / "out"
    args = ["data", "prepare", "--source", f"{corpus}::licence=CC0-1.0::name=notes", "--out", str(out),
            "--vocab-size", "600", "--val-fraction", "0.2", "--set", "near_dup_threshold=0.9"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "prepared" in r.output and "notes (CC0-1.0" in r.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["config"]["near_dup_threshold"] == 0.9 and m["sources"][0]["pii"] is True
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "up to date" in r.output
    r = runner.invoke(app, ["data", "inspect", str(out), "--samples", "2"])
    assert r.exit_code == 0, r.output
    assert "documents" in r.output and r.output.count("tokens)") == 2
    r = runner.invoke(app, ["data", "inspect", str(out), "--json", "-n", "1"])
    assert json.loads(r.output)["samples"][0]["text"].startswith("<|bos|>")


def test_cli_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    r = runner.invoke(app, ["data", "prepare", "--source", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "does not exist" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["data", "prepare", "--out", str(tmp_path / "o"), "--set", "bogus=1"])
    assert r.exit_code == 2 and "bogus" in r.output
    r = runner.invoke(app, ["data", "inspect", str(tmp_path)])
    assert r.exit_code == 2 and "manifest.json" in r.output


def test_recipe_section(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[data]\nout = "x"\nvocab_size = 4096\nnear_dup_threshold = 0.9\n'
                      '[[data.sources]]\npath = "docs/"\nlicence = "proprietary"\ntext_field = "body"\n')
    cfg = load_recipe(recipe)
    assert cfg.vocab_size == 4096 and cfg.sources == [SourceConfig(path="docs/", licence="proprietary",
                                                                   text_field="body")]
    recipe.write_text("[data]\nvocab_size = 12\n")
    with pytest.raises(DataError, match="vocab_size"):
        load_recipe(recipe)


def test_python_stdlib_default() -> None:
    assert DataConfig().sources[0].path == "python-stdlib"
    files = builtin.stdlib_files()
    assert len(files) > 300
    assert not any({"test", "tests", "site-packages", "idle_test"} & set(p.parts) for p in files)
    (src,) = resolve_sources(DataConfig(sources=[SourceConfig(path="python-stdlib", max_documents=5)]))
    assert src.licence == "PSF-2.0" and src.pii is False and src.builtin
    docs = [d for _, d in iter_source(src, 1_000_000)]
    assert len(docs) == 5


def test_missing_debian_package_message(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="apt-get install stardict-xmlittre"):
        builtin.littre(tmp_path)
    with pytest.raises(DataError, match="apt-get install dict-gcide"):
        builtin.gcide(tmp_path)


def test_dictd_base64() -> None:
    assert builtin.dictd_b64("A") == 0 and builtin.dictd_b64("Kj") == 10 * 64 + 35 and builtin.dictd_b64("BA") == 64


@pytest.mark.skipif(not (builtin.STARDICT_DIR / "XMLittre.idx").is_file(), reason="stardict-xmlittre not installed")
def test_littre_reader() -> None:
    (src,) = resolve_sources(DataConfig(sources=[SourceConfig(path="littre", max_documents=20)]))
    assert src.licence == "GPL-2.0-or-later"
    docs = [d for _, d in iter_source(src, 1_000_000)]
    assert len(docs) == 20 and all("<" not in d.text.split("\n", 1)[1][:200] for d in docs)
    assert any(any(c in d.text for c in "éèàç") for d in docs)


@pytest.mark.skipif(not (builtin.DICTD_DIR / "gcide.index").is_file(), reason="dict-gcide not installed")
def test_gcide_reader() -> None:
    (src,) = resolve_sources(DataConfig(sources=[SourceConfig(path="webster1913", max_documents=20)]))
    docs = [d for _, d in iter_source(src, 1_000_000)]
    assert len(docs) == 20 and all(d.text.strip() for d in docs)
    assert not any("00-database" in d.location for d in docs)


@pytest.mark.skipif(not (builtin.DICTD_DIR / "gcide.index").is_file(), reason="dict-gcide not installed")
def test_a_dictionary_copied_elsewhere_is_found_through_its_variable(tmp_path: Path, monkeypatch) -> None:
    """A GPU machine without apt gets the files carried over (scripts/offline_kit.py fetch --dicts gcide)."""
    for name in ("gcide.dict.dz", "gcide.index"):
        (tmp_path / name).write_bytes((builtin.DICTD_DIR / name).read_bytes())
    monkeypatch.setenv("FRONDE_DICTD_DIR", str(tmp_path))
    (src,) = resolve_sources(DataConfig(sources=[SourceConfig(path="gcide", max_documents=3)]))
    assert src.files[0].path == str(tmp_path / "gcide.dict.dz")
    assert len([d for _, d in iter_source(src, 1_000_000)]) == 3
    monkeypatch.setenv("FRONDE_DICTD_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="FRONDE_DICTD_DIR"):
        resolve_sources(DataConfig(sources=[SourceConfig(path="gcide")]))


def test_a_stage_without_a_count_shows_no_count() -> None:
    """BPE training has no total: its finished bar must not read "0/0" (it did)."""
    import io

    from rich.console import Console

    from fronde.data.progress import RichReporter

    out = io.StringIO()
    with RichReporter(Console(file=out, width=100, force_terminal=False)) as r:
        r.start("train tokenizer")
        r.done()
        r.start("tokenise train", total=3)
        r.advance(3)
        r.done()
    text = out.getvalue()
    assert "0/0" not in text and "3/3" in text
