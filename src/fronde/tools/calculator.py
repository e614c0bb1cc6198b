"""A calculator a model can call: exact arithmetic over Python's `ast`, never `eval`.

Small models get arithmetic wrong; a calculator that is exact (fractions, so 0.1 + 0.2 is 0.3 and 7/2 is 3.5) and
forgiving about notation (`x`, `×`, `÷`, `^`, `1,234`) lets them hand it over. The expression comes from a model,
so only a whitelist of syntax is evaluated (numbers, operators, a few named functions and constants; no names,
attributes or calls outside it), and every input is bounded so none can hang or eat memory: its length, its node
count, exponents, and the size of every intermediate number. Errors are ValueErrors worded for the model.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

from fronde.tools.base import tool
from fronde.tools.errors import ToolCallError

Number = Fraction | float

MAX_LENGTH = 500  # characters of the expression
MAX_NODES = 400  # syntax tree nodes
MAX_EXPONENT = 1000  # |n| in x ** n
MAX_DIGITS = 1000  # digits of any exact intermediate value (numerator or denominator)
_MAX_BITS = math.ceil(MAX_DIGITS * math.log2(10))
SIGNIFICANT = 10  # digits shown for a result that is not a whole number

_SPELLINGS = (("×", "*"), ("÷", "/"), ("−", "-"), ("–", "-"), ("·", "*"), ("^", "**"), ("π", "pi"))
_TIMES = re.compile(r"(?<![A-Za-z_])[xX](?![A-Za-z_])")  # `x` as a word, not inside `max` or `exp`
_CALL_BEFORE = re.compile(r"[A-Za-z_]\w*\s*$")
_EXPONENT = re.compile(r"[eE]([+-]?\d+)")


class CalculatorError(ToolCallError):
    """An expression the calculator refuses or cannot compute (a ValueError, worded for the model)."""


def _positive(name: str, x: Number) -> Number:
    if x <= 0:
        raise CalculatorError(f"{name} is only defined for positive numbers, got {format_number(x)}")
    return x


def _ln(x: Number) -> float:
    x = _positive("log", x)
    if isinstance(x, Fraction):  # math.log takes integers of any size, so huge fractions work too
        return math.log(x.numerator) - math.log(x.denominator)
    return math.log(x)


def _log(x: Number, base: Number | None = None) -> float:
    if base is None:
        return _ln(x)
    if base == 1:
        raise CalculatorError("log base 1 is undefined")
    return _ln(x) / _ln(_positive("the log base", base))


def _sqrt(x: Number) -> Number:
    if x < 0:
        raise CalculatorError(f"sqrt of a negative number ({format_number(x)}) is not a real number")
    if isinstance(x, Fraction):
        n, d = math.isqrt(x.numerator), math.isqrt(x.denominator)
        if n * n == x.numerator and d * d == x.denominator:
            return Fraction(n, d)
    return math.sqrt(x)


def _round(x: Number, digits: Number = Fraction(0)) -> Fraction:
    """Halves away from zero (what people expect of round(2.5)), to `digits` decimals."""
    if not (isinstance(digits, Fraction) and digits.denominator == 1 and abs(digits) <= 100):
        raise CalculatorError("round(x, n) needs a whole number of decimals n between -100 and 100")
    scale = Fraction(10) ** int(digits)
    q = Fraction(x) * scale
    r = math.floor(abs(q) + Fraction(1, 2))
    return Fraction(r if q >= 0 else -r) / scale


def _whole(fn: Callable[[Number], int]) -> Callable[[Number], Fraction]:
    return lambda x: Fraction(fn(x))


def _real(fn: Callable[[float], float]) -> Callable[[Number], float]:
    return lambda x: fn(float(x))


# name -> (function, fewest arguments, most arguments)
FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int]] = {
    "sqrt": (_sqrt, 1, 1), "abs": (abs, 1, 1), "round": (_round, 1, 2), "min": (min, 1, 50), "max": (max, 1, 50),
    "floor": (_whole(math.floor), 1, 1), "ceil": (_whole(math.ceil), 1, 1), "log": (_log, 1, 2),
    "log10": (lambda x: _log(x, Fraction(10)), 1, 1), "log2": (lambda x: _log(x, Fraction(2)), 1, 1),
    "exp": (_real(math.exp), 1, 1), "sin": (_real(math.sin), 1, 1), "cos": (_real(math.cos), 1, 1),
    "tan": (_real(math.tan), 1, 1)}
CONSTANTS: dict[str, Number] = {"pi": math.pi, "e": math.e}
_OPERATORS: dict[type, Callable[[Number, Number], Number]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}
_DIVISIONS: dict[type, Callable[[Number, Number], Number]] = {
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}


def _normalize(expression: str) -> str:
    """Calculator spellings to Python's: ×, x, ÷, ^, π, a trailing '=', and thousands separators (1,234)."""
    text = expression.strip().rstrip("=").strip()
    for spelled, python in _SPELLINGS:
        text = text.replace(spelled, python)
    text = _TIMES.sub("*", text)
    out: list[str] = []
    calls: list[bool] = []  # per open parenthesis: does it hold a function's arguments?
    for i, ch in enumerate(text):
        if ch == "(":
            calls.append(bool(_CALL_BEFORE.search(text, 0, i)))
        elif ch == ")" and calls:
            calls.pop()
        elif (ch == "," and not (calls and calls[-1]) and i > 0 and text[i - 1].isdigit()
              and text[i + 1:i + 4].isdigit() and len(text[i + 1:i + 4]) == 3
              and not text[i + 4:i + 5].isdigit()):
            continue  # a thousands separator; inside a call's parentheses commas separate arguments
        out.append(ch)
    return "".join(out)


def _parse(expression: str) -> tuple[ast.Expression, str]:
    if len(expression) > MAX_LENGTH:
        raise CalculatorError(f"the expression is too long ({len(expression)} characters, at most {MAX_LENGTH})")
    text = _normalize(expression)
    if not text:
        raise CalculatorError("the expression is empty")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        detail = e.msg if isinstance(e, SyntaxError) else type(e).__name__
        shown = expression if len(expression) <= 60 else expression[:60] + "..."
        raise CalculatorError(f"cannot read {shown!r} as arithmetic ({detail})") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise CalculatorError(f"the expression is too complex (more than {MAX_NODES} parts); split it up")
    return tree, text


def _check(value: Number) -> Number:
    if isinstance(value, float):
        if math.isnan(value):
            raise CalculatorError("the result is not a number")
        if math.isinf(value):
            raise CalculatorError("the result is too large")
    elif value.numerator.bit_length() > _MAX_BITS or value.denominator.bit_length() > _MAX_BITS:
        raise CalculatorError(f"a number in the computation has more than {MAX_DIGITS} digits")
    return value


def _literal(node: ast.Constant, text: str) -> Fraction:
    if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
        raise CalculatorError(f"{node.value!r} is not a number")
    literal = (ast.get_source_segment(text, node) or repr(node.value)).replace("_", "")
    m = _EXPONENT.search(literal)
    if m and abs(int(m.group(1))) > MAX_DIGITS:
        raise CalculatorError(f"the number {literal} is too large")
    return Fraction(literal)  # the decimal as written, exactly (0.1 is 1/10, not the nearest binary float)


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(exponent, Fraction) and exponent.denominator == 1:
        n = exponent.numerator
        if abs(n) > MAX_EXPONENT:
            raise CalculatorError(f"the exponent {n} is too large (at most {MAX_EXPONENT} in absolute value)")
        if isinstance(base, Fraction):
            if base == 0 and n < 0:
                raise CalculatorError("division by zero")
            if max(base.numerator.bit_length(), base.denominator.bit_length()) * abs(n) > _MAX_BITS + 64:
                raise CalculatorError(f"the result would have more than {MAX_DIGITS} digits")
            return base ** n
        return float(base) ** n
    if base < 0:
        raise CalculatorError("a negative number to a fractional power is not a real number")
    if base == 0 and exponent < 0:
        raise CalculatorError("division by zero")
    return float(base) ** float(exponent)


def _eval(node: ast.AST, text: str) -> Number:
    if isinstance(node, ast.Constant):
        return _literal(node, text)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _eval(node.operand, text)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, text), _eval(node.right, text)
        op = type(node.op)
        if op in _OPERATORS:
            return _check(_OPERATORS[op](left, right))
        if op in _DIVISIONS:
            if right == 0:
                raise CalculatorError("division by zero")
            return _check(_DIVISIONS[op](left, right))
        if op is ast.Pow:
            return _check(_power(left, right))
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        raise CalculatorError(f"unknown name {node.id!r}; the constants are {', '.join(CONSTANTS)}")
    if isinstance(node, ast.Call):
        return _call(node, text)
    raise CalculatorError(_unsupported(node))


def _call(node: ast.Call, text: str) -> Number:
    name = node.func.id if isinstance(node.func, ast.Name) else None
    if name not in FUNCTIONS:
        shown = repr(name) if name else "this"
        raise CalculatorError(f"unknown function {shown}; the functions are {', '.join(FUNCTIONS)}")
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        raise CalculatorError(f"{name}() takes plain arguments, e.g. {name}(2)")
    fn, fewest, most = FUNCTIONS[name]
    if not fewest <= len(node.args) <= most:
        count = str(fewest) if fewest == most else f"{fewest} to {most}"
        raise CalculatorError(f"{name}() takes {count} argument{'s' if most > 1 else ''}, got {len(node.args)}")
    args = [_eval(a, text) for a in node.args]
    result = fn(*args)
    return _check(Fraction(result) if isinstance(result, int) else result)


def _unsupported(node: ast.AST) -> str:
    if isinstance(node, ast.Tuple):
        return "a comma only separates a function's arguments, or thousands as in 1,234"
    what = {ast.Attribute: "attribute access (.)", ast.Compare: "a comparison"}.get(type(node))
    return (f"{what or f'the syntax {type(node).__name__!r}'} is not supported; use numbers, + - * / // % ** (or ^), "
            f"parentheses and the functions {', '.join(FUNCTIONS)}")


def format_number(value: Number) -> str:
    """A whole number as an integer, anything else as a decimal with at most 10 significant digits (more when
    the integer part is longer), in scientific notation when very small or large."""
    if isinstance(value, Fraction) and value.denominator == 1:
        return str(value.numerator)
    whole = abs(int(value))
    digits = len(str(whole)) if whole else 0
    exact = isinstance(value, Fraction) or digits <= 15  # a float's further digits are noise
    places = max(SIGNIFICANT, digits) if exact else SIGNIFICANT
    with localcontext() as ctx:
        ctx.prec, ctx.rounding = places, ROUND_HALF_UP
        if isinstance(value, Fraction):
            d = Decimal(value.numerator) / Decimal(value.denominator)
        else:
            d = +Decimal(value)
        d = d.normalize()
    if d.is_zero():
        return "0"
    return format(d, "f") if -6 <= d.adjusted() < places else format(d, "e")


def calculate(expression: str) -> str:
    """The value of an arithmetic expression, as text; raises ValueError (CalculatorError) with a reason."""
    tree, text = _parse(expression)
    try:
        return format_number(_check(_eval(tree.body, text)))
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except OverflowError:
        raise CalculatorError("the result is too large") from None
    except RecursionError:
        raise CalculatorError("the expression is nested too deeply") from None


# Short on purpose: the description is in every prompt that offers the tool, and a small model's context is short.
DESCRIPTION = ("Evaluate an arithmetic expression exactly, e.g. (12 + 3) * 4 / 5. Numbers, + - * / // % ** and "
               "parentheses; sqrt, log, exp, sin, cos, min, max, abs, round; pi, e.")

calculator = tool(calculate, name="calculator", description=DESCRIPTION, isolate=False)
