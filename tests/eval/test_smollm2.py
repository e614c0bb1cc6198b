"""SmolLM2-135M-Instruct, the Goliath column, through the GGUF path, offline: it loads, answers a handful of
arithmetic problems through its chat template, and its log-likelihoods prefer the right continuation."""

from __future__ import annotations

import time

import pytest

from fronde.eval import (
    EvalPlan,
    GenerationSettings,
    hf_model,
    load_eval_model,
    run_plan,
)


@pytest.fixture(scope="module")
def smollm2_eval(smollm2):
    """The evaluation wrapper (load_eval_model's real path for a built-in GGUF name) around the run's one loaded
    SmolLM2 (tests/conftest.py), instead of a second 30-50 s load of the same file."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hf_model, "load_teacher", lambda spec, device="cpu": smollm2)
        return load_eval_model("smollm2-135m-instruct", batch_size=4)


@pytest.mark.slow  # the GGUF load (shared, 30-50 s on 2 cores), then ~15 s
def test_smollm2_evaluates_offline_through_the_gguf_path(smollm2_eval, tmp_path):
    assert smollm2_eval.info.kind == "gguf" and smollm2_eval.info.total_params == 134_515_008
    assert smollm2_eval.info.active_params == smollm2_eval.info.total_params  # dense
    plan = EvalPlan(tasks=["arithmetic:1"], generation=GenerationSettings(
        n=4, max_new_tokens=40, system="Answer with the number only."))
    start = time.perf_counter()
    result = run_plan(smollm2_eval, plan, tmp_path)[0]
    print(f"4 arithmetic problems in {time.perf_counter() - start:.1f}s: {result['metrics']}, "
          f"{[row['outputs'][0] for row in result['examples']]}")
    assert result["model"]["name"] == "smollm2-135m-instruct" and result["dataset"]["examples"] == 4
    assert 0.0 <= result["metrics"]["accuracy"] <= 100.0
    assert all(row["outputs"][0] and "<|im_end|>" not in row["outputs"][0] for row in result["examples"])
    assert result["speed"]["tokens_per_s"] > 0
    paris = smollm2_eval.loglikelihood("The capital of France is", " Paris")
    london = smollm2_eval.loglikelihood("The capital of France is", " London")
    assert paris[1] == 1 and paris[0] > london[0] and paris[2]  # one token, likelier, and the greedy choice
