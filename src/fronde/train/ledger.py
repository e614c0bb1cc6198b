"""The cost ledger: what a run consumed (tokens, FLOPs, time, device-hours, money, energy), across resumes and stages.

Each stage appends an entry; a resumed stage continues its own entry. Figures are computed from measured wall time
and the model's analytic FLOPs (fronde.model.info), never estimated after the fact.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fronde.data.errors import DataError
from fronde.data.io import atomic_write_text
from fronde.train.hardware import peak_flops, unknown_peak_note
from fronde.train.recipe import CostSection

if TYPE_CHECKING:
    import torch


@dataclass
class StageCost:
    stage: str
    device: str  # label from fronde.train.hardware
    n_devices: int
    peak_flops_per_device: float  # 0: not known (a GPU fronde's table lacks, no cost.peak_tflops)
    tokens: int = 0
    flops: float = 0.0
    wall_seconds: float = 0.0
    price_per_device_hour: float = 0.0
    watts_per_device: float = 0.0
    resumes: int = 0

    @property
    def device_hours(self) -> float:
        return self.wall_seconds * self.n_devices / 3600

    @property
    def mfu(self) -> float | None:
        """None when the device's peak is not known: a made-up figure would be worse than none."""
        if not self.peak_flops_per_device:
            return None
        budget = self.wall_seconds * self.n_devices * self.peak_flops_per_device
        return self.flops / budget if budget else 0.0

    @property
    def mfu_text(self) -> str:
        return "-" if self.mfu is None else f"{self.mfu:.1%}"

    @property
    def cost(self) -> float:
        return self.device_hours * self.price_per_device_hour

    @property
    def energy_kwh(self) -> float:
        return self.device_hours * self.watts_per_device / 1000

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"device_hours": self.device_hours, "mfu": self.mfu, "cost": self.cost,
                               "energy_kwh": self.energy_kwh}


@dataclass
class Ledger:
    stages: list[StageCost] = field(default_factory=list)

    def stage(self, name: str, **kwargs: Any) -> StageCost:
        """The entry for `name`, created on first use; a resumed stage gets its existing entry back."""
        for s in self.stages:
            if s.stage == name:
                s.resumes += 1
                for k, v in kwargs.items():
                    setattr(s, k, v)
                return s
        entry = StageCost(stage=name, **kwargs)
        self.stages.append(entry)
        return entry

    def totals(self) -> dict[str, float]:
        return {
            "tokens": sum(s.tokens for s in self.stages),
            "flops": sum(s.flops for s in self.stages),
            "wall_seconds": sum(s.wall_seconds for s in self.stages),
            "device_hours": sum(s.device_hours for s in self.stages),
            "cost": sum(s.cost for s in self.stages),
            "energy_kwh": sum(s.energy_kwh for s in self.stages),
        }

    def to_json(self) -> dict[str, Any]:
        return {"stages": [s.as_dict() for s in self.stages], "totals": self.totals(), "updated": time.time()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ledger:
        fields = set(StageCost.__dataclass_fields__)
        return cls([StageCost(**{k: v for k, v in s.items() if k in fields}) for s in data.get("stages", [])])

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Ledger:
        if not path.is_file():
            return cls()
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError) as e:
            # written atomically by fronde, so damaged elsewhere (a disk, a copy cut short, an edit)
            raise DataError(f"{path}: the run's cost ledger is damaged ({e}); every checkpoint's state.json holds the "
                            "ledger as of that checkpoint (its \"ledger\" field): put that back, or move the file away "
                            "to start a new one") from None


def open_stage(ledger: Ledger, name: str, device: torch.device, n_devices: int, cost: CostSection,
               say: Callable[[str], None]) -> StageCost:
    """The ledger entry a training stage charges, priced from the recipe's `[cost]` and the device's peak."""
    label, peak = peak_flops(device, cost.peak_tflops)
    if peak is None:
        say(unknown_peak_note(label))
    return ledger.stage(name, device=label, n_devices=n_devices, peak_flops_per_device=peak or 0.0,
                        price_per_device_hour=cost.price_per_hour, watts_per_device=cost.watts)


def charge_work(path: Path, name: str, device: torch.device, n_devices: int, seconds: float, tokens: int = 0,
                cost: CostSection | None = None) -> StageCost:
    """Charge work that is not a training step (preparing data, evaluating) to the run's ledger at `path`: its
    measured wall time on the run's devices, which are paid for while they wait, priced by `cost` or, without one,
    as the ledger's last stage on the same device. No FLOPs are counted, so no MFU is claimed."""
    ledger = Ledger.load(path)
    label, _ = peak_flops(device, None)
    if cost is not None:
        price, watts = cost.price_per_hour, cost.watts
    else:
        same = [s for s in ledger.stages if s.device == label]
        price, watts = (same[-1].price_per_device_hour, same[-1].watts_per_device) if same else (0.0, 0.0)
    # an existing entry is found by Ledger.stage (which counts the resume); a new one gets the devices and prices
    new = {} if any(s.stage == name for s in ledger.stages) else dict(
        device=label, n_devices=n_devices, peak_flops_per_device=0.0, price_per_device_hour=price,
        watts_per_device=watts)
    entry = ledger.stage(name, **new)
    entry.wall_seconds += seconds
    entry.tokens += tokens
    ledger.save(path)
    return entry
