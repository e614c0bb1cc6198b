"""Decontamination: a training document sharing a 13-word passage with an evaluation's test problems is dropped
as `contaminated`, however it was re-spaced or re-cased; unrelated text and too-short problems are left alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fronde.data.config import DataConfig, SourceConfig
from fronde.data.decontam import Guard
from fronde.data.errors import DataError
from fronde.data.manifest import read_manifest, summary_rows
from fronde.data.pipeline import prepare
from fronde.tasks import decontamination_guard, get_task

PROBLEM = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How "
           "many clips did Natalia sell altogether in April and May?")


def test_a_shared_passage_is_found_whatever_its_spacing_and_case():
    guard = Guard({"mine": [PROBLEM, "What is 2 + 3?"]})
    assert guard.describe()["test_sets"] == {"mine": 1}  # the 5-word problem is too generic to guard
    copied = "Homework help!!\n" + PROBLEM.upper().replace(" ", "\n  ") + "\nthanks"
    assert guard.match(copied) == ("mine", 13)
    assert guard.match("Natalia sold clips to 48 of her friends in April, and she went home.") is None  # 11 words
    assert guard.match("What is 2 + 3? Five.") is None
    short = Guard({"short": ["one two three four five six seven eight nine"]})
    assert short.match("x one two three four five six seven eight nine y") == ("short", 9)


def test_prepare_drops_contaminated_documents_and_says_so(tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "forum.txt").write_text(f"Can someone solve this? {PROBLEM} I am stuck.")
    for i in range(3):
        (corpus / f"note{i}.txt").write_text(f"Note {i}: the quarterly figures are in the shared folder, row {i}.")
    config = DataConfig(sources=[SourceConfig(path=str(corpus))], vocab_size=512, near_dedup=False,
                        decontaminate=["mine"])
    with pytest.raises(DataError, match="decontamination_guard"):
        prepare(config, tmp_path / "out")
    guard = Guard({"mine": [PROBLEM]})
    result = prepare(config, tmp_path / "out", guard=guard)
    m = result.manifest
    assert m["documents"]["dropped"]["contaminated"] == 1 and m["documents"]["kept"] == 3
    assert m["problems"]["items"] == [{"location": str(corpus / "forum.txt"), "kind": "contaminated",
                                       "reason": "shares a 13-word passage with the mine test set"}]
    assert m["decontamination"]["test_sets"] == {"mine": 1}
    assert "1 documents shared a passage" in dict(summary_rows(m))["decontaminated"]
    assert prepare(config, tmp_path / "out", guard=guard).reused
    other = Guard({"mine": [PROBLEM.replace("48", "49")]})  # same names, other texts: not the same data
    assert not prepare(config, tmp_path / "out", guard=other).reused


def test_fronde_data_prepare_decontaminates_against_a_builtin_test_set(tmp_path: Path):
    problem = get_task("humaneval").test()[0]
    corpus = tmp_path / "code"
    corpus.mkdir()
    (corpus / "scraped.py").write_text("# from a GitHub dump\n" + problem.meta["code_prompt"] + "    pass\n")
    (corpus / "mine.py").write_text("def add(a, b):\n    \"\"\"Our own helper, used by the billing job.\"\"\"\n"
                                    "    return a + b\n")
    assert decontamination_guard([]) is None
    res = subprocess.run([sys.executable, "-m", "fronde.cli.main", "data", "prepare", "--source", str(corpus),
                          "--out", str(tmp_path / "out"), "--vocab-size", "512", "--decontaminate", "humaneval",
                          "--decontaminate", "arithmetic:1"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    m = read_manifest(tmp_path / "out")
    assert m["documents"]["dropped"]["contaminated"] == 1 and m["config"]["decontaminate"] == ["humaneval",
                                                                                                "arithmetic:1"]
    assert json.dumps(m["problems"]["items"]).count("humaneval test set") == 1
    assert "arithmetic:1 (no text of 8+ words" in " ".join(res.stdout.split())
