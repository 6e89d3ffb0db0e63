"""Caller identity parsing (voice/identity.py): From, P-Asserted-Identity, Request-URI."""

from __future__ import annotations

import pytest

from voice.identity import (
    MAX_HEADER_BYTES,
    CallerIdentity,
    NameAddr,
    caller_identity,
    parse_name_addr,
    split_values,
    uri_user,
)


def invite(*headers: str, uri: str = "sip:800@10.0.0.1", body: str = "") -> str:
    return "\r\n".join([f"INVITE {uri} SIP/2.0", "Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK1", *headers,
                        "Content-Length: 0", "", body])


@pytest.mark.parametrize(("value", "expected"), [
    ('"Alice" <sip:alice@h>;tag=1', NameAddr("Alice", "sip:alice@h")),
    ('"Smith, \\"Al\\"" <sip:al@h>', NameAddr('Smith, "Al"', "sip:al@h")),
    ('"back\\\\slash" <sip:x@h>', NameAddr("back\\slash", "sip:x@h")),
    ('"<sip:fake@evil>" <sip:real@h>', NameAddr("<sip:fake@evil>", "sip:real@h")),
    ("Alice   Smith\t<sip:a@h>", NameAddr("Alice Smith", "sip:a@h")),
    ("<sip:a@h;transport=tcp>;tag=x", NameAddr("", "sip:a@h;transport=tcp")),
    ("sip:bare@h;tag=99", NameAddr("", "sip:bare@h")),
    ("tel:+1-555-0100;tag=1", NameAddr("", "tel:+1-555-0100")),
    ('""<sip:a@h>', NameAddr("", "sip:a@h")),
    ('"Zoë 张" <sip:z@h>', NameAddr("Zoë 张", "sip:z@h")),
])
def test_name_addr_forms(value: str, expected: NameAddr) -> None:
    assert parse_name_addr(value) == expected


@pytest.mark.parametrize("value", [
    "", "   ", '"unterminated <sip:a@h>', '"name" sip:a@h', "<sip:a@h", "Alice <>", "<<sip:a@h>>",
    'name" <sip:a@h>', "no-scheme", "sip:has space@h", '"\\', '"x"', ">", "<sip:a@h",
])
def test_malformed_name_addr_is_none(value: str) -> None:
    assert parse_name_addr(value) is None


@pytest.mark.parametrize(("uri", "user"), [
    ("sip:alice@example.com", "alice"),
    ("SIPS:Bob@example.com:5061", "Bob"),
    ("sip:+1-555-123-4567@gw;user=phone", "+15551234567"),
    ("sip:+15551234567;npdi;rn=+15550000000@gw;user=phone", "+15551234567"),
    ("sip:alice:secret@h", "alice"),
    ("sip:%2B44%2020%207946%200000@h", "+442079460000"),
    ("sip:j%C3%B6rg@h", "jörg"),
    ("sip:bad%ffbyte@h", "bad\udcffbyte"),  # not UTF-8: kept as a surrogate (clean() shows \xff)
    ("sip:%zz@h", "%zz"),
    ("sip:example.com", ""),
    ("sip:@h", ""),
    ("tel:+1.555.(012).3456;phone-context=example.com", "+15550123456"),
    ("tel:*67;phone-context=x", "*67"),
    ("urn:service:sos", ""),
    ("http://evil/", ""),
    ("", ""),
    ("alice", ""),
    ("sip:1-800-FLOWERS@h", "1-800-FLOWERS"),  # not a number: written as it is
])
def test_uri_user(uri: str, user: str) -> None:
    assert uri_user(uri) == user


def test_split_values_respects_quotes_and_brackets() -> None:
    assert split_values('"Doe, J" <sip:j@h>, <tel:+1;a=b,c>, sip:x@h') == [
        '"Doe, J" <sip:j@h>', "<tel:+1;a=b,c>", "sip:x@h"]
    assert split_values(' , ,"a\\",b" <sip:a@h>') == ['"a\\",b" <sip:a@h>']


def test_from_only() -> None:
    msg = invite('From: "Alice" <sip:+1-555-0100@10.0.0.2>;tag=1', "To: <sip:800@10.0.0.1>")
    assert caller_identity(msg) == CallerIdentity("+15550100", "Alice", "800")


def test_pai_is_preferred_and_tel_gives_the_number() -> None:
    msg = invite('From: "Spoofed" <sip:666@10.0.0.2>;tag=1',
                 'P-Asserted-Identity: "Front Desk" <sip:desk@trunk>, <tel:+44-20-7946-0000>')
    assert caller_identity(msg) == CallerIdentity("+442079460000", "Front Desk", "800")


def test_pai_in_two_headers_and_without_name_keeps_from_name() -> None:
    msg = invite("From: Alice <sip:alice@h>;tag=1", "P-Asserted-Identity: <sip:+15550101@trunk>",
                 "p-asserted-identity: <tel:+15550102>")
    assert caller_identity(msg) == CallerIdentity("+15550102", "Alice", "800")


def test_broken_pai_falls_back_to_from() -> None:
    msg = invite("From: <sip:bob@h>;tag=1", 'P-Asserted-Identity: "unterminated <sip:x@h>')
    assert caller_identity(msg) == CallerIdentity("bob", "", "800")


def test_compact_form_folding_and_spaces_before_colon() -> None:
    msg = invite('f : "Folded"\r\n  <sip:fold@h>;tag=1', uri="sips:%2B4930123@h;user=phone")
    assert caller_identity(msg) == CallerIdentity("fold", "Folded", "+4930123")


def test_headers_in_the_body_are_not_read() -> None:
    msg = invite("From: <sip:real@h>;tag=1", body="P-Asserted-Identity: <sip:fake@h>\r\n")
    assert caller_identity(msg).number == "real"


def test_wire_strings_are_cleaned() -> None:
    msg = invite('From: "\x1b[2J\u202eEvil\\"\x07" <sip:%0d%0aInjected%00@h>;tag=1',
                 uri="sip:%1b%5b31m800@h")
    ident = caller_identity(msg)
    assert ident.name == '\\x1b[2J\\u202eEvil"\\x07'
    assert ident.number == "\\x0d\\x0aInjected\\x00"
    assert ident.dialled == "\\x1b[31m800"


def test_undecodable_bytes_from_pjsua() -> None:
    # pjsua2 hands non-UTF-8 bytes over as lone surrogates.
    msg = invite('From: "caf\udce9" <sip:caf\udce9@h>;tag=1')
    assert caller_identity(msg) == CallerIdentity("caf\\xe9", "caf\\xe9", "800")


def test_long_values_are_capped() -> None:
    msg = invite(f'From: "{"N" * 5000}" <sip:{"9" * 300}@h>;tag=1', uri=f"sip:{'7' * 1000}@h")
    ident = caller_identity(msg)
    assert ident.name == "" and ident.number == ""  # the value is cut before its end: malformed
    assert len(ident.dialled) == 128 and ident.dialled.endswith("...")
    msg = invite(f'From: "{"N" * 500}" <sip:{"9" * 300}@h>;tag=1')
    ident = caller_identity(msg)
    assert len(ident.name) == 128 and len(ident.number) == 128


def test_header_section_is_bounded() -> None:
    msg = invite(*(f"X-Pad-{i}: {'p' * 100}" for i in range(MAX_HEADER_BYTES // 100)), "From: <sip:late@h>;tag=1")
    assert caller_identity(msg, fallback_from="<sip:fallback@h>").number == "fallback"


@pytest.mark.parametrize("msg", [
    "", "garbage", "\r\n\r\n", "INVITE\r\n\r\n", "INVITE sip:a@h\r\n", "INVITE sip:a@h SIP/2.0 extra\r\nFrom:\r\n",
    "INVITE  SIP/2.0\r\nFrom: <\r\n", "\x00\x01\x02", "INVITE sip:a@h SIP/2.0\r\n:\r\n : \r\n\tcontinued\r\n",
])
def test_garbage_never_raises(msg: str) -> None:
    ident = caller_identity(msg)
    assert isinstance(ident, CallerIdentity)


def test_fallbacks_when_the_message_lacks_them() -> None:
    ident = caller_identity("", fallback_from='"Pj" <sip:42@h>', fallback_to="<sip:100@h>")
    assert ident == CallerIdentity("42", "Pj", "100")
    # A Request-URI present wins over the To fallback.
    assert caller_identity(invite(uri="sip:555@h"), fallback_to="<sip:100@h>").dialled == "555"


def test_bare_lf_line_endings() -> None:
    msg = "INVITE sip:321@h SIP/2.0\nFrom: Bob <sip:bob@h>;tag=1\n\nFrom: <sip:body@h>\n"
    assert caller_identity(msg) == CallerIdentity("bob", "Bob", "321")
