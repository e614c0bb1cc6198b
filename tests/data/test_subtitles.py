"""Subtitles and captions (.srt, .vtt) are read as the words spoken (fronde.data.subtitles): no cue numbers, timings,
tags or repeated roll-up lines."""

from __future__ import annotations

from pathlib import Path

from fronde.data.config import DataConfig, SourceConfig
from fronde.data.pipeline import prepare
from fronde.data.subtitles import subtitle_text
from tests.data.conftest import prepared_texts

SRT = """1
00:00:01,000 --> 00:00:04,000
<i>Il était une fois,</i>
dans un petit village...

2
00:00:04,500 --> 00:00:06,000 X1:100 X2:200 Y1:10 Y2:20
{\\an8}- Tu viens ?
- J'arrive !

3
00:00:06,000 --> 00:00:07,000

4
00:00:07,000 --> 00:00:09,000
<font color="#ffff00">Fin.</font>
"""
# as YouTube writes automatic captions: each cue starts with a line of one space, karaoke timestamps in the text,
# and every line shown twice as the captions roll up
VTT = """WEBVTT
Kind: captions
Language: fr

STYLE
::cue { color: yellow }

NOTE une note
sur deux lignes

intro
00:00:00.000 --> 00:00:02.000 align:start position:0%
 
bonjour<00:00:00.500><c> à</c><c> tous</c>

00:00:02.000 --> 00:00:02.010 align:start position:0%
bonjour à tous
 

00:00:02.010 --> 00:00:04.000 align:start position:0%
bonjour à tous
<v Anne>nous commençons &amp; finissons</v>

00:04.000 --> 00:05.000
nous commençons &amp; finissons
"""


def test_subrip_and_webvtt_give_the_words_spoken():
    assert subtitle_text(SRT) == "Il était une fois, dans un petit village...\n- Tu viens ?\n- J'arrive !\nFin."
    assert subtitle_text(VTT) == "bonjour à tous\nnous commençons & finissons"
    assert subtitle_text(SRT.replace("\n", "\r\n")) == subtitle_text(SRT)  # Windows line ends
    assert subtitle_text("Just some notes.\nNo timing here.\n") == ""


def test_old_subtitles_in_a_code_page_go_through_prepare(tmp_path: Path):
    corpus = tmp_path / "films"
    corpus.mkdir()
    (corpus / "conte.fr.srt").write_bytes(SRT.encode("cp1252"))  # as old subtitle sites served them
    (corpus / "cours.vtt").write_text(VTT, encoding="utf-8")
    (corpus / "vide.srt").write_text("pas de sous-titres\n")
    m = prepare(DataConfig(sources=[SourceConfig(path=str(corpus))], vocab_size=512, near_dedup=False,
                           val_fraction=0.0), tmp_path / "out").manifest
    files = {Path(f["path"]).name: f for f in m["files"]}
    assert files["conte.fr.srt"]["format"] == "srt" and files["conte.fr.srt"]["encoding"] == "cp1252"
    assert files["vide.srt"]["kept"] == 0 and m["documents"]["dropped"]["empty"] == 1
    texts = prepared_texts(tmp_path / "out")
    assert "Il était une fois, dans un petit village...\n- Tu viens ?\n- J'arrive !\nFin." in texts
    assert "bonjour à tous\nnous commençons & finissons" in texts
