"""Cleaning (NFC, newlines, control characters, streaming decode) and PII scrubbing."""

from __future__ import annotations

import io
import unicodedata
from collections import Counter

import pytest

from fronde.data.clean import CleanStats, clean_text, iter_text_pieces, split_long
from fronde.data.encoding import decode_as
from fronde.data.pii import iban_ok, luhn_ok, nir_ok, scrub_pii, shared_address


def test_clean_text_nfc_newlines_controls() -> None:
    stats = CleanStats()
    raw = "Cafe\u0301\r\nline2\rline3\x00\x07 tab\tok\ufeff\x85end"
    out = clean_text(raw, stats)
    assert out == "Café\nline2\nline3 tab\tok\nend"
    assert unicodedata.is_normalized("NFC", out)
    assert stats.control_chars == 3 and stats.nfc_changed == 1


def test_decode_utf8_counts_bad_bytes() -> None:
    assert decode_as("héllo".encode(), "utf-8") == ("héllo", False)
    text, bad = decode_as(b"ok \xff\xfe end", "utf-8")
    assert bad and "\ufffd" in text and text.startswith("ok ")


def test_iter_text_pieces_bounded_and_lossless() -> None:
    words = " ".join(f"w{i}" for i in range(20000)) + "\n" + "é" * 5000
    pieces = list(iter_text_pieces(io.BytesIO(words.encode()), max_chars=3000, block=1024))
    assert "".join(p for p, _ in pieces) == words
    assert all(len(p) <= 3000 for p, _ in pieces)
    assert not any(bad for _, bad in pieces)
    # a multi-byte character split across read blocks is not "invalid UTF-8"
    assert list(split_long("abc def ghi", 1000)) == ["abc def ghi"]


def test_iter_text_pieces_flags_invalid_bytes() -> None:
    data = b"good text " * 50 + b"\xc3\x28 broken" + b" more" * 50
    pieces = list(iter_text_pieces(io.BytesIO(data), max_chars=1000, block=64))
    assert any(bad for _, bad in pieces)


@pytest.mark.parametrize(("text", "kind"), [
    ("write to jane.doe+work@example.co.uk today", "email"),
    ("call +33 6 12 34 56 78 now", "phone"),
    ("call (202) 555-0143 now", "phone"),
    ("call 202-555-0143 now", "phone"),
    ('{"phone": "+33612345678"}', "phone"),  # E.164 without separators, as exports hold it
    ("tel:+4915123456789 ok", "phone"),  # 15 digits: a phone after "+", not a card
    ("IBAN GB82 WEST 1234 5698 7654 32 here", "iban"),
    ("IBAN FR1420041010050500013M02606 here", "iban"),
    ("card 4111 1111 1111 1111 ok", "card"),
    ("card 5500-0000-0000-0004 ok", "card"),
    ("host 192.168.1.20 is up", "ipv4"),
    ("host 2a01:e0a:1f3:5c40::8a2e:370:7334 is up", "ipv6"),
    ("office LAN 10.0.12.7 and", "ipv4"),
    ("The server is 83.12.45.6.", "ipv4"),  # at the end of a sentence too  # private ranges map an organisation's network: replaced
    ("mail ops@example.company.fr now", "email"),  # not a reserved domain
    ("link fe80::1 local", "ipv6"),
    ("SSN 123-45-6789 on file", "national_id"),
    ("NIR 1 85 05 78 006 084 91 (carte Vitale)", "national_id"),  # its key: 97 - 1850578006084 mod 97
    ("NIR 280062A12345650.", "national_id"),  # Corsica: 2A counts as 19 in the key
    ("NI number AB 12 34 56 C here", "national_id"),
])
def test_pii_each_type(text: str, kind: str) -> None:
    counts: Counter[str] = Counter()
    out = scrub_pii(text, counts)
    assert counts == Counter({kind: 1}), (out, counts)
    assert f"<{kind.upper()}>" in out


@pytest.mark.parametrize("text", [
    "card 4111 1111 1111 1112 fails Luhn",
    "IBAN GB82 WEST 1234 5698 7654 33 fails mod 97",
    "x[1::2] and a::b and std::vector<int>",
    "version 1.2.3 and v1.2.3.4 and 3.14159265358979",
    "dotted numbers 1.2.3.4.5 and 10.0.0.1.2 are not addresses",
    "x = 1e+12345678 and a+12345678901 are code",
    "fractions 0.09999999999999995 and 1.79769313486231e+308 and Decimal('+35236450.6')",
    "timestamps 2023-01-15 10:30:45 and 0000000000000000",
    "no email in user@localhost or @decorator.attr",
    "SSN-like 666-12-3456, 900-12-3456 and 123-00-4567 are never issued",
    "NIR with a wrong key 1 85 05 78 006 084 36, and 123456789 bare",
    "NI-like GB 12 34 56 A and DA 12 34 56 B have prefixes never issued",
])
def test_pii_leaves_lookalikes(text: str) -> None:
    counts: Counter[str] = Counter()
    assert scrub_pii(text, counts) == text
    assert not counts


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE89370400440532013001")
    assert nir_ok("1 85 05 78 006 084 91") and not nir_ok("1 85 05 78 006 084 92") and nir_ok("280062A12345650")


@pytest.mark.parametrize(("text", "kind"), [
    ("server.bind(('127.0.0.1', 8000))", "ipv4"),
    ("listen on 0.0.0.0 port 80", "ipv4"),
    ("netmask 255.255.255.0 (hostmask 0.0.0.255)", "ipv4"),
    ("mDNS group 224.0.0.251", "ipv4"),
    ("see 192.0.2.15 and 203.0.113.9 in RFC 5737", "ipv4"),
    ("host 2001:db8:85a3::8a2e:370:7334 is the documentation prefix", "ipv6"),
    ("send to user@example.com or a@mail.example.org", "email"),
    ("git config user.email ci@runner.test", "email"),
])
def test_shared_addresses_are_kept_and_counted(text: str, kind: str) -> None:
    """Addresses every machine shares identify no one: a scrubbed code corpus keeps `127.0.0.1`, and the manifest
    counts what was left in place."""
    counts: Counter[str] = Counter()
    assert scrub_pii(text, counts) == text
    assert set(counts) == {f"kept:{kind}"} and counts[f"kept:{kind}"] >= 1


def test_shared_address_rules() -> None:
    assert shared_address("ipv4", "127.255.0.1") and not shared_address("ipv4", "128.0.0.1")
    assert not shared_address("ipv4", "192.168.1.20") and not shared_address("ipv6", "fe80::1")
    assert shared_address("ipv4", "255.255.240.0") and not shared_address("ipv4", "83.255.255.0")
    assert shared_address("ipv6", "ffff:ffff:ffff:ffff::") and shared_address("ipv6", "fe80::")  # a mask, a block
    assert shared_address("ipv4", "10.0.0.0") and not shared_address("ipv4", "10.1.0.0")  # /8 block; a subnet
    assert not shared_address("ipv6", "2a01:e0a:1f3::")  # a site's prefix maps an organisation
    assert shared_address("email", "X@EXAMPLE.NET") and not shared_address("email", "x@example.co.uk")
    assert not shared_address("email", "x@notexample.com") and not shared_address("ipv4", "not an address")
