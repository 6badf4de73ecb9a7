"""Parsing customer email: what real mail clients, broken relays and hostile senders produce."""

from __future__ import annotations

import contextlib
import email
import hashlib
import re
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.mail.bodies import view_text
from bot.mail.headers import normalise_message_id
from bot.mail.parse import MalformedEmailError, ParsedEmail, parse_email, ticket_token

CORPUS = Path(email.__file__).parent.parent / "test" / "test_email" / "data"


def raw(headers: str, body: bytes | str = b"Hello\r\n") -> bytes:
    head = headers.strip().replace("\n", "\r\n").encode("latin-1")
    return head + b"\r\n\r\n" + (body.encode() if isinstance(body, str) else body)


BASIC = """From: "Ada Lovelace" <Ada@Example.org>
To: support@example.com, "Bob" <bob@example.com>
Subject: Cannot   log in
Date: Fri, 20 Nov 2026 10:00:00 +0100
Message-ID: <abc.123@example.org>"""


def test_plain_mail_gives_sender_subject_date_and_ids():
    parsed = parse_email(raw(BASIC, "Hello, I cannot log in.\r\n"))
    assert parsed.from_name == "Ada Lovelace" and parsed.from_address == "ada@example.org"
    assert parsed.subject == "Cannot log in"
    assert parsed.date == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert parsed.message_id == parsed.dedupe_key == "abc.123@example.org"
    assert parsed.to == ("support@example.com", "bob@example.com")
    assert parsed.text == "Hello, I cannot log in.\n"
    assert parsed.auto_reason is None


def test_encoded_words_and_transfer_encodings_are_decoded():
    headers = (
        "From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.fr>\n"
        "Subject: =?UTF-8?B?RmF0dHVyYSBzYmFnbGlhdGEg4oKs?=\n"
        "Message-ID: <q@x>\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable"
    )
    parsed = parse_email(raw(headers, b"Caff=C3=A8 e cornetto =E2=82=AC\r\n"))
    assert parsed.from_name == "André"
    assert parsed.subject == "Fattura sbagliata €"
    assert parsed.text.strip() == "Caffè e cornetto €"


def test_mislabelled_and_unknown_charsets_never_fail():
    latin1_as_utf8 = parse_email(
        raw(BASIC + "\nContent-Type: text/plain; charset=utf-8", "Perché è così".encode("latin-1"))
    )
    assert latin1_as_utf8.text.startswith("Perch") and "così" in latin1_as_utf8.text
    unknown = parse_email(raw(BASIC + "\nContent-Type: text/plain; charset=x-unknown", b"caf\xe9"))
    assert unknown.text == "café"
    assert any("charset" in d for d in latin1_as_utf8.defects)


def test_html_only_mail_becomes_readable_text_with_links():
    headers = BASIC + "\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8"
    body = (
        "<html><body><p>Hi <b>team</b>,</p><p>see <a href='https://ex.org/x'>this page</a></p></body></html>"
    )
    parsed = parse_email(raw(headers, body))
    assert "<" not in parsed.text and "team" in parsed.text
    assert "https://ex.org/x" in parsed.text
    assert parsed.html is not None and "<b>team</b>" in parsed.html


def test_alternative_prefers_plain_and_attachments_are_listed():
    headers = BASIC + '\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="OUT"'
    body = (
        '--OUT\r\nContent-Type: multipart/alternative; boundary="ALT"\r\n\r\n'
        "--ALT\r\nContent-Type: text/plain\r\n\r\nplain words\r\n"
        "--ALT\r\nContent-Type: text/html\r\n\r\n<p>html words</p>\r\n--ALT--\r\n"
        "--OUT\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        "Content-Disposition: attachment; filename*=UTF-8''fattura%20%E2%82%AC.pdf\r\n\r\n"
        "JVBERi0xLjQK\r\n"
        "--OUT\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw==\r\n"
        "--OUT--\r\n"
    )
    parsed = parse_email(raw(headers, body))
    assert parsed.text.strip() == "plain words"
    assert [(a.filename, a.content_type, a.size) for a in parsed.attachments] == [
        ("fattura €.pdf", "application/pdf", 9),
        ("attachment-2.png", "image/png", 4),
    ]


@pytest.mark.parametrize(
    "attribution",
    [
        "On Mon, 16 Nov 2026 at 10:00, Support <support@example.com> wrote:",
        "Il giorno lun 16 nov 2026 alle ore 10:00 Support <support@example.com> ha scritto:",
        "Am 16.11.2026 um 10:00 schrieb Support <support@example.com>:",
        "-----Original Message-----",
    ],
)
def test_quoted_history_and_signature_are_trimmed_for_the_view_only(attribution):
    text = f"Thanks, it works now.\n\n{attribution}\n> Please try again.\n> Bye\n"
    assert view_text(text) == "Thanks, it works now."
    signed = view_text("Still broken.\n-- \nAda\nACME Corp\n")
    assert signed == "Still broken."
    parsed = parse_email(raw(BASIC, text))
    assert "Please try again" in parsed.text and "Please try again" not in parsed.view_text


def test_view_keeps_everything_when_trimming_would_leave_nothing():
    assert view_text("> only a quote\n> nothing else\n") == "> only a quote\n> nothing else"


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("Auto-Submitted: auto-replied", "auto-submitted"),
        ("Auto-Submitted: no", None),
        ("Precedence: bulk", "precedence-bulk"),
        ("Precedence: list", "precedence-bulk"),
        ("X-Autoreply: yes", "x-autoreply"),
        ("X-Auto-Response-Suppress: All", "x-auto-response-suppress"),
        ("Return-Path: <>", "bounce"),
    ],
)
def test_automatic_mail_is_marked_so_nothing_replies_to_it(extra, reason):
    assert parse_email(raw(BASIC + "\n" + extra)).auto_reason == reason


def test_bounces_and_our_own_address_are_marked():
    dsn = BASIC.replace("Ada@Example.org", "MAILER-DAEMON@mx.example.org")
    assert parse_email(raw(dsn)).auto_reason == "bounce"
    report = BASIC + '\nContent-Type: multipart/report; report-type=delivery-status; boundary="b"'
    assert parse_email(raw(report, "--b\r\n\r\nx\r\n--b--\r\n")).auto_reason == "bounce"
    own = parse_email(raw(BASIC), own_addresses=["ADA@example.org"])
    assert own.auto_reason == "own-address"


def test_mail_without_message_id_gets_a_stable_content_key():
    headers = BASIC.replace("Message-ID: <abc.123@example.org>", "").strip()
    first = parse_email(raw("Received: from a by b\n" + headers, "same body"))
    relayed = parse_email(raw("Received: from c by d\nReceived: from e\n" + headers, "same body"))
    other = parse_email(raw(headers, "another body"))
    assert first.message_id is None
    assert first.dedupe_key.startswith("sha256:")
    assert first.dedupe_key == relayed.dedupe_key
    assert first.dedupe_key != other.dedupe_key


def test_threading_headers_are_read_even_when_messy():
    headers = (
        BASIC + "\nIn-Reply-To: <parent@x>  (sent by Outlook)\nReferences: <a@x>\n <b@x>,<c@x> junk <a@x>"
    )
    parsed = parse_email(raw(headers))
    assert parsed.in_reply_to == "parent@x"
    assert parsed.references == ("a@x", "b@x", "c@x")


@pytest.mark.parametrize(
    ("subject", "number"),
    [("Re: problem [#123]", 123), ("[#7] [#8]", 7), ("no token #12", None), ("[# 5]", None), ("", None)],
)
def test_ticket_token(subject, number):
    assert ticket_token(subject) == number


def test_slack_markup_is_kept_verbatim_for_the_renderer_to_escape():
    parsed = parse_email(raw(BASIC.replace("Cannot   log in", "<!channel> hi"), "<@U123> & <!here>"))
    assert parsed.subject == "<!channel> hi"
    assert parsed.text.strip() == "<@U123> & <!here>"


@pytest.mark.parametrize("junk", [b"", b"   \r\n", b"\x00\x01\x02 not an email \xff", b"just some words\n"])
def test_input_without_message_structure_is_refused_clearly(junk):
    with pytest.raises(MalformedEmailError):
        parse_email(junk)


def test_the_cpython_odd_mime_corpus_never_crashes_the_parser():
    if not CORPUS.is_dir():
        pytest.skip("CPython's email test data is not installed")
    files = [p for p in CORPUS.iterdir() if p.is_file() and p.name.startswith("msg_")]
    parsed = 0
    for path in files:
        try:
            result = parse_email(path.read_bytes())
        except MalformedEmailError:
            continue
        assert isinstance(result, ParsedEmail)
        parsed += 1
    assert parsed >= 0.9 * len(files)


_header_names = st.sampled_from(
    [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "References",
        "In-Reply-To",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "Auto-Submitted",
        "X-Weird",
    ]
)
_header_values = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "=?utf-8?B?////?=",
            "=?x-unknown?Q?=FF?=",
            'multipart/mixed; boundary="b"',
            'text/plain; charset="klingon"',
            "base64",
            "quoted-printable",
            "<a@b> <c@d",
            "Mon, 99 Foo 2026 99:99:99 +9999",
            '"unterminated <x@y>',
            "attachment; filename*=utf-8''%FF%FE",
            "message/rfc822",
        ]
    ),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=st.lists(st.tuples(_header_names, _header_values), max_size=10),
    body=st.binary(max_size=400),
    nesting=st.integers(min_value=0, max_value=30),
)
def test_any_mail_either_parses_or_is_refused_cleanly(headers, body, nesting):
    head = "\r\n".join(f"{name}: {value}".replace("\r", " ").replace("\n", " ") for name, value in headers)
    nested = b""
    for depth in range(nesting):
        nested += f'--b{depth}\r\nContent-Type: multipart/mixed; boundary="b{depth + 1}"\r\n\r\n'.encode()
    message = head.encode("utf-8", "surrogateescape") + b"\r\n\r\n" + nested + body
    try:
        first = parse_email(message)
    except MalformedEmailError:
        return
    assert parse_email(message).dedupe_key == first.dedupe_key


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise_anything_else(data):
    with contextlib.suppress(MalformedEmailError):
        parse_email(data)


def test_pathological_quoting_is_fast():
    import time

    text = ("> " * 5000 + "x\n") * 20 + "On " + "x" * 100_000 + "\n"
    started = time.perf_counter()
    view_text(text)
    assert time.perf_counter() - started < 1.0


# -- the fast header path gives what policy.default gives -------------------------------
#
# The parser decodes headers without policy.default's parser where the result is known
# (plain text, dates, plain addresses and message ids). These tests hold it to what
# reading every header through policy.default gives, on odd input most of all.


def _sanitised(value: object) -> str:
    # NUL is stored as U+FFFD: PostgreSQL text cannot hold it.
    text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text.replace("\x00", "\ufffd")


def reference_fields(message: bytes) -> dict[str, object]:
    """Headers and header-derived fields as policy.default, asked header by header, gives them."""
    msg = BytesParser(policy=policy.default).parsebytes(message)
    stored = []
    for name, raw_value in msg.raw_items():
        try:
            value = str(policy.default.header_factory(name, raw_value))
        except Exception:
            value = raw_value
        stored.append((str(name), _sanitised(value)))

    def read(name: str) -> str:
        try:
            value = msg.get(name)
        except Exception:
            value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
        return "" if value is None else _sanitised(value)

    def address(value: str) -> tuple[str, str]:
        if not value:
            return "", ""
        try:
            name, addr = parseaddr(value)
        except Exception:
            name, addr = "", ""
        addr = addr.strip().lower()
        return re.sub(r"\s+", " ", name).strip(), addr if "@" in addr else ""

    def addresses(value: str) -> tuple[str, ...]:
        if not value:
            return ()
        try:
            return tuple(a.strip().lower() for _, a in getaddresses([value]) if "@" in a)
        except Exception:
            return ()

    digest = hashlib.sha256()
    for name in ("From", "To", "Date", "Subject"):
        digest.update(name.encode() + b":" + re.sub(r"\s+", " ", read(name)).strip().encode() + b"\n")
    return {
        "headers": tuple(stored),
        "from": address(read("From")),
        "reply_to": address(read("Reply-To"))[1] or None,
        "to": addresses(read("To")),
        "cc": addresses(read("Cc")),
        "subject": re.sub(r"\s+", " ", read("Subject")).strip(),
        "message_id": read("Message-ID"),
        "date": read("Date"),
        "header_hash": digest.hexdigest(),
    }


def fields_of(parsed: ParsedEmail, message: bytes) -> dict[str, object]:
    reference = reference_fields(message)
    found = {
        "headers": parsed.headers,
        "from": (parsed.from_name, parsed.from_address),
        "reply_to": parsed.reply_to,
        "to": parsed.to,
        "cc": parsed.cc,
        "subject": parsed.subject,
    }
    assert found == {key: reference[key] for key in found}
    return reference


_words = st.sampled_from(
    [
        "Ada",
        "Lovelace",
        "J.",
        "O'Brien",
        "x_y",
        "=?utf-8?q?Andr=C3=A9?=",
        "Rossi,",
        "Maria",
        "a@b",
        "<",
        ">",
        '"',
        "\\",
        "(note)",
        "é",
        "",
        "a;b",
        "[x]",
        "don't",
        "=?",
        "?=",
    ]
)
_addr_specs = st.sampled_from(
    [
        "ada@example.org",
        "A.B@C.D",
        "a..b@c",
        "x+tag@sub.example.com",
        "@nowhere",
        "noat",
        "a@[1.2.3.4]",
        '"q uoted"@x.y',
        "a@b.",
        ".a@b",
        "a@b@c",
        "ü@x.org",
        "a@b (comment)",
        "#!$%&'*+-/=?^_`{|}~@x",
    ]
)


@st.composite
def _mailboxes(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from([" ", "  ", "\t"])).join(draw(st.lists(_words, max_size=3)))
    addr = draw(_addr_specs)
    form = draw(st.integers(0, 4))
    if form == 0:
        return addr
    if form == 1:
        return f"{name} <{addr}>"
    if form == 2:
        return f'"{name}" <{addr}>'
    if form == 3:
        return f'"{name}"<{addr}>'
    return f"<{addr}>"


_address_lists = st.tuples(
    st.lists(_mailboxes(), min_size=1, max_size=3), st.sampled_from([", ", ",", " , ", ",  ", " "])
).map(lambda parts: parts[1].join(parts[0]))
_message_id_values = st.one_of(
    _addr_specs.map(lambda a: f"<{a}>"), _addr_specs, _addr_specs.map(lambda a: f" <{a}> (x)")
)
_date_values = st.sampled_from(
    [
        "Fri, 20 Nov 2026 10:00:00 +0100",
        "20 Nov 2026 10:00 -0000",
        "Fri, 20 Nov 2026",
        "yesterday",
        "",
        "Mon, 99 Foo 2026 99:99:99 +9999",
        "Fri, 20 Nov 2026 10:00:00 GMT",
        "Fri,20 Nov 26 10:00:00 EST",
    ]
)
_text_values = st.one_of(
    st.text(max_size=60), _words, st.sampled_from(["=?utf-8?B?RmF0dHVyYQ==?= x", "a  b\tc", "é =?x?= y"])
)


_HEADER_NAMES = ["From", "To", "Cc", "Reply-To", "Sender", "Message-ID", "Date", "Subject", "In-Reply-To"]
_HEADER_NAMES += ["References", "X-Mailer", "resent-from", "FROM"]


@st.composite
def _header_lines(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(_HEADER_NAMES))
    lower = name.lower()
    if lower in {"from", "to", "cc", "reply-to", "sender", "resent-from"}:
        value = draw(_address_lists)
    elif lower in {"message-id", "in-reply-to", "references"}:
        value = draw(_message_id_values)
    elif lower == "date":
        value = draw(_date_values)
    else:
        value = draw(_text_values)
    value = value.replace("\r", " ").replace("\n", " ")
    if " " in value and draw(st.booleans()):
        value = value.replace(" ", "\r\n ", 1)  # folded, as long headers are
    return f"{name}: {value}"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_header_lines(), min_size=1, max_size=6))
def test_headers_read_as_policy_default_reads_them(lines):
    message = ("\r\n".join(lines) + "\r\n\r\nbody\r\n").encode("utf-8", "surrogateescape")
    try:
        parsed = parse_email(message)
    except MalformedEmailError:
        return
    reference = fields_of(parsed, message)
    assert parsed.message_id == normalise_message_id(reference["message_id"])
    if parsed.message_id is None:
        assert parsed.dedupe_key == parse_email(message).dedupe_key


def test_the_corpus_headers_read_as_policy_default_reads_them():
    if not CORPUS.is_dir():
        pytest.skip("CPython's email test data is not installed")
    compared = 0
    for path in sorted(p for p in CORPUS.iterdir() if p.is_file()):
        message = path.read_bytes()
        try:
            parsed = parse_email(message)
        except MalformedEmailError:
            continue
        fields_of(parsed, message)
        compared += 1
    assert compared > 40


def test_plain_addresses_and_ids_are_rendered_as_policy_default_renders_them():
    message = raw(
        """From: "Rossi, Maria" <maria.rossi@example.it>
To: support@example.com,  Bob Smith <bob@example.com>, "Team" <team@example.com>
Cc: "Ann  Lee" <ann@example.com>, J. Doe <j@example.com>
Message-ID: <abc.123@example.org>
Date: Fri, 20 Nov 2026 10:00:00 +0100"""
    )
    parsed = parse_email(message)
    fields_of(parsed, message)
    assert dict(parsed.headers)["To"] == (
        "support@example.com, Bob Smith <bob@example.com>, Team <team@example.com>"
    )
    assert dict(parsed.headers)["From"] == '"Rossi, Maria" <maria.rossi@example.it>'
    assert parsed.from_name == "Rossi, Maria"
