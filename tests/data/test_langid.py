"""Language identification (`lang=` on a source), built offline from the GSM-Symbolic translations: text written
here, not taken from its training problems, is told apart; a source that keeps French drops the rest as
`wrong_language`, naming what was found, and the manifest and model card say which languages a source held."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fronde.data import langid
from fronde.data.config import DataConfig, SourceConfig
from fronde.data.errors import DataError
from fronde.data.manifest import summary_rows
from fronde.data.pipeline import prepare
from fronde.train.lineage import data_entry
from fronde.train.model_card import data_section

SAMPLES = {
    "eng": "The committee met on Tuesday to discuss the budget for next year, but no decision was taken because "
           "several members had not read the report.",
    "fra": "Le comité s'est réuni mardi pour discuter du budget de l'année prochaine, mais aucune décision n'a "
           "été prise parce que plusieurs membres n'avaient pas lu le rapport.",
    "deu": "Der Ausschuss traf sich am Dienstag, um über den Haushalt des nächsten Jahres zu beraten, aber es wurde "
           "keine Entscheidung getroffen.",
    "spa": "El comité se reunió el martes para hablar del presupuesto del año que viene, pero no se tomó ninguna "
           "decisión porque varios miembros no habían leído el informe.",
    "ita": "Il comitato si è riunito martedì per discutere il bilancio del prossimo anno, ma non è stata presa "
           "alcuna decisione perché diversi membri non avevano letto la relazione.",
    "rus": "Комитет собрался во вторник, чтобы обсудить бюджет на следующий год, но решение так и не было "
           "принято, потому что несколько членов не прочитали доклад.",
    "jpn": "委員会は火曜日に来年度の予算について話し合うために集まりましたが、何人かの委員が報告書を読んでいなかった"
           "ため、結論は出ませんでした。",
    "ara": "اجتمعت اللجنة يوم الثلاثاء لمناقشة ميزانية العام المقبل، لكن لم يتخذ أي قرار لأن عددا من الأعضاء لم "
           "يقرؤوا التقرير.",
}


@pytest.fixture(scope="module")
def lid() -> langid.LanguageId:
    return langid.load_language_id()  # built once (~8 s) into the user's cache dir, then read from it


@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_text_written_here_is_identified(lid, lang):
    found = lid.identify(SAMPLES[lang])
    assert found is not None and found[0] == lang, found
    assert found[1] > 0.5  # (English against Nigerian Pidgin is the closest call here: 0.65)


def test_too_little_text_is_no_decision_and_long_text_is_sampled(lid):
    assert lid.identify("OK 42!") is None and lid.identify("") is None
    long = SAMPLES["fra"] * 200  # judged on its start, middle and end
    assert lid.identify(long)[0] == "fra"


def test_the_cached_identifier_decides_as_the_built_one(tmp_path, monkeypatch, lid):
    monkeypatch.setenv("FRONDE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(langid, "_LOADED", None)
    path = tmp_path / f"langid-{langid.identifier_version()}.npz"
    np.savez(path, languages=np.array(lid.languages), features=np.array(list(lid.features)), logp=lid.logp)
    cached = langid.load_language_id()  # read from the cache: nothing built
    assert cached is not lid and cached.languages == lid.languages and np.array_equal(cached.logp, lid.logp)
    assert cached.identify(SAMPLES["deu"]) == lid.identify(SAMPLES["deu"])
    path.write_bytes(b"not an npz")  # a broken cache is rebuilt, not an error
    monkeypatch.setattr(langid, "_LOADED", None)
    monkeypatch.setattr(langid, "build", lambda texts: lid)
    monkeypatch.setattr(langid, "training_texts", lambda root: {})
    assert langid.load_language_id() is lid and np.load(path)["logp"].shape == lid.logp.shape


def test_a_french_source_drops_the_rest_and_says_what_it_held(tmp_path: Path):
    corpus = tmp_path / "scrape.jsonl"
    rows = [SAMPLES["fra"] + f" Page {i}." for i in range(6)] + [SAMPLES["eng"] + f" Page {i}." for i in range(3)]
    rows += [SAMPLES["deu"], "Oui. 12 €"]  # German; and too short to tell: kept
    corpus.write_text("".join(json.dumps({"text": r}, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    config = DataConfig(sources=[SourceConfig.parse_spec(f"{corpus}::lang=fra::licence=CC-BY-4.0")], vocab_size=512,
                        near_dedup=False, min_doc_chars=5)
    out = prepare(config, tmp_path / "out")
    m = out.manifest
    assert m["documents"]["dropped"]["wrong_language"] == 4 and m["documents"]["kept"] == 7
    assert m["sources"][0]["lang"] == ["fra"] and m["sources"][0]["languages"] == {"fra": 6, "eng": 3, "deu": 1,
                                                                                   "und": 1}
    reasons = [p["reason"] for p in m["problems"]["items"] if p["kind"] == "wrong_language"]
    assert len(reasons) == 4 and all(r.startswith("identified as ") and r.endswith("not fra") for r in reasons)
    assert ("languages " + str(corpus), "kept fra; identified: fra 6, eng 3, deu 1, und 1") in summary_rows(m)
    if m["splits"].get("val"):  # the tokenizer's bytes per token on each language's validation text
        assert set(m["tokenizer"]["languages"] or {}) <= {"fra"}
        assert ("by language on val" in dict(summary_rows(m))["tokenizer"]) == bool(m["tokenizer"]["languages"])
    card = data_section([{"data": [data_entry(out.out)]}])
    assert "languages kept (identified)" in card and "fra (fra 6, eng 3, deu 1, und 1)" in card
    both = DataConfig(sources=[SourceConfig(path=str(corpus), lang="fra, eng")], vocab_size=512, near_dedup=False,
                      min_doc_chars=5)
    assert prepare(both, tmp_path / "both").manifest["documents"]["dropped"]["wrong_language"] == 1  # the German
    census = DataConfig(sources=[SourceConfig.parse_spec(f"{corpus}::lang=*")], vocab_size=512, near_dedup=False,
                        min_doc_chars=5)
    cm = prepare(census, tmp_path / "census").manifest  # identified and recorded, nothing dropped
    assert cm["documents"]["dropped"]["wrong_language"] == 0 and cm["sources"][0]["languages"]["eng"] == 3
    assert ("languages " + str(corpus), "kept all; identified: fra 6, eng 3, deu 1, und 1") in summary_rows(cm)
    plain = DataConfig(sources=[SourceConfig(path=str(corpus))], vocab_size=512, near_dedup=False, min_doc_chars=5)
    pm = prepare(plain, tmp_path / "plain").manifest
    assert pm["documents"]["dropped"]["wrong_language"] == 0 and pm["sources"][0]["languages"] is None


def test_an_unknown_code_names_the_codes_to_use():
    with pytest.raises(DataError, match="fr: use ISO 639-3 codes.*fra"):
        SourceConfig.parse_spec("notes/::lang=fr")


def test_bytes_per_token_by_language_on_validation(tmp_path: Path):
    from fronde.data.pipeline import language_compression
    from fronde.data.tokenizer import train_tokenizer

    tok = train_tokenizer([SAMPLES["eng"]] * 50, vocab_size=400)  # an English tokenizer: French costs more tokens
    staged = tmp_path / "docs-val.jsonl"
    rows = [{"text": SAMPLES["fra"], "lang": "fra"}, {"text": SAMPLES["eng"], "lang": "eng"},
            {"text": SAMPLES["fra"] + " Encore.", "lang": "fra"}, {"text": "Oui.", "lang": "und"}, {"text": "x"}]
    staged.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    by = language_compression(tok, staged)
    fra = [r["text"] for r in rows if r.get("lang") == "fra"]
    assert list(by) == ["fra", "eng"] and by["fra"]["documents"] == 2
    expected = sum(len(t.encode()) for t in fra) / sum(len(tok.encode(t)) for t in fra)
    assert by["fra"]["bytes_per_token"] == pytest.approx(expected, abs=1e-4)
    assert by["eng"]["bytes_per_token"] > 1.5 * by["fra"]["bytes_per_token"]
    assert language_compression(tok, _write(tmp_path / "none.jsonl", [{"text": "no language"}])) is None


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
