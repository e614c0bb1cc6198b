"""Recipes fail clearly on bad keys and values; schedules have the documented shape."""

from __future__ import annotations

import pytest

from fronde.train.recipe import PretrainRecipe, RecipeError, load_recipe, recipe_names
from fronde.train.schedule import lr_multiplier


def test_shipped_recipes_validate():
    """Every shipped recipe validates as its stage's recipe; the name's prefix says the stage."""
    from fronde.train.distill import DistillRecipe
    from fronde.train.grpo import RLRecipe
    from fronde.train.sft import SFTRecipe

    assert {"tiny-cpu", "sft-tiny-cpu", "rl-tiny-cpu", "distill-tiny-cpu"} <= set(recipe_names())
    kinds = {"sft": SFTRecipe, "rl": RLRecipe, "distill": DistillRecipe}
    for name in recipe_names():
        load_recipe(name, kind=kinds.get(name.split("-")[0], PretrainRecipe))


def test_overrides_are_typed_and_dotted():
    r = load_recipe("tiny-cpu", ["optim.lr=1e-3", "schedule.kind=wsd", "model.overrides={ hidden_size = 64 }",
                                 "run.name=other"])
    assert r.optim.lr == 1e-3 and r.schedule.kind == "wsd" and r.model.overrides == {"hidden_size": 64}
    assert r.run_dir.name == "other"


@pytest.mark.parametrize("sets, message", [
    (["optim.lrr=1"], "optim.lrr: Extra inputs are not permitted (got 1); did you mean lr?"),
    (["checkpoint.evry_steps=3"], "checkpoint.evry_steps: Extra inputs are not permitted (got 3); did you mean "
                                  "every_steps?"),
    (["optim.learning_rate=1"], "optim.learning_rate: Extra inputs are not permitted (got 1); keys: name, lr, "),
    (["nosection.x=1"], "nosection: Extra inputs are not permitted; keys: run, optim, schedule, batch"),
    (["optim.lr=-1"], "optim.lr: Input should be greater than 0 (got -1)"),
    (["schedule.kind=linear"], "schedule.kind"),
    (["bogus"], "expected section.key=value"),
    (["schedule.warmup_steps=5000"], "warmup_steps must be smaller"),
    # the model section is checked with the recipe, not once its data is prepared
    (["model.preset=nope"], "model: unknown model preset 'nope'; choose one of: gpu-1b, probe, tiny"),
    (["model.overrides.num_hiden_layers=2"], "model: overrides.num_hiden_layers: Extra inputs are not permitted "
                                             "(got 2); did you mean num_hidden_layers?"),
    (["model.overrides.n_group=3"], "n_routed_experts=8 must be divisible by n_group=3"),
])
def test_bad_values_name_the_key(sets, message):
    with pytest.raises(RecipeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_recipe("tiny-cpu", sets)


def test_missing_recipe_and_bad_toml(tmp_path):
    with pytest.raises(RecipeError, match="neither a file nor a shipped recipe"):
        load_recipe("no-such-recipe")
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nname=")
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(str(bad))


def test_global_batch_must_divide():
    r = load_recipe("tiny-cpu", ["batch.global_batch_tokens=3000"])
    with pytest.raises(RecipeError, match="not a multiple"):
        r.batch.grad_accum(world_size=1)
    assert load_recipe("tiny-cpu", ["batch.global_batch_tokens=4096"]).batch.grad_accum(1) == 2


def test_schedules():
    cos = [lr_multiplier(s, 100, 10, "cosine", 0.1) for s in range(100)]
    assert cos[0] == pytest.approx(0.1) and cos[9] == pytest.approx(1.0)
    assert cos[10] == pytest.approx(1.0) and cos[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in zip(cos[10:], cos[11:]))
    wsd = [lr_multiplier(s, 100, 10, "wsd", 0.0, decay_fraction=0.2) for s in range(100)]
    assert wsd[50] == 1.0 and wsd[79] == 1.0 and wsd[90] == pytest.approx(0.5) and wsd[99] < 0.1


def test_a_misspelt_key_deeper_in_lists_and_unions_gets_its_section():
    """The suggestion walks the recipe's own types: `data.sources` is a list of SourceConfig."""
    with pytest.raises(RecipeError, match=r"data\.sources\.0\.licnce: Extra inputs are not permitted .*did you mean "
                                          r"licence\?"):
        load_recipe("tiny-cpu", ['data.sources=[{path="python-stdlib", licnce="x"}]'])
