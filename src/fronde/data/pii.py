"""PII scrubbing: e-mail, phone, IBAN, payment card, national identity number, IPv4 and IPv6 -> typed placeholders.

Patterns err on the side of precision where a checksum exists (IBAN mod-97, card Luhn, the French social security
number's key) and demand separators for phone numbers and US social security numbers, so code constants and
version strings are not mangled. National identity numbers (the most sensitive of these under the GDPR's
article 9 and US state laws): the US SSN written 123-45-6789 (valid area, group and serial), the French NIR
(numéro de sécurité sociale, 15 digits with its mod-97 key, Corsican departments 2A/2B included) and the UK
National Insurance number (AB 12 34 56 C, with its letter rules). Order matters: IBANs, identity numbers and cards
are replaced before phones so none of them is counted as a phone.

Addresses that are the same on every machine identify no one, and code and documentation are full of them:
loopback and unspecified IPs (127.0.0.1, 0.0.0.0, ::1), netmasks (255.255.255.0), multicast and reserved IPv4
ranges, block addresses with only their top quarter set (10.0.0.0, fe80::, 2001::), the documentation ranges
(RFC 5737, RFC 3849) and the reserved example domains (RFC 2606, RFC 6761: user@example.com). They are kept, and
counted as `kept:<type>`, so a model trained on a scrubbed code corpus still writes `127.0.0.1`, not `<IPV4>`.
Addresses in private ranges (10.1.2.3, 192.168.1.20, a subnet such as 192.168.0.0) and link-local addresses are
still replaced: they map an organisation's network, or derive from a device's hardware address.
"""

from __future__ import annotations

import ipaddress
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass

PLACEHOLDERS = {
    "email": "<EMAIL>",
    "iban": "<IBAN>",
    "card": "<CARD>",
    "national_id": "<NATIONAL_ID>",
    "phone": "<PHONE>",
    "ipv4": "<IPV4>",
    "ipv6": "<IPV6>",
}

_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
# not after "+" (a phone number) nor "." (the digits of a fraction: 0.09999999999999995 passes Luhn)
_CARD = re.compile(r"(?<![\d+.-])\d(?:[ -]?\d){12,18}(?![\d-])")
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,4}){2,5}"  # +33 6 12 34 56 78, +1-202-555-0143
    r"|\+[1-9]\d{7,14}"  # E.164 without separators, as contact exports and JSON hold it: +33612345678
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"  # (202) 555-0143
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 202-555-0143
    r"|0\d(?:[ .]\d{2}){4}"  # 06 12 34 56 78
    r")(?!\w|\.\d)"  # not the integer part of a decimal: Decimal('+35236450.6')
)
# Not part of a longer dotted number (a version such as 1.2.3.4.5), but a sentence may end right after the address.
_IPV4 = re.compile(r"(?<!\w)(?<!\d\.)(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
                   r"(?!\w|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")


# US SSN, dashed (bare 9 digits are too often other numbers), with a valid area, group and serial
_SSN = re.compile(r"(?<![\w-])(?!000|666|9)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])")
# French NIR: sex, year, month, department (2A/2B: Corsica), commune, rank, key (checked by nir_ok)
_NIR = re.compile(r"(?<![\w-])[12] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}(?![\w-])")
# UK National Insurance number: two letters (not D, F, I, Q, U, V; the second not O), six digits, A-D
_NINO = re.compile(r"(?<![\w-])(?![DFIQUV])[A-Z](?![DFIQUVO])[A-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![\w-])")

# bump when what is scrubbed changes: prepared data is rebuilt (fronde.data.pipeline.cache_key)
RULES_VERSION = 3

_SHARED_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "127.0.0.0/8",  # "this network" (unspecified, host masks such as 0.0.0.255), loopback
    "224.0.0.0/4", "240.0.0.0/4",  # multicast groups; reserved, with the limited broadcast 255.255.255.255
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # IPv4 documentation (RFC 5737)
    "::/128", "::1/128", "2001:db8::/32",  # IPv6 unspecified, loopback, documentation (RFC 3849)
))
SHARED_KINDS = ("email", "ipv4", "ipv6")  # the kinds whose matches may be shared addresses, kept as `kept:<kind>`
_SHARED_DOMAINS = ("example.com", "example.org", "example.net")  # RFC 2606
_SHARED_TLDS = ("example", "test", "invalid", "localhost")  # RFC 6761


def shared_address(kind: str, value: str) -> bool:
    """Whether a matched e-mail or IP address is one every machine shares (identifies no one)."""
    if kind == "email":
        domain = value.rsplit("@", 1)[-1].lower()
        return any(domain == d or domain.endswith("." + d) for d in _SHARED_DOMAINS) \
            or domain.rsplit(".", 1)[-1] in _SHARED_TLDS
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    if _is_netmask(int(address), address.max_prefixlen):  # 255.255.255.0: the same on every network
        return True
    if int(address) & ((1 << (address.max_prefixlen * 3 // 4)) - 1) == 0:
        return True  # only the top quarter set (10.0.0.0, 2001:db8::, fe80::): a registry-sized block, not a host
    return any(address in net for net in _SHARED_NETWORKS if net.version == address.version)


def _is_netmask(bits: int, width: int) -> bool:
    """A contiguous run of leading ones (255.255.240.0, ffff:ffff::), at least the first 8 bits."""
    inverted = ~bits & ((1 << width) - 1)
    return bits >> (width - 8) == 0xFF and inverted & (inverted + 1) == 0


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


def nir_ok(candidate: str) -> bool:
    """The French NIR's key: 97 - (the 13-digit number mod 97), Corsica's 2A and 2B counted as 19 and 18."""
    s = candidate.replace(" ", "")
    body = s[:13].replace("2A", "19").replace("2B", "18")
    return body.isdigit() and s[13:].isdigit() and 97 - int(body) % 97 == int(s[13:])


_NINO_PREFIXES_NEVER = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}




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


@dataclass(frozen=True)
class _Rule:
    """A PII pattern, searched only in windows around cheap `anchor` hits (every true match contains
    one), which makes scrubbing ~10x faster on code and prose where PII is rare."""

    kind: str
    anchor: re.Pattern[str]
    full: re.Pattern[str]
    radius: int  # >= the longest match, so a window always holds the whole match around an anchor
    check: Callable[[re.Match[str]], bool] | None = None


_RULES = [
    _Rule("email", re.compile(r"@[A-Za-z0-9-]+\."), _EMAIL, 330),
    _Rule("iban", re.compile(r"[A-Z]{2}\d{2}"), _IBAN, 48, lambda m: iban_ok(m.group())),
    _Rule("national_id", re.compile(r"\d{3}-\d{2}-"), _SSN, 16),
    _Rule("national_id", re.compile(r"\d{3} ?\d{3} ?\d{2}\b"), _NIR, 24, lambda m: nir_ok(m.group())),
    _Rule("national_id", re.compile(r"[A-Z]{2} ?\d{2} ?\d{2}"), _NINO, 16,
          lambda m: m.group()[:2] not in _NINO_PREFIXES_NEVER),
    _Rule("card", re.compile(r"\d{4}"), _CARD, 40, _card_ok),
    _Rule("phone", re.compile(r"\d[ .-]\d|\+\d|\(\d"), _PHONE, 40),
    _Rule("ipv4", re.compile(r"\d\.\d{1,3}\.\d"), _IPV4, 20),
    _Rule("ipv6", re.compile(r":[0-9A-Fa-f]{0,4}:"), _IPV6, 48, _ipv6_ok),
]


def _find(text: str, rule: _Rule) -> list[tuple[int, int]]:
    anchors = [(a.start(), a.end()) for a in rule.anchor.finditer(text)]
    if not anchors:
        return []
    anchor_starts = [a[0] for a in anchors]
    windows: list[list[int]] = []
    for a, b in anchors:
        lo, hi = max(0, a - rule.radius), min(len(text), b + rule.radius)
        if windows and lo <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], hi)
        else:
            windows.append([lo, hi])
    spans: list[tuple[int, int]] = []
    for lo, hi in windows:
        for m in rule.full.finditer(text, lo, hi):
            s, e = m.span()
            if spans and s < spans[-1][1]:
                continue
            if e == hi and hi < len(text):  # the window edge may have cut it: not a real match end
                continue
            i = bisect_left(anchor_starts, s)
            if i == len(anchors) or anchors[i][1] > e:  # contains no anchor: not ours to judge
                continue
            if rule.check is not None and not rule.check(m):
                continue
            spans.append((s, e))
    return spans


def scrub_pii(text: str, counts: Counter[str] | None = None) -> str:
    """Replace PII with typed placeholders, adding replacements per type to `counts` (and `kept:<type>` for the
    shared addresses left in place)."""
    for rule in _RULES:
        spans = _find(text, rule)
        if rule.kind in SHARED_KINDS and spans:
            found = len(spans)
            spans = [(s, e) for s, e in spans if not shared_address(rule.kind, text[s:e])]
            if counts is not None and found > len(spans):
                counts[f"kept:{rule.kind}"] += found - len(spans)
        if not spans:
            continue
        placeholder = PLACEHOLDERS[rule.kind]
        out, pos = [], 0
        for s, e in spans:
            out.append(text[pos:s])
            out.append(placeholder)
            pos = e
        out.append(text[pos:])
        text = "".join(out)
        if counts is not None:
            counts[rule.kind] += len(spans)
    return text


def pii_summary(counts: Counter[str]) -> dict[str, Any]:
    """What a manifest or a lineage records of a scrub: replacements per type, their total, and the shared
    addresses left in place."""
    return {"replacements": {k: counts.get(k, 0) for k in PLACEHOLDERS},
            "total": sum(counts.get(k, 0) for k in PLACEHOLDERS),
            "kept_shared": {k: counts.get(f"kept:{k}", 0) for k in SHARED_KINDS}}


def describe(summary: dict[str, Any]) -> str:
    """A `pii_summary` in words, for a command's output and the model card: `email 2, phone 1; 1 shared addresses
    kept`."""
    replaced = ", ".join(f"{k} {v:,}" for k, v in summary["replacements"].items() if v) or "nothing found"
    kept = sum(summary.get("kept_shared", {}).values())
    return replaced + (f"; {kept:,} shared addresses kept" if kept else "")
