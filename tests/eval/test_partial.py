"""An evaluation stopped part-way resumes from the replies it kept: the same result as an uninterrupted run, only the
missing chunks generated again; another model or setting takes nothing; a line cut by the kill is dropped."""

from __future__ import annotations

import json

import pytest

from fronde.eval import EvalPlan, GenerationSettings, run_plan
from fronde.eval.models import load_eval_model
from fronde.eval.partial import partial_path
from fronde.eval.results import stable_view

SETTINGS = dict(n=50, samples=3, temperature=0.8, max_new_tokens=6, ks=[1, 3])  # 150 replies: 3 chunks of <= 64


def _counting(model, stop_after: int | None = None):
    """Count the model's generate calls; raise KeyboardInterrupt (a Ctrl-C) on call number stop_after + 1."""
    calls = []
    real = model.generate

    def generate(*args, **kwargs):
        if stop_after is not None and len(calls) == stop_after:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    model.generate = generate
    return calls


def _plan(**overrides) -> EvalPlan:
    return EvalPlan(tasks=["arithmetic:1"], generation=GenerationSettings(**(SETTINGS | overrides)))


def test_a_stopped_evaluation_resumes_with_the_same_result(tmp_path, tiny_dir):
    model = load_eval_model(str(tiny_dir))
    calls = _counting(model)
    [straight] = run_plan(model, _plan(), tmp_path / "straight")
    assert len(calls) == 3

    model = load_eval_model(str(tiny_dir))
    _counting(model, stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_plan(model, _plan(), tmp_path / "out")
    kept = partial_path(tmp_path / "out", model.name, "arithmetic:1")
    assert len(kept.read_text().splitlines()) == 3  # the key, then two chunks

    model = load_eval_model(str(tiny_dir))
    calls = _counting(model)
    [resumed] = run_plan(model, _plan(), tmp_path / "out")
    assert len(calls) == 1  # only the third chunk
    assert stable_view(resumed) | {"examples": None} == stable_view(straight) | {"examples": None}
    assert resumed["examples"] == straight["examples"]
    assert not kept.exists()  # every result written: nothing left to resume


def test_other_settings_take_nothing_and_a_cut_line_is_generated_again(tmp_path, tiny_dir):
    model = load_eval_model(str(tiny_dir))
    _counting(model, stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_plan(model, _plan(), tmp_path)
    kept = partial_path(tmp_path, model.name, "arithmetic:1")

    model = load_eval_model(str(tiny_dir))
    calls = _counting(model, stop_after=1)
    with pytest.raises(KeyboardInterrupt):
        run_plan(model, _plan(temperature=0.7), tmp_path)  # other replies: the kept ones are not theirs
    assert len(calls) == 1
    lines = kept.read_text().splitlines()
    assert len(lines) == 2  # started anew under the new key: one chunk so far

    kept.write_text("\n".join(lines) + "\n" + lines[1][: len(lines[1]) // 2])  # SIGKILL in the middle of a line
    model = load_eval_model(str(tiny_dir))
    calls = _counting(model)
    [result] = run_plan(model, _plan(temperature=0.7), tmp_path)
    assert len(calls) == 2 and result["dataset"]["examples"] == 50
    assert not kept.exists()


def test_the_model_files_are_part_of_the_key(tmp_path, tiny_dir):
    """A model trained again in the same dir (new weights, new mtime) does not take the old model's replies."""
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_dir, model_dir)
    model = load_eval_model(str(model_dir))
    _counting(model, stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_plan(model, _plan(), tmp_path / "out")
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes())  # rewritten: same bytes, a new modification time
    model = load_eval_model(str(model_dir))
    calls = _counting(model)
    run_plan(model, _plan(), tmp_path / "out")
    assert len(calls) == 3
    assert json.loads((tmp_path / "out" / model.name / "arithmetic-1.json").read_text())["task"] == "arithmetic:1"
