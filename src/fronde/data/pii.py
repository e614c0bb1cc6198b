"""PII scrubbing: e-mail, phone, IBAN, payment card, IPv4 and IPv6 -> typed placeholders.

Patterns err on the side of precision where a checksum exists (IBAN mod-97, card Luhn) and demand
separators for phone numbers, so code constants and version strings are not mangled. Order matters:
IBANs and cards are replaced before phones so a card number is never counted as a phone.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable

PLACEHOLDERS = {
    "email": "<EMAIL>",
    "iban": "<IBAN>",
    "card": "<CARD>",
    "phone": "<PHONE>",
    "ipv4": "<IPV4>",
    "ipv6": "<IPV6>",
}

_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,4}){2,5}"  # +33 6 12 34 56 78, +1-202-555-0143
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"  # (202) 555-0143
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 202-555-0143
    r"|0\d(?:[ .]\d{2}){4}"  # 06 12 34 56 78
    r")(?![\w])"
)
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _card_ok(m: re.Match[str]) -> bool:
    digits = re.sub(r"[ -]", "", m.group())
    return 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_ok(digits)


def _ipv6_ok(m: re.Match[str]) -> bool:
    s = m.group()
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    groups = [g for g in s.split(":") if g]
    # `a[1::2]` and `::1` are valid IPv6 syntax but far more often code; demand some substance.
    return len(groups) >= 3 or any(len(g) >= 3 for g in groups)


_RULES: list[tuple[str, re.Pattern[str], Callable[[re.Match[str]], bool] | None, Callable[[str], bool]]] = [
    ("email", _EMAIL, None, lambda t: "@" in t),
    ("iban", _IBAN, lambda m: iban_ok(m.group()), lambda t: True),
    ("card", _CARD, _card_ok, lambda t: True),
    ("phone", _PHONE, None, lambda t: True),
    ("ipv4", _IPV4, None, lambda t: "." in t),
    ("ipv6", _IPV6, _ipv6_ok, lambda t: "::" in t or t.count(":") >= 7),
]


def scrub_pii(text: str, counts: Counter[str] | None = None) -> str:
    """Replace PII with typed placeholders, adding replacements per type to `counts`."""
    for kind, pattern, check, worth_trying in _RULES:
        if not worth_trying(text):
            continue
        n = 0
        placeholder = PLACEHOLDERS[kind]

        def repl(m: re.Match[str]) -> str:
            nonlocal n
            if check is not None and not check(m):
                return m.group()
            n += 1
            return placeholder

        text = pattern.sub(repl, text)
        if n and counts is not None:
            counts[kind] += n
    return text
