"""Column working for addition and subtraction: the school method, one digit column per line.

A small model that answers `57 + 96` in one go must look up a two-digit sum with its carry; written in
columns each line is a one-digit fact (`7 + 6 + 0 = 13`, then `5 + 9 + 1 = 15`) and the answer is read off
the lines (`= 153`). Signed operands are first rewritten to a sum or difference of magnitudes:

    24 + 38             57 - 96             -39 + 3
    4 + 8 + 0 = 12      = -(96 - 57)        = -(39 - 3)
    2 + 3 + 1 = 6       16 - 7 - 0 = 9      9 - 3 - 0 = 6
    = 62                9 - 5 - 1 = 3       3 - 0 - 0 = 3
                        = -39               = -36

Subtraction lines borrow by writing the top digit plus ten (`16 - 7 - 0 = 9`); the last number on each line
is the digit written (plus the carry, for addition's last column).
"""

from __future__ import annotations


def _digits(n: int, width: int) -> list[int]:
    """Units first, zero-padded to `width`."""
    return [(n // 10 ** i) % 10 for i in range(width)]


def add_columns(a: int, b: int) -> list[str]:
    """a + b for a, b >= 0, one line per column, units first."""
    width = max(len(str(a)), len(str(b)))
    lines, carry = [], 0
    for da, db in zip(_digits(a, width), _digits(b, width)):
        s = da + db + carry
        lines.append(f"{da} + {db} + {carry} = {s}")
        carry = s // 10
    return lines


def subtract_columns(a: int, b: int) -> list[str]:
    """a - b for a >= b >= 0, one line per column, units first; a borrow shows as the top digit plus ten."""
    if a < b:
        raise ValueError(f"subtract_columns needs a >= b, got {a} - {b}")
    width = len(str(a))
    lines, borrow = [], 0
    for da, db in zip(_digits(a, width), _digits(b, width)):
        top = da if da - db - borrow >= 0 else da + 10
        lines.append(f"{top} - {db} - {borrow} = {top - db - borrow}")
        borrow = int(top > 9)
    return lines


def column_working(a: int, op: str, b: int) -> list[str]:
    """The lines computing `a op b` (op + or -, signed operands): magnitudes added or subtracted in columns, after
    a line naming the rewrite when the signs change the operation (`= -(96 - 57)` for `57 - 96`)."""
    m, n = abs(a), abs(b)
    adding = (op == "+") == (b >= 0)            # a + n or a - n
    if adding and a >= 0:
        sign, kind, p, q = "", "+", m, n
    elif adding:                                # -m + n
        sign, kind, p, q = ("", "-", n, m) if n >= m else ("-", "-", m, n)
    elif a >= 0:                                # m - n
        sign, kind, p, q = ("", "-", m, n) if m >= n else ("-", "-", n, m)
    else:                                       # -m - n
        sign, kind, p, q = "-", "+", m, n
    lines = add_columns(p, q) if kind == "+" else subtract_columns(p, q)
    shown = f"{p} {kind} {q}" if not sign else f"-({p} {kind} {q})"
    return lines if shown == f"{a} {op} {b}" else [f"= {shown}"] + lines
