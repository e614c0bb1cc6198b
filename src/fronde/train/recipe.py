"""Pretraining recipes: TOML files validated by pydantic, with `--set section.key=value` overrides.

A recipe names everything a run needs (data, model, optimizer, schedule, batch, precision, cadence, cost), so a run
directory plus its recipe reproduce the run. Shipped recipes live in fronde/recipes/*.toml.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fronde.data.config import DataConfig
from fronde.data.errors import validation_message
from fronde.model.config import ModelConfig, load_preset
from fronde.train.schedule import ScheduleKind

RECIPES_PACKAGE = "fronde.recipes"


class RecipeError(ValueError):
    """A recipe file or override that cannot be used; the message names the file, key and what to do."""


class OptimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["adamw", "muon"] = Field("adamw", description="muon: Muon on hidden 2-D matrices, AdamW elsewhere")
    lr: float = Field(3e-3, gt=0, description="peak learning rate (AdamW groups)")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="final lr / peak lr")
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = Field(0.1, ge=0)
    decay_embeddings: bool = Field(False, description="apply weight decay to embeddings and the output head")
    grad_clip: float = Field(1.0, ge=0, description="max global grad norm; 0 disables clipping")
    max_nonfinite_steps: int = Field(5, ge=0, description="steps in a row whose gradients are NaN/inf that are "
                                     "skipped (no update); one more stops the stage (fronde.train.nonfinite)")
    muon_lr: float = Field(0.02, gt=0, description="peak learning rate of the Muon group")
    muon_momentum: float = 0.95


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunSection(_Section):
    name: str = Field("run", description="runs/<name> holds everything this run writes")
    out_dir: str = Field("runs", description="parent directory of run directories")
    seed: int = 0


class DataSection(DataConfig):
    dir: str | None = Field(None, description="prepared shards to train on; default runs/<name>/data, "
                                              "prepared from this section's sources if missing")


class ModelSection(_Section):
    preset: str = "tiny"
    overrides: dict[str, Any] = Field(default_factory=dict, description="ModelConfig fields over the preset")

    @model_validator(mode="after")
    def _builds(self) -> ModelSection:
        """An unknown preset or a bad override stops the recipe at once, not after its data is prepared."""
        try:
            load_preset(self.preset, **self.overrides)
        except ValidationError as e:
            raise ValueError(f"overrides.{validation_message(e, show_input=True, model=ModelConfig)}") from None
        return self


class ScheduleSection(_Section):
    kind: ScheduleKind = "cosine"
    max_steps: int = Field(1000, gt=0)
    warmup_steps: int = Field(50, ge=0)
    decay_fraction: float = Field(0.2, gt=0, le=1, description="wsd: share of steps spent decaying")
    max_minutes: float | None = Field(None, gt=0, description="fit the stage into this many minutes of wall clock: "
                                      "the step count is planned from the measured pace, max_steps stays the bound "
                                      "(fronde.train.budget)")


class BatchSection(_Section):
    seq_len: int = Field(256, gt=1)
    micro_batch_size: int = Field(8, gt=0, description="sequences per device per forward")
    global_batch_tokens: int = Field(8 * 256, gt=0, description="tokens per optimizer step, all devices")

    def grad_accum(self, world_size: int) -> int:
        per_pass = self.seq_len * self.micro_batch_size * world_size
        if self.global_batch_tokens % per_pass:
            raise RecipeError(
                f"batch.global_batch_tokens={self.global_batch_tokens} is not a multiple of seq_len x "
                f"micro_batch_size x world_size = {per_pass}; change one of them"
            )
        return self.global_batch_tokens // per_pass


class PrecisionSection(_Section):
    dtype: Literal["auto", "bf16", "fp32"] = Field("auto", description="autocast dtype: auto = bf16 on a GPU that has "
                                                   "it natively (NVIDIA Ampere on), else fp32")
    compile: bool = Field(False, description="torch.compile the model")


class CheckpointSection(_Section):
    every_steps: int = Field(200, ge=0, description="0: only at the end and on SIGTERM/SIGINT")
    every_minutes: float | None = Field(None, gt=0, description="also when this many minutes have passed since the "
                                        "last checkpoint: bounds what a preempted (spot) machine loses, whatever a "
                                        "step takes")
    keep_last: int = Field(3, ge=1)
    background: bool = Field(True, description="write checkpoints on a background thread while training goes on "
                             "(the state is first copied to host memory: needs RAM for one copy of it)")


class EvalSection(_Section):
    every_steps: int = Field(100, ge=0)
    batches: int = Field(8, gt=0, description="validation batches per evaluation (the same ones every time)")


class MoESection(_Section):
    bias_update_gamma: float = Field(1e-3, ge=0, description="auxiliary-loss-free balancing speed; 0 disables")
    balance_loss_alpha: float = Field(0.0, ge=0, description="sequence-wise balance loss weight (DeepSeek: 1e-4)")
    mtp_loss_weight: float = Field(0.3, ge=0, description="weight of the MTP loss when the model has MTP")


class CostSection(_Section):
    price_per_hour: float = Field(0.0, ge=0, description="price of one device-hour, any currency")
    watts: float = Field(0.0, ge=0, description="power draw per device, for the energy estimate")
    peak_tflops: float | None = Field(None, gt=0, description="dense bf16 peak TFLOP/s of one device, for MFU; "
                                      "default: fronde's table (fronde.train.hardware), which knows common GPUs")


class LogSection(_Section):
    every_steps: int = Field(10, gt=0)
    tensorboard: bool = False


class DistributedSection(_Section):
    strategy: Literal["ddp", "fsdp"] = Field("ddp", description="used when launched by torchrun with >1 process")
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    timeout_minutes: float = Field(30.0, gt=0, description="how long a rank waits in a collective for the others "
                                   "(rank 0 preparing data or writing a checkpoint) before the run fails; NCCL's "
                                   "own default is 10")


class StageRecipe(_Section):
    """The sections every training stage shares; each stage's recipe adds its own."""

    run: RunSection = Field(default_factory=RunSection)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    batch: BatchSection = Field(default_factory=BatchSection)
    precision: PrecisionSection = Field(default_factory=PrecisionSection)
    checkpoint: CheckpointSection = Field(default_factory=CheckpointSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    moe: MoESection = Field(default_factory=MoESection)
    cost: CostSection = Field(default_factory=CostSection)
    log: LogSection = Field(default_factory=LogSection)
    distributed: DistributedSection = Field(default_factory=DistributedSection)

    @model_validator(mode="after")
    def _warmup_fits(self) -> StageRecipe:
        if self.schedule.warmup_steps >= self.schedule.max_steps:
            raise ValueError("schedule.warmup_steps must be smaller than schedule.max_steps")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.run.out_dir) / self.run.name

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


class InitSection(_Section):
    model: str = Field("", description="model dir to start from; default: for pretraining a new model of [model], "
                       "for later stages runs/<name>/<previous stage>/model")


class PretrainRecipe(StageRecipe):
    data: DataSection = Field(default_factory=DataSection)
    model: ModelSection = Field(default_factory=ModelSection)
    init: InitSection = Field(default_factory=InitSection)  # set: continued pretraining of that model

    @property
    def data_dir(self) -> Path:
        return Path(self.data.dir) if self.data.dir else self.run_dir / "data"


def recipe_names(package: str = RECIPES_PACKAGE) -> list[str]:
    return sorted(f.name.removesuffix(".toml") for f in resources.files(package).iterdir()
                  if f.name.endswith(".toml"))


def read_recipe_toml(spec: str, package: str = RECIPES_PACKAGE, what: str = "recipe") -> tuple[dict[str, Any], str]:
    """(data, where) of a TOML path or of a recipe shipped in `package`; `where` names it in error messages."""
    path = Path(spec)
    if path.is_file():
        text, where = path.read_text(encoding="utf-8"), str(path)
    else:
        shipped = resources.files(package) / f"{spec}.toml"
        if not shipped.is_file():
            raise RecipeError(f"{what} {spec!r} is neither a file nor a shipped {what} "
                              f"({', '.join(recipe_names(package))})")
        text, where = shipped.read_text(encoding="utf-8"), f"shipped {what} {spec}"
    try:
        return tomllib.loads(text), where
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{where}: not valid TOML ({e})") from None


def parse_value(raw: str) -> Any:
    """A --set value as TOML (numbers, booleans, strings, arrays, inline tables), else the bare string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def apply_overrides(data: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"--set {item!r}: expected section.key=value, e.g. optim.lr=1e-3")
        *parents, leaf = key.strip().split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecipeError(f"--set {item!r}: {part} is not a section")
        node[leaf] = parse_value(raw.strip())
    return data


R = TypeVar("R", bound=StageRecipe)


def load_recipe(spec: str, sets: list[str] | None = None, kind: type[R] = PretrainRecipe) -> R:  # type: ignore[assignment]
    """A shipped recipe name or a TOML path, with overrides; errors name the key and the offending value."""
    data, where = read_recipe_toml(spec)
    data = apply_overrides(data, sets or [])
    try:
        return kind.model_validate(data)
    except ValidationError as e:
        raise RecipeError(f"{where}: {validation_message(e, show_input=True, model=kind)}") from None
