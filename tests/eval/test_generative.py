"""Generative scoring against hand-checked expectations: a model that always answers right scores 100 and one that
always answers wrong scores 0 on every built-in task; pass@k; few-shot prompts; gsm-symbolic's originals and their
label."""

from __future__ import annotations

import json
from math import comb

import pytest

from fronde.eval import (
    EvalError,
    EvalPlan,
    GenerationSettings,
    evaluate_generative,
    pass_at_k,
    run_plan,
)
from fronde.eval.gsm_originals import CLEAN, SEEN, originals_label
from fronde.eval.models import ModelDescription
from fronde.tasks import get_task
from tests.eval.conftest import TableModel


def _right_reply(task, ex) -> str:
    if task.name == "humaneval":
        return f"```python\n{ex.answer}\n```"
    return f"<think>worked it out</think><answer>{ex.answer}</answer>"


@pytest.mark.parametrize("spec,n", [("arithmetic:1", 10), ("arithmetic:3", 10), ("countdown", 10),
                                    ("gsm-symbolic:eng", 10), ("gsm-symbolic:fra", 10), ("humaneval", 3)])
def test_always_right_scores_100_and_always_wrong_scores_0(spec, n):
    task = get_task(spec)
    exs = task.test(n)
    right = TableModel({ex.prompt: _right_reply(task, ex) for ex in exs})
    wrong = TableModel({}, default="<answer>not an answer</answer>")
    settings = GenerationSettings(n=n, max_new_tokens=8)
    good = evaluate_generative(right, task, settings)
    bad = evaluate_generative(wrong, task, settings)
    assert good.metrics == {"accuracy": 100.0, "pass@1": 100.0}
    assert bad.metrics == {"accuracy": 0.0, "pass@1": 0.0}
    assert good.dataset["examples"] == n and good.dataset["hash"] == bad.dataset["hash"]
    assert [row["id"] for row in good.examples] == [ex.id for ex in exs]


def test_pass_at_k_matches_the_combinatorial_formula():
    for n, c, k in [(5, 2, 1), (5, 2, 2), (10, 3, 5), (10, 0, 3), (4, 4, 2), (7, 6, 2), (200, 13, 10)]:
        assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k), abs=1e-12)
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)  # pass@1 is the fraction correct
    assert pass_at_k(3, 1, 3) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


class AlternatingModel(TableModel):
    """Right on even sample seeds, wrong on odd ones: every problem gets exactly half of its samples right."""

    def __init__(self, answers):
        super().__init__({})
        self.answers = answers

    def generate(self, conversations, max_new_tokens, temperature=0.0, seed=0):
        return [f"<answer>{self.answers[c[-1]['content']]}</answer>" if (seed + i) % 2 == 0 else "<answer>x</answer>"
                for i, c in enumerate(conversations)]


def test_samples_give_unbiased_pass_at_k():
    task = get_task("arithmetic:2")
    exs = task.test(6)
    model = AlternatingModel({ex.prompt: ex.answer for ex in exs})
    score = evaluate_generative(model, task, GenerationSettings(n=6, samples=4, ks=[1, 2, 4], temperature=0.8))
    assert score.metrics["accuracy"] == pytest.approx(50.0)
    assert score.metrics["pass@1"] == pytest.approx(50.0)
    assert score.metrics["pass@2"] == pytest.approx(100 * (1 - comb(2, 2) / comb(4, 2)))  # 83.33
    assert score.metrics["pass@4"] == pytest.approx(100.0)
    assert all(len(row["rewards"]) == 4 for row in score.examples)


def test_settings_are_checked_before_generating():
    task = get_task("arithmetic:1")
    with pytest.raises(EvalError, match="--temperature"):
        evaluate_generative(TableModel({}), task, GenerationSettings(samples=3))
    with pytest.raises(EvalError, match="--k 5"):
        evaluate_generative(TableModel({}), task, GenerationSettings(samples=3, ks=[1, 5], temperature=1.0))


def test_shots_come_from_the_train_split_before_the_problem():
    task = get_task("arithmetic:1")
    model = TableModel({})
    evaluate_generative(model, task, GenerationSettings(n=2, shots=2, system="think-answer"))
    conv = model.calls[0]
    assert [m["role"] for m in conv] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert conv[0]["content"].startswith("Think step by step")
    test_prompts = {ex.prompt for ex in task.test()}
    assert conv[1]["content"] not in test_prompts and conv[-1]["content"] in test_prompts
    assert conv[2]["content"].startswith("<think>") and "<answer>" in conv[2]["content"]  # plain text for others
    model.info = ModelDescription("fronde-like", "fronde", "x", native_reasoning=True)
    model.calls.clear()
    evaluate_generative(model, task, GenerationSettings(n=1, shots=1))
    assert model.calls[0][1]["reasoning_content"]  # fronde models get the think/answer tokens they trained on


def test_gsm_originals_are_labelled_and_split_by_template(tmp_path):
    task = get_task("gsm-symbolic:eng")
    originals = task.originals()
    model = TableModel({ex.prompt: f"<answer>{ex.answer}</answer>" for ex in originals if not ex.meta["seen_template"]})
    results = run_plan(model, EvalPlan(tasks=["gsm-symbolic:eng"], generation=GenerationSettings(n=None),
                                       gsm_originals="seen"), tmp_path)
    test, orig = results
    assert test["task"] == "gsm-symbolic:eng" and test["label"] is None
    assert test["metrics"]["accuracy"] == pytest.approx(100 * 20 / len(task.test()))  # its 20 held-out originals
    assert orig["task"] == "gsm-symbolic:eng:originals" and orig["label"] == SEEN
    assert orig["dataset"]["examples"] == 100 and orig["metrics"]["accuracy"] == pytest.approx(20.0)
    assert orig["metrics"]["accuracy_held_out_templates"] == 100.0
    assert orig["metrics"]["accuracy_seen_templates"] == 0.0
    saved = json.loads((tmp_path / "table" / "gsm-symbolic-eng-originals.json").read_text())
    assert saved["label"].startswith("seen-template")
    alone = run_plan(model, EvalPlan(tasks=["gsm-symbolic:eng:originals"], generation=GenerationSettings(n=30),
                                     gsm_originals="clean"), tmp_path / "alone")
    assert [r["task"] for r in alone] == ["gsm-symbolic:eng:originals"] and alone[0]["label"] == CLEAN
    assert alone[0]["dataset"]["examples"] == 30
    with pytest.raises(EvalError, match="--gsm-originals clean"):
        run_plan(model, EvalPlan(tasks=["gsm-symbolic:eng:originals"]), tmp_path)
    with pytest.raises(EvalError, match="only gsm-symbolic"):
        run_plan(model, EvalPlan(tasks=["countdown:originals"], gsm_originals="clean"), tmp_path)


def test_clean_originals_are_refused_when_the_run_trained_on_gsm_symbolic(tmp_path):
    run = tmp_path / "runs" / "r"
    (run / "distill").mkdir(parents=True)
    info = ModelDescription("r-distill", "fronde", str(run / "distill" / "model"), run_dir=str(run))
    assert originals_label("clean", info) == CLEAN
    (run / "distill" / "teacher_samples.jsonl").write_text('{"id": "gsm-symbolic:eng/0a1b", "kept": true}\n')
    with pytest.raises(EvalError, match="teacher_samples.jsonl shows this run trained on gsm-symbolic"):
        originals_label("clean", info)
    assert originals_label("seen", info) == SEEN
    with pytest.raises(EvalError, match="clean"):
        originals_label("maybe", info)


def test_a_damaged_tokenizer_config_is_named_not_taken_for_a_transformers_model(tiny_dir, tmp_path):
    """It says the dir is fronde's; cut short, the dir was handed to transformers, whose error named neither."""
    import shutil

    from fronde.eval import EvalError, load_eval_model

    damaged = tmp_path / "model"
    shutil.copytree(tiny_dir, damaged)
    text = (damaged / "tokenizer_config.json").read_text(encoding="utf-8")
    (damaged / "tokenizer_config.json").write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(EvalError, match=f"{damaged / 'tokenizer_config.json'}: not valid JSON"):
        load_eval_model(str(damaged))
