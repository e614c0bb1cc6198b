"""`fronde scoreboard` and `fronde report` on a real run dir (tiny model, priced ledger, curves, data manifest) and a
reference model's results: the files exist and hold the expected rows."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from fronde.cli.main import app
from fronde.eval import (
    EvalPlan,
    GenerationSettings,
    load_eval_model,
    run_plan,
    write_result,
)
from fronde.eval.models import ModelDescription
from fronde.eval.results import make_result

SMOL = ModelDescription("smollm2-135m-instruct", "gguf", "smollm2-135m-instruct", 134_515_008, 134_515_008)
REFERENCES = """
["smollm2-135m-instruct"]
training_cost = 100000.0
cost_note = "a team's estimate"
"""


def _results(run_dir, tmp_path):
    model = load_eval_model(str(run_dir / "pretrain" / "model"))
    assert model.name == "demo-pretrain" and model.info.run_dir == str(run_dir.resolve())
    run_plan(model, EvalPlan(tasks=["arithmetic:1"], generation=GenerationSettings(n=3, max_new_tokens=4)),
             run_dir / "eval")
    ref_dir = tmp_path / "reference"
    for task, acc in (("arithmetic:1", 12.5), ("countdown", 0.0)):
        write_result(ref_dir, make_result(SMOL, task, "generative", {"n": 8}, {"examples": 8, "hash": "sha256:x"},
                                          {"accuracy": acc, "pass@1": acc}, speed={"tokens_per_s": 14.0}))
    refs = tmp_path / "references.toml"
    refs.write_text(REFERENCES)
    return ref_dir, refs


def test_scoreboard_and_report(run_dir, tmp_path):
    ref_dir, refs = _results(run_dir, tmp_path)
    runner = CliRunner()
    out = tmp_path / "board"
    res = runner.invoke(app, ["scoreboard", str(run_dir / "eval"), str(ref_dir), "--reference", str(refs),
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    md = (out / "scoreboard.md").read_text()
    main_table = md.split("\n\n")[1]  # after the title: the scoreboard proper, then the quality-per-dollar table
    rows = {line.split("|")[1].strip(): line for line in main_table.splitlines()}
    demo, smol = rows["demo-pretrain"], rows["smollm2-135m-instruct"]
    assert "2.00 (0.5 device-h)" in demo  # 1800 s on one device at 4.00 per hour, from the run's ledger
    assert "134.5M" in smol and "100,000.00" in smol and "| 14 |" in smol and "| 12.5 |" in smol
    assert "| — |" in demo  # demo has no countdown result
    header = main_table.splitlines()[0]
    assert "arithmetic:1" in header and "countdown" in header and "training cost" in header
    assert "Quality per dollar" in md and "different example sets" in md
    assert {p.name for p in out.glob("*.png")} == {"accuracy_by_task.png", "accuracy_vs_active_params.png",
                                                   "quality_per_dollar.png"}
    board = json.loads((out / "scoreboard.json").read_text())
    assert {m["name"] for m in board["models"]} == {"demo-pretrain", "smollm2-135m-instruct"}

    res = runner.invoke(app, ["report", str(run_dir), "--against", str(ref_dir), "--reference", str(refs)])
    assert res.exit_code == 0, res.output
    report = (run_dir / "report.md").read_text()
    for section in ("## Data", "## Model", "## Training stages", "## Evaluation", "## Scoreboard"):
        assert section in report
    assert "documents" in report and "`pretrain/model`" in report  # manifest summary and model_info rows
    assert "| pretrain | cpu | 50,000 |" in report and "(pretrain/plots/loss.png)" in report
    assert "| demo-pretrain | `arithmetic:1` | accuracy" in report and "smollm2-135m-instruct" in report
    assert (run_dir / "report" / "accuracy_by_task.png").is_file()
    assert "(report/accuracy_by_task.png)" in report

    # a result file cut short (a copy, a full disk elsewhere) is named everywhere, not left out without a word
    damaged = ref_dir / "smollm2-135m-instruct" / "countdown.json"
    damaged.write_text(damaged.read_text()[:200])
    res = runner.invoke(app, ["scoreboard", str(run_dir / "eval"), str(ref_dir), "--out", str(out)],
                        env={"COLUMNS": "300"})
    assert res.exit_code == 0
    assert f"warning: skipped {damaged}: a fronde eval result that no longer parses" in res.output
    assert "countdown" not in (out / "scoreboard.md").read_text()
    assert runner.invoke(app, ["report", str(run_dir), "--against", str(damaged)]).exit_code == 2
    own = next((run_dir / "eval").rglob("arithmetic-1.json"))
    intact = own.read_text()
    own.write_text(intact[:200])
    try:
        assert runner.invoke(app, ["report", str(run_dir)]).exit_code == 0
        assert f"Skipped: {own}: a fronde eval result that no longer parses" in (run_dir / "report.md").read_text()
        res = runner.invoke(app, ["runs", str(run_dir.parent)], env={"COLUMNS": "300"})
        assert res.exit_code == 0 and f"{own}: a fronde eval result that no longer parses" in res.output
    finally:
        own.write_text(intact)  # the run dir is the session's


def test_bad_reference_file_names_the_field(tmp_path):
    refs = tmp_path / "refs.toml"
    refs.write_text('["m"]\ntraining_cost = "lots"\n')
    res = CliRunner().invoke(app, ["scoreboard", str(tmp_path), "--reference", str(refs)])
    assert res.exit_code == 2
    res = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert res.exit_code == 2


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("not a run")
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "not a run directory" in res.output
    assert not (tmp_path / "report.md").exists()
