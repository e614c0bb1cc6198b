"""Web-text quality rules (Gopher, C4, FineWeb): prose passes; menus, keyword lists, symbol soup, repeated lines and
machine-made repetition are dropped as `low_quality` with the rule named, only on sources that ask for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fronde.data.config import DataConfig, SourceConfig
from fronde.data.pipeline import prepare
from fronde.data.quality import web_quality

PROSE = (
    "The river rises in the hills to the north of the town and runs for about forty miles before it reaches the "
    "sea. In the spring the melting snow swells it, and the old stone bridge that carries the market road has "
    "been closed twice in the last ten years. The council has asked the engineers to look at the arches again.\n\n"
    "Most of the farms along the valley grow barley and keep a few sheep. The soil is thin on the slopes, and "
    "the families who have worked it for generations say that the weather has changed since they were young."
)
FRENCH = (
    "La rivière prend sa source dans les collines au nord de la ville et coule sur une soixantaine de kilomètres "
    "avant de rejoindre la mer. Au printemps, la fonte des neiges la gonfle et le vieux pont de pierre qui porte "
    "la route du marché a été fermé deux fois en dix ans. Le conseil a demandé aux ingénieurs de revoir les arches. "
    "Les fermes de la vallée cultivent l'orge et gardent quelques moutons sur les pentes."
)


def test_prose_passes_and_each_kind_of_page_fails_its_rule():
    assert web_quality(PROSE) is None and web_quality(FRENCH) is None
    assert "words" in web_quality("Home About Contact")  # too short to be a page of text
    keywords = " ".join(["cheap", "flights", "hotels", "deals", "best", "price", "book", "now"] * 12)
    assert "stop words" in web_quality(keywords)
    menu = "\n".join(f"• item {i} of the menu and the list" for i in range(80))
    assert "bullet" in web_quality(menu)
    symbols = " ".join(f"#tag{i} #the #of #and" for i in range(40))
    assert "hash" in web_quality(symbols)
    teaser = "\n".join(f"Read the story of the day number {i} and then..." for i in range(30))
    assert "ellipsis" in web_quality(teaser)
    repeated = "\n".join(["Click here to subscribe to the newsletter of the site today."] * 20 + [PROSE])
    assert "repeat" in web_quality(repeated)
    spam = ("buy the best shoes " * 60) + PROSE
    assert "sequence" in web_quality(spam)
    numbers = " ".join(f"{1000 + i}-{2000 + i} {3000 + i}" for i in range(60)) + " the of and"  # a price table
    assert "letter" in web_quality(numbers)


def test_only_sources_that_ask_are_filtered(tmp_path: Path):
    web, mine = tmp_path / "web", tmp_path / "mine"
    for d in (web, mine):
        d.mkdir()
        (d / "article.txt").write_text(PROSE)
        (d / "menu.txt").write_text("\n".join(f"• item {i} of the menu and the list" for i in range(80)))
    config = DataConfig(sources=[SourceConfig.parse_spec(f"{web}::quality=web"), SourceConfig(path=str(mine))],
                        vocab_size=512, near_dedup=False, exact_dedup=False)
    m = prepare(config, tmp_path / "out").manifest
    assert m["documents"]["dropped"]["low_quality"] == 1 and m["documents"]["kept"] == 3
    (item,) = [p for p in m["problems"]["items"] if p["kind"] == "low_quality"]
    assert item["location"].startswith(str(web / "menu.txt")) and "bullet" in item["reason"]
    assert m["config"]["sources"][0]["quality"] == "web"
    assert [s["quality"] for s in m["sources"]] == ["web", "off"]  # what model cards report per source


def test_quality_web_on_a_source_in_another_language_is_refused_before_reading():
    """Its stop-word rule knows English and French: on a Thai-only source it would drop every document, found at the
    end of the documents pass. A mixed source (tha,eng) or one whose languages are recorded (*) is allowed."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="quality=web knows the stop words of eng and fra only.*lang=tha"):
        SourceConfig(path="scrape/", quality="web", lang="tha")
    assert SourceConfig(path="scrape/", quality="web", lang="tha,eng").lang == ["tha", "eng"]
    assert SourceConfig(path="scrape/", quality="web", lang="*").quality == "web"
