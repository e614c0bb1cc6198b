"""MediaWiki dumps (a Wikipedia in the team's language, a company wiki's Special:Export): an article's text each,
streamed from the .xml.bz2 as Wikimedia publishes it. The dump below has the shape of a frwiki
pages-articles file: export-0.11 namespace, the site's localized namespaces, an article, a redirect, a talk page."""

from __future__ import annotations

import bz2
from pathlib import Path
from xml.sax.saxutils import escape

from fronde.data.config import DataConfig, SourceConfig
from fronde.data.pipeline import collect_documents, iter_staged
from fronde.data.wiki import wikitext_to_text

ARTICLE = """{{Infobox Commune de France
| nom = Brest
| population = {{formatnum:139456}}
}}
'''Brest''' est une [[commune française]] du [[Finistère (département)|Finistère]], en [[Bretagne]].<ref>
{{Insee|29019}}</ref>
<!-- à compléter -->
[[Fichier:Brest-port.jpg|vignette|Le port de [[Brest]].]]

== Histoire ==
La ville est fondée au ''Moyen Âge'' autour du château.<ref name="a"/>
* Le port militaire ;
* l'[[arsenal de Brest|arsenal]].

{| class="wikitable"
|-
! Année !! Population
|-
| 1999 || 149 634
|}
Voir le [https://www.brest.fr site officiel] &amp; la mairie.

== Notes ==
<references/>
[[Catégorie:Commune du Finistère]]
[[en:Brest, France]]
__NOTOC__"""

EXPECTED = """# Brest

Brest est une commune française du Finistère, en Bretagne.

## Histoire
La ville est fondée au Moyen Âge autour du château.
- Le port militaire ;
- l'arsenal.

Voir le site officiel & la mairie.

## Notes"""

DUMP = f"""<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="fr">
  <siteinfo>
    <sitename>Wikipédia</sitename>
    <namespaces>
      <namespace key="0" case="first-letter" />
      <namespace key="1" case="first-letter">Discussion</namespace>
      <namespace key="6" case="first-letter">Fichier</namespace>
      <namespace key="14" case="first-letter">Catégorie</namespace>
    </namespaces>
  </siteinfo>
  <page>
    <title>Brest</title>
    <ns>0</ns>
    <id>1</id>
    <revision><id>10</id><model>wikitext</model><format>text/x-wiki</format>
      <text bytes="1" xml:space="preserve">{escape(ARTICLE)}</text>
    </revision>
  </page>
  <page>
    <title>Brest (Finistère)</title>
    <ns>0</ns>
    <id>2</id>
    <redirect title="Brest" />
    <revision><id>11</id><text xml:space="preserve">#REDIRECTION [[Brest]]</text></revision>
  </page>
  <page>
    <title>Discussion:Brest</title>
    <ns>1</ns>
    <id>3</id>
    <revision><id>12</id><text xml:space="preserve">Faut-il une section sur le port ? ~~~~</text></revision>
  </page>
  <page>
    <title>Quimper</title>
    <ns>0</ns>
    <id>4</id>
    <revision><id>13</id><text xml:space="preserve">{{{{Ébauche|commune}}}}</text></revision>
  </page>
</mediawiki>
"""


def test_wikitext_becomes_the_text_a_reader_sees():
    assert wikitext_to_text(ARTICLE, {"fichier", "catégorie", "file", "category"}) == EXPECTED.split("\n\n", 1)[1]
    nested = "Avant [[File:a.jpg|thumb|une [[légende]] liée]] après {{a|{{b|c}}}}fin."
    assert wikitext_to_text(nested) == "Avant  après fin."


def test_a_bz2_dump_gives_an_article_each_and_counts_the_rest(tmp_path: Path):
    dump = tmp_path / "frwiki-20261201-pages-articles.xml.bz2"
    dump.write_bytes(bz2.compress(DUMP.encode()))
    config = DataConfig(sources=[SourceConfig(path=str(dump), licence="CC-BY-SA-4.0")], val_fraction=0.0,
                        min_doc_chars=5)
    c = collect_documents(config, tmp_path / "work")
    assert [r["text"] for r in iter_staged(c.staged("train"))] == [EXPECTED]
    f = c.files[str(dump)]
    assert (f.format, f.compressed, f.documents, f.kept) == ("mediawiki", "bz2", 2, 1)
    assert f.extra == {"redirects_skipped": 1, "pages_other_namespaces": 1}
    assert [(p["location"], p["kind"]) for p in c.problems] == [(f"{dump}:Quimper", "empty")]
    assert f.manifest_entry()["compressed"] == "bz2"


def test_a_plain_xml_file_is_still_text_and_a_truncated_dump_keeps_its_pages(tmp_path: Path):
    (tmp_path / "config.xml").write_text("<config><option name='x'>valeur assez longue</option></config>\n")
    cut = DUMP[: DUMP.index("<title>Quimper")]
    (tmp_path / "cut.xml").write_text(cut)
    config = DataConfig(sources=[SourceConfig(path=str(tmp_path))], val_fraction=0.0, min_doc_chars=5)
    c = collect_documents(config, tmp_path / "work")
    assert {Path(p).name: f.format for p, f in c.files.items()} == {"config.xml": "text", "cut.xml": "mediawiki"}
    texts = [r["text"] for r in iter_staged(c.staged("train"))]
    assert EXPECTED in texts and any(t.startswith("<config>") for t in texts)
    [problem] = c.problems
    assert problem["kind"] == "broken_record" and "the pages before it were read" in problem["reason"]
